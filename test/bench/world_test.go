//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
	"github.com/cloudflare-operator/spectrum-operator/test/harness"
)

const (
	benchAccount = "bench-account"
	benchToken   = "bench-token-not-a-secret"
	secretName   = "cloudflare-credentials"
	// perPage is the page size the client lists with (and the API's
	// maximum).
	perPage = 100
	// createWorkers create SpectrumApps in parallel.
	createWorkers = 16
)

func zoneID(z int) string { return fmt.Sprintf("%032x", 0xbe0c00+z) }

// simulatorConfig is one Enterprise account and token with zones zones.
func simulatorConfig(zones int, limit spectrumtest.RateLimitConfig, latency time.Duration) spectrumtest.Config {
	cfg := spectrumtest.Config{
		Accounts:  []spectrumtest.AccountConfig{{ID: benchAccount, Plan: spectrumtest.PlanEnterprise}},
		Tokens:    []spectrumtest.TokenConfig{{Token: benchToken, Account: benchAccount}},
		RateLimit: limit,
	}
	for z := range zones {
		cfg.Zones = append(cfg.Zones, spectrumtest.ZoneConfig{ID: zoneID(z), Name: fmt.Sprintf("z%d.bench.example", z), Account: benchAccount})
	}
	if latency > 0 {
		cfg.Faults = []spectrumtest.Fault{{Kind: spectrumtest.FaultLatency, Latency: spectrumtest.Duration{Duration: latency}, Probability: 1}}
	}
	return cfg
}

// unenforced reports a budget so large that neither the simulator nor the
// operator's pacing from X-RateLimit-Remaining ever limits anything.
var unenforced = spectrumtest.RateLimitConfig{Limit: 1 << 30, Window: spectrumtest.Duration{Duration: 300 * time.Second}}

// app is the i-th benchmark SpectrumApp: a TCP app with its own hostname in
// zone i mod zones.
func app(ns string, i, zones int) *v1alpha1.SpectrumApp {
	z := i % zones
	return &v1alpha1.SpectrumApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("app-%05d", i)},
		Spec: v1alpha1.SpectrumAppSpec{
			ZoneID:         zoneID(z),
			CredentialsRef: &v1alpha1.SecretKeyReference{Name: secretName},
			Protocol:       "tcp/22",
			DNS:            v1alpha1.DNS{Type: "CNAME", Name: fmt.Sprintf("app-%05d.z%d.bench.example", i, z)},
			OriginDirect:   []string{fmt.Sprintf("tcp://192.0.2.%d:22", i%254+1)},
		},
	}
}

// env is a running harness with a counter in front of its simulator and
// the manager's metrics on a loopback port.
type env struct {
	h       *harness.Harness
	calls   *apiCounter
	metrics string
	// fast talks to the apiserver without client-side rate limiting.
	fast client.Client
	ns   string
}

// startEnv starts the harness with sim and mgr, counts the simulator's
// requests, creates a namespace with the credentials Secret, and starts the
// manager.
func startEnv(ctx context.Context, t *testing.T, sim spectrumtest.Config, mgr harness.ManagerOptions) *env {
	t.Helper()
	addr, err := freeAddress()
	if err != nil {
		t.Fatal(err)
	}
	mgr.MetricsBindAddress = addr
	mgr.DeferStart = true
	mgr.LogLevel = os.Getenv("BENCH_LOG_LEVEL")
	mgr.Binary = os.Getenv("BENCH_MANAGER_BINARY")
	// Traffic analytics is measured where a scenario turns it on (the
	// convergence scenario); elsewhere the figures stay comparable with
	// earlier sessions'. A later flag wins.
	mgr.ExtraArgs = append([]string{"--analytics-budget-share=0"}, mgr.ExtraArgs...)
	mgr.ExtraArgs = append(mgr.ExtraArgs, strings.Fields(os.Getenv("BENCH_MANAGER_ARGS"))...)
	h, err := harness.Start(ctx, harness.Options{Simulator: sim, Manager: mgr, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Stop(); err != nil {
			t.Logf("stopping the harness: %v", err)
		}
	})
	e := &env{h: h, calls: newAPICounter(), metrics: addr}
	h.WrapSimulator(e.calls.wrap)
	cfg := rest.CopyConfig(h.Config)
	cfg.QPS, cfg.Burst = -1, -1
	if e.fast, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		t.Fatal(err)
	}
	if e.ns, err = h.Namespace(ctx, "bench-"); err != nil {
		t.Fatal(err)
	}
	// Learn the SpectrumApp REST mapping now rather than in the measured
	// creates.
	if err := e.fast.List(ctx, &v1alpha1.SpectrumAppList{}, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}, Namespace: e.ns, Name: secretName},
		StringData: map[string]string{v1alpha1.DefaultCredentialsKey: benchToken},
	}
	if err := e.fast.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := h.Manager.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.waitWorkers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.warmUp(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if keep := os.Getenv("BENCH_KEEP_LOG"); keep != "" {
			if log, err := h.Manager.Log(); err == nil {
				_ = os.WriteFile(keep, log, 0o644)
			}
		}
		if t.Failed() {
			if log, err := h.Manager.Log(); err == nil {
				t.Logf("manager log (last 4 KiB):\n%s", tail(log, 4096))
			}
		}
	})
	return e
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitWorkers waits until the controller's workers run: the manager is
// ready (its probe) before its caches have synced.
func (e *env) waitWorkers(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		log, err := e.h.Manager.Log()
		if err != nil {
			return err
		}
		if bytes.Contains(log, []byte(`"msg":"Starting workers","controller":"spectrumapp"`)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("the controller's workers did not start within a minute; see %s", e.h.Manager.LogPath())
}

// warmUp takes one app through create, Ready and delete, so that what is
// measured next finds the operator running as it does after its first
// minute: on a fresh control plane the first watch events of a new CRD can
// take seconds to arrive, which is no part of the operator's pace.
func (e *env) warmUp(ctx context.Context) error {
	a := app(e.ns, 0, 1)
	a.Name = "warm-up"
	a.Spec.DNS.Name = "warm-up.z0.bench.example"
	if err := e.fast.Create(ctx, a); err != nil {
		return err
	}
	if _, err := e.waitReady(ctx, 1, 2*time.Minute); err != nil {
		return fmt.Errorf("warm-up app: %w", err)
	}
	if err := e.fast.Delete(ctx, a); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := e.fast.Get(ctx, client.ObjectKeyFromObject(a), &v1alpha1.SpectrumApp{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up app not deleted within 2 minutes (%v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let the budget window the warm-up spent from end.
	time.Sleep(2 * time.Second)
	return nil
}

// createApps creates apps from..to-1 with createWorkers goroutines.
func (e *env) createApps(ctx context.Context, from, to, zones int) error {
	var next atomic.Int64
	next.Store(int64(from))
	errs := make(chan error, createWorkers)
	var wg sync.WaitGroup
	for range createWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := e.fast.Create(ctx, app(e.ns, i, zones)); err != nil {
					errs <- fmt.Errorf("creating app %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// waitReady polls the manager's spectrum_apps gauge until n apps are Ready
// (each reconciled, Ready=True, by this manager process) and returns when
// that was first seen.
func (e *env) waitReady(ctx context.Context, n int, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last, lastAt := -1.0, time.Time{}
	for {
		poll := 500 * time.Millisecond
		m, err := scrape(ctx, e.metrics)
		if err == nil {
			ready, now := m.readyApps(), time.Now()
			if ready >= float64(n) {
				return now, nil
			}
			// Each scrape costs the manager CPU it would not spend in
			// production (Prometheus scrapes every 15-60 s; a scrape is
			// about 2 ms of the manager's CPU): poll at a quarter of the
			// time the apps still need at the pace seen, so that the
			// end, where the time is read, is seen within 50 ms.
			if pace := (ready - last) / now.Sub(lastAt).Seconds(); last >= 0 && pace > 0 {
				left := time.Duration((float64(n) - ready) / pace * float64(time.Second))
				poll = min(max(left/4, 50*time.Millisecond), 2*time.Second)
			}
			last, lastAt = ready, now
		}
		if !e.h.Manager.Running() {
			return time.Time{}, fmt.Errorf("manager exited; see %s", e.h.Manager.LogPath())
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%v Ready of %d after %s (last scrape error: %v)", last, n, timeout, err)
		case <-time.After(poll):
		}
	}
}

// countReady lists the namespace's apps from the apiserver and counts
// those with Ready=True at their current generation.
func (e *env) countReady(ctx context.Context) (ready, total int, err error) {
	var list v1alpha1.SpectrumAppList
	if err := e.fast.List(ctx, &list, client.InNamespace(e.ns)); err != nil {
		return 0, 0, err
	}
	for _, a := range list.Items {
		if c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady); c != nil &&
			c.Status == metav1.ConditionTrue && c.ObservedGeneration == a.Generation {
			ready++
		}
	}
	return ready, len(list.Items), nil
}

// apiCounter counts the simulator's API requests by kind (list, get,
// create, update, delete) and status, and when each zone's listing
// started (its page-1 requests).
type apiCounter struct {
	mu        sync.Mutex
	since     time.Time
	kinds     map[string]int
	statuses  map[int]int
	refreshes map[string][]time.Time
	// perSecond counts requests in each second since the last reset.
	perSecond []int
	// inFlight counts requests the simulator is still answering.
	inFlight int
}

// The kinds of request.
const (
	kindList   = "list"
	kindGet    = "get"
	kindCreate = "create"
	kindUpdate = "update"
	kindDelete = "delete"
)

func newAPICounter() *apiCounter {
	c := &apiCounter{}
	c.reset()
	return c
}

func (c *apiCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kinds, c.statuses, c.refreshes = map[string]int{}, map[int]int{}, map[string][]time.Time{}
	c.since, c.perSecond = time.Now(), nil
}

func (c *apiCounter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, spectrumtest.APIPrefix+"/zones/")
		zone, rest, ok := strings.Cut(path, "/spectrum/apps")
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		kind := map[string]string{http.MethodPost: kindCreate, http.MethodPut: kindUpdate,
			http.MethodPatch: kindUpdate, http.MethodDelete: kindDelete}[r.Method]
		if r.Method == http.MethodGet {
			kind = kindGet
			if rest == "" || rest == "/" {
				kind = kindList
			}
		}
		started := time.Now()
		c.mu.Lock()
		c.inFlight++
		c.mu.Unlock()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.inFlight--
		c.kinds[kind]++
		c.statuses[rec.status]++
		if second := int(started.Sub(c.since) / time.Second); second >= 0 {
			for len(c.perSecond) <= second {
				c.perSecond = append(c.perSecond, 0)
			}
			c.perSecond[second]++
		}
		if page := r.URL.Query().Get("page"); kind == kindList && (page == "" || page == "1") {
			c.refreshes[zone] = append(c.refreshes[zone], started)
		}
	})
}

// settle waits until the simulator has answered every request it
// received: a request of a killed manager is still answered, and counted,
// after the kill.
func (c *apiCounter) settle(ctx context.Context) error {
	for {
		c.mu.Lock()
		n := c.inFlight
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// counts is a snapshot of an apiCounter.
type counts struct {
	Kinds     map[string]int `json:"kinds"`
	Statuses  map[int]int    `json:"statuses"`
	Refreshes int            `json:"refreshes"`
	// MinRefreshGap is the shortest time between two listings of one zone.
	MinRefreshGap time.Duration `json:"minRefreshGap"`
	// PerSecond counts requests in each second since the counter's reset.
	PerSecond []int `json:"perSecond"`
}

func (c *apiCounter) snapshot() counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := counts{Kinds: map[string]int{}, Statuses: map[int]int{}, PerSecond: slices.Clone(c.perSecond)}
	for k, v := range c.kinds {
		s.Kinds[k] = v
	}
	for k, v := range c.statuses {
		s.Statuses[k] = v
	}
	for _, times := range c.refreshes {
		s.Refreshes += len(times)
		sorted := slices.Clone(times)
		slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })
		for i := 1; i < len(sorted); i++ {
			if gap := sorted[i].Sub(sorted[i-1]); s.MinRefreshGap == 0 || gap < s.MinRefreshGap {
				s.MinRefreshGap = gap
			}
		}
	}
	return s
}

func (s counts) writes() int { return s.Kinds[kindCreate] + s.Kinds[kindUpdate] + s.Kinds[kindDelete] }

func (s counts) total() int {
	n := 0
	for _, v := range s.Kinds {
		n += v
	}
	return n
}

// String is "list 12, get 0, create 1000, update 0, delete 0".
func (s counts) String() string {
	var parts []string
	for _, k := range []string{kindList, kindGet, kindCreate, kindUpdate, kindDelete} {
		parts = append(parts, fmt.Sprintf("%s %d", k, s.Kinds[k]))
	}
	return strings.Join(parts, ", ")
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Hijack lets the simulator's connection faults through the recorder.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
