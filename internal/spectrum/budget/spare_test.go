package budget

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// analyticsLoop takes spare slots of l, as the traffic poller does, until
// ctx ends, and records when it got each.
func analyticsLoop(ctx context.Context, l *RateLimiter, got *[]time.Time, mu *sync.Mutex) {
	for ctx.Err() == nil {
		attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := l.waitSpare(attempt)
		cancel()
		if err == nil {
			mu.Lock()
			*got = append(*got, time.Now())
			mu.Unlock()
		}
	}
}

// createBurst sends n creates through l's line as reconciles do (take a
// turn, or wait to be woken and take it then), and returns when each went.
func createBurst(l *RateLimiter, n int) []time.Time {
	sent := make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			woken := make(chan struct{}, 1)
			ctx := WithTurn(context.Background(), Waiter{Group: "team-a", Name: fmt.Sprint(i)}, func() {
				select {
				case woken <- struct{}{}:
				default:
				}
			})
			for {
				err := l.line.take(ctx, turnFrom(ctx))
				if err == nil {
					sent[i] = time.Now()
					return
				}
				if _, queued := WaitingForTurn(err); !queued {
					panic(err)
				}
				<-woken
				// A new reconcile, a new turn, as the woken app's next
				// reconcile makes.
				ctx = WithTurn(context.Background(), Waiter{Group: "team-a", Name: fmt.Sprint(i)}, func() {
					select {
					case woken <- struct{}{}:
					default:
					}
				})
			}
		})
	}
	wg.Wait()
	return sent
}

func lastOf(times []time.Time) time.Time {
	var last time.Time
	for _, t := range times {
		last = laterOf(last, t)
	}
	return last
}

// Issue 24: analytics never takes more than its share of a token's budget,
// and yields every slot to a burst of creates: the burst takes as long
// with analytics polling as without, and analytics sends nothing while
// creates wait.
func TestAnalyticsYieldsToABurstOfCreates(t *testing.T) {
	const (
		rps     = 4.0
		share   = 0.10
		creates = 40
	)
	burstWithout := func() time.Duration {
		var took time.Duration
		synctest.Test(t, func(t *testing.T) {
			l := NewRateLimiter(rps, 1, 0)
			start := time.Now()
			took = lastOf(createBurst(l, creates)).Sub(start)
		})
		return took
	}()

	synctest.Test(t, func(t *testing.T) {
		l := NewRateLimiter(rps, 1, 0)
		l.setSpareShare(share)
		var mu sync.Mutex
		var analytics []time.Time
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { analyticsLoop(ctx, l, &analytics, &mu); close(done) }()

		// Alone on the budget, analytics takes its share and no more.
		const alone = 60 * time.Second
		time.Sleep(alone)
		mu.Lock()
		aloneSlots := len(analytics)
		mu.Unlock()
		if most := int(share*rps*alone.Seconds()) + spareBurst; aloneSlots > most || aloneSlots < most-spareBurst-1 {
			t.Errorf("alone for %s, analytics took %d slots; its share allows %d", alone, aloneSlots, most)
		}

		start := time.Now()
		sent := createBurst(l, creates)
		end := lastOf(sent)
		took := end.Sub(start)
		cancel()
		<-done

		slot := time.Duration(float64(time.Second) / rps)
		if took > burstWithout+slot {
			t.Errorf("the burst of %d creates took %s with analytics polling, %s without: more than a slot later", creates, took, burstWithout)
		}
		var during []time.Time
		for _, at := range analytics[aloneSlots:] {
			if at.After(start) && at.Before(end) {
				during = append(during, at)
			}
		}
		if len(during) > 0 {
			t.Errorf("analytics took %d slots while creates waited (burst %s to %s): %v", len(during), start, end, during)
		}
		t.Logf("alone %s: %d analytics slots (share %d); burst of %d creates: %s with analytics, %s without; analytics during it: %d",
			alone, aloneSlots, int(share*rps*alone.Seconds()), creates, took, burstWithout, len(during))
	})
}

// The share follows the budget's pace: when Cloudflare's headers slow the
// token down, analytics slows down with it, and a pause stops it.
func TestAnalyticsPaceFollowsTheBudget(t *testing.T) {
	l := NewRateLimiter(4, 1, 0)
	if l.SparePace() != 0 {
		t.Fatalf("pace %v without a share", l.SparePace())
	}
	l.setSpareShare(0.1)
	if got := l.SparePace(); got < 0.399 || got > 0.401 {
		t.Errorf("pace %v at 4/s, want 0.4", got)
	}
	l.mu.Lock()
	l.setPace(l.now(), 1, 1)
	l.mu.Unlock()
	if got := l.SparePace(); got < 0.099 || got > 0.101 {
		t.Errorf("pace %v with the budget paced at 1/s, want 0.1", got)
	}
	l.PauseFor(time.Minute)
	if got := l.SparePace(); got != 0 {
		t.Errorf("pace %v while paused", got)
	}
	if l.trySpare() {
		t.Error("a spare slot was taken during a pause")
	}
}
