package spectrumtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const noAnalyticsToken = "no-analytics-token"

// analyticsWorld has two apps with traffic set from base, two hours before
// the last full hour, so that every window the tests ask for lies in the
// past and its figures are exact:
//   - busy: 60 connections a minute over SJC and LHR, half IPv6, 100 bytes
//     in, 1,000 out, 2 s each: 15 a minute in each colo and IP version;
//   - failing: 30 a minute in SJC over IPv4, half of them originErrors,
//     10 bytes in, 20 out, 0.5 s each.
type analyticsWorld struct {
	s                      *Server
	base                   time.Time
	busy, failing, quiet   string
	busyTraffic, failTraff Traffic
}

func newAnalyticsWorld(t *testing.T, rateLimit string) analyticsWorld {
	t.Helper()
	cfg, err := ParseConfig([]byte(`
accounts: [{id: acct, plan: enterprise}]
tokens:
  - {token: ` + testToken + `, account: acct}
  - {token: ` + noAnalyticsToken + `, account: acct, withoutAnalyticsPermission: true}
zones: [{id: ` + testZone + `, name: example.com, account: acct}]
` + rateLimit))
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg)
	t.Cleanup(s.Close)
	w := analyticsWorld{s: s, base: time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour),
		busyTraffic: Traffic{ConnectionsPerMinute: 60, BytesIngressPerConnection: 100, BytesEgressPerConnection: 1000,
			DurationMilliseconds: 2000, Colos: []string{"SJC", "lhr"}, IPv6Share: 0.5},
		failTraff: Traffic{ConnectionsPerMinute: 30, BytesIngressPerConnection: 10, BytesEgressPerConnection: 20,
			DurationMilliseconds: 500, OriginErrorShare: 0.5},
	}
	// IDs in the order of the names, as rows without a sort come ordered
	// by their dimensions' values.
	for i, app := range []struct {
		id      *string
		name    string
		traffic Traffic
	}{{&w.busy, "busy", w.busyTraffic}, {&w.failing, "failing", w.failTraff}, {&w.quiet, "quiet", Traffic{}}} {
		stored, err := s.PutApp(testZone, App{ID: fmt.Sprintf("%032d", i+1), Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: app.name + ".example.com"},
			OriginDirect: []string{"tcp://192.0.2.1:22"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		*app.id = stored.App.ID
		if err := s.SetTraffic(testZone, stored.App.ID, app.traffic, w.base); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w analyticsWorld) url(report string, query url.Values) string {
	return w.s.URL + "/zones/" + testZone + "/spectrum/analytics/" + report + "?" + query.Encode()
}

// at is base plus minutes, as the query's RFC 3339 text.
func (w analyticsWorld) at(minutes int) string {
	return w.base.Add(time.Duration(minutes) * time.Minute).Format(time.RFC3339)
}

// name replaces the apps' IDs in text by their names, to write the
// expectations readably.
func (w analyticsWorld) name(text string) string {
	var pairs []string
	for id, name := range map[string]string{w.busy: "busy", w.failing: "failing", w.quiet: "quiet"} {
		if id != "" {
			pairs = append(pairs, id, name)
		}
	}
	return strings.NewReplacer(pairs...).Replace(text)
}

type wireEvents struct {
	Data []struct {
		Dimensions []string        `json:"dimensions"`
		Metrics    json.RawMessage `json:"metrics"`
	} `json:"data"`
	DataLag       *float64           `json:"data_lag"`
	Max           map[string]float64 `json:"max"`
	Min           map[string]float64 `json:"min"`
	Totals        map[string]float64 `json:"totals"`
	Rows          int                `json:"rows"`
	Query         map[string]any     `json:"query"`
	TimeIntervals [][]time.Time      `json:"time_intervals"`
}

// rows writes data as "dim,dim=metrics" lines, app IDs by name.
func (w analyticsWorld) rows(ev wireEvents) []string {
	out := []string{}
	for _, row := range ev.Data {
		out = append(out, w.name(strings.Join(row.Dimensions, ","))+"="+string(row.Metrics))
	}
	return out
}

func (w analyticsWorld) events(t *testing.T, report string, query url.Values) wireEvents {
	t.Helper()
	resp, env := call(t, "GET", w.url(report, query), testToken, "")
	if resp.StatusCode != http.StatusOK || !env.Success {
		t.Fatalf("%s %v: HTTP %d %+v", report, query, resp.StatusCode, env.Errors)
	}
	var ev wireEvents
	if err := json.Unmarshal(env.Result, &ev); err != nil {
		t.Fatalf("%s: %v", env.Result, err)
	}
	if ev.DataLag == nil || ev.Query == nil || ev.Totals == nil || ev.Min == nil || ev.Max == nil {
		t.Errorf("result lacks a field of Cloudflare's shape: %s", env.Result)
	}
	return ev
}

func TestAnalyticsSummary(t *testing.T) {
	w := newAnalyticsWorld(t, "")
	window := func(extra url.Values) url.Values {
		q := url.Values{"since": {w.at(10)}, "until": {w.at(20)}}
		for k, v := range extra {
			q[k] = v
		}
		return q
	}
	// Ten minutes: busy 600 connects and 600 disconnects; failing 300
	// connects, 150 originErrors, 150 disconnects.
	cases := []struct {
		name   string
		query  url.Values
		rows   []string
		totals map[string]float64
	}{
		{"no dimensions: one row of every event", window(url.Values{"metrics": {"count"}}),
			[]string{"=[1800]"}, map[string]float64{"count": 1800}},
		{"metrics default to count", window(nil), []string{"=[1800]"}, map[string]float64{"count": 1800}},
		{"by event", window(url.Values{"dimensions": {"event"}}),
			[]string{"connect=[900]", "disconnect=[750]", "originError=[150]"}, map[string]float64{"count": 1800}},
		{"origin errors by app", window(url.Values{"dimensions": {"appID"}, "filters": {"event==originError"}}),
			[]string{"failing=[150]"}, map[string]float64{"count": 150}},
		{"OR with a comma, repeated and comma-joined dimensions", window(url.Values{"dimensions": {"appID,event"}, "filters": {"event==connect,event==originError"}, "sort": {"appID", "event"}}),
			[]string{"busy,connect=[600]", "failing,connect=[300]", "failing,originError=[150]"}, map[string]float64{"count": 1050}},
		{"OR keyword", window(url.Values{"dimensions": {"event"}, "filters": {"event==connect OR event==originError"}}),
			[]string{"connect=[900]", "originError=[150]"}, map[string]float64{"count": 1050}},
		{"AND with a semicolon, colos upper-case", window(url.Values{"dimensions": {"coloName"}, "filters": {"event==connect;appID==" + w.busy}}),
			[]string{"LHR=[300]", "SJC=[300]"}, map[string]float64{"count": 600}},
		{"AND keyword and !=", window(url.Values{"dimensions": {"coloName"}, "filters": {"event==connect AND coloName!=LHR"}}),
			[]string{"SJC=[600]"}, map[string]float64{"count": 600}},
		{"ipVersion compared as a number", window(url.Values{"dimensions": {"ipVersion"}, "filters": {"event==connect;ipVersion>4"}}),
			[]string{"6=[300]"}, map[string]float64{"count": 300}},
		{"bytes and durations", window(url.Values{"dimensions": {"appID"}, "metrics": {"bytesIngress", "bytesEgress", "durationAvg"}, "filters": {"event==disconnect"}}),
			[]string{"busy=[60000,600000,2000]", "failing=[1500,3000,500]"},
			map[string]float64{"bytesIngress": 61500, "bytesEgress": 603000, "durationAvg": (600*2000 + 150*500) / 750.0}},
		{"percentiles are nearest-rank over connections", window(url.Values{"metrics": {"durationMedian", "duration90th", "duration99th"}, "filters": {"event==disconnect"}}),
			[]string{"=[2000,2000,2000]"}, map[string]float64{"durationMedian": 2000, "duration90th": 2000, "duration99th": 2000}},
		{"percentile of the short ones", window(url.Values{"metrics": {"durationMedian"}, "filters": {"event==disconnect;appID==" + w.failing}}),
			[]string{"=[500]"}, map[string]float64{"durationMedian": 500}},
		{"sort descending and limit", window(url.Values{"dimensions": {"appID"}, "sort": {"-count"}, "limit": {"1"}}),
			[]string{"busy=[1200]"}, map[string]float64{"count": 1800}},
		{"sort ascending", window(url.Values{"dimensions": {"appID"}, "sort": {"+count"}}),
			[]string{"failing=[600]", "busy=[1200]"}, map[string]float64{"count": 1800}},
		{"before the traffic began, nothing", url.Values{"dimensions": {"appID"}, "since": {w.at(-30)}, "until": {w.at(-20)}},
			[]string{}, map[string]float64{"count": 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := w.events(t, "events/summary", tc.query)
			if got := w.rows(ev); !reflect.DeepEqual(got, tc.rows) {
				t.Errorf("rows %q, want %q", got, tc.rows)
			}
			if !reflect.DeepEqual(ev.Totals, tc.totals) {
				t.Errorf("totals %v, want %v", ev.Totals, tc.totals)
			}
			if ev.Rows != len(tc.rows) {
				t.Errorf("rows = %d, want %d", ev.Rows, len(tc.rows))
			}
		})
	}

	// min and max are over every row, before the limit; the query is
	// echoed as understood.
	ev := w.events(t, "events/summary", window(url.Values{"dimensions": {"appID"}, "sort": {"-count"}, "limit": {"1"}}))
	if ev.Max["count"] != 1200 || ev.Min["count"] != 600 {
		t.Errorf("max %v min %v, want 1200 and 600", ev.Max, ev.Min)
	}
	if ev.Query["limit"] != float64(1) || ev.Query["since"] != w.at(10) || ev.Query["until"] != w.at(20) ||
		!reflect.DeepEqual(ev.Query["metrics"], []any{"count"}) || !reflect.DeepEqual(ev.Query["dimensions"], []any{"appID"}) {
		t.Errorf("query echoed as %v", ev.Query)
	}
}

// since defaults to until − 6 hours, until to now.
func TestAnalyticsDefaultWindow(t *testing.T) {
	w := newAnalyticsWorld(t, "")
	ev := w.events(t, "events/summary", url.Values{"dimensions": {"event"}, "filters": {"event==connect"}, "until": {w.at(30)}})
	if rows := w.rows(ev); !reflect.DeepEqual(rows, []string{"connect=[2700]"}) {
		t.Errorf("30 minutes of traffic until base+30m: %q, want 90 a minute × 30", rows)
	}
	since, _ := time.Parse(time.RFC3339, ev.Query["since"].(string))
	if want := w.base.Add(30*time.Minute - 6*time.Hour); !since.Equal(want) {
		t.Errorf("since defaulted to %s, want %s", since, want)
	}
	ev = w.events(t, "events/summary", url.Values{})
	until, _ := time.Parse(time.RFC3339Nano, ev.Query["until"].(string))
	if time.Since(until) > time.Minute || time.Until(until) > time.Second {
		t.Errorf("until defaulted to %s, want now", until)
	}
}

func TestAnalyticsByTime(t *testing.T) {
	w := newAnalyticsWorld(t, "")
	cases := []struct {
		name      string
		query     url.Values
		intervals [][2]int // minutes after base
		rows      []string
	}{
		{"minutes", url.Values{"since": {w.at(10)}, "until": {w.at(13)}, "time_delta": {"minute"}, "dimensions": {"appID"}, "filters": {"event==connect"}},
			[][2]int{{10, 11}, {11, 12}, {12, 13}}, []string{"busy=[[60,60,60]]", "failing=[[30,30,30]]"}},
		{"omitted: minutes for a short span", url.Values{"since": {w.at(10)}, "until": {w.at(12)}, "filters": {"event==originError"}},
			[][2]int{{10, 11}, {11, 12}}, []string{"=[[15,15]]"}},
		{"dekaminutes on their boundaries, clipped to the window", url.Values{"since": {w.at(5)}, "until": {w.at(25)}, "time_delta": {"dekaminute"}, "filters": {"event==connect;appID==" + w.busy}, "metrics": {"count", "bytesIngress"}},
			[][2]int{{0, 10}, {10, 20}, {20, 30}}, []string{"=[[300,600,300],[0,0,0]]"}},
		{"one series per metric", url.Values{"since": {w.at(0)}, "until": {w.at(2)}, "time_delta": {"minute"}, "filters": {"event==disconnect;appID==" + w.failing}, "metrics": {"count", "bytesEgress", "durationAvg"}},
			[][2]int{{0, 1}, {1, 2}}, []string{"=[[15,15],[300,300],[500,500]]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := w.events(t, "events/bytime", tc.query)
			if got := w.rows(ev); !reflect.DeepEqual(got, tc.rows) {
				t.Errorf("rows %q, want %q", got, tc.rows)
			}
			var intervals [][2]int
			for _, iv := range ev.TimeIntervals {
				if len(iv) != 2 {
					t.Fatalf("time interval %v", iv)
				}
				intervals = append(intervals, [2]int{int(iv[0].Sub(w.base).Minutes()), int(iv[1].Sub(w.base).Minutes())})
			}
			if !reflect.DeepEqual(intervals, tc.intervals) {
				t.Errorf("time_intervals (minutes after base) %v, want %v", intervals, tc.intervals)
			}
		})
	}
}

func TestAnalyticsCurrentAggregate(t *testing.T) {
	w := newAnalyticsWorld(t, "")
	cases := []struct {
		name  string
		query url.Values
		want  []string
	}{
		{"every app with traffic in the last minute; the quiet one left out", url.Values{},
			[]string{"busy: 60 connections, 6000 in, 60000 out, 2000 ms", "failing: 30 connections, 150 in, 300 out, 500 ms"}},
		{"appID list", url.Values{"appID": {w.failing + "," + w.quiet}}, []string{"failing: 30 connections, 150 in, 300 out, 500 ms"}},
		{"the 3.x SDK's app_id_param", url.Values{"app_id_param": {w.busy}}, []string{"busy: 60 connections, 6000 in, 60000 out, 2000 ms"}},
		{"colo_name", url.Values{"colo_name": {"LHR"}}, []string{"busy: 30 connections, 3000 in, 30000 out, 2000 ms"}},
		{"an unknown app", url.Values{"appID": {"0123"}}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, env := call(t, "GET", w.url("aggregate/current", tc.query), testToken, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d %+v", resp.StatusCode, env.Errors)
			}
			var result []struct {
				AppID        *string  `json:"appID"`
				BytesIngress *float64 `json:"bytesIngress"`
				BytesEgress  *float64 `json:"bytesEgress"`
				Connections  *float64 `json:"connections"`
				DurationAvg  *float64 `json:"durationAvg"`
			}
			if err := json.Unmarshal(env.Result, &result); err != nil || result == nil {
				t.Fatalf("result %s: %v", env.Result, err)
			}
			got := []string{}
			for _, r := range result {
				if r.AppID == nil || r.BytesIngress == nil || r.BytesEgress == nil || r.Connections == nil || r.DurationAvg == nil {
					t.Fatalf("a field is missing: %s", env.Result)
				}
				got = append(got, w.name(*r.AppID)+": "+strings.Join([]string{ftoa(*r.Connections) + " connections", ftoa(*r.BytesIngress) + " in",
					ftoa(*r.BytesEgress) + " out", ftoa(*r.DurationAvg) + " ms"}, ", "))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func ftoa(f float64) string { b, _ := json.Marshal(f); return string(b) }

func TestAnalyticsRefusesBadQueries(t *testing.T) {
	w := newAnalyticsWorld(t, "")
	cases := map[string]url.Values{
		"unknown dimension":     {"dimensions": {"colo"}},
		"unknown metric":        {"metrics": {"requests"}},
		"sort outside metrics":  {"sort": {"-bytesIngress"}},
		"malformed filter":      {"filters": {"event=connect"}},
		"filter on a metric":    {"filters": {"count>1"}},
		"since after until":     {"since": {w.at(20)}, "until": {w.at(10)}},
		"time that is not 3339": {"since": {"yesterday"}},
		"limit 0":               {"limit": {"0"}},
	}
	for name, query := range cases {
		for _, report := range []string{"events/summary", "events/bytime"} {
			resp, env := call(t, "GET", w.url(report, query), testToken, "")
			if resp.StatusCode != http.StatusBadRequest || len(env.Errors) != 1 || env.Errors[0].Code != codeInvalidRequest || env.Success {
				t.Errorf("%s, %s: HTTP %d %+v, want 400 with code %d", name, report, resp.StatusCode, env.Errors, codeInvalidRequest)
			}
		}
	}
	resp, _ := call(t, "GET", w.url("events/bytime", url.Values{"time_delta": {"fortnight"}}), testToken, "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("time_delta fortnight: HTTP %d, want 400", resp.StatusCode)
	}
	resp, _ = call(t, "GET", w.url("events/bytime", url.Values{"time_delta": {"minute"}, "since": {"2020-01-01T00:00:00Z"}}), testToken, "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("years of minutes: HTTP %d, want 400", resp.StatusCode)
	}
	resp, _ = call(t, "POST", w.url("events/summary", nil), testToken, "")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: HTTP %d, want 405", resp.StatusCode)
	}
	resp, _ = call(t, "GET", w.s.URL+"/zones/"+testZone+"/spectrum/analytics/events/other", testToken, "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown report: HTTP %d, want 404", resp.StatusCode)
	}
}

// A token without the analytics permission gets Cloudflare's 403 with code
// 10000 from every analytics endpoint, while the apps endpoints answer it;
// the permission can be granted and removed at run time.
func TestAnalyticsWithoutPermission(t *testing.T) {
	w := newAnalyticsWorld(t, "")
	reports := []string{"aggregate/current", "events/summary", "events/bytime"}
	expect := func(token string, want int) {
		t.Helper()
		for _, report := range reports {
			resp, env := call(t, "GET", w.url(report, nil), token, "")
			if resp.StatusCode != want {
				t.Errorf("%s: HTTP %d, want %d", report, resp.StatusCode, want)
			}
			if want == http.StatusForbidden && (env.Success || len(env.Errors) != 1 || env.Errors[0].Code != 10000 || env.Errors[0].Message != "Authentication error") {
				t.Errorf("%s: %+v, want code 10000 Authentication error", report, env.Errors)
			}
		}
		if resp, _ := call(t, "GET", w.s.URL+"/zones/"+testZone+"/spectrum/apps", token, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("apps list: HTTP %d, want 200 whatever the analytics permission", resp.StatusCode)
		}
	}
	expect(noAnalyticsToken, http.StatusForbidden)
	expect(testToken, http.StatusOK)

	admin(t, w.s, "POST", "/tokens/analytics", `{"token":"`+noAnalyticsToken+`","allowed":true}`, http.StatusNoContent, nil)
	expect(noAnalyticsToken, http.StatusOK)
	if err := w.s.SetTokenAnalytics(testToken, false); err != nil {
		t.Fatal(err)
	}
	expect(testToken, http.StatusForbidden)
	var state State
	admin(t, w.s, "GET", "/state", "", http.StatusOK, &state)
	for _, tok := range state.Tokens {
		if tok.AnalyticsPermission != (tok.Fingerprint == fingerprint(noAnalyticsToken)) {
			t.Errorf("state shows token %s with analytics permission %t", tok.Fingerprint, tok.AnalyticsPermission)
		}
	}
	admin(t, w.s, "POST", "/tokens/analytics", `{"token":"unknown","allowed":true}`, http.StatusNotFound, nil)
}

// Analytics calls spend the user's one budget like every other call, and
// are refused with everything else once it is spent.
func TestAnalyticsSpendTheSameBudget(t *testing.T) {
	w := newAnalyticsWorld(t, "rateLimit: {limit: 4, window: 60s, enforce: true}")
	for i, report := range []string{"aggregate/current", "events/summary", "events/bytime"} {
		resp, _ := call(t, "GET", w.url(report, nil), testToken, "")
		if r, _ := remaining(t, resp); resp.StatusCode != http.StatusOK || r != 3-i {
			t.Errorf("%s: HTTP %d, %d left, want 200 and %d left", report, resp.StatusCode, r, 3-i)
		}
	}
	if resp := list(t, w.s, testToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("the 4th call: HTTP %d", resp.StatusCode)
	}
	resp, env := call(t, "GET", w.url("events/summary", nil), testToken, "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || len(env.Errors) != 1 {
		t.Errorf("analytics over the budget: HTTP %d %+v, want 429 with Retry-After", resp.StatusCode, env.Errors)
	}
	if resp := list(t, w.s, testToken); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("apps after analytics spent the budget: HTTP %d, want 429 (the user is blocked)", resp.StatusCode)
	}
	if got := w.s.RateLimited(); got != 2 {
		t.Errorf("RateLimited() = %d, want 2", got)
	}
	// A refused permission spends the budget too.
	other := newAnalyticsWorld(t, "rateLimit: {limit: 2, window: 60s, enforce: true}")
	for range 2 {
		if resp, _ := call(t, "GET", other.url("events/summary", nil), noAnalyticsToken, ""); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("HTTP %d, want 403", resp.StatusCode)
		}
	}
	if resp, _ := call(t, "GET", other.url("events/summary", nil), noAnalyticsToken, ""); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the 3rd refused call: HTTP %d, want 429", resp.StatusCode)
	}
}

func TestAnalyticsHonourFaults(t *testing.T) {
	w := newAnalyticsWorld(t, "")
	if _, err := w.s.AddFault(Fault{Kind: FaultInternalError, PathPrefix: "/zones/" + testZone + "/spectrum/analytics", Count: 3}); err != nil {
		t.Fatal(err)
	}
	for _, report := range []string{"aggregate/current", "events/summary", "events/bytime"} {
		if resp, env := call(t, "GET", w.url(report, nil), testToken, ""); resp.StatusCode != http.StatusInternalServerError || len(env.Errors) != 1 || env.Errors[0].Code != codeInternalError {
			t.Errorf("%s: HTTP %d %+v, want the injected 500", report, resp.StatusCode, env.Errors)
		}
	}
	if resp, _ := call(t, "GET", w.url("events/summary", nil), testToken, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("after the fault's count: HTTP %d", resp.StatusCode)
	}
	if w.s.FaultsFired() != 3 {
		t.Errorf("FaultsFired() = %d, want 3", w.s.FaultsFired())
	}
}

// Marking an app's origins failing turns that share of its connections
// into originError events from then on, its traffic otherwise unchanged;
// the past stays as it was, and 0 heals it.
func TestOriginErrorsKnob(t *testing.T) {
	w := newAnalyticsWorld(t, "")
	if err := w.s.SetOriginErrors(testZone, w.busy, 0.2, w.base.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var traffic Traffic
	admin(t, w.s, "PUT", "/apps/"+testZone+"/"+w.busy+"/origin-errors",
		`{"share": 0, "from": "`+w.at(40)+`"}`, http.StatusOK, &traffic)
	if traffic.OriginErrorShare != 0 || traffic.ConnectionsPerMinute != 60 || traffic.BytesIngressPerConnection != 100 {
		t.Errorf("after healing: %+v", traffic)
	}
	summary := func(from, to int) []string {
		return w.rows(w.events(t, "events/summary", url.Values{"since": {w.at(from)}, "until": {w.at(to)},
			"dimensions": {"event"}, "metrics": {"count", "bytesIngress"}, "filters": {"appID==" + w.busy}}))
	}
	healthy := []string{"connect=[600,0]", "disconnect=[600,60000]"}
	// 150 a stream in ten minutes, floor(150 × 0.2) = 30 of them failed, in
	// each of the four streams.
	failing := []string{"connect=[600,0]", "disconnect=[480,48000]", "originError=[120,0]"}
	for _, tc := range []struct {
		from, to int
		want     []string
	}{{10, 20, healthy}, {20, 30, failing}, {30, 40, failing}, {40, 50, healthy}} {
		if got := summary(tc.from, tc.to); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("minutes %d-%d: %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}

	// Over HTTP: set traffic, read it back.
	admin(t, w.s, "PUT", "/apps/"+testZone+"/"+w.quiet+"/traffic",
		`{"connectionsPerMinute": 6, "colos": ["ams"], "originErrorShare": 1, "from": "`+w.at(0)+`"}`, http.StatusOK, &traffic)
	if traffic.ConnectionsPerMinute != 6 || !reflect.DeepEqual(traffic.Colos, []string{"AMS"}) || traffic.OriginErrorShare != 1 {
		t.Errorf("traffic set over HTTP reads %+v", traffic)
	}
	ev := w.events(t, "events/summary", url.Values{"since": {w.at(0)}, "until": {w.at(10)}, "dimensions": {"coloName", "event"}, "filters": {"appID==" + w.quiet}})
	if got := w.rows(ev); !reflect.DeepEqual(got, []string{"AMS,connect=[60]", "AMS,originError=[60]"}) {
		t.Errorf("an app whose origins all fail: %q", got)
	}
	admin(t, w.s, "PUT", "/apps/"+testZone+"/"+w.quiet+"/origin-errors", `{"share": 1.5}`, http.StatusBadRequest, nil)
	admin(t, w.s, "GET", "/apps/"+testZone+"/missing/traffic", "", http.StatusNotFound, nil)
	if err := w.s.SetTraffic(testZone, w.quiet, Traffic{ConnectionsPerMinute: -1}, time.Time{}); err == nil {
		t.Error("a negative rate was accepted")
	}

	// A deleted app's traffic goes with it.
	if err := w.s.DeleteApp(testZone, w.quiet); err != nil {
		t.Fatal(err)
	}
	ev = w.events(t, "events/summary", url.Values{"since": {w.at(0)}, "until": {w.at(10)}, "filters": {"appID==" + w.quiet}})
	if got := w.rows(ev); !reflect.DeepEqual(got, []string{"=[0]"}) {
		t.Errorf("a deleted app's traffic: %q", got)
	}
}

// Without a test's say, an app carries the configured default traffic from
// its creation.
func TestDefaultTrafficFromCreation(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
accounts: [{id: acct, plan: enterprise}]
tokens: [{token: ` + testToken + `, account: acct}]
zones: [{id: ` + testZone + `, name: example.com, account: acct}]
traffic: {connectionsPerMinute: 120, bytesIngressPerConnection: 1, colos: [fra, cdg]}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg)
	t.Cleanup(s.Close)
	created := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	stored, err := s.PutApp(testZone, App{CreatedOn: created, Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "a.example.com"},
		OriginDirect: []string{"tcp://192.0.2.1:22"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	w := analyticsWorld{s: s, base: created, busy: stored.App.ID}
	ev := w.events(t, "events/summary", url.Values{"since": {w.at(-5)}, "until": {w.at(5)}, "dimensions": {"coloName"}, "filters": {"event==connect"}})
	if got := w.rows(ev); !reflect.DeepEqual(got, []string{"CDG=[300]", "FRA=[300]"}) {
		t.Errorf("five minutes since creation at 120 a minute over two colos: %q", got)
	}
	if got, _ := s.Traffic(testZone, stored.App.ID); got.ConnectionsPerMinute != 120 || !reflect.DeepEqual(got.Colos, []string{"FRA", "CDG"}) {
		t.Errorf("Traffic() = %+v", got)
	}
	if _, err := ParseConfig([]byte(`traffic: {ipv6Share: 2}`)); err == nil || !strings.Contains(err.Error(), "ipv6Share") {
		t.Errorf("a traffic config with ipv6Share 2: %v", err)
	}
	if DefaultTraffic().ConnectionsPerMinute != 60 {
		t.Errorf("DefaultTraffic() = %+v, documented as a connection a second", DefaultTraffic())
	}
}
