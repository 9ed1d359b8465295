package budget

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"golang.org/x/time/rate"
)

func TestRateLimiterPause(t *testing.T) {
	l := NewRateLimiter(1000, 10, 0)
	l.PauseFor(300 * time.Millisecond)
	l.PauseFor(10 * time.Millisecond) // never shortens a pause

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := l.Wait(short); !errors.Is(err, spectrum.ErrRateLimited) {
		t.Fatalf("Wait with a deadline before the pause ends = %v, want spectrum.ErrRateLimited", err)
	}
	if time.Since(start) > 40*time.Millisecond {
		t.Error("Wait did not fail fast")
	}

	start = time.Now()
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("Wait returned after %s, want the pause of 300ms", waited)
	}
}

func TestRateLimiterCanceled(t *testing.T) {
	l := NewRateLimiter(1000, 10, 0)
	l.PauseFor(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
}

func TestRateLimiterObserves429(t *testing.T) {
	cases := map[string]struct {
		header http.Header
		want   time.Duration
	}{
		"retry-after":     {http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		"reset date only": {http.Header{"X-Ratelimit-Reset": {time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}}, 90 * time.Second},
		"nothing":         {http.Header{}, defaultBlock},
	}
	for name, tc := range cases {
		l := NewRateLimiter(1000, 10, 0)
		l.observe(http.StatusTooManyRequests, tc.header)
		got := time.Until(l.resumeAt)
		if got < tc.want-2*time.Second || got > tc.want+time.Second {
			t.Errorf("%s: paused for %s, want about %s", name, got, tc.want)
		}
	}
}

func TestRateLimiterPacesFromRemaining(t *testing.T) {
	l := NewRateLimiter(4, 10, 300*time.Second)
	header := func(limit, remaining int) http.Header {
		return http.Header{"X-Ratelimit-Limit": {fmt.Sprint(limit)}, "X-Ratelimit-Remaining": {fmt.Sprint(remaining)}}
	}
	l.observe(http.StatusOK, header(1200, 1000))
	if l.limiter.Limit() != 4 || l.limiter.Burst() != 10 {
		t.Fatalf("plenty left: limit %v burst %d, want the steady 4/10", l.limiter.Limit(), l.limiter.Burst())
	}
	l.observe(http.StatusOK, header(1200, 60))
	if want := rate.Limit(60.0 / 300); l.limiter.Limit() != want || l.limiter.Burst() != 1 {
		t.Fatalf("60 left: limit %v burst %d, want %v and 1", l.limiter.Limit(), l.limiter.Burst(), want)
	}
	l.observe(http.StatusOK, header(1200, 0))
	if want := rate.Limit(1.0 / 300); l.limiter.Limit() != want {
		t.Fatalf("none left: limit %v, want %v", l.limiter.Limit(), want)
	}
	l.observe(http.StatusOK, header(1200, 1199)) // a new window
	if l.limiter.Limit() != 4 || l.limiter.Burst() != 10 {
		t.Fatalf("new window: limit %v burst %d, want the steady rate back", l.limiter.Limit(), l.limiter.Burst())
	}
	l.observe(http.StatusOK, http.Header{"X-Ratelimit-Remaining": {"garbage"}})
	if l.limiter.Limit() != 4 {
		t.Fatal("an unreadable header changed the pace")
	}
}

func TestConnectorSharesOneBudgetPerToken(t *testing.T) {
	c := NewConnector(ConnectorOptions{BaseURL: "http://127.0.0.1:1", RequestsPerSecond: 50})
	a1 := c.ForToken("token-a-secret")
	a2 := c.ForToken("token-a-secret")
	c.ForToken("token-b-secret")
	if a1 != a2 {
		t.Error("the same token got two clients")
	}
	budgetA, budgetB := c.budgetOf("token-a-secret"), c.budgetOf("token-b-secret")
	if budgetA == budgetB {
		t.Error("two tokens share a budget")
	}
	if got := budgetA.steadyRate; got != 50 {
		t.Errorf("rate = %v, want 50", got)
	}
	defaults := NewConnector(ConnectorOptions{})
	defaults.ForToken("x")
	if got := defaults.budgetOf("x").steadyRate; got != rate.Limit(DefaultRequestsPerSecond) {
		t.Errorf("default rate = %v, want Cloudflare's 4/s", got)
	}
	for key := range c.tokens {
		if strings.Contains(string(key[:]), "token-a-secret") {
			t.Error("a map key holds the token")
		}
	}
	// A 429 on one token pauses that token only.
	budgetA.observe(http.StatusTooManyRequests, http.Header{"Retry-After": {"60"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.budgetOf("token-a-secret").Wait(ctx); !errors.Is(err, spectrum.ErrRateLimited) {
		t.Errorf("same token after a 429: %v, want spectrum.ErrRateLimited", err)
	}
	if err := budgetB.Wait(ctx); err != nil {
		t.Errorf("other token after a 429: %v", err)
	}
}
