package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// Issue 24: a SpectrumApp says whether it carries traffic and whether
// Cloudflare reaches its origins. A manager of the test's own reads the
// traffic every second (the manager's default is a minute) from the
// analytics endpoints, in Cloudflare's shapes.
const (
	trafficAccount = "traffic-account"
	trafficZone    = "7a0000000000000000000000000000aa"
	trafficZoneNm  = "traffic.example"
	// trafficToken may read analytics; noAnalyticsToken may manage apps
	// but not read their analytics.
	trafficToken     = "test-traffic-token-6c1d"
	noAnalyticsToken = "test-no-analytics-token-93be"
	trafficInterval  = time.Second

	burstZone   = "7b0000000000000000000000000000bb"
	burstZoneNm = "burst.traffic.example"
)

// analyticsCalls counts the requests to Spectrum's analytics endpoints by
// token, and records when each analytics request and each create came;
// the simulator answers them.
type analyticsCalls struct {
	mu       sync.Mutex
	requests map[string]int
	sent     []time.Time
	creates  []time.Time
}

// during counts the analytics requests sent between from and to.
func (c *analyticsCalls) during(from, to time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, at := range c.sent {
		if at.After(from) && at.Before(to) {
			n++
		}
	}
	return n
}

// lastCreate is when the last create came.
func (c *analyticsCalls) lastCreate() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.creates) == 0 {
		return time.Time{}
	}
	return c.creates[len(c.creates)-1]
}

func (c *analyticsCalls) of(token string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests[token]
}

func (c *analyticsCalls) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		switch {
		case strings.Contains(r.URL.Path, "/spectrum/analytics/"):
			c.requests[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]++
			c.sent = append(c.sent, time.Now())
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/spectrum/apps"):
			c.creates = append(c.creates, time.Now())
		}
		c.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

type trafficWorld struct {
	sim       *spectrumtest.Simulator
	analytics *analyticsCalls
	metrics   *controller.TrafficMetrics
}

// setTraffic gives the app named name the simulated traffic t for the last
// ten minutes and on, so that the last minute and the last five minutes
// are known at once.
func (w *trafficWorld) setTraffic(t *testing.T, f *fixture, name string, traffic spectrumtest.Traffic) {
	t.Helper()
	app := f.get(name)
	if err := w.sim.SetTraffic(trafficZone, app.Status.ApplicationID, traffic, time.Now().Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// budgetOptions are a traffic world's budget: the token's requests per
// second and burst, and the simulator's limit (none when zero).
type budgetOptions struct {
	rate  float64
	burst int
	limit spectrumtest.RateLimitConfig
	// statusWrites is the traffic watch's status writes per second; its
	// default when zero.
	statusWrites float64
}

func startTrafficWorld(t *testing.T) *trafficWorld {
	return startTrafficWorldWith(t, budgetOptions{rate: 100, burst: 10})
}

func startTrafficWorldWith(t *testing.T, limits budgetOptions) *trafficWorld {
	t.Helper()
	sim, err := spectrumtest.New(spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{{ID: trafficAccount, Plan: spectrumtest.PlanEnterprise}},
		Tokens: []spectrumtest.TokenConfig{
			{Token: trafficToken, Account: trafficAccount},
			{Token: noAnalyticsToken, Account: trafficAccount, WithoutAnalyticsPermission: true},
		},
		Zones: []spectrumtest.ZoneConfig{
			{ID: trafficZone, Name: trafficZoneNm, Account: trafficAccount},
			{ID: burstZone, Name: burstZoneNm, Account: trafficAccount},
		},
		RateLimit: limits.limit,
	})
	if err != nil {
		t.Fatal(err)
	}
	analytics := &analyticsCalls{requests: map[string]int{}}
	server := httptest.NewServer(analytics.wrap(sim))
	t.Cleanup(server.Close)

	metrics := controller.NewTrafficMetrics(true)
	startOwnManager(t, restConfig, "traffic", &controller.SpectrumAppReconciler{
		Connector: budget.NewConnector(budget.ConnectorOptions{
			BaseURL:           server.URL + spectrumtest.APIPrefix,
			RequestsPerSecond: limits.rate,
			Burst:             limits.burst,
			AnalyticsShare:    budget.DefaultAnalyticsShare,
		}),
		ResyncPeriod:            10 * time.Second,
		MaxConcurrentReconciles: 4,
		Traffic: &controller.TrafficOptions{MinInterval: trafficInterval, DeniedBackoff: time.Hour, Metrics: metrics,
			StatusWritesPerSecond: limits.statusWrites},
	})
	return &trafficWorld{sim: sim, analytics: analytics, metrics: metrics}
}

// trafficApp is an app of the test's own manager in the traffic zone.
// Orphan: nothing here is deleted at Cloudflare, which keeps the suite's
// manager away from the credentials Secret.
func trafficApp(f *fixture, name string) *v1alpha1.SpectrumApp {
	app := f.app(name, trafficZone, trafficZoneNm)
	app.Labels = map[string]string{ownManagerLabel: "traffic"}
	app.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
	return app
}

// waitForOrigins waits until the app's OriginsHealthy has status and
// reason, and returns the app.
func (f *fixture) waitForOrigins(name string, status metav1.ConditionStatus, reason string) *v1alpha1.SpectrumApp {
	f.t.Helper()
	return f.waitForCondition(name, v1alpha1.ConditionOriginsHealthy, status, reason)
}

// trafficEvents are the events about name that tell of its origins.
func (f *fixture) trafficEvents(name string) []string {
	var got []string
	for _, e := range f.events(name) {
		if e.Reason == v1alpha1.ReasonOriginErrors || e.Reason == v1alpha1.ReasonOriginsRecovered {
			got = append(got, e.Type+" "+e.Reason)
		}
	}
	return got
}

func TestTrafficShowsInStatusConditionAndEvents(t *testing.T) {
	w := startTrafficWorld(t)
	f := newFixture(t, trafficToken)
	f.create(trafficApp(f, "healthy"))
	f.create(trafficApp(f, "failing"))
	f.waitForCondition("healthy", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	f.waitForCondition("failing", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	// 600 connections a minute: 600 in the last minute, 3,000 in the last
	// five; the failing app's origins refuse nine in ten.
	w.setTraffic(t, f, "healthy", spectrumtest.Traffic{ConnectionsPerMinute: 600, BytesIngressPerConnection: 100, BytesEgressPerConnection: 2000})
	w.setTraffic(t, f, "failing", spectrumtest.Traffic{ConnectionsPerMinute: 600, BytesIngressPerConnection: 100, BytesEgressPerConnection: 2000, OriginErrorShare: 0.9})

	// The healthy app: its last minute in status, OriginsHealthy True
	// with the numbers, Ready untouched.
	var got *v1alpha1.SpectrumApp
	eventually(t, 20*time.Second, func() string {
		got = f.get("healthy")
		if tr := got.Status.Traffic; tr == nil || tr.Connections != 600 {
			return fmt.Sprintf("status.traffic %+v, want 600 connections", got.Status.Traffic)
		}
		return ""
	})
	if tr := got.Status.Traffic; tr.BytesIngress != 600*100 || tr.BytesEgress != 600*2000 ||
		tr.Connects != 3000 || tr.OriginErrors != 0 || tr.WindowSeconds != 300 || time.Since(tr.ReadAt.Time) > time.Minute {
		t.Errorf("status.traffic %+v", got.Status.Traffic)
	}
	got = f.waitForOrigins("healthy", metav1.ConditionTrue, v1alpha1.ReasonOriginsAnswering)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionOriginsHealthy); !strings.Contains(c.Message, "3000 connections, 0 origin errors") {
		t.Errorf("OriginsHealthy message %q lacks the numbers", c.Message)
	}
	if !isReadyAt(got, got.Generation) {
		t.Errorf("conditions %v: want Ready still", got.Status.Conditions)
	}

	// The failing app: False, still Ready, and one Warning.
	got = f.waitForOrigins("failing", metav1.ConditionFalse, v1alpha1.ReasonOriginErrors)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionOriginsHealthy); !strings.Contains(c.Message, "2700 of 3000 connections") {
		t.Errorf("OriginsHealthy message %q lacks the numbers", c.Message)
	}
	if !isReadyAt(got, got.Generation) {
		t.Errorf("failing origins made the app not Ready: %v", got.Status.Conditions)
	}

	// kubectl get -o wide: the apiserver's table has a Connections column.
	if cells := wideRow(t, f.namespace, "healthy"); cells["Connections"] != float64(600) || cells["Origins"] != v1alpha1.ReasonOriginsAnswering {
		t.Errorf("kubectl get -o wide row %v, want Connections 600 and Origins %s", cells, v1alpha1.ReasonOriginsAnswering)
	}

	// A reconcile of the failing app (a new spec) keeps its
	// OriginsHealthy as the watch last read it.
	f.update("failing", func(app *v1alpha1.SpectrumApp) { app.Spec.OriginDirect = []string{"tcp://192.0.2.77:22"} })
	eventually(t, 20*time.Second, func() string {
		app := f.get("failing")
		c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionOriginsHealthy)
		switch {
		case !isReadyAt(app, app.Generation) || app.Generation < 2:
			return "not Ready at the new generation yet"
		case c == nil || c.Status != metav1.ConditionFalse:
			return fmt.Sprintf("OriginsHealthy %+v after the reconcile, want False", c)
		}
		return ""
	})
	// Several reads later, the trouble was told once.
	time.Sleep(5 * trafficInterval)
	if got := f.trafficEvents("failing"); strings.Join(got, ", ") != "Warning OriginErrors" {
		t.Errorf("traffic events %v, want one Warning OriginErrors", got)
	}

	// The origins answer again (for the whole window): True, and one
	// Normal event.
	app := f.get("failing")
	if err := w.sim.SetOriginErrors(trafficZone, app.Status.ApplicationID, 0, time.Now().Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.waitForOrigins("failing", metav1.ConditionTrue, v1alpha1.ReasonOriginsAnswering)
	time.Sleep(5 * trafficInterval)
	if got := f.trafficEvents("failing"); strings.Join(got, ", ") != "Warning OriginErrors, Normal OriginsRecovered" {
		t.Errorf("traffic events %v, want Warning OriginErrors then Normal OriginsRecovered, once each", got)
	}
	if got := f.trafficEvents("healthy"); len(got) != 0 {
		t.Errorf("the healthy app got traffic events %v", got)
	}

	// No traffic: Unknown, not False.
	w.setTraffic(t, f, "healthy", spectrumtest.Traffic{})
	got = f.waitForOrigins("healthy", metav1.ConditionUnknown, v1alpha1.ReasonNoTraffic)
	if got.Status.Traffic == nil || got.Status.Traffic.Connections != 0 {
		t.Errorf("status.traffic %+v without traffic", got.Status.Traffic)
	}
}

// With one status write a second to spend, the apps' new OriginsHealthy
// conditions are written at that pace, each app's latest, and the zone's
// traffic is read on time meanwhile: a read does not wait for its writes
// (the first read of 1,000 apps is 1,000 new conditions, 50 s of writes at
// the default 20 a second, during which no zone was read again).
func TestTrafficReadsGoOnWhileNewConditionsWaitForTheirWrites(t *testing.T) {
	w := startTrafficWorldWith(t, budgetOptions{rate: 100, burst: 10, statusWrites: 1})
	f := newFixture(t, trafficToken)
	names := []string{"paced-1", "paced-2", "paced-3", "paced-4", "paced-5", "paced-6", "paced-7", "paced-8"}
	for _, name := range names {
		f.create(trafficApp(f, name))
	}
	for _, name := range names {
		f.waitForCondition(name, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	}
	start := time.Now()
	for _, name := range names {
		w.setTraffic(t, f, name, spectrumtest.Traffic{ConnectionsPerMinute: 60, BytesIngressPerConnection: 10, BytesEgressPerConnection: 10})
	}
	for _, name := range names {
		f.waitForOrigins(name, metav1.ConditionTrue, v1alpha1.ReasonOriginsAnswering)
	}
	elapsed := time.Since(start)
	// A read a second (trafficInterval), a tick late at most.
	if reads, want := w.analytics.during(start, time.Now()), int(elapsed/(2*trafficInterval)); reads < want {
		t.Errorf("%d reads of the zone's traffic in the %s its %d apps' conditions took to be written, want %d or more: the reads waited for the writes",
			reads, elapsed.Round(100*time.Millisecond), len(names), want)
	}
}

// A token that may manage apps but not read analytics: one clear message on
// OriginsHealthy, no retry storm, nothing Stalled, configuration syncing.
func TestTrafficWithoutAnalyticsPermission(t *testing.T) {
	w := startTrafficWorld(t)
	f := newFixture(t, noAnalyticsToken)
	f.create(trafficApp(f, "unseen"))
	got := f.waitForOrigins("unseen", metav1.ConditionUnknown, v1alpha1.ReasonAnalyticsNotPermitted)
	c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionOriginsHealthy)
	if !strings.Contains(c.Message, "Zone > Analytics > Read") || !strings.Contains(c.Message, "10000") || strings.Contains(c.Message, noAnalyticsToken) {
		t.Errorf("message %q", c.Message)
	}
	if got.Status.Traffic != nil {
		t.Errorf("status.traffic %+v without analytics", got.Status.Traffic)
	}
	if !isReadyAt(got, got.Generation) || meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionStalled) {
		t.Errorf("conditions %v: want Ready and not Stalled", got.Status.Conditions)
	}
	refusedAfterFirst := w.analytics.of(noAnalyticsToken)

	// Configuration keeps syncing.
	f.update("unseen", func(app *v1alpha1.SpectrumApp) { app.Spec.OriginDirect = []string{"tcp://192.0.2.78:22"} })
	eventually(t, 20*time.Second, func() string {
		if app := f.get("unseen"); !isReadyAt(app, app.Generation) || app.Generation < 2 {
			return "not Ready at the new generation"
		}
		return ""
	})
	// Many intervals later, no request was made again.
	time.Sleep(6 * trafficInterval)
	if n := w.analytics.of(noAnalyticsToken); n != refusedAfterFirst || n != 1 {
		t.Errorf("%d analytics requests with the refused token (%d when first refused), want 1", n, refusedAfterFirst)
	}
	var warnings []string
	for _, e := range f.events("unseen") {
		if e.Type == corev1.EventTypeWarning {
			warnings = append(warnings, e.Reason)
		}
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %v", warnings)
	}

	// A token that may read analytics, put in the Secret, is used at once,
	// not after the backoff.
	w.setTraffic(t, f, "unseen", spectrumtest.Traffic{ConnectionsPerMinute: 2})
	secret := &corev1.Secret{}
	if err := k8sClient.Get(f.ctx, types.NamespacedName{Namespace: f.namespace, Name: "cloudflare"}, secret); err != nil {
		t.Fatal(err)
	}
	secret.Data[v1alpha1.DefaultCredentialsKey] = []byte(trafficToken)
	if err := k8sClient.Update(f.ctx, secret); err != nil {
		t.Fatal(err)
	}
	got = f.waitForOrigins("unseen", metav1.ConditionTrue, v1alpha1.ReasonOriginsAnswering)
	if got.Status.Traffic == nil || got.Status.Traffic.Connections != 2 {
		t.Errorf("status.traffic %+v with the new token", got.Status.Traffic)
	}
}

// Issue 24: analytics yields to a burst of creates on the same token. The
// simulator enforces 4 requests per second (120 per 30 s), the token's
// budget is the same, and a zone of the token has apps whose traffic is
// read every second. A burst of 40 creates in another zone then takes N/R
// as it would without analytics, analytics takes no more than its share
// meanwhile, and reads again once the burst is over.
func TestAnalyticsYieldsToABurstOfCreatesOnTheRealManager(t *testing.T) {
	const (
		rate  = 4.0
		burst = 40
	)
	w := startTrafficWorldWith(t, budgetOptions{rate: rate, burst: 1, limit: spectrumtest.RateLimitConfig{
		Limit: int(rate * 30), Window: spectrumtest.Duration{Duration: 30 * time.Second}, Enforce: true,
	}})
	f := newFixture(t, trafficToken)
	for i := range 3 {
		f.create(trafficApp(f, fmt.Sprintf("busy-%d", i)))
	}
	// Traffic from ten minutes back: the series are in whole minutes,
	// and an app created now has none yet.
	for i := range 3 {
		name := fmt.Sprintf("busy-%d", i)
		f.waitForCondition(name, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
		w.setTraffic(t, f, name, spectrumtest.DefaultTraffic())
	}
	// Read on spare slots of a 4/s budget: a few seconds, longer on a busy
	// machine.
	eventually(t, time.Minute, func() string {
		for i := range 3 {
			app := f.get(fmt.Sprintf("busy-%d", i))
			if c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionOriginsHealthy); c == nil || c.Reason != v1alpha1.ReasonOriginsAnswering {
				return fmt.Sprintf("%s: OriginsHealthy %+v", app.Name, c)
			}
		}
		return ""
	})
	before := w.analytics.of(trafficToken)

	start := time.Now()
	for i := range burst {
		app := f.app(fmt.Sprintf("burst-%02d", i), burstZone, burstZoneNm)
		app.Labels = map[string]string{ownManagerLabel: "traffic"}
		app.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
		f.create(app)
	}
	eventually(t, 3*time.Duration(burst/rate)*time.Second, func() string {
		ready := 0
		for i := range burst {
			if app := f.get(fmt.Sprintf("burst-%02d", i)); isReadyAt(app, app.Generation) {
				ready++
			}
		}
		if ready < burst {
			return fmt.Sprintf("%d of %d apps of the burst Ready", ready, burst)
		}
		return ""
	}, testenv.Interval(250*time.Millisecond))
	lastCreate := w.analytics.lastCreate()
	took, bound := lastCreate.Sub(start), time.Duration(float64(burst)/rate*float64(time.Second))
	during := w.analytics.during(start.Add(time.Second), lastCreate)
	t.Logf("%d creates sent within %.1f s (N/R %.1f s, %.3f × N/R); analytics requests during the burst: %d, before it: %d",
		burst, took.Seconds(), bound.Seconds(), took.Seconds()/bound.Seconds(), during, before)
	// The apiserver's pace on a loaded machine moves this by a few
	// percent; analytics taking slots moved it by 10 % and more (see
	// docs/reliability.md), and is caught below in any case.
	if took > bound*125/100 {
		t.Errorf("the burst's creates took %.1f s with analytics on, more than 1.25 × N/R = %.1f s", took.Seconds(), 1.25*bound.Seconds())
	}
	// A slot no create waits for is spare by design: on a loaded machine
	// the workers spend moments writing to the apiserver between two
	// creates, and analytics may take such a slot. That none is taken
	// while a create waits is TestAnalyticsYieldsToABurstOfCreates in
	// package budget, where creates always wait. What holds here: the
	// burst keeps its pace (above), and analytics stays within its share
	// of the slots the burst took, plus the two that go together.
	if most := int(budget.DefaultAnalyticsShare*took.Seconds()*rate) + 2; during > most {
		t.Errorf("analytics sent %d requests during the burst, more than its share allows (%d)", during, most)
	}
	if limited := w.sim.RateLimited(); limited != 0 {
		t.Errorf("the simulator answered %d requests with 429", limited)
	}
	// After the burst, the traffic is read again.
	eventually(t, 20*time.Second, func() string {
		if n := w.analytics.of(trafficToken); n <= before+during {
			return fmt.Sprintf("no analytics request after the burst (%d in all)", n)
		}
		return ""
	})
}

// wideRow is the app's row of the apiserver's table, as kubectl get -o
// wide prints it: cell by column name.
func wideRow(t *testing.T, namespace, name string) map[string]any {
	t.Helper()
	cfg := rest.CopyConfig(restConfig)
	cfg.GroupVersion = &v1alpha1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(testenv.Scheme()).WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().Namespace(namespace).Resource("spectrumapps").Name(name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil || len(table.Rows) != 1 {
		t.Fatalf("table %s: %v", raw, err)
	}
	cells := map[string]any{}
	for i, column := range table.ColumnDefinitions {
		cells[column.Name] = table.Rows[0].Cells[i]
	}
	return cells
}
