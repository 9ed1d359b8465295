//go:build bench

package bench

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/test/harness"
)

// runConvergence creates cfg.Apps SpectrumApps at once against a simulator
// that enforces cfg.Rate requests per second, with the operator given the
// same budget, and measures how close to the bound N/R it gets all of them
// Ready; then it watches the steady state over a few resync periods.
//
// The simulator counts its budget in fixed windows of cfg.Window holding
// Rate*Window requests. Cloudflare's real budget (1,200 per 5 minutes) lets
// a client spend it in bursts; a short window allows none, so it is the
// strictest fair model of "R requests per second": any schedule that passes
// it passes Cloudflare's, and N/R is a true lower bound (a long window would
// let an operator that bursts beat N/R and hide poor pacing).
func runConvergence(ctx context.Context, t *testing.T, cfg config, rep *report) {
	const scenario = "convergence"
	limit := spectrumtest.RateLimitConfig{
		Limit:   int(math.Round(cfg.Rate * cfg.Window.Seconds())),
		Window:  spectrumtest.Duration{Duration: cfg.Window},
		Enforce: true,
	}
	e := startEnv(ctx, t, simulatorConfig(cfg.Zones, limit, cfg.Latency), harness.ManagerOptions{
		ResyncPeriod:            cfg.Resync,
		RequestsPerSecond:       cfg.Rate,
		Burst:                   cfg.Burst,
		MaxConcurrentReconciles: cfg.Workers,
		// Traffic analytics on, at the default share, and asked for every
		// resync period rather than every minute: convergence must not
		// notice it, and the steady state shows the share it takes.
		ExtraArgs: []string{
			"--analytics-budget-share=" + strconv.FormatFloat(cfg.AnalyticsShare, 'f', -1, 64),
			"--traffic-interval=" + cfg.Resync.String(),
		},
	})
	n := cfg.Apps
	lowerBound := time.Duration(float64(n) / cfg.Rate * float64(time.Second))

	e.calls.reset()
	start := time.Now()
	t.Logf("creating %d apps from %s", n, start.Format(time.RFC3339Nano))
	if err := e.createApps(ctx, 0, n, cfg.Zones); err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	readyAt, err := e.waitReady(ctx, n, 10*lowerBound+5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := readyAt.Sub(start)
	calls := e.calls.snapshot()
	m, err := scrape(ctx, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	if ready, total, err := e.countReady(ctx); err != nil || ready != n || total != n {
		t.Fatalf("apiserver: %d of %d apps Ready, want %d (%v)", ready, total, n, err)
	}
	if got := len(e.h.Sim.Apps()); got != n {
		t.Errorf("simulator holds %d apps, want %d", got, n)
	}

	ratio := elapsed.Seconds() / lowerBound.Seconds()
	tooMany := calls.Statuses[429]
	rep.add(scenario, fmt.Sprintf("time to all Ready, %d apps at %g req/s", n, cfg.Rate),
		fmt.Sprintf("≤ %.1f s (1.10 × N/R)", 1.1*lowerBound.Seconds()),
		fmt.Sprintf("%.1f s (N/R = %.1f s)", elapsed.Seconds(), lowerBound.Seconds()),
		yesNo(ratio <= 1.10), elapsed.Seconds(), "s")
	rep.add(scenario, "ratio to N/R", "≤ 1.10", fmt.Sprintf("%.3f", ratio), yesNo(ratio <= 1.10), ratio, "")
	rep.add(scenario, "429s received", "0",
		fmt.Sprintf("%d (operator saw %.0f)", tooMany, m.rateLimited()), yesNo(tooMany == 0 && m.rateLimited() == 0), float64(tooMany), "")
	rep.add(scenario, "API calls until all Ready", "N creates + lists", calls.String(), "info", float64(calls.total()), "calls")
	analytics, all, share := m.analyticsShare(nil)
	rep.add(scenario, "analytics requests until all Ready", fmt.Sprintf("≤ %.0f %% of requests", 100*budget.DefaultAnalyticsShare),
		fmt.Sprintf("%.0f of %.0f (%.1f %%)", analytics, all, 100*share), yesNo(share <= budget.DefaultAnalyticsShare), 100*share, "%")
	rep.detail(scenario, "createdIn", created.String())
	rep.detail(scenario, "elapsed", elapsed.String())
	rep.detail(scenario, "lowerBound", lowerBound.String())
	rep.detail(scenario, "calls", calls)
	rep.detail(scenario, "kubeWrites", m.kubeWrites())
	t.Logf("%d apps created in %s, all Ready after %s (N/R %s, ratio %.3f); calls: %s; 429s: %d; calls per second: %v",
		n, created.Round(time.Millisecond), elapsed.Round(time.Millisecond), lowerBound, ratio, calls, tooMany, calls.PerSecond)

	steadyState(ctx, t, e, cfg, rep, "steady state", n, cfg.Rate)
}

// steadyState observes cfg.SteadyPeriods resync periods after convergence
// and reports the API calls per period; budget is the operator's requests
// per second.
func steadyState(ctx context.Context, t *testing.T, e *env, cfg config, rep *report, scenario string, n int, budgetRate float64) {
	// Let reconciles that were already running finish before counting.
	time.Sleep(time.Second)
	m0, err := scrape(ctx, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	e.calls.reset()
	window := time.Duration(cfg.SteadyPeriods) * cfg.Resync
	time.Sleep(window)
	calls := e.calls.snapshot()
	m1, err := scrape(ctx, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	periods := float64(cfg.SteadyPeriods)
	perZone := (n + cfg.Zones - 1) / cfg.Zones
	pages := max((perZone+perPage-1)/perPage, 1)
	maxLists := cfg.Zones * pages
	lists := float64(calls.Kinds[kindList]) / periods
	// The traffic watch's status writes are its own, told apart.
	trafficWrites := (m1.trafficWrites() - m0.trafficWrites()) / periods
	appWrites := (m1.appWrites()-m0.appWrites())/periods - trafficWrites
	reconciles := (m1.reconciles() - m0.reconciles()) / periods

	label := fmt.Sprintf("%d apps, resync %s", n, cfg.Resync)
	rep.add(scenario, "Cloudflare writes per resync, "+label, "0",
		fmt.Sprintf("%.1f", float64(calls.writes())/periods), yesNo(calls.writes() == 0), float64(calls.writes())/periods, "calls")
	rep.add(scenario, "Cloudflare gets per resync", "0",
		fmt.Sprintf("%.1f", float64(calls.Kinds[kindGet])/periods), yesNo(calls.Kinds[kindGet] == 0), float64(calls.Kinds[kindGet])/periods, "calls")
	rep.add(scenario, "Cloudflare list calls per resync",
		fmt.Sprintf("≤ %d (%d zones × %d pages)", maxLists, cfg.Zones, pages),
		fmt.Sprintf("%.1f", lists), yesNo(lists <= float64(maxLists)), lists, "calls")
	gapOK := calls.Refreshes < 2 || calls.MinRefreshGap >= cfg.Resync
	rep.add(scenario, "shortest time between two listings of a zone", fmt.Sprintf("≥ %s", cfg.Resync),
		calls.MinRefreshGap.Round(time.Millisecond).String(), yesNo(gapOK), calls.MinRefreshGap.Seconds(), "s")
	rep.add(scenario, "SpectrumApp writes to the apiserver per resync", "0",
		fmt.Sprintf("%.1f", appWrites), yesNo(appWrites == 0), appWrites, "writes")
	// Shown when traffic is on (the counter exists once a request was sent).
	// Traffic is read with the budget's spare share (--analytics-budget-share):
	// the goal is its share of the budget, and that it is read at all. Of
	// the requests sent it may be more, as the rest of a steady state is a
	// few listings.
	if analytics, all, share := m1.analyticsShare(m0); m1.sum("spectrum_cloudflare_analytics_requests_total") > 0 {
		ofBudget := analytics / window.Seconds() / budgetRate
		rep.add(scenario, "traffic analytics requests, share of the budget", fmt.Sprintf("≤ %.0f %%, > 0", 100*budget.DefaultAnalyticsShare),
			fmt.Sprintf("%.1f %% (%.2f of %.0f requests a second)", 100*ofBudget, analytics/window.Seconds(), budgetRate),
			yesNo(analytics > 0 && ofBudget <= budget.DefaultAnalyticsShare), 100*ofBudget, "%")
		rep.add(scenario, "share of API requests spent on traffic analytics", "info",
			fmt.Sprintf("%.1f %% (%.1f of %.1f per resync)", 100*share, analytics/periods, all/periods), "info", 100*share, "%")
		rep.add(scenario, "traffic status writes per resync", "info", fmt.Sprintf("%.1f", trafficWrites), "info", trafficWrites, "writes")
	}
	// Apps in sync are compared with the zone listings by the drift check;
	// only those that differ are reconciled, and nothing differs here.
	rep.add(scenario, fmt.Sprintf("reconciles per resync, %d apps in sync", n), "0 (only drifted apps)",
		fmt.Sprintf("%.1f", reconciles), yesNo(reconciles == 0), reconciles, "")
	rep.detail(scenario+" "+label, "calls", calls)
	rep.detail(scenario+" "+label, "window", window.String())
	t.Logf("steady state over %s: %s; min gap between listings %s; app writes %.1f/resync; reconciles %.0f/resync",
		window, calls, calls.MinRefreshGap, appWrites, reconciles)
}
