package budget

import (
	"crypto/sha256"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A token's client is forgotten once idle for the idle timeout, and a later
// use of the token starts a new one; a client in use is kept.
func TestConnectorForgetsIdleTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMetrics()
		c := NewConnector(ConnectorOptions{BaseURL: "http://127.0.0.1:1", IdleTimeout: time.Minute, Metrics: m})
		old := c.ForToken("token-old-secret")
		kept := c.ForToken("token-kept-secret")
		if got := testutil.ToFloat64(m.tokens); got != 2 {
			t.Fatalf("spectrum_cloudflare_tokens = %v, want 2", got)
		}

		time.Sleep(40 * time.Second)
		c.ForToken("token-kept-secret") // used again: its minute starts over
		time.Sleep(30 * time.Second)
		if got := c.Tokens(); got != 1 {
			t.Fatalf("after 70 s, %d tokens held, want 1 (the one used 30 s ago)", got)
		}
		if c.Holds(old) || !c.Holds(kept) {
			t.Errorf("Holds(old) = %v, Holds(kept) = %v; want false, true", c.Holds(old), c.Holds(kept))
		}
		if got := testutil.ToFloat64(m.tokens); got != 1 {
			t.Errorf("spectrum_cloudflare_tokens = %v, want 1", got)
		}
		if again := c.ForToken("token-old-secret"); again == old {
			t.Error("a forgotten token got its old client back")
		}

		// A request waiting for the budget or in flight keeps its client,
		// however long it takes.
		busy := c.budgetOf("token-kept-secret")
		busy.activity.begin()
		time.Sleep(5 * time.Minute)
		if c.Tokens() != 1 || !c.Holds(kept) {
			t.Errorf("a client with a request in flight was forgotten (%d tokens held)", c.Tokens())
		}
		busy.activity.end()
		time.Sleep(time.Minute)
		if c.Tokens() != 0 {
			t.Errorf("%d tokens held a minute after their last request, want 0", c.Tokens())
		}
		if got := testutil.ToFloat64(m.tokens); got != 0 {
			t.Errorf("spectrum_cloudflare_tokens = %v, want 0", got)
		}
	})
}

// An idle client whose budget still matters is kept until it no longer
// does: a fresh one could send into a block, or overspend a window nearly
// spent, and Cloudflare would block every call of the user.
func TestConnectorKeepsABudgetThatStillMatters(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header http.Header
		// keptFor is how long after the answer the client must be kept.
		keptFor time.Duration
	}{
		{"paused by a 429's Retry-After", http.StatusTooManyRequests,
			http.Header{"Retry-After": {"240"}}, 240 * time.Second},
		{"spent in a window the Ratelimit headers tell", http.StatusOK,
			http.Header{"Ratelimit": {`"default";r=1100;t=540`}, "Ratelimit-Policy": {`"default";q=1200;w=600`}}, 540 * time.Second},
		{"spent in a window the legacy headers tell", http.StatusOK,
			http.Header{"X-Ratelimit-Limit": {"1200"}, "X-Ratelimit-Remaining": {"1199"}}, DefaultRateLimitWindow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := NewMetrics()
				c := NewConnector(ConnectorOptions{BaseURL: "http://127.0.0.1:1", IdleTimeout: time.Minute, Metrics: m})
				client := c.ForToken("token-spent-secret")
				c.budgetOf("token-spent-secret").observe(tc.status, tc.header)
				time.Sleep(tc.keptFor - time.Second)
				if c.Tokens() != 1 || !c.Holds(client) {
					t.Fatalf("forgotten %s after the answer, while its budget still mattered", tc.keptFor-time.Second)
				}
				// t is whole seconds: the window may end a second later.
				time.Sleep(3 * time.Second)
				if c.Tokens() != 0 || c.Holds(client) {
					t.Errorf("still held once its budget no longer mattered and it had been idle for %s", tc.keptFor+2*time.Second)
				}
			})
		})
	}
}

// A forgotten token's budgets leave spectrum_cloudflare_ratelimit_remaining_ratio's
// bookkeeping with it.
func TestConnectorForgetsATokensBudgetMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMetrics()
		c := NewConnector(ConnectorOptions{BaseURL: "http://127.0.0.1:1", IdleTimeout: time.Minute, Metrics: m})
		for _, token := range []string{"token-a-secret", "token-b-secret"} {
			c.ForToken(token)
			c.budgetOf(token).observe(http.StatusOK,
				http.Header{"Ratelimit": {`"default";r=900;t=10`}, "Ratelimit-Policy": {`"default";q=1200;w=300`}})
		}
		if got := len(m.budget.tokens); got != 2 {
			t.Fatalf("%d tokens' budgets followed, want 2", got)
		}
		time.Sleep(2 * time.Minute)
		if c.Tokens() != 0 {
			t.Fatal("idle tokens kept")
		}
		if got := len(m.budget.tokens); got != 0 {
			t.Errorf("%d forgotten tokens' budgets still followed, want 0", got)
		}
	})
}

// budgetOf is the budget the Connector holds for apiToken; nil when none.
func (c *Connector) budgetOf(apiToken string) *RateLimiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if held, ok := c.tokens[tokenKey(sha256.Sum256([]byte(apiToken)))]; ok {
		return held.budget
	}
	return nil
}
