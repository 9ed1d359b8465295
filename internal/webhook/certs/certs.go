// Package certs keeps the webhook's certificates when no certificate manager
// provides them: a CA and a serving certificate in one Secret that every
// replica reads, renewed well before they expire, with the CA kept in the
// ValidatingWebhookConfiguration's caBundle. It follows
// open-policy-agent/cert-controller's rotator. In a real cluster, prefer
// certificates from cert-manager.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Keys of the certificate Secret. tls.crt and tls.key are a kubernetes.io/tls
// Secret's; ca.crt is the bundle the apiserver trusts: the signing CA first,
// then the previous CA while it is still valid, so replicas still serving a
// certificate of the previous CA stay trusted during a rotation.
const (
	CertKey   = "tls.crt"
	KeyKey    = "tls.key"
	CAKey     = "ca.crt"
	CAKeysKey = "ca.key"
)

// Lifetimes. A certificate is renewed once less than a third of its lifetime
// is left: the serving certificate about four months before it expires, the
// CA about twenty months before.
const (
	DefaultCAValidity   = 5 * 365 * 24 * time.Hour
	DefaultCertValidity = 365 * 24 * time.Hour
)

// renewWhenLeft is the share of a lifetime below which a certificate is
// renewed.
const renewWhenLeft = 3

// backdate tolerates clock skew between the operator and the apiserver.
const backdate = time.Hour

// bundle is the parsed content of the certificate Secret.
type bundle struct {
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	trusted []*x509.Certificate // ca first
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
}

// parseBundle reads a Secret's data; any missing or malformed part is an
// error, after which the caller makes a new bundle.
func parseBundle(data map[string][]byte) (*bundle, error) {
	trusted, err := parseCertificates(data[CAKey])
	if err != nil || len(trusted) == 0 {
		return nil, fmt.Errorf("%s: no certificate (%v)", CAKey, err)
	}
	caKey, err := parseKey(data[CAKeysKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKeysKey, err)
	}
	if !publicKeyMatches(trusted[0], caKey) {
		return nil, fmt.Errorf("%s does not belong to the first certificate of %s", CAKeysKey, CAKey)
	}
	certs, err := parseCertificates(data[CertKey])
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("%s: no certificate (%v)", CertKey, err)
	}
	key, err := parseKey(data[KeyKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyKey, err)
	}
	if !publicKeyMatches(certs[0], key) {
		return nil, fmt.Errorf("%s does not belong to %s", KeyKey, CertKey)
	}
	return &bundle{ca: trusted[0], caKey: caKey, trusted: trusted, cert: certs[0], certPEM: data[CertKey], keyPEM: data[KeyKey]}, nil
}

// data is the Secret's content for b.
func (b *bundle) data() map[string][]byte {
	caKeyDER, _ := x509.MarshalECPrivateKey(b.caKey) // a key we made or parsed: always marshals
	return map[string][]byte{
		CAKey:     b.caBundle(),
		CAKeysKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKeyDER}),
		CertKey:   b.certPEM,
		KeyKey:    b.keyPEM,
	}
}

// caBundle is what the webhook configuration's caBundle holds.
func (b *bundle) caBundle() []byte {
	var out []byte
	for _, c := range b.trusted {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// renewed returns the bundle to store at now for hosts, and why it differs
// from b; an empty reason means b is kept as it is. A nil b makes a new CA.
func renewed(b *bundle, hosts []string, now time.Time, caValidity, certValidity time.Duration) (*bundle, string, error) {
	var reason string
	switch {
	case b == nil:
		reason = "no CA yet"
	case expiresSoon(b.ca, now, caValidity):
		reason = fmt.Sprintf("the CA expires at %s", b.ca.NotAfter.UTC().Format(time.RFC3339))
	}
	if reason != "" {
		ca, caKey, err := newCA(now, caValidity)
		if err != nil {
			return nil, "", err
		}
		next := &bundle{ca: ca, caKey: caKey, trusted: []*x509.Certificate{ca}}
		if b != nil && now.Before(b.ca.NotAfter) {
			next.trusted = append(next.trusted, b.ca)
		}
		if err := next.issue(hosts, now, certValidity); err != nil {
			return nil, "", err
		}
		return next, reason, nil
	}

	// The same CA: drop previous CAs that have expired, renew the serving
	// certificate when it is due, names other hosts or has another issuer.
	next := *b
	next.trusted = slices.DeleteFunc(slices.Clone(b.trusted[1:]), func(c *x509.Certificate) bool { return !now.Before(c.NotAfter) })
	next.trusted = append([]*x509.Certificate{b.ca}, next.trusted...)
	if len(next.trusted) != len(b.trusted) {
		reason = "a previous CA expired"
	}
	switch {
	case expiresSoon(b.cert, now, certValidity):
		reason = fmt.Sprintf("the serving certificate expires at %s", b.cert.NotAfter.UTC().Format(time.RFC3339))
	case b.cert.CheckSignatureFrom(b.ca) != nil:
		reason = "the serving certificate is not signed by the CA"
	case !covers(b.cert, hosts):
		reason = "the serving certificate does not name every host"
	default:
		return &next, reason, nil
	}
	if err := next.issue(hosts, now, certValidity); err != nil {
		return nil, "", err
	}
	return &next, reason, nil
}

// expiresSoon: less than a third of validity left (or not yet valid, which
// a clock set back would cause).
func expiresSoon(c *x509.Certificate, now time.Time, validity time.Duration) bool {
	return c.NotAfter.Sub(now) < validity/renewWhenLeft || now.Before(c.NotBefore)
}

// covers reports whether c is valid for every host.
func covers(c *x509.Certificate, hosts []string) bool {
	names, ips := splitHosts(hosts)
	for _, n := range names {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func newCA(now time.Time, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serialNumber, err := serial()
	if err != nil {
		return nil, nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          serialNumber,
		Subject:               pkix.Name{CommonName: "spectrum-operator-webhook-ca"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// issue gives b a new serving certificate for hosts (plus localhost and
// 127.0.0.1), signed by its CA; it never outlives the CA.
func (b *bundle) issue(hosts []string, now time.Time, validity time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serialNumber, err := serial()
	if err != nil {
		return err
	}
	dnsNames, ips := splitHosts(hosts)
	notAfter := now.Add(validity)
	if notAfter.After(b.ca.NotAfter) {
		notAfter = b.ca.NotAfter
	}
	template := &x509.Certificate{
		SerialNumber: serialNumber,
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, b.ca, &key.PublicKey, b.caKey)
	if err != nil {
		return fmt.Errorf("creating the serving certificate: %w", err)
	}
	if b.cert, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	b.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	b.keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return nil
}

// splitHosts sorts hosts into DNS names and IPs, adds localhost and
// 127.0.0.1 (a local `make run` is reached there), and drops duplicates and
// empty entries, keeping the caller's order.
func splitHosts(hosts []string) ([]string, []net.IP) {
	var names []string
	var ips []net.IP
	for _, h := range append(slices.Clone(hosts), "localhost", "127.0.0.1") {
		switch ip := net.ParseIP(h); {
		case h == "":
		case ip != nil:
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		case !slices.Contains(names, h):
			names = append(names, h)
		}
	}
	return names, ips
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if key, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return key, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, want ECDSA", key)
	}
	return ec, nil
}

func publicKeyMatches(c *x509.Certificate, key *ecdsa.PrivateKey) bool {
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	return ok && pub.Equal(&key.PublicKey)
}
