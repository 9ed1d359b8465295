package spectrum_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// Whatever comes back from a 2xx or 5xx answer that is not a usable v4
// envelope (a proxy's HTML page, nothing, half a body, the wrong shapes, a
// runaway body), every client call returns an error, never panics, and the
// error is classified Retryable: the operator tries again later instead of
// stalling or acting on garbage. (A malformed 4xx is classified by its
// status, like any 4xx.)
func TestMalformedResponsesAreRetryable(t *testing.T) {
	huge := strings.Repeat("a", 5<<20)
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		// cut sends a Content-Length longer than the body and closes the
		// connection after the body.
		cut bool
		// envelopeOK bodies are valid envelopes with a bad result: a
		// delete, which reads no result, may accept them.
		envelopeOK bool
		// wantInMessage is a hint the condition message must carry.
		wantInMessage string
	}{
		{name: "HTML 200", status: 200, contentType: "text/html", body: "<html><body>Just a moment...</body></html>", wantInMessage: "not JSON (text/html)"},
		{name: "HTML 502", status: 502, contentType: "text/html", body: "<html><head><title>502 Bad Gateway</title></head></html>", wantInMessage: "not JSON"},
		{name: "HTML 503 maintenance", status: 503, contentType: "text/html; charset=UTF-8", body: "<!DOCTYPE html><h1>Down for maintenance</h1>", wantInMessage: "HTTP 503"},
		{name: "plain text 500", status: 500, contentType: "text/plain", body: "upstream connect error or disconnect/reset before headers", wantInMessage: "not JSON (text/plain)"},
		{name: "empty 200", status: 200, contentType: "application/json", body: "", wantInMessage: "empty response body"},
		{name: "empty 500", status: 500, body: "", wantInMessage: "empty response body"},
		{name: "whitespace 200", status: 200, contentType: "application/json", body: " \n\t ", wantInMessage: "empty response body"},
		{name: "truncated JSON 200", status: 200, contentType: "application/json", body: `{"success":true,"errors":[],"result":{"id":"a1","protocol":"tc`, wantInMessage: "truncated JSON"},
		{name: "body cut mid-stream", status: 200, contentType: "application/json", body: `{"success":true,"result":{"id":`, cut: true, wantInMessage: "could not be reached"},
		{name: "success of wrong type", status: 200, contentType: "application/json", body: `{"success":"yes","errors":[],"result":{}}`, wantInMessage: "wrong type"},
		{name: "errors of wrong type", status: 200, contentType: "application/json", body: `{"success":true,"errors":"none","result":{}}`, wantInMessage: "wrong type"},
		{name: "error codes as strings 500", status: 500, contentType: "application/json", body: `{"success":false,"errors":[{"code":"10002","message":7}]}`, wantInMessage: "wrong type"},
		{name: "app field of wrong type", status: 200, contentType: "application/json", body: `{"success":true,"errors":[],"result":{"id":"a1","protocol":22}}`, envelopeOK: true, wantInMessage: "not an application"},
		{name: "result a string", status: 200, contentType: "application/json", body: `{"success":true,"errors":[],"result":"ok"}`, envelopeOK: true, wantInMessage: "not an application"},
		{name: "result null", status: 200, contentType: "application/json", body: `{"success":true,"errors":[],"result":null}`, envelopeOK: true, wantInMessage: "no result"},
		{name: "top-level null", status: 200, contentType: "application/json", body: `null`, wantInMessage: "not JSON"},
		{name: "top-level array", status: 200, contentType: "application/json", body: `[{"id":"a1"}]`, wantInMessage: "not JSON"},
		{name: "binary garbage", status: 200, contentType: "application/octet-stream", body: "\x1f\x8b\x08\x00\xff\xfe\x00{", wantInMessage: "not JSON (application/octet-stream)"},
		{name: "huge 200", status: 200, contentType: "application/json", body: `{"success":true,"result":{"id":"` + huge + `"}}`, wantInMessage: "larger than 4 MiB"},
		{name: "huge 500", status: 500, contentType: "text/html", body: "<html>" + huge, wantInMessage: "larger than 4 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				}
				w.Header().Set("cf-ray", "8a1b2c3d4e5f6a7b-SJC")
				if tc.cut {
					w.Header().Set("Content-Length", strconv.Itoa(len(tc.body)+100))
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
				if tc.cut {
					// Ends the handler with the body short of its length:
					// the server closes the connection.
					panic(http.ErrAbortHandler)
				}
			}))
			defer server.Close()
			client := spectrum.NewClient(spectrum.Options{BaseURL: server.URL, Token: enterpriseToken, Timeout: 5 * time.Second})
			ctx := testContext(t)

			calls := map[string]func() error{
				"list":   func() error { _, err := client.ListApps(ctx, enterpriseZone); return err },
				"get":    func() error { _, err := client.GetApp(ctx, enterpriseZone, "a1"); return err },
				"create": func() error { _, err := client.CreateApp(ctx, enterpriseZone, sshApp("ssh.example.com")); return err },
				"update": func() error {
					_, err := client.UpdateApp(ctx, enterpriseZone, "a1", sshApp("ssh.example.com"))
					return err
				},
				"delete": func() error { return client.DeleteApp(ctx, enterpriseZone, "a1") },
			}
			for op, call := range calls {
				err := call()
				if err == nil {
					if op == "delete" && tc.envelopeOK {
						continue
					}
					t.Errorf("%s: no error for a malformed answer", op)
					continue
				}
				c := spectrum.Classify(err)
				if c.Class != failure.Retryable {
					t.Errorf("%s: classified %v %s, want Retryable: %s", op, c.Class, c.Reason, c.Message)
				}
				if !strings.Contains(c.Message, tc.wantInMessage) {
					t.Errorf("%s: message %q lacks %q", op, c.Message, tc.wantInMessage)
				}
				if len(c.Message) > 2048 {
					t.Errorf("%s: message of %d bytes; a body must not be copied whole into it", op, len(c.Message))
				}
				if strings.Contains(c.Message, enterpriseToken) {
					t.Errorf("%s: the token leaked into the message", op)
				}
			}
		})
	}
}

// One application of a listing in a shape the client cannot decode does not
// fail the zone: it is set aside with what can be read of it, and the other
// applications are returned.
func TestListSetsAsideAnUndecodableApp(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"success":true,"errors":[],"result":[
			{"id":"a1","protocol":"tcp/22","dns":{"type":"CNAME","name":"one.example.com"},"origin_direct":["tcp://192.0.2.1:22"]},
			{"id":"bad1","protocol":"tcp/23","dns":{"type":"CNAME","name":"two.example.com"},"origin_port":{"from":1}},
			{"id":"a3","protocol":"ssh","dns":{"type":"CNAME","name":"three.example.com"},"origin_direct":["tcp://192.0.2.3:22"]}
		],"result_info":{"page":1,"per_page":100,"count":3,"total_count":3}}`))
	}))
	defer server.Close()
	client := spectrum.NewClient(spectrum.Options{BaseURL: server.URL, Token: enterpriseToken, Timeout: 5 * time.Second})

	listing, err := client.ListApps(testContext(t), enterpriseZone)
	if err != nil {
		t.Fatalf("one undecodable app failed the listing: %v", err)
	}
	if len(listing.Apps) != 2 || listing.Apps[0].ID != "a1" || listing.Apps[1].ID != "a3" {
		t.Errorf("apps = %+v, want a1 and a3", listing.Apps)
	}
	if len(listing.Unreadable) != 1 {
		t.Fatalf("unreadable = %+v, want bad1", listing.Unreadable)
	}
	bad := listing.Unreadable[0]
	if bad.ID != "bad1" || bad.Hostname != "two.example.com" || bad.Protocol != "tcp/23" || !strings.Contains(bad.Problem, "origin_port") {
		t.Errorf("unreadable app = %+v", bad)
	}
}
