package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/test/harness"
)

const (
	metricsAccount = "metrics-account"
	metricsZone    = "d0000000000000000000000000000001"
	metricsToken   = "cf-metrics-token-8e14"
)

// The metrics the manager registers, as Prometheus scrapes them from the
// built binary, once per test run.
var registered struct {
	once    sync.Once
	metrics map[string][]string
	err     error
}

// registeredMetrics returns the metric families the manager binary serves
// on /metrics, with their label names. A family appears there only once it
// has a series, so the manager is first driven through what makes each of
// the operator's metrics count: an app synced (requests, answers, the
// budget left, time to Ready), an app stalled, a change made at Cloudflare
// undone by the drift check.
func registeredMetrics(t *testing.T) map[string][]string {
	t.Helper()
	registered.once.Do(func() { registered.metrics, registered.err = scrapeDrivenManager(t.Context()) })
	if registered.err != nil {
		t.Fatalf("scraping the manager: %v", registered.err)
	}
	return registered.metrics
}

func scrapeDrivenManager(ctx context.Context) (map[string][]string, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	address := "127.0.0.1:" + port
	h, err := harness.Start(ctx, harness.Options{
		Simulator: spectrumtest.Config{
			Accounts: []spectrumtest.AccountConfig{{ID: metricsAccount, Plan: spectrumtest.PlanEnterprise}},
			Tokens:   []spectrumtest.TokenConfig{{Token: metricsToken, Account: metricsAccount}},
			Zones:    []spectrumtest.ZoneConfig{{ID: metricsZone, Name: "metrics.example", Account: metricsAccount}},
		},
		Manager: harness.ManagerOptions{ResyncPeriod: 2 * time.Second, MetricsBindAddress: address,
			// Every opt-in metric on, as operatorCollectors lists them.
			ExtraArgs: []string{"--traffic-metrics-per-app", "--traffic-interval=2s"}},
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = h.Stop() }()

	ns, err := h.Namespace(ctx, "metrics-")
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cloudflare", Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}},
		Data:       map[string][]byte{v1alpha1.DefaultCredentialsKey: []byte(metricsToken)},
	}
	if err := h.Client.Create(ctx, secret); err != nil {
		return nil, err
	}
	app := func(name, secretName string) *v1alpha1.SpectrumApp {
		return &v1alpha1.SpectrumApp{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.SpectrumAppSpec{
				ZoneID:         metricsZone,
				CredentialsRef: &v1alpha1.SecretKeyReference{Name: secretName},
				Protocol:       "tcp/22",
				DNS:            v1alpha1.DNS{Type: "CNAME", Name: name + ".metrics.example"},
				OriginDirect:   []string{"tcp://192.0.2.10:22"},
			},
		}
	}
	synced, stalled := app("synced", secret.Name), app("stalled", "missing")
	for _, a := range []*v1alpha1.SpectrumApp{synced, stalled} {
		if err := h.Client.Create(ctx, a); err != nil {
			return nil, err
		}
	}
	ready, err := waitForCondition(ctx, h.Client, synced, v1alpha1.ConditionReady, "Synced")
	if err != nil {
		return nil, err
	}
	if _, err := waitForCondition(ctx, h.Client, stalled, v1alpha1.ConditionStalled, "CredentialsSecretNotFound"); err != nil {
		return nil, err
	}
	if err := h.Sim.ModifyApp(metricsZone, ready.Status.ApplicationID, func(a *spectrumtest.App) { a.TLS = "full" }); err != nil {
		return nil, err
	}
	if err := waitForEvent(ctx, h.Client, synced, "Updated"); err != nil {
		return nil, fmt.Errorf("the drift check did not undo a change made at Cloudflare: %w", err)
	}
	// The traffic watch has read the app's traffic (its per-app series
	// exist) once it says whether its origins answer. Cloudflare's series
	// are in whole minutes: the app is given ten minutes of past traffic,
	// so that the read need not wait for its first minute to end.
	if err := h.Sim.SetTraffic(metricsZone, ready.Status.ApplicationID, spectrumtest.DefaultTraffic(), time.Now().Add(-10*time.Minute)); err != nil {
		return nil, err
	}
	if _, err := waitForCondition(ctx, h.Client, synced, v1alpha1.ConditionOriginsHealthy, v1alpha1.ReasonOriginsAnswering); err != nil {
		return nil, err
	}
	return scrape(ctx, "http://"+address+"/metrics")
}

func waitForCondition(ctx context.Context, c client.Client, app *v1alpha1.SpectrumApp, conditionType, reason string) (*v1alpha1.SpectrumApp, error) {
	got := &v1alpha1.SpectrumApp{}
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(app), got); err != nil {
			return nil, err
		}
		condition := meta.FindStatusCondition(got.Status.Conditions, conditionType)
		if condition != nil && condition.Status == metav1.ConditionTrue && condition.Reason == reason {
			return got, nil
		}
		last = fmt.Sprintf("%v", got.Status.Conditions)
	}
	return nil, fmt.Errorf("%s is not %s=True (%s) after a minute; conditions %s", app.Name, conditionType, reason, last)
}

func waitForEvent(ctx context.Context, c client.Client, app *v1alpha1.SpectrumApp, reason string) error {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var list eventsv1.EventList
		if err := c.List(ctx, &list, client.InNamespace(app.Namespace)); err != nil {
			return err
		}
		if slices.ContainsFunc(list.Items, func(e eventsv1.Event) bool { return e.Regarding.Name == app.Name && e.Reason == reason }) {
			return nil
		}
	}
	return fmt.Errorf("no %s event for %s after a minute", reason, app.Name)
}

// scrape reads the Prometheus text exposition at url: each family its
// "# TYPE" line names, with the label names of its series (a histogram's le
// left out).
func scrape(ctx context.Context, url string) (map[string][]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%s answered %s: %.200s", url, resp.Status, body)
	}
	families := map[string][]string{}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for lines.Scan() {
		line := lines.Text()
		if fields := strings.Fields(line); len(fields) == 4 && fields[0] == "#" && fields[1] == "TYPE" {
			families[fields[2]] = nil
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		name, labels, _ := strings.Cut(strings.Fields(line)[0], "{")
		family := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if _, histogram := families[base]; histogram {
					family = base
				}
			}
		}
		for _, pair := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
			label, _, _ := strings.Cut(pair, "=")
			if label != "" && label != "le" && !slices.Contains(families[family], label) {
				families[family] = append(families[family], label)
			}
		}
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if len(families) == 0 {
		return nil, fmt.Errorf("%s served no metric", url)
	}
	return families, nil
}

// The manager binary serves exactly the operator metrics operatorCollectors
// lists, so the label and documentation checks on that list cover what is
// really exported: a collector cmd/manager forgets to register, or one it
// registers beside the list, fails here.
func TestOperatorCollectorsAreWhatTheManagerRegisters(t *testing.T) {
	served := registeredMetrics(t)
	var ours []string
	for name := range served {
		if strings.HasPrefix(name, "spectrum_") {
			ours = append(ours, name)
		}
	}
	var listed []string
	for name := range exportedMetrics(t) {
		listed = append(listed, name)
	}
	slices.Sort(ours)
	slices.Sort(listed)
	if !slices.Equal(ours, listed) {
		t.Errorf("the manager serves %v; operatorCollectors lists %v", ours, listed)
	}
}
