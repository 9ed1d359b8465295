package controller

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// AppMetrics exports what the reconciler knows of the SpectrumApps:
// spectrum_apps{ready,reason}, spectrum_apps_by_policy{policy} and
// spectrum_apps_stalled{reason}, how many are in each state as last reconciled by this manager;
// spectrum_drift_corrections_total{field}; and
// spectrum_app_ready_duration_seconds. Everything it holds per app is
// forgotten when the app is deleted, and the pending start of a generation
// as soon as it is Ready.
type AppMetrics struct {
	mu sync.Mutex
	// states holds each app's state as one of a few shared values
	// (sharedStates): 8 bytes an app instead of four strings, 3 MiB at
	// 20,000 apps.
	states       map[types.NamespacedName]*appState
	sharedStates map[appState]*appState
	// The gauges' values, kept as states change: counting them over every
	// app at each scrape was O(apps) per scrape.
	byReady   map[appState]int
	byPolicy  map[string]int
	byStalled map[string]int
	// pending holds, for each app not Ready at its generation, when that
	// generation began (see readyTransition).
	pending map[types.NamespacedName]generationStart

	desc          *prometheus.Desc
	policyDesc    *prometheus.Desc
	stalledDesc   *prometheus.Desc
	readyDuration prometheus.Histogram
	corrections   *prometheus.CounterVec
	now           func() time.Time
}

// appState is an app's state as the gauges count it; stalled is the
// reason of a Stalled=True condition, "" when not stalled.
type appState struct{ ready, reason, policy, stalled string }

type generationStart struct {
	generation int64
	at         time.Time
}

// NewAppMetrics returns the collector; register it with the metrics registry.
func NewAppMetrics() *AppMetrics {
	return &AppMetrics{
		states:       map[types.NamespacedName]*appState{},
		sharedStates: map[appState]*appState{},
		byReady:      map[appState]int{},
		byPolicy:     map[string]int{},
		byStalled:    map[string]int{},
		pending:      map[types.NamespacedName]generationStart{},
		desc: prometheus.NewDesc("spectrum_apps",
			"SpectrumApps by the status and reason of their Ready condition.",
			[]string{"ready", "reason"}, nil),
		policyDesc: prometheus.NewDesc("spectrum_apps_by_policy",
			"SpectrumApps by reconcile policy (manage, observe or skip; unknown for a value admission would refuse).",
			[]string{"policy"}, nil),
		stalledDesc: prometheus.NewDesc("spectrum_apps_stalled",
			"SpectrumApps whose Stalled condition is True (only a person can fix them), by its reason.",
			[]string{"reason"}, nil),
		readyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "spectrum_app_ready_duration_seconds",
			Help: "Time from a change of a SpectrumApp's spec (its creation, or the first reconcile of a new generation) until it is Ready at that generation.",
			// From a create on an idle budget (a second) to a backlog
			// paced at 4 requests per second, or a person fixing a Stalled
			// app.
			Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}),
		corrections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spectrum_drift_corrections_total",
			Help: "Fields of Cloudflare applications brought back to the spec when they had been changed outside Kubernetes (found by the drift check) or differed at adoption, by API field name.",
		}, []string{"field"}),
		now: time.Now,
	}
}

// Describe implements prometheus.Collector.
func (m *AppMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.desc
	ch <- m.policyDesc
	ch <- m.stalledDesc
	m.readyDuration.Describe(ch)
	m.corrections.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *AppMetrics) Collect(ch chan<- prometheus.Metric) {
	var metrics []prometheus.Metric
	m.mu.Lock()
	for s, n := range m.byReady {
		metrics = append(metrics, prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, float64(n), s.ready, s.reason))
	}
	for policy, n := range m.byPolicy {
		metrics = append(metrics, prometheus.MustNewConstMetric(m.policyDesc, prometheus.GaugeValue, float64(n), policy))
	}
	for reason, n := range m.byStalled {
		metrics = append(metrics, prometheus.MustNewConstMetric(m.stalledDesc, prometheus.GaugeValue, float64(n), reason))
	}
	m.mu.Unlock()
	for _, metric := range metrics {
		ch <- metric
	}
	m.readyDuration.Collect(ch)
	m.corrections.Collect(ch)
}

// observe records the app as a reconcile that began at started left it;
// before is the app as that reconcile found it.
func (m *AppMetrics) observe(name types.NamespacedName, before, app *v1alpha1.SpectrumApp, started time.Time) {
	if m == nil {
		return
	}
	state := appState{ready: "Unknown", policy: policyLabel(app.Status.ReconcilePolicy)}
	if c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		state.ready, state.reason = string(c.Status), c.Reason
	}
	if c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		state.stalled = c.Reason
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if previous, ok := m.states[name]; ok {
		m.count(*previous, -1)
	}
	shared, ok := m.sharedStates[state]
	if !ok {
		shared = &state
		m.sharedStates[state] = shared
	}
	m.states[name] = shared
	m.count(state, 1)
	m.readyTransition(name, before, app, started)
}

// count adds delta apps in state s to the gauges; a value that reaches
// zero goes, as a state no app is in was never exported. The caller holds
// m.mu.
func (m *AppMetrics) count(s appState, delta int) {
	add := func(counts map[string]int, key string) {
		if counts[key] += delta; counts[key] == 0 {
			delete(counts, key)
		}
	}
	ready := appState{ready: s.ready, reason: s.reason}
	if m.byReady[ready] += delta; m.byReady[ready] == 0 {
		delete(m.byReady, ready)
	}
	add(m.byPolicy, s.policy)
	if s.stalled != "" {
		add(m.byStalled, s.stalled)
	}
}

// readyTransition observes the time to Ready when the app became Ready at
// its generation. The generation began at the object's creation for the
// first, else at the first reconcile of it this manager saw: the apiserver
// does not record when a spec changed. An app Ready at its generation
// before this reconcile (a resync, a restart) is no change. The caller
// holds m.mu.
func (m *AppMetrics) readyTransition(name types.NamespacedName, before, app *v1alpha1.SpectrumApp, started time.Time) {
	generation := app.Generation
	if before.ReadyAt(generation) {
		m.settled(name)
		return
	}
	start, ok := m.pending[name]
	if !ok || start.generation != generation {
		start = generationStart{generation: generation, at: started}
		if generation <= 1 && !app.CreationTimestamp.IsZero() {
			start.at = app.CreationTimestamp.Time
		}
	}
	if !app.ReadyAt(generation) {
		m.pending[name] = start
		return
	}
	m.settled(name)
	m.readyDuration.Observe(max(m.now().Sub(start.at), 0).Seconds())
}

// policyLabel keeps the policy label to the known policies.
func policyLabel(policy string) string {
	switch {
	case policy == "":
		return v1alpha1.ReconcilePolicyManage
	case v1alpha1.IsReconcilePolicy(policy):
		return policy
	}
	return "unknown"
}

// driftCorrected counts the fields an update brought back to the spec.
// They are the names spectrum.Differences returns, a fixed set.
func (m *AppMetrics) driftCorrected(fields []string) {
	if m == nil {
		return
	}
	for _, field := range fields {
		m.corrections.WithLabelValues(field).Inc()
	}
}

func (m *AppMetrics) forget(name types.NamespacedName) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if previous, ok := m.states[name]; ok {
		m.count(*previous, -1)
	}
	delete(m.states, name)
	m.settled(name)
}

// settled forgets the pending start of the app's generation. A map keeps
// the room it once needed: once no app is pending (a burst of creates has
// converged), it is made anew. The caller holds m.mu.
func (m *AppMetrics) settled(name types.NamespacedName) {
	if _, ok := m.pending[name]; !ok {
		return
	}
	delete(m.pending, name)
	if len(m.pending) == 0 {
		m.pending = map[types.NamespacedName]generationStart{}
	}
}
