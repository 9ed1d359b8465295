package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// AppMetrics exports spectrum_apps{ready,reason}: how many SpectrumApps are
// in each state, as last reconciled by this manager.
type AppMetrics struct {
	mu     sync.Mutex
	states map[types.NamespacedName]appState
	desc   *prometheus.Desc
}

type appState struct{ ready, reason string }

// NewAppMetrics returns the collector; register it with the metrics registry.
func NewAppMetrics() *AppMetrics {
	return &AppMetrics{
		states: map[types.NamespacedName]appState{},
		desc: prometheus.NewDesc("spectrum_apps",
			"SpectrumApps by the status and reason of their Ready condition.",
			[]string{"ready", "reason"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *AppMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.desc }

// Collect implements prometheus.Collector.
func (m *AppMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	counts := map[appState]int{}
	for _, s := range m.states {
		counts[s]++
	}
	m.mu.Unlock()
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, float64(n), s.ready, s.reason)
	}
}

func (m *AppMetrics) observe(name types.NamespacedName, app *v1alpha1.SpectrumApp) {
	if m == nil {
		return
	}
	state := appState{ready: "Unknown"}
	if c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		state = appState{ready: string(c.Status), reason: c.Reason}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[name] = state
}

func (m *AppMetrics) forget(name types.NamespacedName) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.states, name)
}
