package controller_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

// sample reads one series of the reconciler's metrics: a gauge's or
// counter's value, a histogram's count; 0 when absent.
func sample(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(appMetrics)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
	series:
		for _, m := range family.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			switch {
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			default:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// A spec change is not drift; a change made at Cloudflare is, and each
// field brought back counts once. Time to Ready is observed for the create
// and for the new generation. (The reconciler, and so its metrics, serve
// the whole suite: other tests' apps may add to the histogram, so only its
// growth is checked here; TestTimeToReadyKeepsNothingOnceReadyOrDeleted
// checks that resyncs observe nothing.)
func TestMetricsTellDriftFromSpecChangesAndTimeToReady(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	readyBefore := sample(t, "spectrum_app_ready_duration_seconds", nil)
	originBefore := sample(t, "spectrum_drift_corrections_total", map[string]string{"field": "origin_direct"})
	firewallBefore := sample(t, "spectrum_drift_corrections_total", map[string]string{"field": "ip_firewall"})

	f.create(f.app("measured", zoneDrift, "drift.example"))
	ready := f.waitForCondition("measured", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("measured")
	eventually(t, 10*time.Second, func() string {
		if got := sample(t, "spectrum_app_ready_duration_seconds", nil) - readyBefore; got < 1 {
			return fmt.Sprintf("%v times to Ready observed after the create, want 1 or more", got)
		}
		if got := sample(t, "spectrum_apps_by_policy", map[string]string{"policy": "manage"}); got < 1 {
			return fmt.Sprintf("spectrum_apps_by_policy{policy=manage} = %v, want at least 1", got)
		}
		return ""
	})

	// A new spec: an update, not a drift correction.
	readyBefore = sample(t, "spectrum_app_ready_duration_seconds", nil)
	ready.Spec.OriginDirect = []string{"tcp://192.0.2.98:22"}
	if err := k8sClient.Update(f.ctx, ready); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() string {
		current := f.get("measured")
		if !isReadyAt(current, current.Generation) || current.Generation < 2 {
			return "not Ready at the new generation yet"
		}
		if got := sample(t, "spectrum_app_ready_duration_seconds", nil) - readyBefore; got < 1 {
			return fmt.Sprintf("%v times to Ready observed after the spec change, want 1 or more", got)
		}
		return ""
	})
	if got := sample(t, "spectrum_drift_corrections_total", map[string]string{"field": "origin_direct"}) - originBefore; got != 0 {
		t.Errorf("a spec change counted %v drift corrections of origin_direct, want 0", got)
	}

	// Changed at Cloudflare: the drift check finds it, the update counts.
	if err := sim.ModifyApp(zoneDrift, ready.Status.ApplicationID, func(a *spectrumtest.App) {
		a.IPFirewall = ptrTo(true)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*resyncPeriod+10*time.Second, func() string {
		if got := sample(t, "spectrum_drift_corrections_total", map[string]string{"field": "ip_firewall"}) - firewallBefore; got != 1 {
			return fmt.Sprintf("%v drift corrections of ip_firewall, want 1", got)
		}
		return ""
	})
}

func isReadyAt(app *v1alpha1.SpectrumApp, generation int64) bool {
	for _, c := range app.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			return c.Status == metav1.ConditionTrue && c.ObservedGeneration == generation
		}
	}
	return false
}

func ptrTo[T any](v T) *T { return &v }
