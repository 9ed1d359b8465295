package spectrum

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

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
		return ReasonNetworkError
	case statusCode >= 200 && statusCode <= 299 && code == 0:
		return ResultSuccess
	}
	var codes []int
	if code != 0 {
		codes = []int{code}
	}
	return lookup(statusCode, codes).reason
}

// Metrics are the Cloudflare side of the operator's metrics: every request's
// duration and answer, the budget Cloudflare's Ratelimit headers report left,
// the 429s and the time the limiters paused. No label carries a token, a
// zone, an application or anything else one per app: the docs/metrics.md
// table lists each label's values.
type Metrics struct {
	// Requests is spectrum_cloudflare_api_requests_total (see
	// NewRequestsCounter).
	Requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	responses    *prometheus.CounterVec
	rateLimited  prometheus.Counter
	pauseSeconds prometheus.Counter
	budget       *budgetCollector
	tokens       prometheus.Gauge
	analytics    prometheus.Counter
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
		pauseSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spectrum_cloudflare_rate_limit_pause_seconds_total",
			Help: "Seconds the rate limiters of the API tokens held every request back: after a 429 (its Retry-After) and when the budget the Ratelimit headers report was spent before its window ended. Summed over tokens.",
		}),
		budget:    newBudgetCollector(),
		analytics: newAnalyticsCounter(),
		tokens: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spectrum_cloudflare_tokens",
			Help: "API tokens the manager holds a client and rate-limit budget for: those used within the idle timeout, and those whose budget still matters (a pause, or a window they spent in that has not ended). A token no Secret holds any more is forgotten after that.",
		}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Requests, m.duration, m.responses, m.rateLimited, m.pauseSeconds, m.budget, m.tokens, m.analytics}
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

// limiter attaches the metrics to a token's limiter.
func (m *Metrics) limiter(l *RateLimiter) *RateLimiter {
	if m != nil {
		l.metrics = &limiterMetrics{pauseSeconds: m.pauseSeconds, budget: m.budget.add()}
	}
	return l
}

// heldToken counts a token's client made.
func (m *Metrics) heldToken() {
	if m != nil {
		m.tokens.Inc()
	}
}

// forgetToken counts a token's client forgotten, and drops what its
// limiter reported.
func (m *Metrics) forgetToken(l *RateLimiter) {
	if m == nil {
		return
	}
	m.tokens.Dec()
	if l != nil && l.metrics != nil {
		m.budget.remove(l.metrics.budget)
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
	case NeedsHuman:
		return ClassNeedsHuman
	case InvalidSpec:
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

// limiterMetrics is what one token's limiter reports.
type limiterMetrics struct {
	pauseSeconds prometheus.Counter
	budget       *tokenBudgets
}

func (lm *limiterMetrics) paused(d time.Duration) {
	if lm != nil {
		lm.pauseSeconds.Add(d.Seconds())
	}
}

// budgetsLeft records what an answer's Ratelimit headers say is left of
// each budget. A budget without a quota (no Ratelimit-Policy item of its
// name) has no ratio and is left out; so are the legacy X-RateLimit-*
// headers, which Cloudflare no longer documents.
func (lm *limiterMetrics) budgetsLeft(now time.Time, reports []budgetReport) {
	if lm == nil {
		return
	}
	for _, r := range reports {
		if r.quota <= 0 {
			continue
		}
		// Once the window ends the budget is refilled: the ratio holds
		// until then only, and disappears if no answer renews it.
		valid := DefaultRateLimitWindow
		switch {
		case r.resetKnown:
			valid = r.reset + resetSlack
		case r.window > 0:
			valid = r.window
		}
		ratio := min(max(float64(r.remaining)/float64(r.quota), 0), 1)
		lm.budget.set(now, r.name, ratio, now.Add(valid))
	}
}

// budgetCollector exports spectrum_cloudflare_ratelimit_remaining_ratio:
// per policy, the lowest ratio any token's latest answer reported, among
// those whose window has not ended. It is labelled by the policy's name
// only: tokens of different users each have their budget, and the one
// closest to running out is the one to watch.
type budgetCollector struct {
	desc *prometheus.Desc
	now  func() time.Time
	mu   sync.Mutex
	// tokens holds each token's budgets; as many as the Connector has
	// clients, and forgotten with them.
	tokens []*tokenBudgets
}

// tokenBudgets are one token's budgets by policy name, guarded by the
// collector's mu.
type tokenBudgets struct {
	c       *budgetCollector
	budgets map[string]budgetLeft
}

type budgetLeft struct {
	ratio float64
	until time.Time
}

func newBudgetCollector() *budgetCollector {
	return &budgetCollector{
		desc: prometheus.NewDesc("spectrum_cloudflare_ratelimit_remaining_ratio",
			"Share of the Cloudflare API rate-limit budget left (r/q of the Ratelimit and Ratelimit-Policy headers), by policy name; the lowest over the API tokens in use. Absent once the budget's window has ended without a new answer.",
			[]string{"policy"}, nil),
		now: time.Now,
	}
}

func (c *budgetCollector) add() *tokenBudgets {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &tokenBudgets{c: c, budgets: map[string]budgetLeft{}}
	c.tokens = append(c.tokens, t)
	return t
}

func (c *budgetCollector) remove(t *tokenBudgets) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens = slices.DeleteFunc(c.tokens, func(held *tokenBudgets) bool { return held == t })
}

func (t *tokenBudgets) set(now time.Time, policy string, ratio float64, until time.Time) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if _, ok := t.budgets[policy]; !ok && len(t.budgets) >= maxBudgetItems {
		// Policy names come from the server: keep as many as the limiter
		// follows, and drop ended ones first.
		t.forgetEnded(now)
		if len(t.budgets) >= maxBudgetItems {
			return
		}
	}
	t.budgets[policy] = budgetLeft{ratio: ratio, until: until}
}

// forgetEnded drops the budgets whose window has ended. The caller holds
// t.c.mu.
func (t *tokenBudgets) forgetEnded(now time.Time) {
	for policy, b := range t.budgets {
		if !now.Before(b.until) {
			delete(t.budgets, policy)
		}
	}
}

// Describe implements prometheus.Collector.
func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	lowest := map[string]float64{}
	c.mu.Lock()
	for _, t := range c.tokens {
		t.forgetEnded(now)
		for policy, b := range t.budgets {
			if low, ok := lowest[policy]; !ok || b.ratio < low {
				lowest[policy] = b.ratio
			}
		}
	}
	c.mu.Unlock()
	for policy, ratio := range lowest {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, ratio, policy)
	}
}
