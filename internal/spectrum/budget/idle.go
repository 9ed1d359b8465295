package budget

import (
	"sync"
	"time"
)

// The Connector keeps a client, and the rate-limit budget it has learned,
// per API token: tokens come from Secrets that users rotate, so without an
// end a Secret rewritten over and over would grow the manager's memory
// until the pod (and the fail-closed admission webhook it serves) dies.
//
// A token's client is forgotten once it has been idle for the idle timeout,
// rather than when a size bound is reached: what is held is then bounded by
// the tokens actually in use (and those used within the timeout), and no
// burst of new tokens can push out the budget of one still in use. Being
// idle is not enough, though. The budget is Cloudflare's per user and
// window: a fresh client for the same token would start at the steady rate
// with nothing known of what is left, and could overspend a window its
// predecessor had nearly spent, or send into a block a 429 had asked it to
// wait out, which blocks every call of the user for five minutes. So a
// client is kept, idle or not, while
//   - a request of it waits for the budget or is in flight;
//   - its limiter is paused (a Retry-After, or a budget spent before its
//     window ends);
//   - a window it has spent in, as Cloudflare's Ratelimit headers (or the
//     legacy X-RateLimit-* ones) tell it, has not ended.
//
// An answer without rate-limit headers tells no window: the idle timeout
// then has to outlast Cloudflare's (five minutes), as DefaultIdleTimeout
// does. The price of forgetting is small and paid once: the next use of the
// token starts a new client, whose first answer tells it the budget again,
// and the zone listings made through the old client (see
// internal/controller's zone cache, which asks Holds) are listed again.

// DefaultIdleTimeout is how long a token's client is kept after its last
// use: three times Cloudflare's window, and above the default resync period,
// so that the drift check's use of a token every period keeps its client.
const DefaultIdleTimeout = 15 * time.Minute

// activity is when a client was last used, and how many of its requests
// are waiting for the budget or in flight.
type activity struct {
	mu       sync.Mutex
	active   int
	lastUsed time.Time
}

func (a *activity) touch(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastUsed = laterOf(a.lastUsed, now)
}

// begin counts a request from before it waits for the budget; end counts it
// done, and as a use.
func (a *activity) begin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.active++
	a.lastUsed = laterOf(a.lastUsed, time.Now())
}

func (a *activity) end() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.active--
	a.lastUsed = laterOf(a.lastUsed, time.Now())
}

// idleFor is how long the client has had no request and no use; zero while
// a request is active.
func (a *activity) idleFor(now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.active > 0 {
		return 0
	}
	return now.Sub(a.lastUsed)
}

// busyUntil is when nothing the limiter knows of still needs it: the end of
// a pause, and of every window its answers told it of. Zero when nothing
// does.
func (l *RateLimiter) busyUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	until := l.resumeAt
	for _, b := range l.budgets {
		until = laterOf(until, b.end)
	}
	if !l.windowStart.IsZero() {
		// The legacy headers tell no end: the window a client can see the
		// start of lasts at most the configured one, or Cloudflare's.
		window := l.window
		if window <= 0 {
			window = DefaultRateLimitWindow
		}
		until = laterOf(until, l.windowStart.Add(window))
	}
	return until
}
