package spectrum

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func answer(status int, body string, header ...string) response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return response{method: http.MethodGet, path: "/zones/z/spectrum/apps/a", status: status, header: h, body: []byte(body)}
}

func TestDecodeResponse(t *testing.T) {
	cases := []struct {
		name        string
		response    response
		wantErr     bool
		wantCodes   []int
		wantProblem string
		wantApp     App
	}{
		{name: "success", response: answer(200, `{"success":true,"errors":[],"result":{"id":"a1","protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.example.com"}}}`),
			wantApp: App{ID: "a1", Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "ssh.example.com"}}},
		{name: "error envelope", response: answer(403, `{"success":false,"errors":[{"code":11026,"message":"Argo Smart Routing is not enabled"}],"result":null}`, "cf-ray", "8a1b2c3d4e5f6a7b-SJC"),
			wantErr: true, wantCodes: []int{11026}},
		{name: "200 with success false", response: answer(200, `{"success":false,"errors":[{"code":10002,"message":"internal"}]}`),
			wantErr: true, wantCodes: []int{10002}},
		{name: "HTML 502", response: answer(502, "<html><head><title>502 Bad Gateway</title></head></html>", "Content-Type", "text/html; charset=utf-8"),
			wantErr: true, wantProblem: "not JSON (text/html)"},
		{name: "empty 503", response: answer(503, ""), wantErr: true, wantProblem: "empty response body"},
		{name: "empty 200", response: answer(200, "   "), wantErr: true, wantProblem: "empty response body"},
		{name: "truncated JSON", response: answer(200, `{"success":true,"result":{"id":"a`), wantErr: true, wantProblem: "truncated JSON"},
		{name: "wrong types", response: answer(200, `{"success":"yes","result":{}}`), wantErr: true, wantProblem: "wrong type"},
		{name: "result of wrong type", response: answer(200, `{"success":true,"result":[1,2]}`), wantErr: true, wantProblem: "not an application"},
		{name: "no result", response: answer(200, `{"success":true,"errors":[]}`), wantErr: true, wantProblem: "no result"},
		{name: "non-2xx with success true", response: answer(500, `{"success":true,"result":{}}`), wantErr: true},
		{name: "too large", response: response{status: 200, header: http.Header{}, body: []byte("{"), truncated: true},
			wantErr: true, wantProblem: "larger than 4 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var app App
			_, err := decodeResponse(tc.response, &app)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if app.ID != tc.wantApp.ID || app.Protocol != tc.wantApp.Protocol || app.DNS != tc.wantApp.DNS {
					t.Fatalf("app = %+v, want %+v", app, tc.wantApp)
				}
				return
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if apiErr.HTTPStatus != tc.response.status {
				t.Errorf("HTTPStatus = %d, want %d", apiErr.HTTPStatus, tc.response.status)
			}
			if got := apiErr.Codes(); !equalInts(got, tc.wantCodes) {
				t.Errorf("codes = %v, want %v", got, tc.wantCodes)
			}
			if !strings.Contains(apiErr.BodyProblem, tc.wantProblem) {
				t.Errorf("BodyProblem = %q, want it to contain %q", apiErr.BodyProblem, tc.wantProblem)
			}
			if apiErr.RayID != tc.response.header.Get("cf-ray") {
				t.Errorf("RayID = %q", apiErr.RayID)
			}
		})
	}
}

func TestAPIErrorMessage(t *testing.T) {
	err := &APIError{HTTPStatus: 403, Method: "POST", Path: "/zones/023e/spectrum/apps", RayID: "8a1b2c-SJC",
		Errors: []ErrorDetail{{Code: 11026, Message: "Argo Smart Routing is not enabled"}}}
	want := "cloudflare: POST /zones/023e/spectrum/apps: HTTP 403: 11026 Argo Smart Routing is not enabled (ray 8a1b2c-SJC)"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q\nwant      %q", got, want)
	}
}

func TestIsNotFound(t *testing.T) {
	cases := map[string]struct {
		err  error
		want bool
	}{
		"404":          {&APIError{HTTPStatus: 404}, true},
		"code 10006":   {&APIError{HTTPStatus: 400, Errors: []ErrorDetail{{Code: 10006}}}, true},
		"wrapped 404":  {errors.Join(errors.New("context"), &APIError{HTTPStatus: 404}), true},
		"403":          {&APIError{HTTPStatus: 403, Errors: []ErrorDetail{{Code: 10000}}}, false},
		"not an API":   {errors.New("boom"), false},
		"nil":          {nil, false},
		"request fail": {&RequestError{Err: errors.New("reset")}, false},
	}
	for name, tc := range cases {
		if got := IsNotFound(tc.err); got != tc.want {
			t.Errorf("%s: IsNotFound = %v, want %v", name, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"30":                            30 * time.Second,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"299":                           299 * time.Second,
		"300":                           300 * time.Second,
		"86400":                         300 * time.Second, // one shared token must not pause every tenant for a day
		"99999999999":                   300 * time.Second,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Sat, 03 Jan 2026 03:04:05 GMT": 300 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
	}
	for value, want := range cases {
		if got := ParseRetryAfter(value, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", value, got, want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzDecodeResponse checks that no answer, however broken, panics the
// decoder, and that a non-2xx status is always an error.
func FuzzDecodeResponse(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, `{"success":true,"errors":[],"messages":[],"result":{"id":"a","protocol":"tcp/22","dns":{"type":"CNAME","name":"a.example.com"},"origin_direct":["tcp://192.0.2.1:22"]}}`},
		{200, `{"success":true,"result":{"id":"a","protocol":"tcp/2022-2023","dns":{"name":"a.example.com"},"origin_dns":{"name":"o.example.com"},"origin_port":"2022-2023","proxy_protocol":true,"ipv4":true,"spp":false}}`},
		{200, `{"success":true,"result":{"id":"a","origin_port":22,"proxy_protocol":false}}`},
		{200, `{"success":true,"result":[{"id":"a"},{"id":"b"}],"result_info":{"page":1,"per_page":20,"count":2,"total_count":2}}`},
		{403, `{"success":false,"errors":[{"code":11026,"message":"Argo Smart Routing is not enabled"}],"result":null}`},
		{400, `{"success":false,"errors":[{"code":11000,"message":"a"},{"code":11001,"message":"b"}]}`},
		{429, `{"success":false,"errors":[{"code":10100,"message":"More than 1200 requests per 300 seconds reached."}]}`},
		{502, "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"},
		{503, ""},
		{200, `{"success":true,"result":{"id":"a`},
		{200, `{"success":"true","errors":"none","result":5}`},
		{500, `{"errors":[{"code":"10002","message":7}]}`},
		{200, `null`},
		{204, `[]`},
		{200, "\xff\xfe{"},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			t.Skip()
		}
		r := response{method: http.MethodGet, path: "/zones/z/spectrum/apps", status: status, header: http.Header{}, body: body}
		var app App
		_, errOne := decodeResponse(r, &app)
		var apps []App
		_, errList := decodeResponse(r, &apps)
		_, errNone := decodeResponse(r, nil)
		for _, err := range []error{errOne, errList, errNone} {
			if status < 200 || status > 299 {
				if err == nil {
					t.Fatalf("status %d decoded without error", status)
				}
			}
			if err != nil {
				var apiErr *APIError
				if !errors.As(err, &apiErr) {
					t.Fatalf("error %v is not an *APIError", err)
				}
				if apiErr.Error() == "" || Classify(err).Message == "" {
					t.Fatalf("empty message for %v", err)
				}
			}
		}
	})
}
