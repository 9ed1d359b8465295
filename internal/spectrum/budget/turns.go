package budget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// One operator serves many teams, each with its own objects and often its
// own API token, through a few workers. A worker that waited inside a
// token's budget held the other teams back: with every worker waiting in
// one team's budget (a burst of 300 creates takes 75 s at 4 per second),
// another team's apps, on a token of its own with its budget untouched,
// were Ready only after the whole burst (issue 22).
//
// So a request made for an object (WithTurn) never waits for the budget:
//   - when nobody is in the token's line, it takes a slot that is free now
//     (within turnTryWait) and goes;
//   - otherwise it gets a ticket in the line and fails at once with a
//     *QueuedError, which is not a failure: the caller ends its work and
//     tries again when woken;
//   - one goroutine per token with a line waits on the budget, and grants
//     each slot to the next ticket, taking groups (namespaces) in turn, so
//     a namespace with one app is served between the apps of a
//     namespace with 300; it wakes the ticket's owner at once, and the
//     owner's next request goes out on that slot without waiting again;
//   - once a request of an object has gone out, the object's further
//     requests in the same turn (the next page of a listing, the create
//     after the listing that showed it missing) wait for the budget, but
//     for at most followUpWait, since a slot is about a quarter of a
//     second at Cloudflare's pace: starting over would spend the budget
//     again on what was already fetched;
//   - the line grants at most maxGrantedAhead turns ahead of their owners:
//     when that many are granted and not yet claimed, it waits for a claim
//     before it grants again. Owners that cannot run for a while (the
//     manager starved of CPU, its workers behind a slow apiserver) would
//     otherwise find a second's worth of slots granted when they run
//     again, and send them all in the same moment: more than the budget
//     allows in any second, and Cloudflare blocks the user for minutes;
//   - a grant not claimed within abandonAfter (the object was deleted, or
//     no longer needed a request) no longer holds up the line, and one not
//     claimed within grantTTL is dropped: it cost one slot.
//
// A create takes its turn (TakeTurn) before its record is written, so that
// the record's promise, sent within seconds, holds. Requests made for
// nobody in particular (the drift check's listings) wait in the budget as
// before; they come from one goroutine, not a worker. The granting
// goroutine ends when the line is empty.
const (
	turnTryWait  = 10 * time.Millisecond
	followUpWait = time.Second
	grantTTL     = 10 * time.Second
	// maxGrantedAhead bounds the turns granted and not yet claimed; a
	// reconcile claims its turn milliseconds after it is woken, so a few
	// keep the budget's pace.
	maxGrantedAhead = 4
	abandonAfter    = 2 * time.Second
	// grantLead is how long before a pause ends (a window's budget spent,
	// a 429's wait) the line grants the first slots after it. The owner
	// makes ready in that time (its reconcile, the create record) and
	// waits out the rest of the pause as it sends. Granted only once the
	// pause had ended, each window began later by that making ready: 30
	// ms of it cost 10 % of the pace at 50 requests per 1 s window.
	grantLead = 100 * time.Millisecond
)

// Waiter is whom a request is made for: an object (Name) of a group
// (Group, its namespace). Groups take turns; inside a group, first come
// first served.
type Waiter struct {
	Group, Name string
}

// WithTurn returns a context whose requests take their turn in the
// token's line for waiter instead of waiting for the budget (see
// QueuedError). wake is called, from another goroutine and without
// blocking, when the waiter's turn has come; it must be quick.
func WithTurn(ctx context.Context, waiter Waiter, wake func()) context.Context {
	return context.WithValue(ctx, turnKey{}, &turn{waiter: waiter, wake: wake})
}

type turnKey struct{}

// turn is one piece of work (a reconcile) of a waiter.
type turn struct {
	waiter Waiter
	wake   func()
	// sent: a request of this turn has gone out, so the rest follow.
	sent atomic.Bool
	// banked: a slot was taken ahead of the next request (TakeTurn), which
	// goes on it.
	banked atomic.Bool
}

func turnFrom(ctx context.Context) *turn {
	t, _ := ctx.Value(turnKey{}).(*turn)
	return t
}

// QueuedError says a request was not sent because it waits for its turn
// in the token's line. The waiter is woken when its turn comes; RetryAfter
// is when that is expected, for a caller to look again should the wake be
// lost. It is not a failure.
type QueuedError struct {
	RetryAfter time.Duration
}

func (e *QueuedError) Error() string {
	return fmt.Sprintf("waiting for its turn in the API token's request budget (expected in %s)", e.RetryAfter.Round(time.Millisecond))
}

// failure.Classification implements failure.Explained, for callers that do not tell a
// wait apart from a failure.
func (e *QueuedError) Classification() failure.Classification {
	c := failure.Explain(failure.Retryable, v1alpha1.ReasonWaitingForTurn,
		"Nothing to do: the request is sent when its turn comes; namespaces take turns on a shared API token.", e.Error())
	c.RetryAfter = e.RetryAfter
	return c
}

// WaitingForTurn tells whether err is a request waiting in its token's
// line, and when its turn is expected.
func WaitingForTurn(err error) (time.Duration, bool) {
	var queued *QueuedError
	if errors.As(err, &queued) {
		return queued.RetryAfter, true
	}
	return 0, false
}

// turnLine is one token's line: the tickets waiting, by group, and the
// turns granted but not yet claimed.
type turnLine struct {
	limiter *RateLimiter

	mu sync.Mutex
	// queued holds each group's tickets, oldest first; rotation the groups
	// with tickets, the next to be served first.
	queued   map[string][]*ticket
	rotation []string
	// tickets are every ticket queued or granted, by waiter.
	tickets map[Waiter]*ticket
	// granting is true while the goroutine that grants runs.
	granting bool
	// ahead are the grants that count against maxGrantedAhead, oldest
	// first, aheadCount how many of them are neither claimed nor
	// abandoned, and claims tells the granting goroutine of a claim.
	ahead      []*ticket
	aheadCount int
	claims     chan struct{}
	// expiring are the grants not yet claimed nor dropped, oldest first
	// (claimed ones leave when they come first).
	expiring []*ticket
}

type ticket struct {
	waiter Waiter
	wake   func()
	// grantedAt is zero while queued.
	grantedAt time.Time
	// claimed: its owner's request went on it, or the owner gave it up;
	// abandoned: unclaimed for abandonAfter, it no longer counts ahead.
	claimed, abandoned bool
}

func newTurnLine(limiter *RateLimiter) *turnLine {
	return &turnLine{limiter: limiter, queued: map[string][]*ticket{}, tickets: map[Waiter]*ticket{}, claims: make(chan struct{}, 1)}
}

// TakeTurn takes, for the object ctx's turn is for (WithTurn), a slot of
// the token ahead of its next request, which then goes on it without
// waiting: nil when it has one, a *QueuedError when it waits in line. A
// create takes its turn before its record is written, since the record
// promises the create goes out within seconds. Without a turn it is nil.
func (l *RateLimiter) TakeTurn(ctx context.Context) error {
	t := turnFrom(ctx)
	if t == nil || t.banked.Load() {
		return nil
	}
	if err := l.line.take(ctx, t); err != nil {
		return err
	}
	t.banked.Store(true)
	return nil
}

// take lets t's request go, or puts t in line and returns a *QueuedError.
func (q *turnLine) take(ctx context.Context, t *turn) error {
	if t.banked.CompareAndSwap(true, false) {
		t.sent.Store(true)
		// A slot granted ahead of a pause's end goes when the pause ends.
		return q.limiter.waitForResume(ctx)
	}
	if t.sent.Load() {
		return q.followUp(ctx, t)
	}
	q.mu.Lock()
	now := q.limiter.now()
	q.expire(now)
	if held, ok := q.tickets[t.waiter]; ok {
		if !held.grantedAt.IsZero() {
			delete(q.tickets, t.waiter)
			q.claim(held)
			q.mu.Unlock()
			t.sent.Store(true)
			return q.limiter.waitForResume(ctx)
		}
		held.wake = t.wake
		wait := q.expectedWait(held)
		q.mu.Unlock()
		return &QueuedError{RetryAfter: wait}
	}
	idle := len(q.rotation) == 0
	q.mu.Unlock()
	if idle && q.tryNow(ctx) {
		t.sent.Store(true)
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return q.enqueue(t)
}

// tryNow takes a slot that is free within turnTryWait.
func (q *turnLine) tryNow(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, turnTryWait)
	defer cancel()
	return q.limiter.Wait(ctx) == nil
}

// followUp waits for the budget for at most followUpWait, and goes back
// in line after that.
func (q *turnLine) followUp(ctx context.Context, t *turn) error {
	waitCtx, cancel := context.WithTimeout(ctx, followUpWait)
	defer cancel()
	err := q.limiter.Wait(waitCtx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	t.sent.Store(false)
	return q.enqueue(t)
}

// enqueue puts t's waiter at the end of its group's line, and starts
// granting if nobody does.
func (q *turnLine) enqueue(t *turn) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	held, ok := q.tickets[t.waiter]
	if ok && !held.grantedAt.IsZero() {
		q.claim(held) // given up for a new place in line
	}
	if !ok || !held.grantedAt.IsZero() {
		held = &ticket{waiter: t.waiter}
		q.tickets[t.waiter] = held
		group := t.waiter.Group
		if len(q.queued[group]) == 0 {
			q.rotation = append(q.rotation, group)
		}
		q.queued[group] = append(q.queued[group], held)
	}
	held.wake = t.wake
	if !q.granting {
		q.granting = true
		go q.grant()
	}
	return &QueuedError{RetryAfter: q.expectedWait(held)}
}

// grant gives each slot of the budget to the next ticket, groups in turn,
// until the line is empty, never more than maxGrantedAhead ahead of the
// owners' claims.
func (q *turnLine) grant() {
	for {
		q.waitForClaims()
		// Only a limiter with a burst of 0 fails without a deadline, and
		// that one never lets anything through.
		_ = q.limiter.wait(context.Background(), grantLead)
		q.mu.Lock()
		next := q.next()
		if next != nil {
			next.grantedAt = q.limiter.now()
			q.ahead = append(q.ahead, next)
			q.aheadCount++
			q.expiring = append(q.expiring, next)
		}
		done := len(q.rotation) == 0
		if done {
			q.granting = false
		}
		q.mu.Unlock()
		if next != nil && next.wake != nil {
			next.wake()
		}
		if done {
			return
		}
	}
}

// waitForClaims waits while maxGrantedAhead grants are neither claimed nor
// abandoned.
func (q *turnLine) waitForClaims() {
	for {
		q.mu.Lock()
		now := q.limiter.now()
		q.abandon(now)
		if q.aheadCount < maxGrantedAhead {
			q.mu.Unlock()
			return
		}
		wait := q.ahead[0].grantedAt.Add(abandonAfter).Sub(now)
		q.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-q.claims:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// claim marks a grant claimed, and tells the granting goroutine. The
// caller holds q.mu.
func (q *turnLine) claim(t *ticket) {
	if t.claimed {
		return
	}
	t.claimed = true
	if !t.abandoned {
		q.aheadCount--
		select {
		case q.claims <- struct{}{}:
		default:
		}
	}
}

// abandon stops counting grants unclaimed for abandonAfter. The caller
// holds q.mu.
func (q *turnLine) abandon(now time.Time) {
	for len(q.ahead) > 0 {
		first := q.ahead[0]
		switch {
		case first.claimed:
		case now.Sub(first.grantedAt) >= abandonAfter:
			first.abandoned = true
			q.aheadCount--
		default:
			return
		}
		q.ahead[0] = nil
		q.ahead = q.ahead[1:]
	}
}

// next takes the first ticket of the group whose turn it is, and moves the
// group to the end of the rotation. The caller holds q.mu.
func (q *turnLine) next() *ticket {
	if len(q.rotation) == 0 {
		return nil
	}
	group := q.rotation[0]
	q.rotation = q.rotation[1:]
	line := q.queued[group]
	first := line[0]
	if len(line) > 1 {
		q.queued[group] = line[1:]
		q.rotation = append(q.rotation, group)
	} else {
		delete(q.queued, group)
	}
	return first
}

// expire drops grants not claimed within grantTTL. The caller holds q.mu.
func (q *turnLine) expire(now time.Time) {
	for len(q.expiring) > 0 {
		first := q.expiring[0]
		if !first.claimed {
			if now.Sub(first.grantedAt) <= grantTTL {
				return
			}
			if q.tickets[first.waiter] == first {
				delete(q.tickets, first.waiter)
			}
			q.claim(first)
		}
		q.expiring[0] = nil
		q.expiring = q.expiring[1:]
	}
}

// expectedWait is when t's turn is expected: the tickets served before
// it, groups in turn, one slot each at the budget's current pace, after
// any pause. The caller holds q.mu.
func (q *turnLine) expectedWait(t *ticket) time.Duration {
	if !t.grantedAt.IsZero() {
		return 0
	}
	place := 0
	for i, queued := range q.queued[t.waiter.Group] {
		if queued == t {
			place = i
			break
		}
	}
	// Every group serves up to place tickets before t's turn, and those
	// ahead of t's group in the rotation one more.
	ahead := 0
	before := true
	for _, group := range q.rotation {
		if group == t.waiter.Group {
			before = false
		}
		n := min(len(q.queued[group]), place)
		if before && len(q.queued[group]) > place {
			n++
		}
		ahead += n
	}
	return q.limiter.pausedFor() + time.Duration(ahead+1)*q.limiter.slot()
}
