package spectrum

import (
	"net/http"
	"strconv"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
	"github.com/prometheus/client_golang/prometheus"
)

// ResultSuccess is the result label of requests Cloudflare answered with
// success; every other request is labelled with its Classify reason.
const ResultSuccess = "Success"

// NewRequestsCounter returns spectrum_cloudflare_api_requests_total, labelled
// by HTTP method and result. The caller registers it (for the manager,
// controller-runtime's metrics.Registry) and passes it to NewConnector.
func NewRequestsCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spectrum_cloudflare_api_requests_total",
		Help: "Requests sent to the Cloudflare Spectrum API, by HTTP method and result (Success, or the failure's classification reason such as RateLimited or ArgoNotEnabled).",
	}, []string{"method", "result"})
}

// CountRequests returns an Observer that counts each request in counter.
// Results are the table's reasons, so the label's values stay few.
func CountRequests(counter *prometheus.CounterVec) Observer {
	return func(method string, statusCode, code int) {
		counter.WithLabelValues(method, requestResult(statusCode, code)).Inc()
	}
}

func requestResult(statusCode, code int) string {
	switch {
	case statusCode == 0:
		return v1alpha1.ReasonNetworkError
	case statusCode >= 200 && statusCode <= 299 && code == 0:
		return ResultSuccess
	}
	var codes []int
	if code != 0 {
		codes = []int{code}
	}
	return lookup(statusCode, codes).reason
}

// Metrics are the requests' side of the operator's Cloudflare metrics:
// every request's duration and answer, and the 429s (the budget's side is
// budget.Metrics). No label carries a token, a zone, an application or
// anything else one per app: the docs/metrics.md table lists each label's
// values.
type Metrics struct {
	// Requests is spectrum_cloudflare_api_requests_total (see
	// NewRequestsCounter).
	Requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	responses   *prometheus.CounterVec
	rateLimited prometheus.Counter
	analytics   prometheus.Counter
}

// Request classes, the class label of the request duration.
const (
	ClassSuccess     = "success"
	ClassRetryable   = "retryable"
	ClassNeedsHuman  = "needs_human"
	ClassInvalidSpec = "invalid_spec"
	ClassNetwork     = "network"
)

// NewMetrics returns the metrics; register Collectors with the metrics
// registry and pass them in ConnectorOptions.Metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Requests: NewRequestsCounter(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "spectrum_cloudflare_request_duration_seconds",
			Help: "Time from sending a request to the Cloudflare API to its answer (the rate limiter's wait before it is not counted), by HTTP method and class: success, retryable, needs_human, invalid_spec or network (no answer).",
			// Cloudflare answers in tens to hundreds of milliseconds; the
			// request timeout (DefaultTimeout, 30 s) bounds the tail.
			Buckets: []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "class"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spectrum_cloudflare_responses_total",
			Help: "Answers of the Cloudflare API by HTTP status (none when no answer came) and first Cloudflare error code (none without one; other for a code the operator's classification table does not know).",
		}, []string{"status", "code"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spectrum_cloudflare_rate_limited_total",
			Help: "HTTP 429 answers received from the Cloudflare API. Cloudflare then blocks every call of the user, dashboard included, for up to five minutes: it should stay at zero.",
		}),
		analytics: newAnalyticsCounter(),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Requests, m.duration, m.responses, m.rateLimited, m.analytics}
}

// request records one request: sent and answered after took.
func (m *Metrics) request(method string, statusCode, code int, took time.Duration) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(method, requestClass(statusCode, code)).Observe(took.Seconds())
	m.responses.WithLabelValues(statusLabel(statusCode), codeLabel(code)).Inc()
	if statusCode == http.StatusTooManyRequests {
		m.rateLimited.Inc()
	}
}

func requestClass(statusCode, code int) string {
	switch {
	case statusCode == 0:
		return ClassNetwork
	case statusCode >= 200 && statusCode <= 299 && code == 0:
		return ClassSuccess
	}
	var codes []int
	if code != 0 {
		codes = []int{code}
	}
	switch lookup(statusCode, codes).class {
	case failure.NeedsHuman:
		return ClassNeedsHuman
	case failure.InvalidSpec:
		return ClassInvalidSpec
	}
	return ClassRetryable
}

func statusLabel(statusCode int) string {
	if statusCode == 0 {
		return "none"
	}
	return strconv.Itoa(statusCode)
}

// codeLabel keeps the code label's values to the classification table's
// codes: a server could send any number.
func codeLabel(code int) string {
	if code == 0 {
		return "none"
	}
	if _, known := codeEntry(code); known {
		return strconv.Itoa(code)
	}
	return "other"
}
