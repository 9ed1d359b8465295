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
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/events"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
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
)

// analyticsModel answers Spectrum's analytics endpoints from numbers the
// test sets per hostname, and refuses some tokens.
type analyticsModel struct {
	sim *spectrumtest.Simulator

	mu      sync.Mutex
	byHost  map[string]hostTraffic
	refused map[string]bool
	// requests counts analytics requests by token.
	requests map[string]int
}

type hostTraffic struct {
	connections, bytesIngress, bytesEgress, connects, originErrors int
}

func (m *analyticsModel) set(hostname string, h hostTraffic) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byHost[strings.ToLower(hostname)] = h
}

func (m *analyticsModel) requestsOf(token string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests[token]
}

func (m *analyticsModel) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, kind, ok := strings.Cut(r.URL.Path, "/spectrum/analytics/")
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		m.mu.Lock()
		m.requests[token]++
		refused := m.refused[token]
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if refused {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`))
			return
		}
		hosts := map[string]string{}
		for _, stored := range m.sim.Apps() {
			hosts[stored.App.ID] = strings.ToLower(stored.App.DNS.Name)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		var result any
		switch kind {
		case "aggregate/current":
			var rows []map[string]any
			for _, id := range strings.Split(r.URL.Query().Get("appID"), ",") {
				if h, ok := m.byHost[hosts[id]]; ok {
					rows = append(rows, map[string]any{"appID": id, "connections": h.connections,
						"bytesIngress": h.bytesIngress, "bytesEgress": h.bytesEgress, "durationAvg": 1.5})
				}
			}
			result = rows
		case "events/summary":
			var data []map[string]any
			for id, host := range hosts {
				if h, ok := m.byHost[host]; ok {
					data = append(data,
						map[string]any{"dimensions": []string{id, "connect"}, "metrics": []int{h.connects}},
						map[string]any{"dimensions": []string{id, "originError"}, "metrics": []int{h.originErrors}})
				}
			}
			result = map[string]any{"data": data, "rows": len(data), "data_lag": 0,
				"query": map[string]any{"dimensions": []string{"appID", "event"}, "metrics": []string{"count"}}}
		default:
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result})
	})
}

type trafficWorld struct {
	sim       *spectrumtest.Simulator
	analytics *analyticsModel
	metrics   *controller.TrafficMetrics
}

func startTrafficWorld(t *testing.T) *trafficWorld {
	t.Helper()
	sim, err := spectrumtest.New(spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{{ID: trafficAccount, Plan: spectrumtest.PlanEnterprise}},
		Tokens: []spectrumtest.TokenConfig{
			{Token: trafficToken, Account: trafficAccount},
			{Token: noAnalyticsToken, Account: trafficAccount},
		},
		Zones: []spectrumtest.ZoneConfig{{ID: trafficZone, Name: trafficZoneNm, Account: trafficAccount}},
	})
	if err != nil {
		t.Fatal(err)
	}
	analytics := &analyticsModel{sim: sim, byHost: map[string]hostTraffic{},
		refused: map[string]bool{noAnalyticsToken: true}, requests: map[string]int{}}
	server := httptest.NewServer(analytics.wrap(sim))
	t.Cleanup(server.Close)

	ownApps, err := labels.Parse(ownManagerLabel)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:     testenv.Scheme(),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.SpectrumApp{}: {Label: ownApps},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	recorder := events.New(mgr.GetClient(), mgr.GetScheme(), "spectrum-operator-traffic", ctrl.Log.WithName("traffic-events"))
	if err := mgr.Add(recorder); err != nil {
		t.Fatal(err)
	}
	metrics := controller.NewTrafficMetrics(true)
	reconciler := &controller.SpectrumAppReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  recorder,
		Connector: spectrum.NewConnector(spectrum.ConnectorOptions{
			BaseURL:           server.URL + spectrumtest.APIPrefix,
			RequestsPerSecond: 100,
			Burst:             10,
			AnalyticsShare:    spectrum.DefaultAnalyticsShare,
		}),
		ResyncPeriod:            10 * time.Second,
		MaxConcurrentReconciles: 4,
		Traffic:                 &controller.TrafficOptions{MinInterval: trafficInterval, DeniedBackoff: time.Hour, Metrics: metrics},
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("traffic manager: %v", err)
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("the traffic manager's cache did not sync")
	}
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
	healthy, failing := trafficApp(f, "healthy"), trafficApp(f, "failing")
	w.analytics.set(healthy.Spec.DNS.Name, hostTraffic{connections: 12, bytesIngress: 1500, bytesEgress: 98000, connects: 60, originErrors: 1})
	w.analytics.set(failing.Spec.DNS.Name, hostTraffic{connections: 3, connects: 40, originErrors: 38})
	f.create(healthy)
	f.create(failing)

	// The healthy app: its last minute in status, OriginsHealthy True
	// with the numbers, Ready untouched.
	got := f.waitForOrigins("healthy", metav1.ConditionTrue, v1alpha1.ReasonOriginsAnswering)
	if tr := got.Status.Traffic; tr == nil || tr.Connections != 12 || tr.BytesIngress != 1500 || tr.BytesEgress != 98000 ||
		tr.Connects != 60 || tr.OriginErrors != 1 || tr.WindowSeconds != 300 || time.Since(tr.ReadAt.Time) > time.Minute {
		t.Errorf("status.traffic %+v", got.Status.Traffic)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionOriginsHealthy); !strings.Contains(c.Message, "60 connections, 1 origin errors") {
		t.Errorf("OriginsHealthy message %q lacks the numbers", c.Message)
	}
	f.waitForCondition("healthy", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")

	// The failing app: False, still Ready, and one Warning.
	got = f.waitForOrigins("failing", metav1.ConditionFalse, v1alpha1.ReasonOriginErrors)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionOriginsHealthy); !strings.Contains(c.Message, "38 of 40 connections") {
		t.Errorf("OriginsHealthy message %q lacks the numbers", c.Message)
	}
	if !isReadyAt(got, got.Generation) {
		t.Errorf("failing origins made the app not Ready: %v", got.Status.Conditions)
	}

	// kubectl get -o wide: the apiserver's table has a Connections column.
	if cells := wideRow(t, f.namespace, "healthy"); cells["Connections"] != float64(12) || cells["Origins"] != v1alpha1.ReasonOriginsAnswering {
		t.Errorf("kubectl get -o wide row %v, want Connections 12 and Origins %s", cells, v1alpha1.ReasonOriginsAnswering)
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

	// The origins answer again: True, and one Normal event.
	w.analytics.set(failing.Spec.DNS.Name, hostTraffic{connections: 9, connects: 50})
	f.waitForOrigins("failing", metav1.ConditionTrue, v1alpha1.ReasonOriginsAnswering)
	time.Sleep(5 * trafficInterval)
	if got := f.trafficEvents("failing"); strings.Join(got, ", ") != "Warning OriginErrors, Normal OriginsRecovered" {
		t.Errorf("traffic events %v, want Warning OriginErrors then Normal OriginsRecovered, once each", got)
	}
	if got := f.trafficEvents("healthy"); len(got) != 0 {
		t.Errorf("the healthy app got traffic events %v", got)
	}

	// No traffic: Unknown, not False.
	w.analytics.set(healthy.Spec.DNS.Name, hostTraffic{})
	f.waitForOrigins("healthy", metav1.ConditionUnknown, v1alpha1.ReasonNoTraffic)
}

// A token that may manage apps but not read analytics: one clear message on
// OriginsHealthy, no retry storm, nothing Stalled, configuration syncing.
func TestTrafficWithoutAnalyticsPermission(t *testing.T) {
	w := startTrafficWorld(t)
	f := newFixture(t, noAnalyticsToken)
	unseen := trafficApp(f, "unseen")
	f.create(unseen)
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
	refusedAfterFirst := w.analytics.requestsOf(noAnalyticsToken)

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
	if n := w.analytics.requestsOf(noAnalyticsToken); n != refusedAfterFirst || n != 1 {
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
	w.analytics.set(unseen.Spec.DNS.Name, hostTraffic{connections: 2, connects: 7})
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
