// Package budget keeps each Cloudflare API token's request budget, and hands
// out the client of each token (Connector). Cloudflare counts 1,200
// requests per five minutes per user, shared with the dashboard and every
// other tool, and blocks every call of the user for minutes after a 429: a
// token's requests are paced below its ceiling, from what Cloudflare's
// rate-limit headers say is left, paused for the wait a 429 asks, and the
// apps sharing a token take turns, namespaces in turn. The transport
// (package spectrum) asks it through the spectrum.Budget interface.
package budget

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"golang.org/x/time/rate"
)

// Cloudflare's global API limit: 1,200 requests per five minutes per user,
// counted across the dashboard, API keys and tokens. Going over blocks every
// call of that user, dashboard included, for five minutes, so the client
// stays under the budget instead of probing it.
const (
	// DefaultBurst and DefaultRequestsPerSecond fit inside Cloudflare's
	// window, burst included: a token bucket admits at most burst + rate ×
	// window requests in any window, 1 + 3.99 × 300 = 1,198 ≤ 1,200. (The
	// former 10 and 4/s admitted 1,210 and could trip the block on their
	// own.)
	DefaultBurst             = 1
	DefaultRequestsPerSecond = 3.99
	// DefaultRateLimitWindow and DefaultRateLimit are Cloudflare's window
	// and the requests it allows in it.
	DefaultRateLimitWindow = 300 * time.Second
	DefaultRateLimit       = 1200
	// defaultBlock is how long Cloudflare blocks a token after a 429 that
	// did not say how long to wait.
	defaultBlock = 5 * time.Minute
)

// RateLimiter is the request budget of one API token, shared by every caller
// that uses the token. Its steady rate and burst are a ceiling; below it, it
// paces from what Cloudflare's answers say is left of the user's budget (see
// paceFromBudgets), and it stops everyone for the wait a 429 asked for.
type RateLimiter struct {
	limiter     *rate.Limiter
	steadyRate  rate.Limit
	steadyBurst int
	// window is the period X-RateLimit-Limit counts over; zero means the
	// one the budget implies (see windowFor).
	window time.Duration
	// now is the clock of every decision (tests set it); the waits
	// themselves use the time package's timers.
	now            func() time.Time
	mu             sync.Mutex
	resumeAt       time.Time
	pacedByHeaders bool
	// budgets follows each budget the Ratelimit header names.
	budgets map[string]*budgetWindow
	// lastRemaining is the last X-RateLimit-Remaining seen (-1 before the
	// first), and windowStart when it last went up: the start of
	// Cloudflare's current window as far as a client can tell, never
	// earlier than the real one (zero until seen).
	lastRemaining int
	windowStart   time.Time
	// granted holds when each request still in flight was let through,
	// oldest first. A response's Remaining does not count them yet.
	granted []time.Time
	// turn is held by the one caller reserving from limiter; changed tells
	// it that the pace changed or a pause began.
	turn    chan struct{}
	changed chan struct{}
	// metrics, when set, is told the budget left and the pauses.
	metrics *limiterMetrics
	// line is where requests made for an object take their turn (see
	// WithTurn).
	line *turnLine
	// activity says when the token was last used (see idle.go).
	activity activity
	// spare and spareShare are analytics' share of the budget (see
	// spare.go); nil when it has none.
	spare      *rate.Limiter
	spareShare float64
}

var _ spectrum.Budget = (*RateLimiter)(nil)

// Admit waits until a request may be sent (spectrum.Budget): by the send
// deadline when ctx carries one (WithSendDeadline), and in the line of the
// object ctx was made for (WithTurn) instead of waiting. The request counts
// as activity from now until it is answered.
func (l *RateLimiter) Admit(ctx context.Context) (answered func(status int, header http.Header), err error) {
	l.activity.begin()
	if sendBy, ok := ctx.Value(sendDeadlineKey{}).(time.Time); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, sendBy)
		defer cancel()
	}
	switch {
	case turnFrom(ctx) != nil:
		err = l.line.take(ctx, turnFrom(ctx))
	case spectrum.SpareSlot(ctx):
		err = l.waitSpare(ctx)
	default:
		err = l.Wait(ctx)
	}
	if err != nil {
		l.activity.end()
		return nil, err
	}
	return func(status int, header http.Header) {
		if status != 0 {
			l.observe(status, header)
		}
		l.activity.end()
	}, nil
}

// sendDeadlineKey carries the time by which a request must leave, or not
// be sent at all.
type sendDeadlineKey struct{}

// WithSendDeadline returns a context whose requests are sent by sendBy or
// not at all: the token's budget holding one back longer fails it fast
// (spectrum.ErrNotSent). The request itself is still bounded by ctx's
// deadline. A create uses it so that the record it wrote before the
// request can promise a short time by which the create has landed.
func WithSendDeadline(ctx context.Context, sendBy time.Time) context.Context {
	return context.WithValue(ctx, sendDeadlineKey{}, sendBy)
}

// NewRateLimiter returns a budget of requestsPerSecond with bursts of burst.
// window is the period over which Cloudflare counts the legacy
// X-RateLimit-Limit (five minutes for the real API); zero means the window
// the budget implies, X-RateLimit-Limit / requestsPerSecond. The current
// Ratelimit-Policy header says its window itself.
func NewRateLimiter(requestsPerSecond float64, burst int, window time.Duration) *RateLimiter {
	if requestsPerSecond <= 0 {
		requestsPerSecond = DefaultRequestsPerSecond
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	steady := rate.Limit(requestsPerSecond)
	l := &RateLimiter{
		limiter:       rate.NewLimiter(steady, burst),
		steadyRate:    steady,
		steadyBurst:   burst,
		window:        max(window, 0),
		now:           time.Now,
		budgets:       map[string]*budgetWindow{},
		lastRemaining: -1,
		turn:          make(chan struct{}, 1),
		changed:       make(chan struct{}, 1),
	}
	l.line = newTurnLine(l)
	return l
}

// slot is the time between two requests at the current pace.
func (l *RateLimiter) slot() time.Duration {
	limit := l.limiter.Limit()
	if limit <= 0 || limit == rate.Inf {
		return 0
	}
	return time.Duration(float64(time.Second) / float64(limit))
}

// pausedFor is what is left of a pause.
func (l *RateLimiter) pausedFor() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.resumeAt.Sub(l.now()), 0)
}

// Wait blocks until a request may be sent. It fails at once, wrapping
// spectrum.ErrRateLimited, when the wait would outlast ctx's deadline.
//
// Callers take their turn one at a time, and the one whose turn it is
// reserves again whenever the pace changes or a pause begins: a reservation
// made while the budget was paced slowly must not hold back the callers
// queued behind it once the pace is restored, nor may one made before a
// pause send into it.
func (l *RateLimiter) Wait(ctx context.Context) error {
	return l.wait(ctx, 0)
}

// wait is Wait, for a request sent no earlier than lead from now: the
// slot after a pause is taken lead before the pause ends, and the request
// counted as sent when it ends (see grantLead).
func (l *RateLimiter) wait(ctx context.Context, lead time.Duration) error {
	// Everyone waits out a pause at once, and fails fast when it outlasts
	// their deadline.
	if err := l.waitForResumeWithin(ctx, lead); err != nil {
		return err
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()
	for {
		if err := l.waitForResumeWithin(ctx, lead); err != nil {
			return err
		}
		now := l.now()
		reservation := l.limiter.ReserveN(now, 1)
		if !reservation.OK() {
			return fmt.Errorf("%w: burst of 0", spectrum.ErrRateLimited)
		}
		if delay := reservation.DelayFrom(now); delay > 0 {
			if deadline, ok := ctx.Deadline(); ok && deadline.Before(now.Add(delay)) {
				reservation.CancelAt(now)
				return fmt.Errorf("%w: next request allowed in %s", spectrum.ErrRateLimited, delay.Round(time.Millisecond))
			}
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				reservation.CancelAt(l.now())
				return ctx.Err()
			case <-l.changed:
				timer.Stop()
				reservation.CancelAt(l.now())
				continue
			case <-timer.C:
			}
		}
		if l.grant(lead) {
			return nil
		}
	}
}

// grant records a request let through, unless a pause began meanwhile
// that ends more than lead from now; one let through before the pause ends
// counts as sent when it ends.
func (l *RateLimiter) grant(lead time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Before(l.resumeAt.Add(-lead)) {
		return false
	}
	l.forgetLost(now)
	l.granted = append(l.granted, laterOf(now, l.resumeAt))
	return true
}

// inFlightHorizon bounds how long a request counts as in flight: one that
// never got an answer (a transport error) is not observed.
const inFlightHorizon = 2 * spectrum.DefaultTimeout

// answered forgets the oldest request in flight (answers of one token come
// back in about the order sent), and returns how many remain in flight.
// The caller holds l.mu.
func (l *RateLimiter) answered(now time.Time) int {
	inFlight, _ := l.answeredSent(now)
	return inFlight
}

// answeredSent is answered, also returning when the answered request was
// let through, as far as the order of answers tells (zero when none was
// in flight).
func (l *RateLimiter) answeredSent(now time.Time) (int, time.Time) {
	var sent time.Time
	if len(l.granted) > 0 {
		sent = l.granted[0]
		l.granted = l.granted[1:]
	}
	l.forgetLost(now)
	return len(l.granted), sent
}

// forgetLost drops requests in flight for longer than any request lasts.
// The caller holds l.mu.
func (l *RateLimiter) forgetLost(now time.Time) {
	for len(l.granted) > 0 && now.Sub(l.granted[0]) > inFlightHorizon {
		l.granted = l.granted[1:]
	}
}

// paceChanged wakes the caller whose turn it is, to reserve again.
func (l *RateLimiter) paceChanged() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// waitForResume waits out a pause.
func (l *RateLimiter) waitForResume(ctx context.Context) error {
	return l.waitForResumeWithin(ctx, 0)
}

// waitForResumeWithin waits until a pause ends within lead.
func (l *RateLimiter) waitForResumeWithin(ctx context.Context, lead time.Duration) error {
	for {
		l.mu.Lock()
		now := l.now()
		wait := l.resumeAt.Add(-lead).Sub(now)
		l.mu.Unlock()
		if wait <= 0 {
			return nil
		}
		if deadline, ok := ctx.Deadline(); ok && deadline.Sub(now) < wait {
			return fmt.Errorf("%w: Cloudflare asked to pause for %s", spectrum.ErrRateLimited, wait.Round(time.Second))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		// Loop: another 429 may have extended the pause meanwhile.
	}
}

// PauseFor stops every caller of this budget for d (extending, never
// shortening, a pause already in force).
func (l *RateLimiter) PauseFor(d time.Duration) {
	if d <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.pauseUntil(now, now.Add(d))
	l.paceChanged()
}

// pauseUntil extends the pause to until, and counts the time added to it
// (a pause extended from 10 s to 60 s from now adds 50 s). The caller holds
// l.mu.
func (l *RateLimiter) pauseUntil(now, until time.Time) {
	from := laterOf(now, l.resumeAt)
	if added := until.Sub(from); added > 0 {
		l.metrics.paused(added)
	}
	l.resumeAt = laterOf(l.resumeAt, until)
}

// observe adjusts the budget to what a response says about it: from the
// Ratelimit and Ratelimit-Policy headers Cloudflare sends today, or else
// from the legacy X-RateLimit-* headers.
func (l *RateLimiter) observe(status int, header http.Header) {
	now := l.now()
	if status == http.StatusTooManyRequests {
		wait := spectrum.ParseRetryAfter(header.Get("Retry-After"), now)
		if wait <= 0 {
			wait = untilReset(header, now)
		}
		if wait <= 0 {
			wait = defaultBlock
		}
		l.PauseFor(wait)
	}
	reports := parseRateLimitHeaders(header)
	l.metrics.budgetsLeft(now, reports)
	if len(reports) > 0 {
		l.paceFromBudgets(now, reports)
		return
	}
	l.paceFromRemaining(now, header)
}

// paceFromRemaining spreads what is left of Cloudflare's budget over the
// rest of its window once less than a tenth of it remains, from the legacy
// X-RateLimit-Limit and X-RateLimit-Remaining headers.
//
// Those headers carry X-RateLimit-Reset only with a 429, so the end of the
// window is estimated: a window began when Remaining last went up (seen in a
// response, so no earlier than the real start, and the estimated end no
// earlier than the real end). Within a window whose start was seen, the
// remaining requests are spaced so that the last goes out one interval
// before the window ends, and when nothing remains every caller pauses until
// it ends. Without a start seen (the first window, or one that should
// already have ended), it assumes the window has just begun: slow, but never
// a 429.
func (l *RateLimiter) paceFromRemaining(now time.Time, header http.Header) {
	remaining, err := strconv.Atoi(header.Get("X-RateLimit-Remaining"))
	if err != nil {
		l.mu.Lock()
		l.answered(now)
		l.mu.Unlock()
		return
	}
	limit, err := strconv.Atoi(header.Get("X-RateLimit-Limit"))
	if err != nil || limit <= 0 {
		limit = int(float64(l.steadyRate) * DefaultRateLimitWindow.Seconds())
	}
	window := l.windowFor(limit)
	lowWater := max(limit/10, l.steadyBurst)

	l.mu.Lock()
	defer l.mu.Unlock()
	// The budget went up, or this is the first request of a window: a
	// window began.
	if (l.lastRemaining >= 0 && remaining > l.lastRemaining) || remaining == limit-1 {
		l.windowStart = now
	}
	l.lastRemaining = remaining
	// Requests sent but not yet answered will spend the budget too.
	remaining = max(remaining-l.answered(now), 0)
	if remaining > lowWater {
		l.setPace(now, l.steadyRate, l.steadyBurst)
		return
	}

	left, known := window, false
	if reset := untilReset(header, now); reset > 0 {
		left, known = reset, true
	} else if !l.windowStart.IsZero() {
		if until := l.windowStart.Add(window).Sub(now); until > 0 {
			left, known = until, true
		}
	}
	paced := rate.Limit(float64(max(remaining, 1)) / left.Seconds())
	if known {
		paced = rate.Limit(float64(remaining+1) / left.Seconds())
		if remaining == 0 {
			l.pauseUntil(now, now.Add(left))
			l.paceChanged()
		}
	}
	l.setPace(now, min(paced, l.steadyRate), 1)
}

// setPace sets the limiter's rate and burst, the steady ones when paced is
// not below the steady rate, and wakes the caller whose turn it is when
// they changed. The caller holds l.mu.
func (l *RateLimiter) setPace(now time.Time, paced rate.Limit, burst int) {
	if paced >= l.steadyRate {
		paced, burst = l.steadyRate, l.steadyBurst
	}
	if paced == l.limiter.Limit() && burst == l.limiter.Burst() {
		return
	}
	l.limiter.SetLimitAt(now, paced)
	l.limiter.SetBurstAt(now, burst)
	l.pacedByHeaders = paced != l.steadyRate || burst != l.steadyBurst
	l.paceChanged()
}

// windowFor is the period X-RateLimit-Limit counts over: the configured
// window, or else the one the budget implies, since the request rate is
// meant to be the limit spread over its window (1,200 per 300 s is 4/s).
func (l *RateLimiter) windowFor(limit int) time.Duration {
	if l.window > 0 {
		return l.window
	}
	if limit <= 0 {
		return DefaultRateLimitWindow
	}
	return time.Duration(float64(limit) / float64(l.steadyRate) * float64(time.Second))
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// untilReset reads X-RateLimit-Reset (an HTTP date).
func untilReset(header http.Header, now time.Time) time.Duration {
	at, err := http.ParseTime(header.Get("X-RateLimit-Reset"))
	if err != nil {
		return 0
	}
	return at.Sub(now)
}
