package budget

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// maxInAnyWindow drives a limiter of rps and burst greedily (a request as
// soon as it allows one) over several windows and returns the most requests
// it let through in any window of that length, starting at any request.
func maxInAnyWindow(rps float64, burst int, window time.Duration) int {
	l := NewRateLimiter(rps, burst, 0)
	now := time.Unix(0, 0)
	var sent []time.Time
	for end := now.Add(4 * window); now.Before(end); {
		r := l.limiter.ReserveN(now, 1)
		now = now.Add(r.DelayFrom(now))
		sent = append(sent, now)
	}
	most, j := 0, 0
	for i := range sent {
		for j < len(sent) && sent[j].Before(sent[i].Add(window)) {
			j++
		}
		most = max(most, j-i)
	}
	return most
}

// Cloudflare's global API limit, written as literals so that the test
// holds the code to Cloudflare's number and not to its own constants:
// 1,200 requests per 300 seconds per user (the shared API notes,
// /work/shared/spectrum-api.md, "Rate limit"; Cloudflare's API rate-limit
// page). A change of DefaultRateLimit or DefaultRateLimitWindow cannot
// make a faster default pass.
const (
	cloudflareRequestsPerWindow = 1200
	cloudflareWindow            = 300 * time.Second
)

// The defaults alone never spend more than Cloudflare's budget in any
// window: the burst counts too.
func TestDefaultBudgetFitsCloudflareWindow(t *testing.T) {
	if got := maxInAnyWindow(DefaultRequestsPerSecond, DefaultBurst, cloudflareWindow); got > cloudflareRequestsPerWindow {
		t.Errorf("the defaults (%g/s, burst %d) admit %d requests in %s, over Cloudflare's %d",
			DefaultRequestsPerSecond, DefaultBurst, got, cloudflareWindow, cloudflareRequestsPerWindow)
	}
	// The code's own names for the limit say Cloudflare's numbers too:
	// DefaultRateLimitWindow is the window the limiter assumes when an
	// answer gives none.
	if DefaultRateLimit != cloudflareRequestsPerWindow || DefaultRateLimitWindow != cloudflareWindow {
		t.Errorf("DefaultRateLimit %d per DefaultRateLimitWindow %s, want Cloudflare's %d per %s",
			DefaultRateLimit, DefaultRateLimitWindow, cloudflareRequestsPerWindow, cloudflareWindow)
	}
	// The check sees the fault of the former defaults, 4/s with bursts of
	// 10, and of a rate just over the limit with no burst.
	for _, over := range []struct {
		rps   float64
		burst int
	}{{4, 10}, {4.02, 1}} {
		if got := maxInAnyWindow(over.rps, over.burst, cloudflareWindow); got <= cloudflareRequestsPerWindow {
			t.Errorf("%g/s with bursts of %d admit %d requests in %s; the check should find more than %d",
				over.rps, over.burst, got, cloudflareWindow, cloudflareRequestsPerWindow)
		}
	}
}

func budgetHeaders(ratelimit, policy string) http.Header {
	h := http.Header{}
	if ratelimit != "" {
		h.Set("Ratelimit", ratelimit)
	}
	if policy != "" {
		h.Set("Ratelimit-Policy", policy)
	}
	return h
}

func TestParseRateLimitHeaders(t *testing.T) {
	cases := []struct {
		name, ratelimit, policy string
		want                    []budgetReport
	}{
		{"cloudflare's example", `"default";r=50;t=30`, `"burst";q=100;w=60`,
			[]budgetReport{{name: "default", remaining: 50, reset: 30 * time.Second, resetKnown: true, quota: 100, window: 60 * time.Second}}},
		{"policies matched by name", `"burst";r=5;t=1, "day";r=900;t=3000`, `"day";q=1000;w=86400, "burst";q=10;w=1`,
			[]budgetReport{
				{name: "burst", remaining: 5, reset: time.Second, resetKnown: true, quota: 10, window: time.Second},
				{name: "day", remaining: 900, reset: 3000 * time.Second, resetKnown: true, quota: 1000, window: 86400 * time.Second},
			}},
		{"token names, spaces, unknown and repeated params", `default ; r=7;t=2;pk=:AQID:;x="y";r=8,  other;r=1;t=0.5;f=?1`, ``,
			[]budgetReport{
				{name: "default", remaining: 8, reset: 2 * time.Second, resetKnown: true},
				{name: "other", remaining: 1, reset: 500 * time.Millisecond, resetKnown: true},
			}},
		{"quoted name with escapes and a comma", `"a\"b,c";r=3;t=4`, ``,
			[]budgetReport{{name: `a"b,c`, remaining: 3, reset: 4 * time.Second, resetKnown: true}}},
		{"garbage members skipped", `r=5, "x";r=-1;t=2, "ok";r=2;t=3, "unterminated;r=1`, ``,
			[]budgetReport{{name: "ok", remaining: 2, reset: 3 * time.Second, resetKnown: true}}},
		{"no t", `"default";r=10`, `"default";q=100;w=60`,
			[]budgetReport{{name: "default", remaining: 10, quota: 100, window: 60 * time.Second}}},
		{"r not a number", `"default";r="ten";t=3`, ``, nil},
		{"empty", ``, `"default";q=1;w=1`, nil},
		{"nonsense", `;;;,,,""";=`, ``, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := parseRateLimitHeaders(budgetHeaders(tc.ratelimit, tc.policy))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	// Several header lines are one list.
	h := http.Header{"Ratelimit": {`"a";r=1;t=1`, `"b";r=2;t=2`}}
	if got := parseRateLimitHeaders(h); len(got) != 2 || got[1].name != "b" {
		t.Errorf("two header lines: %+v", got)
	}
}

// formatBudgetHeaders writes reports back as headers.
func formatBudgetHeaders(reports []budgetReport) http.Header {
	h := http.Header{}
	for _, r := range reports {
		item := fmt.Sprintf("%q;r=%d", r.name, r.remaining)
		if r.resetKnown {
			item += fmt.Sprintf(";t=%.3f", r.reset.Seconds())
		}
		h.Add("Ratelimit", item)
		h.Add("Ratelimit-Policy", fmt.Sprintf("%q;q=%d;w=%.3f", r.name, r.quota, r.window.Seconds()))
	}
	return h
}

func FuzzParseRateLimitHeaders(f *testing.F) {
	f.Add(`"default";r=50;t=30`, `"burst";q=100;w=60`)
	f.Add(`"burst";r=5;t=1, "day";r=900;t=3000`, `"day";q=1000;w=86400, "burst";q=10;w=1`)
	f.Add(`default ; r=7;t=2;pk=:AQID:;x="y";r=8`, `a;q=?1;w=1.5`)
	f.Add(`"a\"b";r=3;t=4, (1 2);r=1`, `"x`)
	f.Fuzz(func(t *testing.T, ratelimit, policy string) {
		reports := parseRateLimitHeaders(budgetHeaders(ratelimit, policy))
		if len(reports) > maxBudgetItems {
			t.Fatalf("%d reports from one header", len(reports))
		}
		for _, r := range reports {
			if r.remaining < 0 || r.reset < 0 || r.quota < 0 || r.window < 0 || r.reset > 24*time.Hour || r.window > 24*time.Hour {
				t.Fatalf("out of range: %+v", r)
			}
		}
		// What was read, written back, reads the same (names that are not
		// printable ASCII cannot be written as a string, and two items of
		// one name match the first's policy).
		names := map[string]bool{}
		for _, r := range reports {
			for _, c := range []byte(r.name) {
				if c < 0x20 || c > 0x7e {
					return
				}
			}
			if names[r.name] {
				return
			}
			names[r.name] = true
		}
		again := parseRateLimitHeaders(formatBudgetHeaders(reports))
		if fmt.Sprint(again) != fmt.Sprint(reports) {
			t.Fatalf("read %+v, written back and read again %+v", reports, again)
		}
		// The limiter takes any of it without panicking.
		l := NewRateLimiter(4, 1, 0)
		l.observe(http.StatusOK, budgetHeaders(ratelimit, policy))
	})
}

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

func newTestLimiter(rps float64, burst int) (*RateLimiter, *fakeClock) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	l := NewRateLimiter(rps, burst, 0)
	l.now = clock.Now
	return l, clock
}

func TestRateLimiterPacesFromBudgetHeaders(t *testing.T) {
	policy := `"default";q=120;w=30`
	t.Run("alone: the ceiling, then what is left over the rest of the window", func(t *testing.T) {
		l, clock := newTestLimiter(4, 1)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=119;t=30`, policy))
		if got := l.limiter.Limit(); got != 4 || l.limiter.Burst() != 1 {
			t.Fatalf("plenty left: %v/s burst %d, want the steady 4/s and 1", got, l.limiter.Burst())
		}
		// Our 108 requests answered over 25 s, no one else's: 11 left.
		start := clock.now
		for i := 1; i <= 108; i++ {
			clock.advance(25 * time.Second / 108)
			l.grant(0)
			l.observe(http.StatusOK, budgetHeaders(fmt.Sprintf(`"default";r=%d;t=%d`, 119-i, 29-int(clock.now.Sub(start).Seconds())), policy))
		}
		// A tenth of the quota or less: the 11 left (nobody else to keep
		// one back for) over the 5 s left at most, the window having begun
		// with the first answer at the latest.
		if got, want := float64(l.limiter.Limit()), 11.0/5; math.Abs(got-want) > 1e-6 || l.limiter.Burst() != 1 {
			t.Fatalf("paced at %v/s burst %d, want %v/s and 1", got, l.limiter.Burst(), want)
		}
	})
	t.Run("requests in flight count", func(t *testing.T) {
		l, _ := newTestLimiter(10, 1)
		for range 11 {
			l.grant(0)
		}
		l.observe(http.StatusOK, budgetHeaders(`"default";r=21;t=30`, policy))
		// 21 left, 10 still in flight: 11 over 30 s.
		if got, want := float64(l.limiter.Limit()), 11.0/30; math.Abs(got-want) > 1e-9 {
			t.Fatalf("paced at %v/s, want %v/s", got, want)
		}
	})
	t.Run("the tightest of several budgets", func(t *testing.T) {
		l, _ := newTestLimiter(100, 1)
		l.observe(http.StatusOK, budgetHeaders(`"minute";r=6;t=10, "hour";r=300;t=3600`, `"minute";q=60;w=60, "hour";q=3600;w=3600`))
		// minute: 6 over 11 s; hour: 300 over 3600 s.
		if got, want := float64(l.limiter.Limit()), 300.0/3600; math.Abs(got-want) > 1e-9 {
			t.Fatalf("paced at %v/s, want the hourly budget's %v/s", got, want)
		}
	})
	t.Run("others' spending is subtracted", func(t *testing.T) {
		l, clock := newTestLimiter(10, 1)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=119;t=30`, policy))
		// Ten of our requests answered over 10 s, while r fell by 30: the
		// others spent 20, 2/s (the first window has no earlier estimate,
		// which weighs as 3 s of none).
		for i := 1; i <= 10; i++ {
			clock.advance(time.Second)
			l.grant(0)
			l.observe(http.StatusOK, budgetHeaders(fmt.Sprintf(`"default";r=%d;t=%d`, 119-3*i, 30-i), policy))
		}
		others := 20.0 / 13
		if got, want := float64(l.limiter.Limit()), (89-1-others*20)/20; math.Abs(got-want) > 1e-9 {
			t.Fatalf("paced at %v/s, want %v/s (others at %.2f/s)", got, want, others)
		}
	})
	t.Run("nothing left: pause until the window ends", func(t *testing.T) {
		l, clock := newTestLimiter(4, 1)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=100;t=30`, policy))
		// 89 answers of ours, then one that says the others spent 9.
		for i := 1; i <= 89; i++ {
			clock.advance(100 * time.Millisecond)
			l.grant(0)
			l.observe(http.StatusOK, budgetHeaders(fmt.Sprintf(`"default";r=%d;t=29`, 100-i), policy))
		}
		clock.advance(time.Second + 100*time.Millisecond)
		l.grant(0)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=1;t=19`, policy))
		// The window began at the latest with the first answer: it ends
		// within 30 s of it, sooner than now + 19 s + 1 s.
		if want := clock.now.Add(20 * time.Second); !l.resumeAt.Equal(want) {
			t.Fatalf("paused until %s, want %s", l.resumeAt.Sub(clock.now), want.Sub(clock.now))
		}
		// The new window's first answer sets the pace again, from what the
		// last window says of the others: 9 requests in 10 s (and 3 s of
		// the none known before), weighing as 3 s at the start of the new
		// window.
		clock.advance(20 * time.Second)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=119;t=30`, policy))
		if l.resumeAt.After(clock.now) {
			t.Fatalf("new window: paused until %s", l.resumeAt.Sub(clock.now))
		}
		others := 9.0 / 13
		if got, want := float64(l.limiter.Limit()), (118-others*30)/30; math.Abs(got-want) > 1e-9 {
			t.Fatalf("new window: %v/s, want %v/s", got, want)
		}
	})
	t.Run("a late answer of the last window is ignored", func(t *testing.T) {
		l, clock := newTestLimiter(4, 1)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=119;t=30`, policy))
		clock.advance(100 * time.Millisecond)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=2;t=0`, policy))
		if l.resumeAt.After(clock.now) || l.limiter.Limit() < 3.9 {
			t.Fatalf("paused until %s, %v/s", l.resumeAt.Sub(clock.now), l.limiter.Limit())
		}
	})
	t.Run("an answer across the window's end is left out", func(t *testing.T) {
		l, clock := newTestLimiter(50, 1)
		short := `"default";q=50;w=1`
		l.grant(0)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=49;t=1`, short))
		// Sent before the window's end (a second after the first answer),
		// answered after it: counted in the old window or the new one.
		clock.advance(990 * time.Millisecond)
		l.grant(0)
		clock.advance(20 * time.Millisecond)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=0;t=0`, short))
		if l.resumeAt.After(clock.now) {
			t.Fatalf("paused for %s on an answer that may be of the last window", l.resumeAt.Sub(clock.now))
		}
		// Sent after it: a new window, whose budget is spent.
		l.grant(0)
		clock.advance(20 * time.Millisecond)
		l.observe(http.StatusOK, budgetHeaders(`"default";r=0;t=1`, short))
		if want := clock.now.Add(time.Second); !l.resumeAt.Equal(want) {
			t.Fatalf("paused for %s, want until the new window's end (1s)", l.resumeAt.Sub(clock.now))
		}
	})
	t.Run("modern headers win over legacy ones", func(t *testing.T) {
		l, _ := newTestLimiter(4, 1)
		h := budgetHeaders(`"default";r=119;t=30`, policy)
		h.Set("X-RateLimit-Limit", "1200")
		h.Set("X-RateLimit-Remaining", "0")
		l.observe(http.StatusOK, h)
		if l.resumeAt.After(l.now()) {
			t.Fatal("paused on the legacy header")
		}
	})
}

// fixedWindowBudget models Cloudflare's budget of one user: limit requests
// in a window that starts with the first request after the last window
// ended; over it, a 429 and the whole user blocked for a window. t is
// rounded down or up to whole seconds.
type fixedWindowBudget struct {
	mu      sync.Mutex
	limit   int
	window  time.Duration
	roundUp bool
	// legacy sends X-RateLimit-Limit and -Remaining instead.
	legacy bool

	start, blockedUntil time.Time
	used, tooMany       int
}

func (m *fixedWindowBudget) serve(now time.Time) (int, http.Header) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := http.Header{}
	if now.Before(m.blockedUntil) {
		m.tooMany++
		h.Set("Retry-After", fmt.Sprint(int(math.Ceil(m.blockedUntil.Sub(now).Seconds()))))
		return http.StatusTooManyRequests, h
	}
	if m.start.IsZero() || !now.Before(m.start.Add(m.window)) {
		m.start, m.used = now, 0
	}
	m.used++
	if m.used > m.limit {
		m.tooMany++
		m.blockedUntil = now.Add(m.window)
		h.Set("Retry-After", fmt.Sprint(int(m.window.Seconds())))
		return http.StatusTooManyRequests, h
	}
	if m.legacy {
		h.Set("X-RateLimit-Limit", fmt.Sprint(m.limit))
		h.Set("X-RateLimit-Remaining", fmt.Sprint(m.limit-m.used))
		return http.StatusOK, h
	}
	left := m.start.Add(m.window).Sub(now).Seconds()
	if m.roundUp {
		left = math.Ceil(left)
	} else {
		left = math.Floor(left)
	}
	h.Set("Ratelimit", fmt.Sprintf(`"default";r=%d;t=%d`, m.limit-m.used, int(left)))
	h.Set("Ratelimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, m.limit, int(m.window.Seconds())))
	return http.StatusOK, h
}

var debugBudget = false

// budgetLatency is request i's latency: from 30 to 230 ms, so that
// answers come back out of order.
var budgetLatency = func(i int64) time.Duration {
	return 30*time.Millisecond + time.Duration(i*37%11)*20*time.Millisecond
}

type budgetRun struct {
	elapsed time.Duration
	ours    int
	others  int
	tooMany int
}

// runAgainstBudget sends n requests through a limiter with the default
// budget, from workers callers, against model, while another client sends
// one request every otherEvery (never, when zero), in simulated time. Each
// request is counted by the model halfway through its latency, which
// varies from 30 to 230 ms so that answers come back out of order.
func runAgainstBudget(t *testing.T, model *fixedWindowBudget, n, workers int, otherEvery time.Duration) budgetRun {
	return runAgainstBudgetWith(t, DefaultRequestsPerSecond, DefaultBurst, model, n, workers, otherEvery)
}

func runAgainstBudgetWith(t *testing.T, rps float64, burst int, model *fixedWindowBudget, n, workers int, otherEvery time.Duration) budgetRun {
	var run budgetRun
	synctest.Test(t, func(t *testing.T) {
		// Made in the bubble, so that waiting on its channels lets
		// simulated time move on.
		l := NewRateLimiter(rps, burst, 0)
		// A limiter that never finishes fails the test instead of running
		// on in simulated time.
		ctx, cancel := context.WithTimeout(t.Context(), 24*time.Hour)
		start := time.Now()
		var others sync.WaitGroup
		if otherEvery > 0 {
			others.Go(func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-time.After(otherEvery):
						model.serve(time.Now())
						run.others++
					}
				}
			})
		}
		var next, done atomic.Int64
		var mu sync.Mutex
		var ours sync.WaitGroup
		for range workers {
			ours.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					for {
						if err := l.Wait(ctx); err != nil {
							t.Errorf("request %d: %v", i, err)
							return
						}
						latency := budgetLatency(i)
						time.Sleep(latency / 2)
						status, header := model.serve(time.Now())
						time.Sleep(latency / 2)
						l.observe(status, header)
						mu.Lock()
						run.ours++
						if debugBudget {
							println("ours", run.ours, time.Since(start).String(), status, model.tooMany, l.limiter.Limit(), l.resumeAt.Sub(time.Now()).String())
						}
						mu.Unlock()
						if status == http.StatusOK {
							break
						}
					}
					if done.Add(1) == int64(n) {
						run.elapsed = time.Since(start)
					}
				}
			})
		}
		ours.Wait()
		cancel()
		others.Wait()
	})
	run.tooMany = model.tooMany
	return run
}

// The limiter against Cloudflare's fixed-window budget, at its real shape
// (1,200 per 300 s) and scaled down (120 per 30 s), alone and with another
// client of the same user spending a third of the budget, with t rounded
// either way (and alone with the legacy headers): never a 429, and within
// 5 % of the bound N / (4/s), 10 % of N / (what the other client leaves).
func TestLimiterAgainstFixedWindowBudget(t *testing.T) {
	shapes := []struct {
		name   string
		limit  int
		window time.Duration
		n      int
	}{
		{"real 1200 per 300s", 1200, 300 * time.Second, 3000},
		{"scaled 120 per 30s", 120, 30 * time.Second, 300},
	}
	for _, shape := range shapes {
		for _, other := range []bool{false, true} {
			for _, headers := range []string{"t rounded down", "t rounded up", "legacy"} {
				if other && headers == "legacy" {
					// The legacy headers are paced from as before, by
					// Remaining alone: another client's spending is not
					// told from ours there.
					continue
				}
				name := fmt.Sprintf("%s, other client %v, %s", shape.name, other, headers)
				t.Run(name, func(t *testing.T) {
					budget := float64(shape.limit) / shape.window.Seconds()
					var otherEvery time.Duration
					goal := 1.05
					if other {
						otherEvery = time.Duration(float64(shape.window) / (float64(shape.limit) / 3))
						budget -= budget / 3
						goal = 1.10
					}
					bound := time.Duration(float64(shape.n) / budget * float64(time.Second))
					model := &fixedWindowBudget{limit: shape.limit, window: shape.window,
						roundUp: headers == "t rounded up", legacy: headers == "legacy"}
					run := runAgainstBudget(t, model, shape.n, 8, otherEvery)
					ratio := run.elapsed.Seconds() / bound.Seconds()
					t.Logf("%d requests in %s, bound %s, ratio %.3f; 429s %d; the other client sent %d",
						shape.n, run.elapsed.Round(time.Millisecond), bound, ratio, run.tooMany, run.others)
					if run.tooMany != 0 {
						t.Errorf("%d answers of 429", run.tooMany)
					}
					if ratio > goal {
						t.Errorf("took %s, %.3f × the bound %s; want at most %.2f ×", run.elapsed, ratio, bound, goal)
					}
				})
			}
		}
	}
}

// An owner woken by its turn takes a while to make its request ready (its
// reconcile, the create record written to the apiserver) before it sends.
// When a window's budget is spent, the line waits for the window's end; if
// it granted the next slot only then, every window would begin that much
// later, and the pace fall short of the budget: 30 ms of making ready cost
// 10 % of it at 50 requests per 1 s window (the bench's convergence: 45 to
// 46 requests a second, 1.12 to 1.13 × N/R). So the line grants the first
// slots after a window's end ahead of it (the request still goes only once
// the window is over), and an answer that says it was a window's first
// dates that window, even when it was let through before the last one's
// end. 1.120 × N/R before, 1.050 after; 1.023 without any making ready.
// No 429.
func TestOwnersMakingReadyAfterTheirTurnKeepTheBudgetsPace(t *testing.T) {
	const (
		n         = 1000
		workers   = 8
		latency   = 15 * time.Millisecond
		makeReady = 30 * time.Millisecond
	)
	model := &fixedWindowBudget{limit: 50, window: time.Second, roundUp: true}
	var elapsed time.Duration
	synctest.Test(t, func(t *testing.T) {
		l := NewRateLimiter(50, 5, 0)
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > n {
						return
					}
					woken := make(chan struct{}, 1)
					waiter := Waiter{Group: "team", Name: fmt.Sprint(i)}
					var turnCtx context.Context
					for {
						turnCtx = WithTurn(ctx, waiter, func() {
							select {
							case woken <- struct{}{}:
							default:
							}
						})
						err := l.TakeTurn(turnCtx)
						if err == nil {
							break
						}
						if _, queued := WaitingForTurn(err); !queued {
							t.Errorf("request %d: %v", i, err)
							return
						}
						select {
						case <-woken:
						case <-ctx.Done():
							t.Errorf("request %d never woken", i)
							return
						}
					}
					time.Sleep(makeReady)
					answered, err := l.Admit(turnCtx)
					if err != nil {
						t.Errorf("request %d: %v", i, err)
						return
					}
					time.Sleep(latency / 2)
					status, header := model.serve(time.Now())
					time.Sleep(latency / 2)
					answered(status, header)
				}
			})
		}
		wg.Wait()
		elapsed = time.Since(start)
	})
	bound := n / 50 * time.Second
	ratio := elapsed.Seconds() / bound.Seconds()
	t.Logf("%d requests in %s, bound %s, ratio %.3f, 429s %d", n, elapsed.Round(time.Millisecond), bound, ratio, model.tooMany)
	if model.tooMany != 0 {
		t.Errorf("%d answers of 429", model.tooMany)
	}
	if ratio > 1.06 {
		t.Errorf("took %.3f × the bound; want at most 1.06 ×", ratio)
	}
}
