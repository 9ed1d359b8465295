package spectrum

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// envelopeSeeds are answers as Cloudflare and the simulator send them, and
// near misses of them.
var envelopeSeeds = []string{
	`{"success":true,"errors":[],"messages":[],"result":[{"id":"a","protocol":"tcp/22","dns":{"type":"CNAME","name":"a.example.com"}}],"result_info":{"page":1,"per_page":100,"count":1,"total_count":1,"total_pages":1}}`,
	`{"success":true,"errors":[],"messages":[],"result":{"id":"a","created_on":"2014-01-02T02:20:00Z","protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.example.com"},"origin_direct":["tcp://192.0.2.1:22"],"origin_port":22,"ip_firewall":true,"proxy_protocol":"off","tls":"full","traffic_type":"direct","edge_ips":{"type":"dynamic","connectivity":"all"},"argo_smart_routing":true}}`,
	`{"success":false,"errors":[{"code":11026,"message":"Argo Smart Routing is not enabled"}],"messages":[],"result":null}`,
	` { "result" : [ ] , "success" : true , "result_info" : null } `,
	`{"success":true,"result":[{"id":"a"},{"id":"b","n":-0.5e+3,"u":"\u00e9\n\"x\"","deep":[[[{}]]]}],"result_info":{"page":2}}`,
	`{"success":true,"result":[],"result":[{"id":"second"}]}`,
	`{"Success":false,"result":[]}`,
	`{"re\u0073ult":[{"id":"escaped"}]}`,
	`{"success":"true","result":[]}`,
	`{"success":true,"result":[{"id":"a"}]} trailing`,
	`{"success":true,"result":[01]}`,
	`{"success":true,"result":[1.]}`,
	`{"success":true,"result":"\x01"}`,
	`{"success":true,"result":[tru]}`,
	`{"success":true,"result":{"id":"a",}}`,
	`{"success":true,"errors":[{"code":"10002"}],"result":[]}`,
	`{}`,
	`null`,
	`{"success":true,"result":[{"id":"\xff\xfe"}]}`,
}

// FuzzReadEnvelope holds the one-pass envelope reader to json.Unmarshal:
// whatever it reads, json.Unmarshal reads the same, and any body it does
// not take is left to json.Unmarshal.
func FuzzReadEnvelope(f *testing.F) {
	for _, seed := range envelopeSeeds {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, asPage bool) {
		var fastPage, slowPage *listPage
		if asPage {
			fastPage, slowPage = &listPage{}, &listPage{}
		}
		var fast envelope
		if !readEnvelope(body, &fast, fastPage) {
			return
		}
		slow := envelope{Result: envelopeResult{page: slowPage}}
		if err := json.Unmarshal(body, &slow); err != nil {
			t.Fatalf("read %q, which json.Unmarshal refuses: %v", body, err)
		}
		if !reflect.DeepEqual(fast.Success, slow.Success) || !reflect.DeepEqual(fast.Errors, slow.Errors) ||
			!reflect.DeepEqual(fast.ResultInfo, slow.ResultInfo) {
			t.Fatalf("%q: read %+v, json.Unmarshal %+v", body, fast, slow)
		}
		if !bytes.Equal(fast.Result.raw, slow.Result.raw) || fast.Result.read != slow.Result.read || (fast.Result.err == nil) != (slow.Result.err == nil) {
			t.Fatalf("%q: result read as %+v, json.Unmarshal %+v", body, fast.Result, slow.Result)
		}
		if asPage && (fastPage.sum != slowPage.sum || fmt.Sprint(fastPage.apps) != fmt.Sprint(slowPage.apps)) {
			t.Fatalf("%q: page read as %x %s, json.Unmarshal %x %s", body, fastPage.sum, fastPage.apps, slowPage.sum, slowPage.apps)
		}
	})
}

// The answers the API sends are read in one pass; only oddities are left
// to json.Unmarshal.
func TestReadEnvelopeTakesPlainAnswers(t *testing.T) {
	for i, seed := range envelopeSeeds[:6] {
		var env envelope
		if !readEnvelope([]byte(seed), &env, &listPage{}) && !readEnvelope([]byte(seed), &env, nil) {
			t.Errorf("seed %d not read in one pass: %s", i, seed)
		}
	}
	for _, odd := range []string{`{"Success":false,"result":[]}`, `{"re\u0073ult":[{"id":"escaped"}]}`, `{"success":"true","result":[]}`, `null`} {
		var env envelope
		if readEnvelope([]byte(odd), &env, nil) {
			t.Errorf("%s read in one pass; json.Unmarshal's own rules must decide it", odd)
		}
	}
}
