package budget

import (
	"time"

	"golang.org/x/time/rate"
)

// The budget is the user's, not the token's: the dashboard, Terraform, a
// script or a second token spend the same 1,200 requests per five minutes,
// and when any of them goes over, Cloudflare blocks all of them for five
// minutes. So the limiter plans from what each answer says is left of every
// budget the Ratelimit header names, not from its own count.
//
// For one budget, an answer says r requests are left and the window resets
// in t seconds. Of those r:
//   - the requests of ours still in flight will be counted too;
//   - the others will go on spending at the rate they spent so far in this
//     window: how much faster r fell between our answers than our own
//     requests account for (see budgetWindow.othersRate). Over the τ
//     seconds left they take othersRate × τ;
//   - when others spend it too, one is kept back (budgetReserve), for the
//     others' request that races ours at the end.
//
// What remains is our share. When others spend the budget too (seen in
// this window or the last), the share is spent evenly over τ: rate share /
// τ. If the others keep their pace, r then falls in proportion to τ and
// reaches zero as the window ends, never before; since the rate is
// recomputed from every answer, a misjudged share corrects itself as r
// comes in (an error ε in the others' rate leaves r = τ·(c + ε·ln τ), which
// stays positive for any plausible ε). When nobody else is seen, the
// configured rate (the ceiling) decides until the share falls to a tenth of
// the quota, and only that tenth is spread evenly: with the default ceiling,
// which fits the window, that is the same pace, and a higher ceiling (a
// test, a private API) is not slowed down by a budget it is alone on. When
// the share is gone, everyone waits for the window's end; the first answer
// after it tells the new window's budget. With several budgets (policies),
// the tightest rate and the latest end win, and the configured rate stays
// the ceiling.
//
// The end of the window is only ever overestimated, so no request can land
// in a window whose budget is spent: t is whole seconds (rounded either
// way), so an answer bounds the end by now + t + 1 s; and a window lasts w
// seconds from its first request, so it ends at the latest w seconds after
// our first answer in it. The window's end is the smallest of those bounds
// over the window's answers. A new window is known by an answer whose end
// is later than the last window's by half a window (when windows are long
// enough for whole seconds to tell), or by the answer to a request sent
// after the last window's end; an answer to a request sent before that end
// and answered after it may belong to either window and is left out.
const (
	budgetReserve = 1
	// resetSlack covers t's rounding to whole seconds.
	resetSlack = time.Second
)

// budgetWindow follows one budget through its windows.
type budgetWindow struct {
	// end is the latest the current window can end, lastEnd the last
	// window's.
	end, lastEnd time.Time
	// first is when our first answer in this window came, firstLeft the r
	// it said, and answers how many of ours came since.
	first     time.Time
	firstLeft int
	answers   int
	// othersBefore is the others' rate at the end of the last window, the
	// estimate a new window starts from.
	othersBefore float64
	others       float64
	// seen and seenBefore tell whether others were certainly spending in
	// this window and in the last one.
	seen, seenBefore bool
}

// shared tells whether others spend this budget too, as far as this window
// and the last one show.
func (b *budgetWindow) shared() bool { return b.seen || b.seenBefore }

// budget returns the window of the budget named name; nil when the
// answers named too many budgets to follow. The caller holds l.mu.
func (l *RateLimiter) budget(name string) *budgetWindow {
	if b, ok := l.budgets[name]; ok {
		return b
	}
	if len(l.budgets) >= maxBudgetItems {
		return nil
	}
	b := &budgetWindow{}
	l.budgets[name] = b
	return b
}

// paceFromBudgets paces from the Ratelimit and Ratelimit-Policy headers.
func (l *RateLimiter) paceFromBudgets(now time.Time, reports []budgetReport) {
	l.mu.Lock()
	defer l.mu.Unlock()
	inFlight, sent := l.answeredSent(now)
	paced := l.steadyRate
	var until time.Time
	used, over := 0, false
	for _, report := range reports {
		b := l.budget(report.name)
		if b == nil {
			continue
		}
		window := report.window
		if window <= 0 {
			window = l.windowFor(report.quota)
		}
		if !b.observe(now, sent, report, window, inFlight) {
			over = over || !now.Before(b.end)
			continue
		}
		used++
		left := max(b.end.Sub(now), time.Millisecond)
		reserve := 0
		if b.shared() {
			reserve = budgetReserve
		}
		share := float64(report.remaining-inFlight-reserve) - b.others*left.Seconds()
		if share < 1 {
			until = laterOf(until, b.end)
			continue
		}
		if !b.shared() && share > float64(l.lowWater(report.quota, window)) {
			continue // the ceiling
		}
		paced = min(paced, rate.Limit(share/left.Seconds()))
	}
	if used == 0 {
		// Nothing this answer says is about the current windows. One that
		// is over has left a new window, whose budget the first answer in
		// it will tell: until then, the steady pace, as after a pause.
		if over {
			l.setPace(now, l.steadyRate, 1)
		}
		return
	}
	if !until.IsZero() {
		// Nothing of this window is ours any more. After it, go at the
		// steady pace until the first answer tells the new window's budget.
		l.pauseUntil(now, until)
		l.paceChanged()
		l.setPace(now, l.steadyRate, 1)
		return
	}
	l.setPace(now, paced, 1)
}

// observe takes in an answer to a request let through at sent (zero when
// unknown): it tells whether a new window began, bounds the window's end,
// and estimates the others' rate. It returns false for an answer that may
// belong to an earlier window, which says nothing certain about this one.
func (b *budgetWindow) observe(now, sent time.Time, report budgetReport, window time.Duration, inFlight int) bool {
	end := now.Add(window)
	if report.resetKnown {
		end = earlierOf(end, now.Add(report.reset+resetSlack))
	}
	// Whole seconds of t tell windows apart only when a window is longer
	// than a couple of them.
	gap, tells := window/2, window/2 > resetSlack
	ended := !b.end.IsZero() && !now.Before(b.end)
	// All of the budget but this request left: it was the first of a
	// window, which began as it arrived, before now. (Sent a window before
	// the last one's end at the latest, it could be the last one's first.)
	first := report.quota > 0 && report.remaining == report.quota-1 && !sent.IsZero() && sent.After(b.end.Add(-window))
	switch {
	case !b.end.IsZero() && tells && end.Before(b.end.Add(-gap)):
		return false
	// A new window: this answer's end is later than the last window's
	// could be, or the last window has ended and this request was sent
	// after it, or was the first of a window. (Not when r merely goes up:
	// answers of concurrent requests come back out of order.)
	case b.end.IsZero() || (tells && end.After(b.end.Add(gap))) || (ended && (sent.IsZero() || !sent.Before(b.end) || first)):
		if !b.first.IsZero() {
			b.othersBefore, b.seenBefore = b.others, b.seen
		}
		b.lastEnd = b.end
		b.end, b.first, b.firstLeft, b.answers, b.seen = end, now, report.remaining, 0, false
	// Sent before the window's end, answered after it: it may have been
	// counted in either window. The same for a request sent before the
	// last window's end, answered in this one.
	case ended || (!sent.IsZero() && sent.Before(b.lastEnd)):
		return false
	default:
		b.end = earlierOf(b.end, end)
		b.answers++
	}
	b.others = b.othersRate(now, report.remaining, window)
	// Our requests in flight may have been counted already: only a fall
	// beyond them too is certainly someone else's.
	b.seen = b.seen || b.firstLeft-report.remaining-b.answers-inFlight >= 1
	return true
}

// othersRate estimates the others' requests per second in this window: the
// fall of r since our first answer in it, less our own requests answered
// since, over the time between. Until the window has run for a while, the
// last window's estimate weighs in as if it had been seen for a tenth of a
// window (between 1 and 30 s).
func (b *budgetWindow) othersRate(now time.Time, remaining int, window time.Duration) float64 {
	others := float64(max(b.firstLeft-remaining-b.answers, 0))
	prior := min(max(window/10, time.Second), 30*time.Second).Seconds()
	return (others + b.othersBefore*prior) / (now.Sub(b.first).Seconds() + prior)
}

// lowWater is how much of a budget nobody else spends may be used at the
// ceiling before the rest is spread over the window: a tenth of it.
func (l *RateLimiter) lowWater(quota int, window time.Duration) int {
	if quota <= 0 {
		quota = int(float64(l.steadyRate) * window.Seconds())
	}
	return max(quota/10, l.steadyBurst)
}

func earlierOf(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
