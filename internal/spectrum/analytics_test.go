package spectrum_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

// analyticsStub answers the two analytics endpoints in Cloudflare's shapes
// (cloudflare-go spectrum/analyticsaggregatecurrent.go and
// analyticseventsummary.go) and records the queries it got.
type analyticsStub struct {
	mu      sync.Mutex
	queries map[string][]url.Values
	// current rows and summary rows to answer with.
	current []map[string]any
	summary []map[string]any
	// status, when set, answers every request with it and code.
	status, code int
}

func (s *analyticsStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queries == nil {
		s.queries = map[string][]url.Values{}
	}
	kind := r.URL.Path[strings.Index(r.URL.Path, "/analytics/")+len("/analytics/"):]
	s.queries[kind] = append(s.queries[kind], r.URL.Query())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("cf-ray", "8a1b2c3d4e5f-SJC")
	if s.status != 0 {
		w.WriteHeader(s.status)
		_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "result": nil, "messages": []any{},
			"errors": []any{map[string]any{"code": s.code, "message": "Authentication error"}}})
		return
	}
	var result any
	switch kind {
	case "aggregate/current":
		result = s.current
	case "events/summary":
		result = map[string]any{"data": s.summary, "data_lag": 0, "rows": len(s.summary),
			"query": map[string]any{"dimensions": []string{"appID", "event"}, "metrics": []string{"count"}}}
	default:
		w.WriteHeader(http.StatusNotFound)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result})
}

func (s *analyticsStub) queriesOf(kind string) []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.queries[kind]...)
}

const analyticsToken = "test-analytics-token-2b9e"

func analyticsClient(t *testing.T, stub *analyticsStub, metrics *spectrum.Metrics) spectrum.Client {
	t.Helper()
	server := httptest.NewServer(stub)
	t.Cleanup(server.Close)
	return budget.NewConnector(budget.ConnectorOptions{
		BaseURL: server.URL, RequestsPerSecond: 100, Burst: 10,
		AnalyticsShare: budget.DefaultAnalyticsShare, RequestMetrics: metrics,
	}).ForToken(analyticsToken)
}

func appID(i int) string { return fmt.Sprintf("%032x", i) }

func TestZoneTrafficReadsTheLastMinuteAndTheEventsOfTheZonesApps(t *testing.T) {
	stub := &analyticsStub{
		current: []map[string]any{
			{"appID": appID(1), "bytesIngress": 1500, "bytesEgress": 98000, "connections": 12, "durationAvg": 3.5},
			{"appID": appID(2), "bytesIngress": 0, "bytesEgress": 0, "connections": 0, "durationAvg": 0},
			{"appID": appID(99), "bytesIngress": 7, "bytesEgress": 7, "connections": 7, "durationAvg": 1},
		},
		summary: []map[string]any{
			{"dimensions": []string{appID(1), "connect"}, "metrics": []float64{60}},
			{"dimensions": []string{appID(1), "originError"}, "metrics": []float64{2}},
			{"dimensions": []string{appID(2), "originError"}, "metrics": []float64{9}},
			{"dimensions": []string{appID(99), "originError"}, "metrics": []float64{5}},
			{"dimensions": []string{appID(2), "connect"}, "metrics": "not numbers"},
		},
	}
	metrics := spectrum.NewMetrics()
	cf := analyticsClient(t, stub, metrics).(spectrum.TrafficReader)
	before := time.Now().UTC().Truncate(time.Second)
	got, err := cf.ZoneTraffic(context.Background(), "zone1", []string{appID(1), appID(2)}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := (spectrum.AppTraffic{Connections: 12, BytesIngress: 1500, BytesEgress: 98000}); got.LastMinute[appID(1)] != want {
		t.Errorf("app 1's last minute %+v, want %+v", got.LastMinute[appID(1)], want)
	}
	if _, ok := got.LastMinute[appID(99)]; ok {
		t.Error("another application's row was kept")
	}
	if want := (spectrum.AppEvents{Connects: 60, OriginErrors: 2}); got.Events[appID(1)] != want {
		t.Errorf("app 1's events %+v, want %+v", got.Events[appID(1)], want)
	}
	if want := (spectrum.AppEvents{OriginErrors: 9}); got.Events[appID(2)] != want {
		t.Errorf("app 2's events %+v, want %+v (a malformed row is skipped)", got.Events[appID(2)], want)
	}
	if d := got.Until.Sub(got.Since); d != 5*time.Minute || got.Until.Before(before) {
		t.Errorf("window %s to %s, want the 5 minutes up to now", got.Since, got.Until)
	}

	current := stub.queriesOf("aggregate/current")
	if len(current) != 1 || current[0].Get("appID") != appID(1)+","+appID(2) {
		t.Errorf("aggregate/current queries %v, want one with appID=%s,%s", current, appID(1), appID(2))
	}
	events := stub.queriesOf("events/summary")
	if len(events) != 1 {
		t.Fatalf("events/summary queries %v, want one", events)
	}
	q := events[0]
	for key, want := range map[string]string{
		"dimensions": "appID,event", "metrics": "count", "filters": "event==connect,event==originError",
		"since": got.Since.Format(time.RFC3339), "until": got.Until.Format(time.RFC3339),
	} {
		if q.Get(key) != want {
			t.Errorf("events/summary %s=%q, want %q", key, q.Get(key), want)
		}
	}
	if n := counterValue(t, metrics, "spectrum_cloudflare_analytics_requests_total"); n != 2 {
		t.Errorf("analytics requests counted %v, want 2", n)
	}
}

// At 10,000 apps the appID list does not fit a URL: the zone is read whole,
// still in one request per endpoint, and other applications' rows dropped.
func TestZoneTrafficAtTenThousandAppsIsTwoRequests(t *testing.T) {
	stub := &analyticsStub{current: []map[string]any{
		{"appID": appID(7), "bytesIngress": 1, "bytesEgress": 2, "connections": 3},
		{"appID": "f" + appID(7)[1:], "bytesIngress": 1, "bytesEgress": 2, "connections": 3},
	}}
	cf := analyticsClient(t, stub, nil).(spectrum.TrafficReader)
	apps := make([]string, 10000)
	for i := range apps {
		apps[i] = appID(i)
	}
	got, err := cf.ZoneTraffic(context.Background(), "zone1", apps, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	current, events := stub.queriesOf("aggregate/current"), stub.queriesOf("events/summary")
	if len(current) != 1 || len(events) != 1 {
		t.Fatalf("%d aggregate/current and %d events/summary requests, want one each", len(current), len(events))
	}
	if current[0].Has("appID") {
		t.Errorf("an appID list of %d characters was sent", len(current[0].Get("appID")))
	}
	if events[0].Get("limit") != "40000" {
		t.Errorf("events/summary limit %q, want room for every app's two rows", events[0].Get("limit"))
	}
	if len(got.LastMinute) != 1 || got.LastMinute[appID(7)].Connections != 3 {
		t.Errorf("last minute %+v, want app 7's row only", got.LastMinute)
	}
}

// A token that may manage apps but not read analytics: Cloudflare's 403 is
// explained once, as a person's job, without the token.
func TestZoneTrafficWithoutAnalyticsPermission(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusUnauthorized} {
		stub := &analyticsStub{status: status, code: 10000}
		cf := analyticsClient(t, stub, nil).(spectrum.TrafficReader)
		_, err := cf.ZoneTraffic(context.Background(), "zone1", []string{appID(1)}, 5*time.Minute)
		if !spectrum.AnalyticsDenied(err) {
			t.Fatalf("HTTP %d: %v, want AnalyticsDenied", status, err)
		}
		c := spectrum.Classify(err)
		if c.Class != failure.NeedsHuman || c.Reason != v1alpha1.ReasonAnalyticsNotPermitted || c.HTTPStatus != status ||
			c.RayID != "8a1b2c3d4e5f-SJC" || len(c.Codes) != 1 || c.Codes[0] != 10000 {
			t.Errorf("HTTP %d classified as %+v", status, c)
		}
		if !strings.Contains(c.Message, "Zone > Analytics > Read") || strings.Contains(c.Message, analyticsToken) {
			t.Errorf("message %q", c.Message)
		}
		if n := len(stub.queriesOf("events/summary")); n != 0 {
			t.Errorf("HTTP %d: events asked %d times after the refusal", status, n)
		}
	}
	// Other failures keep their own classification.
	stub := &analyticsStub{status: http.StatusServiceUnavailable, code: 10002}
	cf := analyticsClient(t, stub, nil).(spectrum.TrafficReader)
	_, err := cf.ZoneTraffic(context.Background(), "zone1", []string{appID(1)}, 5*time.Minute)
	if spectrum.AnalyticsDenied(err) || spectrum.Classify(err).Class != failure.Retryable {
		t.Errorf("a 503: %v classified %+v", err, spectrum.Classify(err))
	}
}

// A token without an analytics share never sends an analytics request.
func TestZoneTrafficWithoutAShareSendsNothing(t *testing.T) {
	stub := &analyticsStub{}
	server := httptest.NewServer(stub)
	t.Cleanup(server.Close)
	cf := budget.NewConnector(budget.ConnectorOptions{BaseURL: server.URL}).ForToken(analyticsToken).(spectrum.TrafficReader)
	if pace := cf.TrafficPace(); pace != 0 {
		t.Errorf("pace %v without a share", pace)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := cf.ZoneTraffic(ctx, "zone1", []string{appID(1)}, time.Minute)
	if !errors.Is(err, spectrum.ErrNotSent) || len(stub.queriesOf("aggregate/current")) != 0 {
		t.Errorf("%v, %d requests", err, len(stub.queriesOf("aggregate/current")))
	}
}

// counterValue reads the counter name of metrics.
func counterValue(t *testing.T, metrics *spectrum.Metrics, name string) float64 {
	t.Helper()
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(metrics.Collectors()...)
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// Against the simulator's own model of traffic: the numbers the client
// reads are the ones the model was given, for a few apps (filtered by
// appID) and for more than one URL's worth of them (the zone read whole);
// another zone's apps and apps not asked for are left out; a token
// without the permission is refused as AnalyticsDenied.
func TestZoneTrafficAgainstTheSimulator(t *testing.T) {
	cfg := testConfig()
	const noAnalyticsToken = "test-no-analytics-token-1f0e"
	cfg.Tokens = append(cfg.Tokens, spectrumtest.TokenConfig{Token: noAnalyticsToken, Account: enterpriseAccount, WithoutAnalyticsPermission: true})
	sim := startSimulator(t, cfg)
	past := time.Now().Add(-10 * time.Minute)
	var ids []string
	for i := range 250 {
		stored, err := sim.PutApp(enterpriseZone, simSSHApp(fmt.Sprintf("t%d.example.com", i)), false)
		if err != nil {
			t.Fatal(err)
		}
		// Even rates: half of them is whole, whatever the window's start.
		traffic := spectrumtest.Traffic{ConnectionsPerMinute: float64(60 + 2*i), BytesIngressPerConnection: 10, BytesEgressPerConnection: 100}
		if i%2 == 1 {
			traffic.OriginErrorShare = 0.5
		}
		if err := sim.SetTraffic(enterpriseZone, stored.App.ID, traffic, past); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, stored.App.ID)
	}
	other, err := sim.PutApp(otherZone, simSSHApp("elsewhere.other.example"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.SetTraffic(otherZone, other.App.ID, spectrumtest.Traffic{ConnectionsPerMinute: 1000}, past); err != nil {
		t.Fatal(err)
	}

	connector := budget.NewConnector(budget.ConnectorOptions{BaseURL: sim.URL, RequestsPerSecond: 100, Burst: 10, AnalyticsShare: 1})
	cf := connector.ForToken(enterpriseToken).(spectrum.TrafficReader)
	for _, tc := range []struct {
		name string
		apps []string
	}{{"a few apps, filtered", ids[:3]}, {"250 apps, the zone whole", ids}} {
		got, err := cf.ZoneTraffic(testContext(t), enterpriseZone, tc.apps, 5*time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got.LastMinute) != len(tc.apps) || len(got.Events) != len(tc.apps) {
			t.Errorf("%s: %d apps' last minute and %d apps' events, want %d", tc.name, len(got.LastMinute), len(got.Events), len(tc.apps))
		}
		for i, id := range tc.apps {
			perMinute := int64(60 + 2*i)
			errors := int64(0)
			if i%2 == 1 {
				errors = 5 * perMinute / 2
			}
			served := perMinute - perMinute*int64(i%2)/2
			if want := (spectrum.AppTraffic{Connections: perMinute, BytesIngress: 10 * served, BytesEgress: 100 * served}); got.LastMinute[id] != want {
				t.Errorf("%s: app %d's last minute %+v, want %+v", tc.name, i, got.LastMinute[id], want)
			}
			if want := (spectrum.AppEvents{Connects: 5 * perMinute, OriginErrors: errors}); got.Events[id] != want {
				t.Errorf("%s: app %d's events %+v, want %+v", tc.name, i, got.Events[id], want)
			}
		}
		if _, ok := got.LastMinute[other.App.ID]; ok {
			t.Errorf("%s: another zone's app was read", tc.name)
		}
	}

	denied := connector.ForToken(noAnalyticsToken).(spectrum.TrafficReader)
	if _, err := denied.ZoneTraffic(testContext(t), enterpriseZone, ids[:1], 5*time.Minute); !spectrum.AnalyticsDenied(err) {
		t.Errorf("a token without analytics: %v, want AnalyticsDenied", err)
	}
}
