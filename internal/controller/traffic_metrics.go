package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrafficMetrics exports what the traffic watch last read.
//
// Always: spectrum_apps_origins{status}, how many apps' OriginsHealthy
// condition is True, False or Unknown, a few series whatever the number of
// apps, which is enough for the alert "origin errors on an app"; and
// spectrum_traffic_status_writes_total, the watch's writes to the apiserver.
//
// With PerApp (opt-in, --traffic-metrics-per-app): one series per app and
// metric, labelled namespace and name, of the last minute's connections
// and bytes and the window's connects and origin errors. They are gone
// with the app, but a cluster of 10,000 apps holds 50,000 series.
type TrafficMetrics struct {
	perApp bool

	mu    sync.Mutex
	watch *trafficWatch

	origins, connections, bytes, connects, originErrors *prometheus.Desc
	writes                                              prometheus.Counter
}

// NewTrafficMetrics returns the collector; register it with the metrics
// registry and pass it in TrafficOptions.Metrics.
func NewTrafficMetrics(perApp bool) *TrafficMetrics {
	app := []string{"namespace", "name"}
	return &TrafficMetrics{
		perApp: perApp,
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spectrum_traffic_status_writes_total",
			Help: "Status writes of the traffic watch (status.traffic and the OriginsHealthy condition of a SpectrumApp), 20 per second at most: a change of the condition waits for its turn, a refresh of numbers is skipped.",
		}),
		origins: prometheus.NewDesc("spectrum_apps_origins",
			"SpectrumApps by the status of their OriginsHealthy condition: False when Cloudflare could not reach an origin for at least one in ten connections over the last few minutes, Unknown without traffic or analytics.",
			[]string{"status"}, nil),
		connections: prometheus.NewDesc("spectrum_app_traffic_connections",
			"Connections of a SpectrumApp's application in the last minute Cloudflare's analytics reported (opt-in: one series per app).",
			app, nil),
		bytes: prometheus.NewDesc("spectrum_app_traffic_bytes",
			"Bytes of a SpectrumApp's application in the last minute Cloudflare's analytics reported, by direction: ingress (from clients) or egress (to clients) (opt-in: one series per app and direction).",
			append(app, "direction"), nil),
		connects: prometheus.NewDesc("spectrum_app_traffic_connects",
			"Clients that connected to a SpectrumApp's application over the OriginsHealthy window (connect events; opt-in: one series per app).",
			app, nil),
		originErrors: prometheus.NewDesc("spectrum_app_traffic_origin_errors",
			"Connections Cloudflare could not open to a SpectrumApp's origins over the OriginsHealthy window (originError events; opt-in: one series per app).",
			app, nil),
	}
}

// PerAppDescs are the per-app metrics' descriptions, for checks of the
// metrics' labels.
func (m *TrafficMetrics) PerAppDescs() []*prometheus.Desc {
	return []*prometheus.Desc{m.connections, m.bytes, m.connects, m.originErrors}
}

func (m *TrafficMetrics) attach(w *trafficWatch) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watch = w
}

// wrote counts a status write.
func (m *TrafficMetrics) wrote() {
	if m != nil {
		m.writes.Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *TrafficMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.writes.Describe(ch)
	ch <- m.origins
	if m.perApp {
		for _, d := range m.PerAppDescs() {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (m *TrafficMetrics) Collect(ch chan<- prometheus.Metric) {
	m.writes.Collect(ch)
	m.mu.Lock()
	w := m.watch
	m.mu.Unlock()
	counts := map[metav1.ConditionStatus]int{metav1.ConditionTrue: 0, metav1.ConditionFalse: 0, metav1.ConditionUnknown: 0}
	if w != nil {
		w.mu.Lock()
		for key, a := range w.apps {
			if status := a.latest.condition.Status; status != "" {
				counts[status]++
			}
			if !m.perApp || a.numbers == nil {
				continue
			}
			n := a.numbers
			gauge := func(d *prometheus.Desc, v int64, extra ...string) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), append([]string{key.Namespace, key.Name}, extra...)...)
			}
			gauge(m.connections, n.Connections)
			gauge(m.bytes, n.BytesIngress, "ingress")
			gauge(m.bytes, n.BytesEgress, "egress")
			gauge(m.connects, n.Connects)
			gauge(m.originErrors, n.OriginErrors)
		}
		w.mu.Unlock()
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(m.origins, prometheus.GaugeValue, float64(n), string(status))
	}
}
