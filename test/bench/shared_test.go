//go:build bench

package bench

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/test/harness"
)

// benchUser owns the bench token's budget, which another client spends
// too in the shared-budget scenario.
const benchUser = "bench-user"

// runSharedBudget creates cfg.Apps SpectrumApps while another client of
// the same user (the dashboard, Terraform, a second token) spends a third
// of the user's budget, which only the Ratelimit headers tell the operator
// about. The budget is cfg.Rate requests per second counted in fixed
// windows of cfg.SharedWindow, as Cloudflare counts 1,200 per 300 s; the
// operator's own ceiling is cfg.Rate. Measured against the bound N / (the
// rate the other client leaves), with no 429: one would block the whole
// user, the other client included, for a window.
func runSharedBudget(ctx context.Context, t *testing.T, cfg config, rep *report) {
	const scenario = "shared budget"
	otherRate := cfg.Rate / 3
	limit := spectrumtest.RateLimitConfig{
		Limit:        int(math.Round(cfg.Rate * cfg.SharedWindow.Seconds())),
		Window:       spectrumtest.Duration{Duration: cfg.SharedWindow},
		Enforce:      true,
		OtherClients: []spectrumtest.OtherClientConfig{{User: benchUser, RequestsPerSecond: otherRate}},
	}
	sim := simulatorConfig(cfg.Zones, limit, cfg.Latency)
	for i := range sim.Tokens {
		sim.Tokens[i].User = benchUser
	}
	e := startEnv(ctx, t, sim, harness.ManagerOptions{
		ResyncPeriod:            cfg.Resync,
		RequestsPerSecond:       cfg.Rate,
		Burst:                   cfg.Burst,
		MaxConcurrentReconciles: cfg.Workers,
	})
	n := cfg.Apps
	left := cfg.Rate - otherRate
	bound := time.Duration(float64(n) / left * float64(time.Second))

	e.calls.reset()
	limitedBefore := e.h.Sim.RateLimited()
	start := time.Now()
	if err := e.createApps(ctx, 0, n, cfg.Zones); err != nil {
		t.Fatal(err)
	}
	readyAt, err := e.waitReady(ctx, n, 10*bound+5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := readyAt.Sub(start)
	calls := e.calls.snapshot()
	limited := e.h.Sim.RateLimited() - limitedBefore
	m, err := scrape(ctx, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	if ready, total, err := e.countReady(ctx); err != nil || ready != n || total != n {
		t.Fatalf("apiserver: %d of %d apps Ready, want %d (%v)", ready, total, n, err)
	}

	ratio := elapsed.Seconds() / bound.Seconds()
	rep.add(scenario, fmt.Sprintf("time to all Ready, %d apps, another client spending %g of %g req/s", n, otherRate, cfg.Rate),
		fmt.Sprintf("≤ %.1f s (1.10 × N/(R − R/3))", 1.1*bound.Seconds()),
		fmt.Sprintf("%.1f s (N/(R − R/3) = %.1f s)", elapsed.Seconds(), bound.Seconds()),
		yesNo(ratio <= 1.10), elapsed.Seconds(), "s")
	rep.add(scenario, "ratio to N/(R − R/3)", "≤ 1.10", fmt.Sprintf("%.3f", ratio), yesNo(ratio <= 1.10), ratio, "")
	rep.add(scenario, "429s (the user blocked)", "0",
		fmt.Sprintf("%d (operator saw %.0f)", limited, m.rateLimited()), yesNo(limited == 0 && m.rateLimited() == 0), float64(limited), "")
	rep.add(scenario, "API calls until all Ready", "N creates + lists", calls.String(), "info", float64(calls.total()), "calls")
	rep.detail(scenario, "elapsed", elapsed.String())
	rep.detail(scenario, "bound", bound.String())
	rep.detail(scenario, "window", cfg.SharedWindow.String())
	rep.detail(scenario, "calls", calls)
	t.Logf("%d apps with another client at %g req/s: all Ready after %s (N/(R-R/3) %s, ratio %.3f); calls: %s; 429s: %d; calls per second: %v",
		n, otherRate, elapsed.Round(time.Millisecond), bound, ratio, calls, limited, calls.PerSecond)
}
