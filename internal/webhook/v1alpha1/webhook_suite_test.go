package v1alpha1

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	spectrumv1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// The suite runs one real kube-apiserver and etcd (envtest) per package, with
// the CRD and the generated ValidatingWebhookConfiguration installed and a
// manager serving the webhook, so every test request goes through the same
// admission chain as kubectl's.
var (
	k8sClient client.Client // talks to the apiserver directly
	// restConfig reaches the apiserver, for clients of a test's own.
	restConfig *rest.Config
	cached     client.Reader // the manager's cache, which the webhook reads
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))

	testEnv, err := testenv.New(testenv.Options{WithWebhooks: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: starting envtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}()
	restConfig = cfg

	scheme := testenv.Scheme()
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: client: %v\n", err)
		return 1
	}

	wio := &testEnv.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:    wio.LocalServingHost,
			Port:    wio.LocalServingPort,
			CertDir: wio.LocalServingCertDir,
		}),
		Metrics:        metricsserver.Options{BindAddress: "0"},
		LeaderElection: false,
		// The manager's cache, whose SpectrumApps are Records.
		Cache: cache.Options{DefaultTransform: controller.CacheTransform()},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: manager: %v\n", err)
		return 1
	}
	if err := SetupSpectrumAppWebhookWithManager(mgr, Options{DefaultPlan: spectrumv1alpha1.PlanEnterprise, DefaultCredentials: spectrumv1alpha1.SecretKey{NamespacedName: defaultCredentials}}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: webhook setup: %v\n", err)
		return 1
	}
	cached = mgr.GetClient()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		}
	}()

	if err := waitForTLS(net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort)), 30*time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: webhook server: %v\n", err)
		return 1
	}
	return m.Run()
}

// waitForTLS waits until the webhook server answers a TLS handshake.
func waitForTLS(addr string, timeout time.Duration) error {
	dialer := &net.Dialer{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		conn, err := tls.DialWithDialer(dialer, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a readiness probe of our own test server
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving at %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newNamespace gives a test its own namespace. envtest runs no namespace
// controller, so deletion only marks it; names never repeat.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.GenerateName = "spectrum-webhook-"
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}
