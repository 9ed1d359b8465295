package spectrum_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
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

// analyticsStub answers events/bytime in Cloudflare's shape
// (cloudflare-go spectrum/analyticseventbytime.go, docs/analytics-api.md):
// five minute intervals ending at the query's until, and the rows it was
// given. It records the queries it got.
type analyticsStub struct {
	mu      sync.Mutex
	queries map[string][]url.Values
	// rows to answer with; echo, when set, is the query's dimensions and
	// metrics as the answer echoes them (the order the rows follow).
	rows []map[string]any
	echo map[string][]string
	// fillToLimit pads the answer with another application's rows up to
	// the query's limit, as an answer cut at its limit.
	fillToLimit bool
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
	query := r.URL.Query()
	s.queries[kind] = append(s.queries[kind], query)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("cf-ray", "8a1b2c3d4e5f-SJC")
	if s.status != 0 {
		w.WriteHeader(s.status)
		_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "result": nil, "messages": []any{},
			"errors": []any{map[string]any{"code": s.code, "message": "Authentication error"}}})
		return
	}
	if kind != "events/bytime" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	until, _ := time.Parse(time.RFC3339, query.Get("until"))
	var intervals [][]string
	for i := 5; i > 0; i-- {
		intervals = append(intervals, []string{until.Add(-time.Duration(i) * time.Minute).Format(time.RFC3339), until.Add(-time.Duration(i-1) * time.Minute).Format(time.RFC3339)})
	}
	rows := append([]map[string]any(nil), s.rows...)
	if limit, _ := strconv.Atoi(query.Get("limit")); s.fillToLimit {
		for len(rows) < limit {
			rows = append(rows, map[string]any{"dimensions": []string{appID(99), "connect"}, "metrics": [][]float64{{1, 1, 1, 1, 1}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}})
		}
	}
	echo := map[string][]string{"dimensions": {"appID", "event"}, "metrics": {"count", "bytesIngress", "bytesEgress"}}
	if s.echo != nil {
		echo = s.echo
	}
	result := map[string]any{"data": rows, "data_lag": 0, "rows": len(rows), "time_intervals": intervals, "query": echo}
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

// series is a row of the answer: one series per metric (count,
// bytesIngress, bytesEgress), one value per minute.
func series(app int, event string, count, bytesIngress, bytesEgress []float64) map[string]any {
	return map[string]any{"dimensions": []string{appID(app), event}, "metrics": [][]float64{count, bytesIngress, bytesEgress}}
}

// The zone's apps in one request of per-minute series: the last minute's
// connects and bytes, the window's connects and origin errors; rows of
// clientFiltered events, of other applications and malformed ones left
// out; the answer read by the order it echoes.
func TestZoneTrafficReadsOneRequestOfPerMinuteSeries(t *testing.T) {
	zero := []float64{0, 0, 0, 0, 0}
	rows := []map[string]any{
		series(1, "connect", []float64{10, 11, 12, 13, 12}, zero, zero),
		series(1, "originError", []float64{0, 0, 1, 0, 1}, zero, zero),
		series(1, "disconnect", []float64{10, 11, 11, 13, 11}, []float64{1, 1, 1, 1, 1500}, []float64{2, 2, 2, 2, 98000}),
		series(1, "progress", zero, []float64{0, 0, 0, 0, 500}, []float64{0, 0, 0, 0, 2000}),
		series(1, "clientFiltered", []float64{100, 100, 100, 100, 100}, zero, zero),
		series(2, "originError", []float64{1, 2, 3, 2, 1}, zero, zero),
		series(99, "connect", []float64{7, 7, 7, 7, 7}, zero, zero),
		{"dimensions": []string{appID(2), "connect"}, "metrics": "not numbers"},
	}
	// The same rows as an answer ordered event, appID and bytesEgress,
	// count, bytesIngress.
	var reordered []map[string]any
	for _, row := range rows {
		dims, _ := row["dimensions"].([]string)
		m, ok := row["metrics"].([][]float64)
		if !ok {
			reordered = append(reordered, row)
			continue
		}
		reordered = append(reordered, map[string]any{"dimensions": []string{dims[1], dims[0]}, "metrics": [][]float64{m[2], m[0], m[1]}})
	}
	for _, tc := range []struct {
		name string
		stub *analyticsStub
	}{
		{"in the query's order", &analyticsStub{rows: rows}},
		{"in another order, echoed", &analyticsStub{rows: reordered, echo: map[string][]string{
			"dimensions": {"event", "appID"}, "metrics": {"bytesEgress", "count", "bytesIngress"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			metrics := spectrum.NewMetrics()
			cf := analyticsClient(t, tc.stub, metrics).(spectrum.TrafficReader)
			before := time.Now().UTC().Truncate(time.Minute)
			got, err := cf.ZoneTraffic(context.Background(), "zone1", []string{appID(1), appID(2), appID(3)}, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]spectrum.AppTraffic{
				appID(1): {Connections: 12, BytesIngress: 2000, BytesEgress: 100000, Connects: 58, OriginErrors: 2},
				appID(2): {OriginErrors: 9},
				appID(3): {},
			}
			if len(got.Apps) != len(want) {
				t.Errorf("apps %+v, want %+v", got.Apps, want)
			}
			for id, w := range want {
				if g, ok := got.Apps[id]; !ok || g != w {
					t.Errorf("app %s: %+v, want %+v", id, g, w)
				}
			}
			if d := got.Until.Sub(got.Since); d != 5*time.Minute || got.Until.Before(before) || !got.Until.Equal(got.Until.Truncate(time.Minute)) {
				t.Errorf("window %s to %s, want the 5 whole minutes up to now", got.Since, got.Until)
			}

			if n := len(tc.stub.queries); n != 1 {
				t.Errorf("requests to %d endpoints (%v), want events/bytime only", n, tc.stub.queries)
			}
			asked := tc.stub.queriesOf("events/bytime")
			if len(asked) != 1 {
				t.Fatalf("events/bytime queries %v, want one", asked)
			}
			for key, want := range map[string]string{
				"dimensions": "appID,event", "metrics": "count,bytesIngress,bytesEgress", "time_delta": "minute",
				"filters": "appID==" + appID(1) + ",appID==" + appID(2) + ",appID==" + appID(3), "limit": "1000",
				"since": got.Since.Format(time.RFC3339), "until": got.Until.Format(time.RFC3339),
			} {
				if asked[0].Get(key) != want {
					t.Errorf("events/bytime %s=%q, want %q", key, asked[0].Get(key), want)
				}
			}
			if n := counterValue(t, metrics, "spectrum_cloudflare_analytics_requests_total"); n != 1 {
				t.Errorf("analytics requests counted %v, want 1", n)
			}
		})
	}
}

// At 10,000 apps the appID filter does not fit a URL: the zone is read
// whole, still in one request, and other applications' rows dropped.
func TestZoneTrafficAtTenThousandAppsIsOneRequest(t *testing.T) {
	zero := []float64{0, 0, 0, 0, 0}
	stub := &analyticsStub{rows: []map[string]any{
		series(7, "connect", []float64{1, 1, 1, 1, 3}, zero, zero),
		{"dimensions": []string{"f" + appID(7)[1:], "connect"}, "metrics": [][]float64{{9, 9, 9, 9, 9}, zero, zero}},
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
	asked := stub.queriesOf("events/bytime")
	if len(asked) != 1 || len(stub.queries) != 1 {
		t.Fatalf("queries %v, want one of events/bytime", stub.queries)
	}
	if asked[0].Has("filters") {
		t.Errorf("a filter of %d characters was sent", len(asked[0].Get("filters")))
	}
	if asked[0].Get("limit") != "100000" {
		t.Errorf("limit %q, want room for five rows of each app, and as many again of the zone's others", asked[0].Get("limit"))
	}
	if len(got.Apps) != len(apps) || got.Apps[appID(7)].Connections != 3 || got.Apps[appID(8)] != (spectrum.AppTraffic{}) {
		t.Errorf("%d apps, app 7 %+v, app 8 %+v: want every app, app 7's connections 3 and app 8 none",
			len(got.Apps), got.Apps[appID(7)], got.Apps[appID(8)])
	}
}

// An answer cut at its row limit tells nothing of the apps it left out:
// they are missing, not without traffic.
func TestZoneTrafficCutAtItsLimitLeavesTheRestUntold(t *testing.T) {
	zero := []float64{0, 0, 0, 0, 0}
	stub := &analyticsStub{rows: []map[string]any{series(1, "connect", []float64{1, 1, 1, 1, 4}, zero, zero)}, fillToLimit: true}
	cf := analyticsClient(t, stub, nil).(spectrum.TrafficReader)
	got, err := cf.ZoneTraffic(context.Background(), "zone1", []string{appID(1), appID(2)}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, told := got.Apps[appID(2)]; told || got.Apps[appID(1)].Connections != 4 || len(got.Apps) != 1 {
		t.Errorf("apps %+v: want app 1's row only, app 2 untold", got.Apps)
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
		if n := len(stub.queriesOf("events/bytime")); n != 1 {
			t.Errorf("HTTP %d: %d requests, want the one refused", status, n)
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
	if !errors.Is(err, spectrum.ErrNotSent) || len(stub.queriesOf("events/bytime")) != 0 {
		t.Errorf("%v, %d requests", err, len(stub.queriesOf("events/bytime")))
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
		if len(got.Apps) != len(tc.apps) {
			t.Errorf("%s: %d apps read, want %d", tc.name, len(got.Apps), len(tc.apps))
		}
		for i, id := range tc.apps {
			perMinute := int64(60 + 2*i)
			errors := int64(0)
			if i%2 == 1 {
				errors = 5 * perMinute / 2
			}
			served := perMinute - perMinute*int64(i%2)/2
			want := spectrum.AppTraffic{Connections: perMinute, BytesIngress: 10 * served, BytesEgress: 100 * served,
				Connects: 5 * perMinute, OriginErrors: errors}
			if got.Apps[id] != want {
				t.Errorf("%s: app %d's traffic %+v, want %+v", tc.name, i, got.Apps[id], want)
			}
		}
		if _, ok := got.Apps[other.App.ID]; ok {
			t.Errorf("%s: another zone's app was read", tc.name)
		}
	}

	denied := connector.ForToken(noAnalyticsToken).(spectrum.TrafficReader)
	if _, err := denied.ZoneTraffic(testContext(t), enterpriseZone, ids[:1], 5*time.Minute); !spectrum.AnalyticsDenied(err) {
		t.Errorf("a token without analytics: %v, want AnalyticsDenied", err)
	}
}
