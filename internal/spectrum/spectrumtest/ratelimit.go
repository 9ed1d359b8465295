package spectrumtest

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Cloudflare's global API limit, as the API notes describe it: a budget of
// requests per window that belongs to the user, not the token (every token
// of one user, the dashboard and other tools spend the same budget); over
// it, HTTP 429 and the user is blocked for five minutes, every call
// refused. Each answer reports the budget in the IETF-draft headers
// Ratelimit / Ratelimit-Policy (or the older X-RateLimit-* ones).

// Header formats RateLimitConfig.Headers selects.
const (
	HeadersModern = "modern"
	HeadersLegacy = "legacy"
	HeadersBoth   = "both"
)

// budget is one user's fixed window: it starts with the user's first
// request after the previous window ended (or after a block).
type budget struct {
	windowStart time.Time
	// used is the user's own requests in the window.
	used int
	// othersCarry is what other clients spent in the window before their
	// rate last changed.
	othersCarry float64
	// blockedUntil is the end of the block after a 429.
	blockedUntil time.Time
}

// otherClient spends a user's budget at a steady rate from since on: the
// dashboard, Terraform or a second token. Its spending is computed when
// needed, from the elapsed time.
type otherClient struct {
	rate  float64
	since time.Time
}

func (w *world) otherRate(user string) float64 {
	if o := w.others[user]; o != nil {
		return o.rate
	}
	return 0
}

// setOtherClient sets the rate at which other clients spend user's budget
// (0 removes them), keeping what they spent so far in the open window.
func (w *world) setOtherClient(user string, rate float64, now time.Time) {
	if b := w.budgets[user]; b != nil {
		b.othersCarry = w.othersSpent(user, b, now)
	}
	if rate <= 0 {
		delete(w.others, user)
		return
	}
	w.others[user] = &otherClient{rate: rate, since: now}
}

// othersSpent is what other clients spent of user's budget in the open
// window up to now.
func (w *world) othersSpent(user string, b *budget, now time.Time) float64 {
	spent := b.othersCarry
	if o := w.others[user]; o != nil && !b.windowStart.IsZero() {
		from := o.since
		if b.windowStart.After(from) {
			from = b.windowStart
		}
		if now.After(from) {
			spent += o.rate * now.Sub(from).Seconds()
		}
	}
	return spent
}

// nextWindowStart is when the user's window that holds now began. A window
// opens with the user's first request after the last one ended; while other
// clients spend the budget, their requests open windows too, so windows
// follow one another from the first, whether or not this client sent
// anything: what the others spend between two requests of ours counts.
func (w *world) nextWindowStart(user string, last, now time.Time, window time.Duration) time.Time {
	o := w.others[user]
	if o == nil || o.since.After(now) {
		return now
	}
	anchor := o.since
	if !last.IsZero() && last.Before(anchor) {
		anchor = last
	}
	return anchor.Add(now.Sub(anchor) / window * window)
}

// spendBudget counts a request of tok's user and reports the budget in
// headers. When enforced, a request beyond the budget is refused with 429
// 10100 and the user is blocked for a whole window from then on.
func (s *Simulator) spendBudget(tok *token) (http.Header, *failure) {
	now := time.Now()
	limit, window := s.rateLimit.Limit, s.rateLimit.Window.Duration
	w := s.world
	b := w.budgets[tok.user]
	if b == nil {
		b = &budget{}
		w.budgets[tok.user] = b
	}
	header := http.Header{}
	if now.Before(b.blockedUntil) {
		s.rateLimited++
		return s.refuseOverBudget(header, b.blockedUntil, now)
	}
	if b.windowStart.IsZero() || !now.Before(b.windowStart.Add(window)) {
		*b = budget{windowStart: w.nextWindowStart(tok.user, b.windowStart, now, window)}
	}
	b.used++
	spent := b.used + int(math.Floor(w.othersSpent(tok.user, b, now)))
	s.writeBudgetHeaders(header, max(limit-spent, 0), b.windowStart.Add(window).Sub(now))
	if !s.rateLimit.Enforce || spent <= limit {
		return header, nil
	}
	s.rateLimited++
	*b = budget{blockedUntil: now.Add(window)}
	return s.refuseOverBudget(header, b.blockedUntil, now)
}

// refuseOverBudget answers 429 while the user is blocked until until.
func (s *Simulator) refuseOverBudget(header http.Header, until, now time.Time) (http.Header, *failure) {
	wait := until.Sub(now)
	s.writeBudgetHeaders(header, 0, wait)
	header.Set("Retry-After", strconv.Itoa(ceilSeconds(wait)))
	if s.rateLimit.Headers == HeadersLegacy || s.rateLimit.Headers == HeadersBoth {
		header.Set("X-RateLimit-Reset", until.UTC().Format(http.TimeFormat))
	}
	return header, refuse(http.StatusTooManyRequests, codeRateLimited,
		"More than %d requests per %s reached. Please wait and consider throttling your request speed",
		s.rateLimit.Limit, describeWindow(s.rateLimit.Window.Duration))
}

// writeBudgetHeaders reports remaining requests, reset seconds from now,
// in the configured format.
func (s *Simulator) writeBudgetHeaders(header http.Header, remaining int, reset time.Duration) {
	if s.rateLimit.Headers != HeadersLegacy {
		header.Set("Ratelimit", fmt.Sprintf(`"default";r=%d;t=%d`, remaining, ceilSeconds(reset)))
		header.Set("Ratelimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, s.rateLimit.Limit, ceilSeconds(s.rateLimit.Window.Duration)))
	}
	if s.rateLimit.Headers == HeadersLegacy || s.rateLimit.Headers == HeadersBoth {
		header.Set("X-RateLimit-Limit", strconv.Itoa(s.rateLimit.Limit))
		header.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	}
}

// ceilSeconds is d in whole seconds, rounded up, at least 1.
func ceilSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// describeWindow writes 300s as "300 seconds", as Cloudflare's message does.
func describeWindow(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%d seconds", int(d/time.Second))
	}
	return d.String()
}
