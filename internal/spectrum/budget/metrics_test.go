package budget

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// answer hands token's budget an answer's status and rate-limit headers,
// as the client does with every answer it gets.
func answer(c *Connector, token string, status int, header http.Header) {
	c.ForToken(token)
	c.budgetOf(token).observe(status, header)
}

// A 429's Retry-After is time paused.
func TestMetricsCountThePauseA429AskedFor(t *testing.T) {
	m := NewMetrics()
	c := NewConnector(ConnectorOptions{RequestsPerSecond: 1000, Burst: 10, Metrics: m})
	answer(c, "secret-token-7f3a", http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
	if got := testutil.ToFloat64(m.pauseSeconds); got < 0.9 || got > 1.1 {
		t.Errorf("rate_limit_pause_seconds_total = %v, want about 1", got)
	}
}

// The budget left is the lowest over tokens, per policy; it is gone when its
// window ends without a new answer, and nothing about the tokens shows.
func TestMetricsReportTheLowestBudgetLeftPerPolicy(t *testing.T) {
	m := NewMetrics()
	now := time.Now()
	m.budget.now = func() time.Time { return now }
	c := NewConnector(ConnectorOptions{RequestsPerSecond: 1000, Burst: 10, Metrics: m})
	answer(c, "token-of-alice-1", http.StatusOK, http.Header{"Ratelimit": {`"default";r=90;t=30`}, "Ratelimit-Policy": {`"default";q=120;w=60`}})
	answer(c, "token-of-bob-2", http.StatusOK, http.Header{"Ratelimit": {`"default";r=30;t=20, "burst";r=5;t=5`}, "Ratelimit-Policy": {`"default";q=120;w=60, "burst";q=10;w=10`}})
	answer(c, "token-of-carol-3", http.StatusOK, http.Header{"Ratelimit": {`"nopolicy";r=5;t=5`}}) // no quota: no ratio
	want := `
# HELP spectrum_cloudflare_ratelimit_remaining_ratio Share of the Cloudflare API rate-limit budget left (r/q of the Ratelimit and Ratelimit-Policy headers), by policy name; the lowest over the API tokens in use. Absent once the budget's window has ended without a new answer.
# TYPE spectrum_cloudflare_ratelimit_remaining_ratio gauge
spectrum_cloudflare_ratelimit_remaining_ratio{policy="burst"} 0.5
spectrum_cloudflare_ratelimit_remaining_ratio{policy="default"} 0.25
`
	if err := testutil.CollectAndCompare(m.budget, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// After the burst window (5 s, plus a second for t's rounding) and the
	// lower default budget's (20 s + 1 s): alice's 90/120 is what is left.
	now = now.Add(22 * time.Second)
	want = strings.Replace(want, "spectrum_cloudflare_ratelimit_remaining_ratio{policy=\"burst\"} 0.5\n", "", 1)
	want = strings.Replace(want, "} 0.25", "} 0.75", 1)
	if err := testutil.CollectAndCompare(m.budget, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	now = now.Add(10 * time.Second)
	if n := testutil.CollectAndCount(m.budget); n != 0 {
		t.Errorf("%d series after every window ended, want none", n)
	}
}

// Every pause counts once, however many times it is extended.
func TestMetricsCountTimePaused(t *testing.T) {
	m := NewMetrics()
	l := m.limiter(NewRateLimiter(1000, 10, 0))
	now := time.Now()
	l.now = func() time.Time { return now }
	l.PauseFor(10 * time.Second)
	l.PauseFor(4 * time.Second) // inside the first: nothing added
	now = now.Add(5 * time.Second)
	l.PauseFor(15 * time.Second) // to 20 s from the start: 10 s more
	if got := testutil.ToFloat64(m.pauseSeconds); got != 20 {
		t.Errorf("pause seconds = %v, want 20", got)
	}
}
