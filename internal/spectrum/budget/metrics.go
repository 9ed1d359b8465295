package budget

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the budget's side of the operator's Cloudflare metrics (the
// requests' side is spectrum.Metrics): the budget Cloudflare's Ratelimit
// headers report left, the time the limiters paused, and the tokens held.
// No label carries a token.
type Metrics struct {
	pauseSeconds prometheus.Counter
	budget       *budgetCollector
	tokens       prometheus.Gauge
}

// NewMetrics returns the metrics; register Collectors with the metrics
// registry and pass them in ConnectorOptions.Metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		pauseSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spectrum_cloudflare_rate_limit_pause_seconds_total",
			Help: "Seconds the rate limiters of the API tokens held every request back: after a 429 (its Retry-After) and when the budget the Ratelimit headers report was spent before its window ended. Summed over tokens.",
		}),
		budget: newBudgetCollector(),
		tokens: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spectrum_cloudflare_tokens",
			Help: "API tokens the manager holds a client and rate-limit budget for: those used within the idle timeout, and those whose budget still matters (a pause, or a window they spent in that has not ended). A token no Secret holds any more is forgotten after that.",
		}),
	}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.pauseSeconds, m.budget, m.tokens}
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
