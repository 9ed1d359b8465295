package budget

import (
	"context"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// Analytics shares the token's budget with configuration, which must never
// wait for it: a burst of creates is what the budget is for, and traffic
// numbers a minute late harm nobody. So an analytics request
// (spectrum.WithSpareSlot) goes only on a spare slot:
//   - nobody waits for the budget: the token's line of turns is empty and
//     no caller (the drift check's listing, the line's granting goroutine)
//     is inside Wait;
//   - the budget has a slot free now, and no pause is in force;
//   - the analytics share allows it: a bucket of share × the budget's
//     current pace, so analytics takes at most that share of the slots, and
//     less as the pace falls (Cloudflare's headers saying the user's budget
//     runs low, or a pause).
//
// A write that arrives just after a spare slot was taken waits for the next
// slot at most (a quarter of a second at Cloudflare's pace), and then has
// the budget to itself. Otherwise the analytics request does not wait in
// any line: it looks again a slot later, until its context ends
// (ErrNotSent), and its caller tries again at its next interval.
const (
	// DefaultAnalyticsShare is the share of each token's budget analytics
	// may use.
	DefaultAnalyticsShare = 0.10
	// spareBurst lets one zone's two analytics requests go together.
	spareBurst = 2
	// spareLookAgain bounds how long an analytics request sleeps before it
	// looks for a spare slot again.
	spareLookAgain = 250 * time.Millisecond
)

// setSpareShare lets analytics use share of the budget; zero or less gives
// it none.
func (l *RateLimiter) setSpareShare(share float64) {
	if share <= 0 {
		return
	}
	l.spareShare = min(share, 1)
	l.spare = rate.NewLimiter(l.sparePaceAt(), spareBurst)
}

// sparePaceAt is the analytics share of the budget's current pace.
func (l *RateLimiter) sparePaceAt() rate.Limit {
	pace := l.limiter.Limit()
	if pace == rate.Inf {
		return rate.Inf
	}
	return rate.Limit(l.spareShare * float64(pace))
}

// SparePace is how many analytics requests per second the budget allows
// now: none while paused (spectrum.Budget).
func (l *RateLimiter) SparePace() float64 {
	if l.spare == nil || l.pausedFor() > 0 {
		return 0
	}
	pace := l.sparePaceAt()
	if pace == rate.Inf {
		return math.Inf(1)
	}
	return float64(pace)
}

// waitSpare waits for a spare slot until ctx ends.
func (l *RateLimiter) waitSpare(ctx context.Context) error {
	if l.spare == nil {
		return fmt.Errorf("%w: analytics has no share of this token's budget", spectrum.ErrRateLimited)
	}
	for {
		if l.trySpare() {
			return nil
		}
		timer := time.NewTimer(min(max(l.slot(), 10*time.Millisecond), spareLookAgain))
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w: no spare slot of the budget before the deadline: %w", spectrum.ErrRateLimited, ctx.Err())
		case <-timer.C:
		}
	}
}

// trySpare takes a spare slot, if there is one now.
func (l *RateLimiter) trySpare() bool {
	if l.line.busy() {
		return false
	}
	select {
	case l.turn <- struct{}{}:
	default:
		return false // someone is waiting for the budget
	}
	defer func() { <-l.turn }()
	if l.pausedFor() > 0 {
		return false
	}
	now := l.now()
	l.spare.SetLimitAt(now, l.sparePaceAt())
	if l.spare.TokensAt(now) < 1 {
		return false
	}
	reservation := l.limiter.ReserveN(now, 1)
	if !reservation.OK() {
		return false
	}
	if reservation.DelayFrom(now) > 0 || !l.grant(0) {
		reservation.CancelAt(now)
		return false
	}
	l.spare.AllowN(now, 1)
	return true
}

// busy tells whether anyone waits in the line.
func (q *turnLine) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.rotation) > 0 || q.granting
}
