package budget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// turnTaker makes requests for waiters through one token's line, as
// reconciles do, and records the order in which their turns came.
type turnTaker struct {
	t     *testing.T
	line  *turnLine
	mu    sync.Mutex
	woken []Waiter
}

func newTurnTaker(t *testing.T, requestsPerSecond float64) *turnTaker {
	return &turnTaker{t: t, line: NewRateLimiter(requestsPerSecond, 1, 0).line}
}

// request is one reconcile's first request for w: nil when it may go,
// a *QueuedError when it waits for its turn.
func (tt *turnTaker) request(w Waiter) (*turn, error) {
	ctx := WithTurn(context.Background(), w, func() {
		tt.mu.Lock()
		defer tt.mu.Unlock()
		tt.woken = append(tt.woken, w)
	})
	t := turnFrom(ctx)
	return t, tt.line.take(ctx, t)
}

func (tt *turnTaker) mustQueue(w Waiter) time.Duration {
	tt.t.Helper()
	_, err := tt.request(w)
	wait, ok := WaitingForTurn(err)
	if !ok {
		tt.t.Fatalf("request for %v: %v, want it to wait for its turn", w, err)
	}
	return wait
}

func (tt *turnTaker) mustGo(w Waiter) *turn {
	tt.t.Helper()
	t, err := tt.request(w)
	if err != nil {
		tt.t.Fatalf("request for %v: %v, want it to go", w, err)
	}
	return t
}

func (tt *turnTaker) wokenSoFar() []Waiter {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return append([]Waiter(nil), tt.woken...)
}

func TestTurnsGoRoundRobinAcrossGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTurnTaker(t, 4)
		a := func(name string) Waiter { return Waiter{Group: "team-a", Name: name} }
		b := Waiter{Group: "team-b", Name: "only"}

		// Nobody in line and a slot free: the first request goes at once.
		start := time.Now()
		tt.mustGo(a("a0"))
		// The burst is spent: the rest of team A's burst waits in line,
		// each expected one slot (250 ms) after the one before.
		var waits []time.Duration
		for _, name := range []string{"a1", "a2", "a3", "a4"} {
			waits = append(waits, tt.mustQueue(a(name)))
		}
		for i := 1; i < len(waits); i++ {
			if waits[i] <= waits[i-1] {
				t.Errorf("expected waits %v do not grow along the line", waits)
			}
		}
		// Team B comes last with one app, and is served second: groups
		// take turns.
		if wait := tt.mustQueue(b); wait > 2*250*time.Millisecond {
			t.Errorf("team B's one app expects to wait %s, want at most two slots", wait)
		}
		if !time.Now().Equal(start) {
			t.Errorf("requests that wait for their turn blocked for %s", time.Since(start))
		}

		time.Sleep(5 * time.Second)
		synctest.Wait()
		want := []Waiter{a("a1"), b, a("a2"), a("a3"), a("a4")}
		if got := tt.wokenSoFar(); !equalWaiters(got, want) {
			t.Fatalf("turns came in the order %v, want %v", got, want)
		}
	})
}

func TestAGrantedTurnGoesWithoutWaitingAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTurnTaker(t, 4)
		first, second := Waiter{Group: "ns", Name: "first"}, Waiter{Group: "ns", Name: "second"}
		tt.mustGo(first)
		tt.mustQueue(second)
		// Asking again before the turn comes keeps the place in line.
		tt.mustQueue(second)
		time.Sleep(250 * time.Millisecond)
		synctest.Wait()
		if got := tt.wokenSoFar(); !equalWaiters(got, []Waiter{second}) {
			t.Fatalf("woken %v, want %v", got, []Waiter{second})
		}
		// Woken, the waiter's request goes on the slot granted to it: it
		// does not wait for the budget again.
		granted := time.Now()
		turn := tt.mustGo(second)
		if !time.Now().Equal(granted) {
			t.Errorf("the granted request waited %s", time.Since(granted))
		}
		// Its next request in the same turn (a listing's next page, the
		// create after the listing) follows at the budget's pace.
		if err := tt.line.take(context.Background(), turn); err != nil {
			t.Fatalf("follow-up request: %v", err)
		}
		if waited := time.Since(granted); waited != 250*time.Millisecond {
			t.Errorf("the follow-up request waited %s, want one slot (250ms)", waited)
		}
	})
}

func TestAnUnclaimedGrantExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTurnTaker(t, 4)
		gone, next := Waiter{Group: "ns", Name: "deleted"}, Waiter{Group: "ns", Name: "next"}
		tt.mustGo(Waiter{Group: "ns", Name: "first"})
		tt.mustQueue(gone)
		tt.mustQueue(next)
		// The deleted object's grant is never claimed; the line does not
		// wait for it.
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if got := tt.wokenSoFar(); !equalWaiters(got, []Waiter{gone, next}) {
			t.Fatalf("woken %v, want %v", got, []Waiter{gone, next})
		}
		tt.mustGo(next)

		tt.line.mu.Lock()
		_, heldBefore := tt.line.tickets[gone]
		tt.line.mu.Unlock()
		if !heldBefore {
			t.Fatal("the unclaimed grant is not held before it expires")
		}
		time.Sleep(grantTTL + time.Second)
		// Any request of the line drops the expired grant: the deleted
		// object holds nothing.
		tt.mustGo(Waiter{Group: "ns", Name: "later"})
		tt.line.mu.Lock()
		defer tt.line.mu.Unlock()
		if _, held := tt.line.tickets[gone]; held {
			t.Errorf("the grant unclaimed for %s is still held", grantTTL+time.Second)
		}
	})
}

func TestAFollowUpThatCannotGoSoonGoesBackInLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTurnTaker(t, 4)
		w := Waiter{Group: "ns", Name: "app"}
		turn := tt.mustGo(w)
		// Cloudflare asked to pause: the follow-up does not hold its
		// worker for the pause, it takes a place in line.
		tt.line.limiter.PauseFor(time.Minute)
		started := time.Now()
		err := tt.line.take(context.Background(), turn)
		wait, queued := WaitingForTurn(err)
		if !queued {
			t.Fatalf("follow-up during a pause: %v, want it to wait for its turn", err)
		}
		if waited := time.Since(started); waited > followUpWait {
			t.Errorf("the follow-up held its worker for %s, want at most %s", waited, followUpWait)
		}
		if wait < 50*time.Second {
			t.Errorf("expected wait %s, want the pause counted", wait)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := tt.wokenSoFar(); !equalWaiters(got, []Waiter{w}) {
			t.Fatalf("woken %v, want %v after the pause", got, []Waiter{w})
		}
	})
}

func TestAQueuedErrorIsNotSentAndNotAFailure(t *testing.T) {
	err := error(&spectrum.RequestError{Method: "POST", Path: "/zones/z/spectrum/apps",
		Err: errors.Join(spectrum.ErrNotSent, &QueuedError{RetryAfter: time.Second})})
	if spectrum.MayHaveBeenApplied(err) {
		t.Error("a request waiting for its turn may have been applied, want not")
	}
	if wait, ok := WaitingForTurn(err); !ok || wait != time.Second {
		t.Errorf("WaitingForTurn = %s, %v", wait, ok)
	}
	if c := spectrum.Classify(err); c.Class != failure.Retryable || c.Reason != v1alpha1.ReasonWaitingForTurn || c.RetryAfter != time.Second {
		t.Errorf("classified %+v", c)
	}
}

func equalWaiters(a, b []Waiter) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Turns granted while their owners cannot run (the manager starved of CPU,
// its workers stuck behind a slow apiserver) must not pile up: owners that
// run again all at once would send every slot granted meanwhile in the same
// moment, more than the budget allows in any second, and Cloudflare blocks
// the user for minutes (the bench's convergence saw 67 and 78 requests in
// one second at 50 per second, and 17 and 47 429s). The line grants no
// further ahead of its owners than a few slots.
func TestTurnsGrantedWhileTheirOwnersStallDoNotPileUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			rate    = 50
			burst   = 5
			waiters = 200
			stall   = 1500 * time.Millisecond
		)
		line := NewRateLimiter(rate, burst, 0).line
		var (
			mu    sync.Mutex
			woken []Waiter
			sent  []time.Time
		)
		wake := make(chan struct{}, waiters)
		request := func(w Waiter) error {
			ctx := WithTurn(context.Background(), w, func() {
				mu.Lock()
				woken = append(woken, w)
				mu.Unlock()
				wake <- struct{}{}
			})
			err := line.take(ctx, turnFrom(ctx))
			if err == nil {
				mu.Lock()
				sent = append(sent, time.Now())
				mu.Unlock()
			}
			return err
		}
		for i := range waiters {
			if err := request(Waiter{Group: "ns", Name: fmt.Sprint(i)}); err != nil {
				if _, queued := WaitingForTurn(err); !queued {
					t.Fatal(err)
				}
			}
		}
		// The owners cannot run for a while; then each woken owner sends
		// as soon as it is woken, as reconciles do.
		time.Sleep(stall)
		resumed := time.Now()
		processed := 0
		for {
			mu.Lock()
			pending := append([]Waiter(nil), woken[processed:]...)
			processed = len(woken)
			mu.Unlock()
			for _, w := range pending {
				if err := request(w); err != nil {
					t.Fatalf("woken %v: %v", w, err)
				}
			}
			mu.Lock()
			done := len(sent)
			mu.Unlock()
			if done == waiters {
				break
			}
			select {
			case <-wake:
			case <-time.After(time.Minute):
				t.Fatalf("%d of %d sent, then nobody was woken for a minute", done, waiters)
			}
		}
		// No second sees more than the budget's rate and burst, and the
		// few slots granted ahead of their owners.
		mu.Lock()
		defer mu.Unlock()
		most := 0
		for i := range sent {
			n := 0
			for _, at := range sent[i:] {
				if at.Sub(sent[i]) < time.Second {
					n++
				}
			}
			most = max(most, n)
		}
		t.Logf("at most %d requests within one second after a stall of %s; all %d sent %s after it", most, stall, waiters, sent[len(sent)-1].Sub(resumed))
		if limit := rate + burst + maxGrantedAhead; most > limit {
			t.Errorf("%d requests sent within one second after a stall of %s, more than %d (rate %d, burst %d, %d granted ahead)",
				most, stall, limit, rate, burst, maxGrantedAhead)
		}
		// And the line keeps the budget's pace once the owners run.
		if took := sent[len(sent)-1].Sub(resumed); took > time.Duration(float64(waiters)/rate*1.1*float64(time.Second)) {
			t.Errorf("%d requests took %s after the stall, more than 1.1 × N/R", waiters, took)
		}
	})
}
