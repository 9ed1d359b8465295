// Package certs makes a self-signed serving certificate for the webhook
// server when no certificate manager provides one: `make run` against a dev
// control plane, or a deployment without cert-manager. In a real cluster,
// prefer certificates from cert-manager.
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
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names in the certificate directory, as controller-runtime's webhook
// server and Kubernetes TLS Secrets name them.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// validity is how long the CA and serving certificate last. To renew, delete
// the directory's files and restart.
const validity = 365 * 24 * time.Hour

// EnsureSelfSigned makes sure dir holds a serving certificate and key. When
// tls.crt or tls.key is missing, it generates a CA and a serving certificate
// signed by it (ECDSA P-256, one year, SANs from hosts plus localhost and
// 127.0.0.1) and writes tls.crt, tls.key and ca.crt. Existing files are left
// alone, so it is safe to call on every start.
//
// It returns the CA bundle to put in a ValidatingWebhookConfiguration's
// caBundle: ca.crt, or tls.crt when ca.crt is absent (a certificate supplied
// by someone else that is its own CA).
func EnsureSelfSigned(dir string, hosts []string) (caPEM []byte, err error) {
	certPath, keyPath, caPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, CAFile)
	haveCert, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	haveKey, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	if haveCert && haveKey {
		if ca, err := os.ReadFile(caPath); err == nil {
			return ca, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return os.ReadFile(certPath)
	}

	caPEM, certPEM, keyPEM, err := generate(hosts, time.Now())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// The key first and the certificate last: a crash in between leaves no
	// tls.crt, so the next start generates a fresh, matching pair.
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{caPath, caPEM, 0o644},
		{keyPath, keyPEM, 0o600},
		{certPath, certPEM, 0o644},
	} {
		if err := writeFileAtomic(f.path, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return caPEM, nil
}

// generate makes a CA and a serving certificate for hosts, valid from now.
func generate(hosts []string, now time.Time) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caSerial, err := serial()
	if err != nil {
		return nil, nil, nil, err
	}
	// An hour of backdating tolerates clock skew between the operator and the
	// apiserver.
	notBefore, notAfter := now.Add(-time.Hour), now.Add(validity)
	caTemplate := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: "spectrum-operator-webhook-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	certSerial, err := serial()
	if err != nil {
		return nil, nil, nil, err
	}
	dnsNames, ips := splitHosts(hosts)
	common := "localhost"
	if len(dnsNames) > 0 {
		common = dnsNames[0]
	}
	template := &x509.Certificate{
		SerialNumber: certSerial,
		Subject:      pkix.Name{CommonName: common},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	certDER, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		nil
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

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, err
}

// writeFileAtomic writes through a temporary file and a rename, so a reader
// (the webhook server's certificate watcher) never sees half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close() //nolint:errcheck // the write error is the one to report
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close() //nolint:errcheck // the chmod error is the one to report
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
