package spectrumtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

const (
	testZone  = "023e105f4ecef8ad9ca31a8372d0c353"
	testToken = "server-test-token"
)

func testServer(t *testing.T) *Server {
	t.Helper()
	cfg, err := ParseConfig([]byte(`
accounts: [{id: acct, plan: enterprise}]
tokens: [{token: ` + testToken + `, account: acct}]
zones: [{id: ` + testZone + `, name: example.com, account: acct}]
`))
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg)
	t.Cleanup(s.Close)
	return s
}

// wireEnvelope is the v4 envelope as raw JSON, to check shapes exactly.
type wireEnvelope struct {
	Success    bool            `json:"success"`
	Errors     []errorDetail   `json:"errors"`
	Messages   []any           `json:"messages"`
	Result     json.RawMessage `json:"result"`
	ResultInfo *resultInfo     `json:"result_info"`
}

func call(t *testing.T, method, url, token, body string) (*http.Response, wireEnvelope) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env wireEnvelope
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s %s: body %s: %v", method, url, raw, err)
		}
	}
	return resp, env
}

var rayPattern = regexp.MustCompile(`^[0-9a-f]{16}-SJC$`)

func TestEveryAnswerHasEnvelopeAndHeaders(t *testing.T) {
	s := testServer(t)
	apps := s.URL + "/zones/" + testZone + "/spectrum/apps"
	cases := []struct {
		method, url, token, body string
		status                   int
		code                     int
		rateHeaders              bool
	}{
		{"GET", apps, testToken, "", 200, 0, true},
		{"POST", apps, testToken, `{"protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.example.com"},"origin_direct":["tcp://192.0.2.1:22"]}`, 200, 0, true},
		{"POST", apps, testToken, `{"protocol":`, 400, codeInvalidRequest, true},
		{"GET", apps + "/nope", testToken, "", 404, codeAppNotFound, true},
		{"GET", apps, "", "", 401, codeAuthentication, false},
		{"GET", s.URL + "/zones/" + testZone + "/dns_records", testToken, "", 404, codeNoRoute, false},
		{"POST", apps + "/nope", testToken, "", 405, codeMethodNotAllowed, true},
	}
	for _, tc := range cases {
		resp, env := call(t, tc.method, tc.url, tc.token, tc.body)
		name := tc.method + " " + strings.TrimPrefix(tc.url, s.URL)
		if resp.StatusCode != tc.status || env.Success != (tc.code == 0) || env.Messages == nil || env.Errors == nil {
			t.Errorf("%s: HTTP %d %+v", name, resp.StatusCode, env)
		}
		if tc.code != 0 && (len(env.Errors) != 1 || env.Errors[0].Code != tc.code || string(env.Result) != "null") {
			t.Errorf("%s: errors %+v result %s, want code %d", name, env.Errors, env.Result, tc.code)
		}
		if !rayPattern.MatchString(resp.Header.Get("cf-ray")) {
			t.Errorf("%s: cf-ray %q", name, resp.Header.Get("cf-ray"))
		}
		if got := resp.Header.Get("Ratelimit") != "" && resp.Header.Get("Ratelimit-Policy") != ""; got != tc.rateHeaders {
			t.Errorf("%s: rate-limit headers present = %v", name, got)
		}
		if resp.Header.Get("X-RateLimit-Limit") != "" {
			t.Errorf("%s: legacy rate-limit headers by default", name)
		}
	}
}

func TestListPagination(t *testing.T) {
	s := testServer(t)
	for i := range 45 {
		app := App{Protocol: fmt.Sprintf("tcp/%d", 1000+i), DNS: DNS{Type: "CNAME", Name: fmt.Sprintf("a%02d.example.com", 44-i)}}
		if _, err := s.PutApp(testZone, app, false); err != nil {
			t.Fatal(err)
		}
	}
	apps := s.URL + "/zones/" + testZone + "/spectrum/apps"
	cases := []struct {
		query      string
		page, per  int
		count      int
		pages      int
		firstProto string
	}{
		{"", 1, 20, 20, 3, "tcp/1000"},
		{"?page=3", 3, 20, 5, 3, "tcp/1040"},
		{"?page=9", 9, 20, 0, 3, ""},
		{"?per_page=100", 1, 100, 45, 1, "tcp/1000"},
		{"?per_page=500", 1, 100, 45, 1, "tcp/1000"},
		{"?per_page=10&page=2&direction=desc", 2, 10, 10, 5, "tcp/1034"},
		{"?order=dns", 1, 20, 20, 3, "tcp/1044"},
	}
	for _, tc := range cases {
		_, env := call(t, "GET", apps+tc.query, testToken, "")
		var result []App
		if err := json.Unmarshal(env.Result, &result); err != nil {
			t.Fatal(err)
		}
		info := env.ResultInfo
		if info == nil || info.Page != tc.page || info.PerPage != tc.per || info.Count != tc.count || info.TotalCount != 45 || info.TotalPages != tc.pages || len(result) != tc.count {
			t.Errorf("%q: result_info %+v, %d results", tc.query, info, len(result))
			continue
		}
		if tc.count > 0 && result[0].Protocol != tc.firstProto {
			t.Errorf("%q: first is %s, want %s", tc.query, result[0].Protocol, tc.firstProto)
		}
	}
}

func TestPatchIsAcceptedLikePut(t *testing.T) {
	s := testServer(t)
	stored, err := s.PutApp(testZone, App{Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "ssh.example.com"},
		OriginDirect: []string{"tcp://192.0.2.1:22"}, TLS: "full"}, false)
	if err != nil {
		t.Fatal(err)
	}
	resp, env := call(t, "PATCH", s.URL+"/zones/"+testZone+"/spectrum/apps/"+stored.App.ID, testToken,
		`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.example.com"},"origin_direct":["tcp://192.0.2.2:22"]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("PATCH: HTTP %d %+v", resp.StatusCode, env.Errors)
	}
	got := s.Apps()[0].App
	// The whole config is replaced: tls falls back to its default.
	if got.OriginDirect[0] != "tcp://192.0.2.2:22" || got.TLS != "off" || got.ID != stored.App.ID || !got.CreatedOn.Equal(stored.App.CreatedOn) {
		t.Errorf("after PATCH: %+v", got)
	}
	if s.CallCount("PATCH") != 1 {
		t.Errorf("PATCH calls = %d", s.CallCount("PATCH"))
	}
}

func TestCreateFillsDefaults(t *testing.T) {
	s := testServer(t)
	_, env := call(t, "POST", s.URL+"/zones/"+testZone+"/spectrum/apps", testToken,
		`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.example.com"},"origin_direct":["tcp://192.0.2.1:22"],"unknown_field":1}`)
	var fields map[string]any
	if err := json.Unmarshal(env.Result, &fields); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"proxy_protocol": "off", "tls": "off", "traffic_type": "direct", "ip_firewall": false, "argo_smart_routing": false} {
		if fields[key] != want {
			t.Errorf("%s = %v, want %v", key, fields[key], want)
		}
	}
	if edge, _ := fields["edge_ips"].(map[string]any); edge["type"] != "dynamic" || edge["connectivity"] != "all" {
		t.Errorf("edge_ips = %v", fields["edge_ips"])
	}
	if fields["id"] == "" || fields["created_on"] == nil || fields["unknown_field"] != nil {
		t.Errorf("result = %v", fields)
	}
}

func TestLegacyShapeOnTheWire(t *testing.T) {
	s := testServer(t)
	stored, err := s.PutApp(testZone, App{Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "old.example.com"},
		OriginDNS: &OriginDNS{Name: "o.example.com"}, OriginPort: Port(22),
		ProxyProtocol: "v1", EdgeIPs: &EdgeIPs{Type: "dynamic"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	_, env := call(t, "GET", s.URL+"/zones/"+testZone+"/spectrum/apps/"+stored.App.ID, testToken, "")
	var fields map[string]any
	if err := json.Unmarshal(env.Result, &fields); err != nil {
		t.Fatal(err)
	}
	if fields["proxy_protocol"] != true || fields["ipv4"] != true || fields["spp"] != false || fields["edge_ips"] != nil || fields["origin_port"] != "22" {
		t.Errorf("legacy result = %v", fields)
	}
	if od := fields["origin_dns"].(map[string]any); od["type"] != nil {
		t.Errorf("origin_dns = %v", od)
	}
}
