package budget

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// scripted is one scripted response of metricsServer.
type scripted struct {
	status int
	code   int // 0: success
	// ratelimit and policy are the Ratelimit and Ratelimit-Policy headers.
	ratelimit, policy string
	retryAfter        string
}

// metricsServer answers each request with the next scripted answer.
func metricsServer(t *testing.T, answers ...scripted) string {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if len(answers) == 0 {
			mu.Unlock()
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		a := answers[0]
		answers = answers[1:]
		mu.Unlock()
		if a.ratelimit != "" {
			w.Header().Set("Ratelimit", a.ratelimit)
		}
		if a.policy != "" {
			w.Header().Set("Ratelimit-Policy", a.policy)
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		if a.code == 0 {
			fmt.Fprint(w, `{"success":true,"errors":[],"messages":[],"result":{"id":"app-1","protocol":"tcp/22","dns":{"type":"CNAME","name":"a.example.com"}}}`)
			return
		}
		fmt.Fprintf(w, `{"success":false,"errors":[{"code":%d,"message":"no"}],"messages":[],"result":null}`, a.code)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A 429's Retry-After is time paused.
func TestMetricsCountThePauseA429AskedFor(t *testing.T) {
	url := metricsServer(t, scripted{status: 429, code: 10100, retryAfter: "1"})
	m := NewMetrics()
	client := NewConnector(ConnectorOptions{BaseURL: url, RequestsPerSecond: 1000, Burst: 10, Metrics: m}).ForToken("secret-token-7f3a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.GetApp(ctx, "zone-1", "app-1"); err == nil {
		t.Fatal("a 429 succeeded")
	}
	if got := testutil.ToFloat64(m.pauseSeconds); got < 0.9 || got > 1.1 {
		t.Errorf("rate_limit_pause_seconds_total = %v, want about 1", got)
	}
}

// The budget left is the lowest over tokens, per policy; it is gone when its
// window ends without a new answer, and nothing about the tokens shows.
func TestMetricsReportTheLowestBudgetLeftPerPolicy(t *testing.T) {
	url := metricsServer(t,
		scripted{status: 200, ratelimit: `"default";r=90;t=30`, policy: `"default";q=120;w=60`},
		scripted{status: 200, ratelimit: `"default";r=30;t=20, "burst";r=5;t=5`, policy: `"default";q=120;w=60, "burst";q=10;w=10`},
		scripted{status: 200, ratelimit: `"nopolicy";r=5;t=5`}, // no quota: no ratio
	)
	m := NewMetrics()
	now := time.Now()
	m.budget.now = func() time.Time { return now }
	connector := NewConnector(ConnectorOptions{BaseURL: url, RequestsPerSecond: 1000, Burst: 10, Metrics: m})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, token := range []string{"token-of-alice-1", "token-of-bob-2", "token-of-carol-3"} {
		if _, err := connector.ForToken(token).GetApp(ctx, "zone-1", "app-1"); err != nil {
			t.Fatal(err)
		}
	}
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
