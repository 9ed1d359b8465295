package controller_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// Issue 22: the operator runs many teams' apps, and one team's burst must
// not hold back another's. Cloudflare's budget is scaled from 1,200 per
// 300 s to 120 per 30 s (the same 4 requests per second, windows short
// enough for a test), enforced: a request over it is a 429 that blocks the
// user for a window.
const (
	fairRate   = 4.0 // requests per second: 120 per 30 s
	fairWindow = 30 * time.Second
	// fairBurstApps is tenant A's burst: 150 creates at 4/s is a bound of
	// 37.5 s, a window and a quarter.
	fairBurstApps = 150
	// fairLateAfter is how long after A's burst began tenant B applies its
	// apps.
	fairLateAfter = 5 * time.Second

	fairAccount = "fair-account"
	fairZoneA   = "f0a0000000000000000000000000000a"
	fairZoneB   = "f0b0000000000000000000000000000b"
	fairZoneC   = "f0c0000000000000000000000000000c"
	// Three tokens of three users, each with a budget of its own.
	fairTokenA      = "test-fair-token-a-91c3"
	fairTokenB      = "test-fair-token-b-4e7d"
	fairTokenShared = "test-fair-token-shared-08aa"
)

// fairWorld is a manager of the test's own, with the operator's defaults
// (8 workers, one budget per token at 4 requests per second, burst 1),
// against a simulator of its own that enforces 120 requests per 30 s per
// user.
type fairWorld struct {
	sim  *spectrumtest.Simulator
	fast client.Client
}

func startFairWorld(t *testing.T) *fairWorld {
	t.Helper()
	sim, err := spectrumtest.New(spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{{ID: fairAccount, Plan: spectrumtest.PlanEnterprise}},
		Tokens: []spectrumtest.TokenConfig{
			{Token: fairTokenA, Account: fairAccount, User: "tenant-a"},
			{Token: fairTokenB, Account: fairAccount, User: "tenant-b"},
			{Token: fairTokenShared, Account: fairAccount, User: "shared"},
		},
		Zones: []spectrumtest.ZoneConfig{
			{ID: fairZoneA, Name: "a.fair.example", Account: fairAccount},
			{ID: fairZoneB, Name: "b.fair.example", Account: fairAccount},
			{ID: fairZoneC, Name: "c.fair.example", Account: fairAccount},
		},
		RateLimit: spectrumtest.RateLimitConfig{
			Limit:   int(fairRate * fairWindow.Seconds()),
			Window:  spectrumtest.Duration{Duration: fairWindow},
			Enforce: true,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	server := httptest.NewServer(sim)
	t.Cleanup(server.Close)

	startOwnManager(t, restConfig, "fairness", &controller.SpectrumAppReconciler{
		Connector: budget.NewConnector(budget.ConnectorOptions{
			BaseURL:           server.URL + spectrumtest.APIPrefix,
			RequestsPerSecond: fairRate,
			Burst:             1,
		}),
		ResyncPeriod:            10 * time.Second,
		MaxConcurrentReconciles: 8,
	})

	cfg := rest.CopyConfig(restConfig)
	cfg.QPS, cfg.Burst = -1, -1
	fast, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return &fairWorld{sim: sim, fast: fast}
}

// tenant is a namespace with its credentials Secret.
func (w *fairWorld) tenant(t *testing.T, token string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "fair-"}}
	if err := w.fast.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}, Name: "cloudflare", Namespace: ns.Name},
		Data:       map[string][]byte{v1alpha1.DefaultCredentialsKey: []byte(token)},
	}
	if err := w.fast.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// apply creates n apps in namespace ns and zone, 16 at a time, as kubectl
// apply of a large manifest would.
func (w *fairWorld) apply(t *testing.T, ns, zoneID, zoneName string, n int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				name := fmt.Sprintf("app-%03d", i)
				app := &v1alpha1.SpectrumApp{
					ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{ownManagerLabel: "fairness"}},
					Spec: v1alpha1.SpectrumAppSpec{
						ZoneID:         zoneID,
						CredentialsRef: &v1alpha1.SecretKeyReference{Name: "cloudflare"},
						Protocol:       "tcp/22",
						DNS:            v1alpha1.DNS{Type: "CNAME", Name: name + "." + ns + "." + zoneName},
						OriginDirect:   []string{"tcp://192.0.2.10:22"},
						// Nothing here is deleted: Orphan keeps the
						// credentials Secret free of the finalizer the
						// suite's manager would take off again.
						DeletionPolicy: v1alpha1.DeletionPolicyOrphan,
					},
				}
				if err := w.fast.Create(context.Background(), app); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		t.Fatalf("creating apps in %s: %v", ns, err)
	}
}

// readyAt polls each namespace on its own, a small one often, until all
// want of its apps are Ready at their generation, and returns when that was
// first seen.
func (w *fairWorld) readyAt(t *testing.T, ns string, want int, timeout time.Duration) (time.Time, error) {
	every := 100 * time.Millisecond
	if want > 10 {
		// Listing a big namespace costs the apiserver what it would
		// otherwise spend on the operator's writes.
		every = 250 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	for {
		var list v1alpha1.SpectrumAppList
		if err := w.fast.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return time.Time{}, err
		}
		ready := 0
		for _, app := range list.Items {
			if c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady); c != nil &&
				c.Status == metav1.ConditionTrue && c.ObservedGeneration == app.Generation {
				ready++
			}
		}
		if ready >= want {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("after %s, %d of %d apps in %s are Ready", timeout, ready, want, ns)
		}
		time.Sleep(every)
	}
}

// burstPaceLimit bounds the burst's time to Ready, as a multiple of N/R.
const burstPaceLimit = 1.5

// burstBound is N/R: the shortest time a token's budget allows n creates
// in.
func burstBound(n int) time.Duration {
	return time.Duration(float64(n) / fairRate * float64(time.Second))
}

// TestTenantsTakeTurns: a tenant's burst holds back neither a tenant with
// a token of its own (issue 22, point 1) nor another namespace on the same
// token (point 2), and the burst itself keeps the token's pace, without a
// 429. Before the fair scheduler, every worker waited in the burst's budget
// and the late tenant's apps were Ready only after the whole burst.
func TestTenantsTakeTurns(t *testing.T) {
	w := startFairWorld(t)
	// Cleanups run after the parallel subtests end, and this one before
	// the manager stops.
	t.Cleanup(func() {
		t.Logf("requests by method: %v", w.sim.Calls())
		if limited := w.sim.RateLimited(); limited != 0 {
			t.Errorf("the simulator answered %d requests with 429, want 0", limited)
		}
	})
	t.Run("two tokens", func(t *testing.T) {
		t.Parallel()
		a, b := w.tenant(t, fairTokenA), w.tenant(t, fairTokenB)
		w.lateTenant(t, a, fairZoneA, "a.fair.example", b, fairZoneB, "b.fair.example", 3, 5*time.Second)
	})
	t.Run("one token, two namespaces", func(t *testing.T) {
		t.Parallel()
		a, b := w.tenant(t, fairTokenShared), w.tenant(t, fairTokenShared)
		w.lateTenant(t, a, fairZoneC, "c.fair.example", b, fairZoneC, "c.fair.example", 1, 10*time.Second)
	})
}

// lateTenant applies fairBurstApps apps in namespace a, then, fairLateAfter
// later, lateApps in namespace b, and checks that b's are Ready within
// lateGoal of being applied and a's within burstPaceLimit × N/R.
func (w *fairWorld) lateTenant(t *testing.T, a, zoneA, zoneNameA, b, zoneB, zoneNameB string, lateApps int, lateGoal time.Duration) {
	bound := burstBound(fairBurstApps)
	start := time.Now()
	w.apply(t, a, zoneA, zoneNameA, fairBurstApps)
	time.Sleep(time.Until(start.Add(fairLateAfter)))
	lateStart := time.Now()
	w.apply(t, b, zoneB, zoneNameB, lateApps)

	var burstReady time.Time
	var burstErr error
	burstDone := make(chan struct{})
	go func() {
		defer close(burstDone)
		burstReady, burstErr = w.readyAt(t, a, fairBurstApps, 3*bound)
	}()
	lateReady, err := w.readyAt(t, b, lateApps, 3*bound)
	<-burstDone
	if err != nil || burstErr != nil {
		t.Fatal(errors.Join(err, burstErr))
	}
	late, burst := lateReady.Sub(lateStart), burstReady.Sub(start)
	ratio := burst.Seconds() / bound.Seconds()
	t.Logf("late tenant's %d apps Ready %.1f s after they were applied (goal ≤ %s); the burst of %d Ready after %.1f s, %.3f × N/R (N/R = %s, bench goal ≤ 1.10)",
		lateApps, late.Seconds(), lateGoal, fairBurstApps, burst.Seconds(), ratio, bound)
	if late > lateGoal {
		t.Errorf("the late tenant's apps were Ready %.1f s after they were applied, want ≤ %s", late.Seconds(), lateGoal)
	}
	// The pace's goal, 1.10 × N/R, is a row of make bench ("two tenants"):
	// a timing ratio measured on a loaded machine is noise. Here it is
	// behaviour: the burst keeps going at about the token's pace while
	// the late tenant takes its turns, not stalled behind it.
	if ratio > burstPaceLimit {
		t.Errorf("the burst took %.1f s, %.3f × N/R, want ≤ %.2f", burst.Seconds(), ratio, burstPaceLimit)
	}
}
