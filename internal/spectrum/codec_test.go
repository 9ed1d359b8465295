package spectrum_test

import (
	"encoding/json"
	"testing"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

func TestOriginPortJSON(t *testing.T) {
	cases := []struct {
		in       string
		want     spectrum.OriginPort
		wantJSON string
	}{
		{`22`, spectrum.OriginPort{Start: 22}, `22`},
		{`22.0`, spectrum.OriginPort{Start: 22}, `22`},
		{`"22"`, spectrum.OriginPort{Start: 22}, `22`},
		{`"2022-2023"`, spectrum.OriginPort{Start: 2022, End: 2023}, `"2022-2023"`},
		{`" 3000 - 4000 "`, spectrum.OriginPort{Start: 3000, End: 4000}, `"3000-4000"`},
		{`"443-443"`, spectrum.OriginPort{Start: 443}, `443`},
	}
	for _, tc := range cases {
		var got spectrum.OriginPort
		if err := json.Unmarshal([]byte(tc.in), &got); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.in, got, tc.want)
		}
		out, err := json.Marshal(got)
		if err != nil || string(out) != tc.wantJSON {
			t.Errorf("%s: marshals to %s (%v), want %s", tc.in, out, err, tc.wantJSON)
		}
	}
	for _, bad := range []string{`true`, `"abc"`, `"4000-3000"`, `70000`, `-1`, `22.5`, `{}`, `"1-2-3"`} {
		var got spectrum.OriginPort
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("%s: decoded to %+v, want an error", bad, got)
		}
	}
}

// The shapes of apps created years ago, from the official SDKs' fixtures.
func TestDecodeLegacyApp(t *testing.T) {
	legacy := `{
		"id": "ea95132c15732412d22c1476fa83f27a",
		"created_on": "2014-01-01T05:20:00.12345Z",
		"modified_on": "2014-01-01T05:20:00.12345Z",
		"protocol": "tcp/22",
		"ipv4": true,
		"spp": false,
		"dns": {"type": "CNAME", "name": "ssh.example.com"},
		"origin_dns": {"name": "origin.example.com"},
		"origin_port": 22,
		"ip_firewall": false,
		"proxy_protocol": true,
		"tls": "off",
		"some_future_field": {"nested": [1, 2]}
	}`
	var app spectrum.App
	if err := json.Unmarshal([]byte(legacy), &app); err != nil {
		t.Fatal(err)
	}
	if app.ProxyProtocol != "v1" || app.OriginPort == nil || *app.OriginPort != (spectrum.OriginPort{Start: 22}) ||
		app.OriginDNS == nil || app.OriginDNS.Type != "" || app.EdgeIPs != nil || app.CreatedOn == nil {
		t.Fatalf("decoded %+v", app)
	}

	for in, want := range map[string]string{
		`{"proxy_protocol": false}`:    "off",
		`{"proxy_protocol": "v2"}`:     "v2",
		`{"proxy_protocol": null}`:     "",
		`{}`:                           "",
		`{"origin_port": "2022-2023"}`: "",
	} {
		var a spectrum.App
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Errorf("%s: %v", in, err)
		} else if a.ProxyProtocol != want {
			t.Errorf("%s: proxy_protocol %q, want %q", in, a.ProxyProtocol, want)
		}
	}
	var bad spectrum.App
	if err := json.Unmarshal([]byte(`{"proxy_protocol": 5}`), &bad); err == nil {
		t.Error("proxy_protocol 5 decoded without error")
	}
}

// An app always goes out in the current shape, with only the set fields.
func TestEncodeApp(t *testing.T) {
	port := spectrum.OriginPort{Start: 3000, End: 3001}
	app := spectrum.App{
		Protocol:      "tcp/3000-3001",
		DNS:           spectrum.DNS{Type: "CNAME", Name: "game.example.com"},
		OriginDNS:     &spectrum.OriginDNS{Name: "origin.example.com"},
		OriginPort:    &port,
		ProxyProtocol: "v1",
	}
	out, err := json.Marshal(app)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"protocol":"tcp/3000-3001","dns":{"type":"CNAME","name":"game.example.com"},"origin_dns":{"name":"origin.example.com"},"origin_port":"3000-3001","proxy_protocol":"v1"}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	var back spectrum.App
	if err := json.Unmarshal(out, &back); err != nil || back.OriginPort == nil || *back.OriginPort != port || back.ProxyProtocol != "v1" {
		t.Errorf("round trip: %+v %v", back, err)
	}
}

// FuzzAppCodec checks that whatever an app decodes from, it encodes to the
// current shape and decodes back to the same app.
func FuzzAppCodec(f *testing.F) {
	for _, seed := range []string{
		`{"id":"a","protocol":"tcp/22","dns":{"type":"CNAME","name":"a.example.com"},"origin_direct":["tcp://192.0.2.1:22"]}`,
		`{"protocol":"tcp/2022-2023","origin_dns":{"name":"o.example.com"},"origin_port":"2022-2023","proxy_protocol":true,"ipv4":true,"spp":false}`,
		`{"origin_port":22,"proxy_protocol":false,"edge_ips":{"type":"static","ips":["203.0.113.1"]}}`,
		`{"created_on":"2014-01-01T05:20:00.12345Z","origin_dns":{"name":"o","ttl":600}}`,
		`{"origin_port":"443-443","argo_smart_routing":true,"ip_firewall":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var app spectrum.App
		if json.Unmarshal(data, &app) != nil {
			return
		}
		first, err := json.Marshal(app)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", app, err)
		}
		var again spectrum.App
		if err := json.Unmarshal(first, &again); err != nil {
			t.Fatalf("cannot decode our own encoding %s: %v", first, err)
		}
		second, err := json.Marshal(again)
		if err != nil || string(first) != string(second) {
			t.Fatalf("encoding is not stable:\n%s\n%s", first, second)
		}
	})
}
