package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEnsureSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	hosts := []string{"webhook-service.system.svc", "webhook-service.system.svc.cluster.local", "10.96.0.10", "localhost"}

	caPEM, err := EnsureSelfSigned(dir, hosts)
	if err != nil {
		t.Fatal(err)
	}

	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatalf("tls.crt and tls.key do not form a pair: %v", err)
	}
	leaf := pair.Leaf
	if key, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() {
		t.Errorf("serving key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if d := leaf.NotAfter.Sub(time.Now()); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("serving certificate expires in %v, want about a year", d)
	}

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("returned CA bundle is not PEM: %q", caPEM)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil || !bytes.Equal(onDisk, caPEM) {
		t.Errorf("ca.crt differs from the returned bundle (err %v)", err)
	}
	for _, host := range append(hosts, "127.0.0.1") {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: roots}); err == nil {
		t.Error("certificate verifies for a host it was not made for")
	}
	if len(leaf.DNSNames) != 3 || len(leaf.IPAddresses) != 2 {
		t.Errorf("SANs: DNS %v, IP %v; want 3 names and 2 IPs without duplicates", leaf.DNSNames, leaf.IPAddresses)
	}

	info, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("tls.key mode %v, want 0600", perm)
	}

	t.Run("idempotent", func(t *testing.T) {
		before := readAll(t, dir)
		again, err := EnsureSelfSigned(dir, []string{"something-else"})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, caPEM) {
			t.Error("second call returned another CA")
		}
		if after := readAll(t, dir); after != before {
			t.Error("second call changed the files")
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 3 {
			t.Errorf("directory holds %d entries, want tls.crt, tls.key and ca.crt only", len(entries))
		}
	})

	t.Run("regenerates a missing key", func(t *testing.T) {
		if err := os.Remove(filepath.Join(dir, KeyFile)); err != nil {
			t.Fatal(err)
		}
		fresh, err := EnsureSelfSigned(dir, hosts)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(fresh, caPEM) {
			t.Error("a new pair should come with a new CA")
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)); err != nil {
			t.Errorf("regenerated files do not form a pair: %v", err)
		}
	})
}

// A certificate someone else put there without a ca.crt is kept, and is
// returned as its own CA bundle.
func TestEnsureSelfSignedKeepsSuppliedCertificate(t *testing.T) {
	dir := t.TempDir()
	_, certPEM, keyPEM, err := generate([]string{"example.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{CertFile: certPEM, KeyFile: keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := EnsureSelfSigned(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, certPEM) {
		t.Error("want tls.crt returned as the bundle")
	}
	if _, err := os.Stat(filepath.Join(dir, CAFile)); !os.IsNotExist(err) {
		t.Errorf("ca.crt was written next to a supplied certificate (err %v)", err)
	}
	if block, _ := pem.Decode(got); block == nil || block.Type != "CERTIFICATE" {
		t.Error("bundle is not a PEM certificate")
	}
}

func readAll(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	for _, name := range []string{CertFile, KeyFile, CAFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}
