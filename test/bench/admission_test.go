//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
	"github.com/cloudflare-operator/spectrum-operator/test/harness"
)

// admissionGoal is issue 8's bound on p99 admission latency.
const admissionGoal = 5 * time.Millisecond

// runAdmission measures server-side dry-run creates through the apiserver
// with the ValidatingWebhookConfiguration of config/webhook pointed at the
// real manager binary, as hack/devcluster sets it up for make dev-up.
func runAdmission(ctx context.Context, t *testing.T, cfg config, rep *report) {
	const scenario = "admission"
	dir := t.TempDir()
	cp, err := testenv.New(testenv.Options{WithWebhooks: true})
	if err != nil {
		t.Fatal(err)
	}
	cp.WebhookInstallOptions.LocalServingHost = "127.0.0.1"
	restCfg, err := cp.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			t.Logf("stopping the control plane: %v", err)
		}
	}()
	admin, err := cp.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	// The manager needs an API to point at; dry runs never reach it.
	sim := spectrumtest.NewServer(simulatorConfig(1, unenforced, 0))
	defer sim.Close()

	wio := cp.WebhookInstallOptions
	metricsAddr, err := freeAddress()
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := harness.NewManager(ctx, dir, kubeconfigPath, sim.URL, harness.ManagerOptions{
		ResyncPeriod:       cfg.Resync,
		MetricsBindAddress: metricsAddr,
		ExtraArgs: []string{
			"--enable-webhooks=true",
			"--webhook-host", wio.LocalServingHost,
			"--webhook-port", strconv.Itoa(wio.LocalServingPort),
			"--webhook-cert-dir", wio.LocalServingCertDir,
		},
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := mgr.Stop(); err != nil {
			t.Logf("stopping the manager: %v", err)
		}
	}()

	fastCfg := rest.CopyConfig(restCfg)
	fastCfg.QPS, fastCfg.Burst = -1, -1
	c, err := client.New(fastCfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-admission-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}, Namespace: ns.Name, Name: secretName},
		StringData: map[string]string{v1alpha1.DefaultCredentialsKey: benchToken},
	}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}

	// Warm up connections, the webhook's cache and the apiserver's.
	if _, err := dryRuns(ctx, c, ns.Name, 100, validApp, true); err != nil {
		t.Fatal(err)
	}
	var validP99 time.Duration
	for _, kind := range []struct {
		name  string
		make  func(string, int) *v1alpha1.SpectrumApp
		valid bool
	}{{"valid", validApp, true}, {"invalid", invalidApp, false}} {
		before, err := apiserverMetrics(ctx, restCfg)
		if err != nil {
			t.Fatal(err)
		}
		latencies, err := dryRuns(ctx, c, ns.Name, cfg.AdmissionRequests, kind.make, kind.valid)
		if err != nil {
			t.Fatal(err)
		}
		after, err := apiserverMetrics(ctx, restCfg)
		if err != nil {
			t.Fatal(err)
		}
		// The apiserver's own histogram of its calls to the webhook: the
		// share of calls within its 5 ms bucket is the webhook's p99 goal
		// seen from where the time is spent, without the rest of the
		// request around it.
		calls := after.webhookCalls(false) - before.webhookCalls(false)
		within := after.webhookCalls(true) - before.webhookCalls(true)
		if calls > 0 {
			share := within / calls
			rep.add(scenario, fmt.Sprintf("webhook calls within 5 ms as the apiserver times them, %s (%.0f)", kind.name, calls), "≥ 99 %",
				fmt.Sprintf("%.1f %%", share*100), yesNo(share >= 0.99), share*100, "%")
		}
		if kind.valid {
			validP99 = percentile(latencies, 99)
		}
		p50, p99 := percentile(latencies, 50), percentile(latencies, 99)
		rep.add(scenario, fmt.Sprintf("dry-run create p50, %s (%d)", kind.name, len(latencies)), "—",
			ms(p50), "info", p50.Seconds()*1000, "ms")
		rep.add(scenario, fmt.Sprintf("dry-run create p99, %s (%d)", kind.name, len(latencies)), "< 5 ms",
			ms(p99), yesNo(p99 < admissionGoal), p99.Seconds()*1000, "ms")
		rep.detail(scenario, kind.name, map[string]string{
			"p50": p50.String(), "p90": percentile(latencies, 90).String(), "p99": p99.String(),
			"max": slices.Max(latencies).String(),
		})
		t.Logf("%s: p50 %s, p90 %s, p99 %s, max %s", kind.name, p50, percentile(latencies, 90), p99, slices.Max(latencies))
	}

	// The webhook's own share: its handler time as the manager measured it,
	// and the same dry runs once the webhook is no longer registered.
	if m, err := scrape(ctx, metricsAddr); err == nil {
		count := m.sum("controller_runtime_webhook_latency_seconds_count")
		if count > 0 {
			mean := time.Duration(m.sum("controller_runtime_webhook_latency_seconds_sum") / count * float64(time.Second))
			rep.add(scenario, fmt.Sprintf("webhook handler mean time (%0.f requests)", count), "—", ms(mean), "info", mean.Seconds()*1000, "ms")
		}
	}
	for _, wh := range wio.ValidatingWebhooks {
		if err := c.Delete(ctx, wh); err != nil {
			t.Fatalf("removing the webhook registration: %v", err)
		}
	}
	// The apiserver drops the webhook once its informer sees the delete.
	if err := waitUnregistered(ctx, c, ns.Name); err != nil {
		t.Fatal(err)
	}
	latencies, err := dryRuns(ctx, c, ns.Name, cfg.AdmissionRequests, validApp, true)
	if err != nil {
		t.Fatal(err)
	}
	p50, p99 := percentile(latencies, 50), percentile(latencies, 99)
	rep.add(scenario, fmt.Sprintf("dry-run create p50 / p99 without the webhook (%d)", len(latencies)), "—",
		ms(p50)+" / "+ms(p99), "info", p99.Seconds()*1000, "ms")
	added := validP99 - p99
	rep.add(scenario, "p99 the webhook adds to a valid dry-run create", "—", ms(added), "info", added.Seconds()*1000, "ms")
	rep.detail(scenario, "withoutWebhook", map[string]string{"p50": p50.String(), "p99": p99.String(), "max": slices.Max(latencies).String()})
	t.Logf("without the webhook: p50 %s, p99 %s", p50, p99)
}

// waitUnregistered waits until an invalid app is no longer denied.
func waitUnregistered(ctx context.Context, c client.Client, ns string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Create(ctx, invalidApp(ns, 0), client.DryRunAll); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the webhook still answers 30s after its registration was deleted")
}

func validApp(ns string, i int) *v1alpha1.SpectrumApp { return app(ns, i, 1) }

// invalidApp passes the CRD's schema but breaks rules only the webhook
// knows: an IPv6 origin without brackets (11002) and a port range of
// another length than the edge's (11002).
func invalidApp(ns string, i int) *v1alpha1.SpectrumApp {
	a := app(ns, i, 1)
	a.Spec.Protocol = "tcp/1000-1010"
	a.Spec.OriginDirect = []string{"tcp://2001:db8::1:1000", "tcp://192.0.2.1:2000-2005"}
	return a
}

// dryRuns sends n server-side dry-run creates one after another and
// returns each one's latency. Valid ones must be allowed, invalid ones
// denied by the webhook.
func dryRuns(ctx context.Context, c client.Client, ns string, n int, newApp func(string, int) *v1alpha1.SpectrumApp, valid bool) ([]time.Duration, error) {
	latencies := make([]time.Duration, 0, n)
	// The latency measured is the apiserver's and the webhook's, not this
	// process's: its garbage collector is kept from pausing a request (a
	// series allocates a few tens of MiB) and runs between series instead.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	objects := make([]*v1alpha1.SpectrumApp, n)
	for i := range objects {
		objects[i] = newApp(ns, i)
	}
	for i, obj := range objects {
		start := time.Now()
		err := c.Create(ctx, obj, client.DryRunAll)
		latencies = append(latencies, time.Since(start))
		switch {
		case valid && err != nil:
			return nil, fmt.Errorf("valid app %d refused: %w", i, err)
		case !valid && err == nil:
			return nil, fmt.Errorf("invalid app %d allowed", i)
		case !valid && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "denied the request")):
			return nil, fmt.Errorf("invalid app %d not denied by the webhook: %w", i, err)
		}
	}
	return latencies, nil
}

// percentile is the nearest-rank p-th percentile.
func percentile(d []time.Duration, p float64) time.Duration {
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", d.Seconds()*1000) }

// runRules runs the rule set's Go benchmarks (what the webhook spends per
// request on validation) and reports each.
func runRules(ctx context.Context, t *testing.T, _ config, rep *report) {
	cmd := exec.CommandContext(ctx, "go", "test", "./api/v1alpha1/rules", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1")
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test -bench: %v\n%s", err, out)
	}
	found := 0
	scanner := bufio.NewScanner(bytes.NewReader(out))
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		values := map[string]float64{}
		for i := 2; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				values[fields[i+1]] = v
			}
		}
		name := strings.TrimPrefix(fields[0], "Benchmark")
		if dash := strings.LastIndexByte(name, '-'); dash > 0 {
			name = name[:dash]
		}
		found++
		rep.add("rules", "Go benchmark "+name, "—",
			fmt.Sprintf("%.0f ns/op, %.0f allocs/op, %.0f B/op", values["ns/op"], values["allocs/op"], values["B/op"]),
			"info", values["ns/op"], "ns/op")
		rep.detail("rules", name, values)
	}
	if found == 0 {
		t.Fatalf("no benchmark results in:\n%s", out)
	}
}

// apiserverMetrics scrapes the apiserver's own /metrics.
func apiserverMetrics(ctx context.Context, cfg *rest.Config) (metrics, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return fetchMetrics(ctx, httpClient, strings.TrimSuffix(cfg.Host, "/")+"/metrics")
}

// webhookCalls counts the apiserver's calls to validating webhooks, all of
// them or only those within 5 ms.
func (m metrics) webhookCalls(within5ms bool) float64 {
	const name = "apiserver_admission_webhook_admission_duration_seconds"
	if within5ms {
		return m.sum(name+"_bucket", "type", "validating", "le", "0.005")
	}
	return m.sum(name+"_count", "type", "validating")
}
