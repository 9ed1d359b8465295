package budget

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

func budgetHeader(limit, remaining int) http.Header {
	return http.Header{"X-Ratelimit-Limit": {fmt.Sprint(limit)}, "X-Ratelimit-Remaining": {fmt.Sprint(remaining)}}
}

// When a window's start was seen and nothing remains, everyone pauses
// until that window ends: not for a whole window from now, and not at all
// would be a 429.
func TestRateLimiterPausesUntilTheSeenWindowEnds(t *testing.T) {
	const window = time.Second
	l := NewRateLimiter(20, 5, window)
	l.observe(http.StatusOK, budgetHeader(20, 19)) // the first request of a window
	windowStart := time.Now()
	time.Sleep(300 * time.Millisecond)
	l.observe(http.StatusOK, budgetHeader(20, 0))
	l.mu.Lock()
	resumeAt := l.resumeAt
	l.mu.Unlock()
	if want := windowStart.Add(window); resumeAt.Before(want.Add(-50*time.Millisecond)) || resumeAt.After(want.Add(50*time.Millisecond)) {
		t.Fatalf("paused until %s after the window began, want its end (%s)", resumeAt.Sub(windowStart), window)
	}
}

// The remaining budget is spread so the last request goes out before the
// window ends, and requests still in flight count against it: their
// answers will lower Remaining further.
func TestRateLimiterSpreadsWhatRemainsCountingRequestsInFlight(t *testing.T) {
	const window = 10 * time.Second
	l := NewRateLimiter(10, 5, window) // 100 per 10 s; low water 10
	l.observe(http.StatusOK, budgetHeader(100, 99))
	for range 5 {
		if !l.grant(0) {
			t.Fatal("grant refused outside a pause")
		}
	}
	// 14 remain, but 4 more requests are still in flight (the fifth is
	// this answer): 10 are really left, at the low-water mark.
	l.observe(http.StatusOK, budgetHeader(100, 14))
	got := float64(l.limiter.Limit())
	want := 11 / window.Seconds() // (10 left + 1) over what is left of the window
	if got < want*0.95 || got > want*1.1 || l.limiter.Burst() != 1 {
		t.Fatalf("paced at %.3f/s burst %d, want about %.3f/s and 1", got, l.limiter.Burst(), want)
	}
	// The window ends and a new one begins: Remaining goes up.
	l.observe(http.StatusOK, budgetHeader(100, 99))
	if l.limiter.Limit() != 10 || l.limiter.Burst() != 5 {
		t.Fatalf("new window: %v/s burst %d, want the steady 10/s and 5", l.limiter.Limit(), l.limiter.Burst())
	}
}

// A caller that reserved at a slow pace does not hold back the callers
// behind it once the pace is restored.
func TestRateLimiterASlowReservationDoesNotHoldTheQueue(t *testing.T) {
	l := NewRateLimiter(100, 1, 100*time.Second) // 10,000 per 100 s
	l.observe(http.StatusOK, budgetHeader(10000, 9999))
	l.observe(http.StatusOK, budgetHeader(10000, 5)) // almost nothing left: one request per ~20 s
	if l.limiter.Limit() > 1 {
		t.Fatalf("not paced: %v/s", l.limiter.Limit())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Spend the one token the burst allows, so the next callers wait.
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan time.Duration, 5)
	start := time.Now()
	for range 5 {
		wg.Go(func() {
			if err := l.Wait(ctx); err != nil {
				t.Error(err)
				return
			}
			done <- time.Since(start)
		})
	}
	time.Sleep(100 * time.Millisecond) // they queue behind the slow reservation
	l.observe(http.StatusOK, budgetHeader(10000, 9999))
	wg.Wait()
	close(done)
	for took := range done {
		if took > 2*time.Second {
			t.Fatalf("a caller waited %s after the pace was restored; the slow reservation held the queue", took)
		}
	}
}
