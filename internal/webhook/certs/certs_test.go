package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"testing"
	"time"
)

var hosts = []string{"webhook-service.system.svc", "webhook-service.system.svc.cluster.local", "10.96.0.10"}

const (
	caValidity   = 300 * 24 * time.Hour
	certValidity = 90 * 24 * time.Hour
)

func TestNewBundle(t *testing.T) {
	now := time.Now()
	b, reason, err := renewed(nil, hosts, now, caValidity, certValidity)
	if err != nil {
		t.Fatal(err)
	}
	if reason == "" {
		t.Error("a new bundle needs a reason")
	}
	if key, ok := b.cert.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() {
		t.Errorf("serving key is %T, want ECDSA P-256", b.cert.PublicKey)
	}
	if got := b.cert.NotAfter.Sub(now); got < certValidity-time.Minute || got > certValidity+time.Minute {
		t.Errorf("serving certificate lasts %v, want %v", got, certValidity)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b.caBundle()) {
		t.Fatal("the CA bundle is not PEM")
	}
	for _, host := range append(hosts, "localhost", "127.0.0.1") {
		if _, err := b.cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", host, err)
		}
	}
	if _, err := b.cert.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: roots}); err == nil {
		t.Error("certificate verifies for a host it was not made for")
	}
	if len(b.cert.DNSNames) != 3 || len(b.cert.IPAddresses) != 2 {
		t.Errorf("SANs: DNS %v, IP %v; want 3 names and 2 IPs without duplicates", b.cert.DNSNames, b.cert.IPAddresses)
	}

	// What is stored reads back as the same bundle.
	back, err := parseBundle(b.data())
	if err != nil {
		t.Fatal(err)
	}
	if !back.cert.Equal(b.cert) || !back.ca.Equal(b.ca) || len(back.trusted) != 1 {
		t.Error("the stored bundle does not read back as written")
	}
}

// TestRenewal: what each check finds, at which time, and what the caBundle
// trusts afterwards.
func TestRenewal(t *testing.T) {
	start := time.Now()
	first, _, err := renewed(nil, hosts, start, caValidity, certValidity)
	if err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	for _, tc := range []struct {
		name        string
		at          time.Time
		hosts       []string
		wantReason  bool
		wantNewCA   bool
		wantNewCert bool
		wantTrusted int
	}{
		{name: "fresh: kept", at: start.Add(day), hosts: hosts, wantTrusted: 1},
		{name: "two thirds of the certificate's life: kept", at: start.Add(certValidity*2/3 - day), hosts: hosts, wantTrusted: 1},
		{name: "less than a third left: renewed with the same CA", at: start.Add(certValidity*2/3 + day), hosts: hosts, wantReason: true, wantNewCert: true, wantTrusted: 1},
		{name: "a new host: renewed", at: start.Add(day), hosts: append([]string{"extra.example"}, hosts...), wantReason: true, wantNewCert: true, wantTrusted: 1},
		{name: "fewer hosts: kept", at: start.Add(day), hosts: hosts[:1], wantTrusted: 1},
		{name: "CA due: new CA, the old one still trusted", at: start.Add(caValidity*2/3 + day), hosts: hosts, wantReason: true, wantNewCA: true, wantNewCert: true, wantTrusted: 2},
		{name: "CA expired: new CA only", at: start.Add(caValidity + day), hosts: hosts, wantReason: true, wantNewCA: true, wantNewCert: true, wantTrusted: 1},
		{name: "clock set back before the certificate: renewed, the old CA kept", at: start.Add(-2 * day), hosts: hosts, wantReason: true, wantNewCA: true, wantNewCert: true, wantTrusted: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason, err := renewed(first, tc.hosts, tc.at, caValidity, certValidity)
			if err != nil {
				t.Fatal(err)
			}
			if (reason != "") != tc.wantReason {
				t.Errorf("reason %q, want one: %t", reason, tc.wantReason)
			}
			if newCA := !got.ca.Equal(first.ca); newCA != tc.wantNewCA {
				t.Errorf("new CA: %t, want %t", newCA, tc.wantNewCA)
			}
			if newCert := !got.cert.Equal(first.cert); newCert != tc.wantNewCert {
				t.Errorf("new serving certificate: %t, want %t", newCert, tc.wantNewCert)
			}
			if len(got.trusted) != tc.wantTrusted {
				t.Errorf("the caBundle holds %d CAs, want %d", len(got.trusted), tc.wantTrusted)
			}
			if err := got.cert.CheckSignatureFrom(got.ca); err != nil {
				t.Errorf("the serving certificate is not signed by the CA: %v", err)
			}
			if got.cert.NotAfter.After(got.ca.NotAfter) {
				t.Error("the serving certificate outlives its CA")
			}
			if _, err := parseBundle(got.data()); err != nil {
				t.Errorf("the renewed bundle does not read back: %v", err)
			}
		})
	}

	// The previous CA leaves the bundle once it has expired.
	rotated, _, err := renewed(first, hosts, start.Add(caValidity*2/3+day), caValidity, certValidity)
	if err != nil {
		t.Fatal(err)
	}
	later, reason, err := renewed(rotated, hosts, start.Add(caValidity+day), caValidity, certValidity)
	if err != nil {
		t.Fatal(err)
	}
	if len(later.trusted) != 1 || !later.ca.Equal(rotated.ca) || reason == "" {
		t.Errorf("after the old CA expired: %d trusted, same CA %t, reason %q; want only the new CA, with a reason", len(later.trusted), later.ca.Equal(rotated.ca), reason)
	}
}

func TestParseBundleRefusesMismatches(t *testing.T) {
	a, _, err := renewed(nil, hosts, time.Now(), caValidity, certValidity)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := renewed(nil, hosts, time.Now(), caValidity, certValidity)
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(map[string][]byte){
		"no ca.crt":               func(d map[string][]byte) { delete(d, CAKey) },
		"no ca.key":               func(d map[string][]byte) { delete(d, CAKeysKey) },
		"no tls.crt":              func(d map[string][]byte) { delete(d, CertKey) },
		"garbage tls.key":         func(d map[string][]byte) { d[KeyKey] = []byte("not a key") },
		"another bundle's key":    func(d map[string][]byte) { d[KeyKey] = b.data()[KeyKey] },
		"another bundle's CA key": func(d map[string][]byte) { d[CAKeysKey] = b.data()[CAKeysKey] },
	} {
		t.Run(name, func(t *testing.T) {
			d := a.data()
			mutate(d)
			if _, err := parseBundle(d); err == nil {
				t.Error("parsed a broken bundle")
			}
		})
	}
}
