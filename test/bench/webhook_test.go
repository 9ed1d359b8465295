//go:build bench

package bench

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudflare-operator/spectrum-operator/test/harness"
)

// servingWebhookArgs have the manager serve its admission webhook, as the
// chart and kustomize install it, on a certificate of a test CA. What the
// webhook keeps (its view of every app's claim, its indexes) is part of the
// manager's memory; the scale scenario's control plane does not call it,
// as admission has its own scenario.
func servingWebhookArgs(t *testing.T) []string {
	t.Helper()
	addr, err := freeAddress()
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	_, cert, key := harness.IssueCertificate(t, host)
	dir := t.TempDir()
	for name, content := range map[string][]byte{"tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--enable-webhooks=true", "--webhook-host", host, "--webhook-port", port, "--webhook-cert-dir", dir}
}
