package drain_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
	"github.com/cloudflare-operator/spectrum-operator/internal/webhook/drain"
)

// Told to stop, the server keeps serving new connections for its period,
// closes each connection it answers, reports itself not ready, and stops
// only afterwards; before that it keeps connections alive as usual.
func TestServerDrainsBeforeItStops(t *testing.T) {
	const period = 2 * time.Second
	port := freePort(t)
	server := drain.New(webhook.NewServer(webhook.Options{
		Host: "127.0.0.1", Port: port,
		TLSOpts: []func(*tls.Config){selfSigned(t), func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}), period)
	server.Register("/validate", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))

	ctx, stop := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- server.Start(ctx) }()
	ready := server.StartedChecker()
	testenv.Eventually(t, 10*time.Second, func() string { return errorText(ready(nil)) })

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/validate"
	if resp := post(t, client, url); resp.Close {
		t.Fatal("a serving server closed the connection after answering")
	}

	stop()
	stoppedAt := time.Now()
	testenv.Eventually(t, 10*time.Second, func() string {
		if err := ready(nil); !errors.Is(err, drain.ErrDraining) {
			return "readiness while draining: " + errorText(err)
		}
		return ""
	})
	for _, fresh := range []bool{false, true} {
		if fresh {
			client.CloseIdleConnections()
		}
		if resp := post(t, client, url); !resp.Close {
			t.Errorf("while draining, an answer on a %s connection kept it open", map[bool]string{false: "kept-alive", true: "new"}[fresh])
		}
	}
	select {
	case err := <-stopped:
		t.Fatalf("stopped after %s, before the drain period of %s: %v", time.Since(stoppedAt), period, err)
	case <-time.After(period / 2):
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(stoppedAt); took < period {
			t.Errorf("stopped after %s, drain period %s", took, period)
		}
	case <-time.After(10 * period):
		t.Fatal("the server did not stop after draining")
	}
	if _, err := client.Post(url, "application/json", nil); err == nil {
		t.Error("a stopped server still answered")
	}
}

func post(t *testing.T, client *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := client.Post(url, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	return resp
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func selfSigned(t *testing.T) func(*tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return func(c *tls.Config) {
		c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }
	}
}
