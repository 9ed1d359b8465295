package export

import (
	"bytes"
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

const testZone = "023e105f4ecef8ad9ca31a8372d0c353"

// exportCases are applications as Cloudflare returns them, in every shape
// the API notes describe ("Responses in the wild"), decoded by the client's
// own decoder as a listing would be.
var exportCases = []struct {
	name string
	json string
}{
	{"legacy boolean proxy_protocol true, no edge_ips, ipv4 and spp",
		`{"id":"a1","protocol":"tcp/22","dns":{"type":"CNAME","name":"legacy-ssh.example.com"},
		  "origin_direct":["tcp://192.0.2.1:22"],"proxy_protocol":true,"ipv4":true,"spp":false}`},
	{"legacy boolean proxy_protocol false",
		`{"id":"a2","protocol":"tcp/2222","dns":{"type":"CNAME","name":"legacy-off.example.com"},
		  "origin_direct":["tcp://192.0.2.2:22"],"proxy_protocol":false,"ipv4":true}`},
	{"legacy numeric origin_port, origin_dns without type",
		`{"id":"a3","protocol":"tcp/3306","dns":{"type":"CNAME","name":"db.example.com"},
		  "origin_dns":{"name":"db-origin.example.com"},"origin_port":3306}`},
	{"legacy numeric string origin_port",
		`{"id":"a4","protocol":"tcp/8080","dns":{"type":"CNAME","name":"web.example.com"},
		  "origin_dns":{"name":"web-origin.example.com"},"origin_port":"8080","proxy_protocol":"off"}`},
	{"legacy string origin_port range",
		`{"id":"a5","protocol":"tcp/2022-2023","dns":{"type":"CNAME","name":"range.example.com"},
		  "origin_dns":{"name":"range-origin.example.com"},"origin_port":"2022-2023","proxy_protocol":true}`},
	{"every field, dynamic edge IPs on IPv4 with the addresses Cloudflare assigned",
		`{"id":"a6","created_on":"2021-01-02T03:04:05Z","modified_on":"2024-01-02T03:04:05Z",
		  "protocol":"tcp/443","dns":{"type":"CNAME","name":"full.example.com"},
		  "origin_dns":{"name":"full-origin.example.com","ttl":1200,"type":"A"},"origin_port":8443,
		  "ip_firewall":true,"proxy_protocol":"v2","tls":"strict","traffic_type":"direct",
		  "edge_ips":{"type":"dynamic","connectivity":"ipv4","ips":["198.51.100.7"]},
		  "argo_smart_routing":true}`},
	{"defaults Cloudflare filled in, written out",
		`{"id":"a7","protocol":"tcp/25565","dns":{"type":"CNAME","name":"mc.example.com"},
		  "origin_direct":["tcp://192.0.2.7:25565"],"ip_firewall":false,"proxy_protocol":"off",
		  "tls":"off","traffic_type":"direct","edge_ips":{"type":"dynamic","connectivity":"all"},
		  "argo_smart_routing":false}`},
	{"static BYOIP edge IPs with an ADDRESS record, https traffic",
		`{"id":"a8","protocol":"tcp/443","dns":{"type":"ADDRESS","name":"byoip.example.com"},
		  "origin_direct":["tcp://192.0.2.8:443","tcp://[2001:db8::8]:443"],"tls":"full","traffic_type":"https",
		  "edge_ips":{"type":"static","ips":["198.51.100.10","2001:db8:100::10"]},"ip_firewall":true}`},
	{"virtual network origin",
		`{"id":"a9","protocol":"tcp/5432","dns":{"type":"CNAME","name":"pg.example.com"},
		  "origin_direct":["tcp://10.0.12.7:5432"],"virtual_network_id":"0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e"}`},
	{"SRV origin without origin_port, IPv6 only",
		`{"id":"a10","protocol":"tcp/5060","dns":{"type":"CNAME","name":"sip.example.com"},
		  "origin_dns":{"name":"_sip._tcp.example.com","type":"SRV","ttl":600},
		  "edge_ips":{"type":"dynamic","connectivity":"ipv6"}}`},
	{"named protocol with origin_port beside origin_direct",
		`{"id":"a11","protocol":"ssh","dns":{"type":"CNAME","name":"bastion.example.com"},
		  "origin_direct":["tcp://192.0.2.11:23"],"origin_port":22}`},
	{"UDP with simple proxy protocol",
		`{"id":"a12","protocol":"udp/27015","dns":{"type":"CNAME","name":"game.example.com"},
		  "origin_direct":["udp://192.0.2.12:27015"],"proxy_protocol":"simple"}`},
	{"enum values in another case, hostname with a trailing dot",
		`{"id":"a13","protocol":"tcp/3389","dns":{"type":"cname","name":"RDP.Example.com."},
		  "origin_dns":{"name":"rdp-origin.example.com","type":"aaaa"},"origin_port":3389,
		  "edge_ips":{"type":"Dynamic","connectivity":"all"}}`},
	{"origin port range behind an edge range",
		`{"id":"a14","protocol":"tcp/1000-1009","dns":{"type":"CNAME","name":"ports.example.com"},
		  "origin_direct":["tcp://192.0.2.14:2000-2009"]}`},
}

func decode(t *testing.T, raw string) spectrum.App {
	t.Helper()
	var app spectrum.App
	if err := json.Unmarshal([]byte(raw), &app); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return app
}

// TestExportedSpecMatchesCloudflare is the export's promise: the operator,
// given the exported spec, finds nothing to change at Cloudflare. It holds
// for the spec as built and for the spec as printed and read back by a
// client (the YAML kubectl apply sends), and admission accepts it.
func TestExportedSpecMatchesCloudflare(t *testing.T) {
	for _, tc := range exportCases {
		t.Run(tc.name, func(t *testing.T) {
			app := decode(t, tc.json)
			spec := Spec(testZone, app, "my-credentials")
			if diff := spectrum.Differences(spectrum.FromSpec(&spec), app); len(diff) != 0 {
				t.Errorf("exported spec differs from Cloudflare's app in %v\nspec: %+v", diff, spec)
			}

			var out bytes.Buffer
			if err := WriteYAML(&out, Manifests([]ZoneApp{{ZoneID: testZone, App: app}}, Options{Zones: []string{testZone}, Secret: "my-credentials"})); err != nil {
				t.Fatal(err)
			}
			var printed v1alpha1.SpectrumApp
			if err := yaml.UnmarshalStrict(out.Bytes(), &printed); err != nil {
				t.Fatalf("reading the printed manifest back: %v\n%s", err, out.String())
			}
			if diff := spectrum.Differences(spectrum.FromSpec(&printed.Spec), app); len(diff) != 0 {
				t.Errorf("printed spec differs from Cloudflare's app in %v\n%s", diff, out.String())
			}
			if printed.Spec.ZoneID != testZone || printed.Spec.CredentialsRef == nil || printed.Spec.CredentialsRef.Name != "my-credentials" {
				t.Errorf("printed zoneID %q, credentialsRef %+v", printed.Spec.ZoneID, printed.Spec.CredentialsRef)
			}
			if rejected := rules.ValidateSpec(&printed.Spec, field.NewPath("spec")).Rejections(); len(rejected) != 0 {
				t.Errorf("admission would refuse the exported spec: %v\n%s", rejected, out.String())
			}
		})
	}
}

// TestEveryExportedFieldCounts drops each optional field of the fullest
// exported specs in turn: each removal must show as a difference, so the
// test above would catch an export that lost any of them.
func TestEveryExportedFieldCounts(t *testing.T) {
	drops := map[string]func(*v1alpha1.SpectrumAppSpec){
		"originDNS.ttl":    func(s *v1alpha1.SpectrumAppSpec) { s.OriginDNS.TTL = nil },
		"originDNS.type":   func(s *v1alpha1.SpectrumAppSpec) { s.OriginDNS.Type = "" },
		"originPort":       func(s *v1alpha1.SpectrumAppSpec) { s.OriginPort = nil },
		"ipFirewall":       func(s *v1alpha1.SpectrumAppSpec) { s.IPFirewall = nil },
		"proxyProtocol":    func(s *v1alpha1.SpectrumAppSpec) { s.ProxyProtocol = "" },
		"tls":              func(s *v1alpha1.SpectrumAppSpec) { s.TLS = "" },
		"edgeIPs":          func(s *v1alpha1.SpectrumAppSpec) { s.EdgeIPs = nil },
		"argoSmartRouting": func(s *v1alpha1.SpectrumAppSpec) { s.ArgoSmartRouting = nil },
	}
	full := decode(t, exportCases[5].json)
	for field, drop := range drops {
		spec := Spec(testZone, full, DefaultSecret)
		drop(&spec)
		if diff := spectrum.Differences(spectrum.FromSpec(&spec), full); len(diff) == 0 {
			t.Errorf("without %s the spec still matches: the export could lose it unnoticed", field)
		}
	}
	others := map[string]struct {
		json string
		drop func(*v1alpha1.SpectrumAppSpec)
	}{
		"trafficType":        {exportCases[7].json, func(s *v1alpha1.SpectrumAppSpec) { s.TrafficType = "" }},
		"edgeIPs.ips":        {exportCases[7].json, func(s *v1alpha1.SpectrumAppSpec) { s.EdgeIPs.IPs = s.EdgeIPs.IPs[:1] }},
		"virtualNetworkID":   {exportCases[8].json, func(s *v1alpha1.SpectrumAppSpec) { s.VirtualNetworkID = "" }},
		"legacy v1 proxy":    {exportCases[0].json, func(s *v1alpha1.SpectrumAppSpec) { s.ProxyProtocol = "" }},
		"originPort range":   {exportCases[4].json, func(s *v1alpha1.SpectrumAppSpec) { s.OriginPort = nil }},
		"originDirect":       {exportCases[13].json, func(s *v1alpha1.SpectrumAppSpec) { s.OriginDirect = nil }},
		"edgeIPs ipv6 (SRV)": {exportCases[9].json, func(s *v1alpha1.SpectrumAppSpec) { s.EdgeIPs = nil }},
	}
	for field, c := range others {
		app := decode(t, c.json)
		spec := Spec(testZone, app, DefaultSecret)
		c.drop(&spec)
		if diff := spectrum.Differences(spectrum.FromSpec(&spec), app); len(diff) == 0 {
			t.Errorf("without %s the spec still matches: the export could lose it unnoticed", field)
		}
	}
}

// TestExportOmitsOnlyDefaults: values equal to Cloudflare's defaults are
// left out (a Pay-as-you-go account's admission refuses any other field),
// and the legacy shapes come out in the spec's form.
func TestExportOmitsOnlyDefaults(t *testing.T) {
	defaults := Spec(testZone, decode(t, exportCases[6].json), DefaultSecret)
	if defaults.IPFirewall != nil || defaults.ProxyProtocol != "" || defaults.TLS != "" || defaults.TrafficType != "" ||
		defaults.EdgeIPs != nil || defaults.ArgoSmartRouting != nil {
		t.Errorf("defaults written out: %+v", defaults)
	}
	if rejected := rules.ValidatePlan(v1alpha1.PlanPayAsYouGo, &defaults, nil, field.NewPath("spec")).Rejections(); len(rejected) != 0 {
		t.Errorf("a Pay-as-you-go account's admission would refuse it: %v", rejected)
	}

	legacy := Spec(testZone, decode(t, exportCases[4].json), DefaultSecret)
	if legacy.ProxyProtocol != "v1" || legacy.OriginPort == nil || legacy.OriginPort.String() != "2022-2023" {
		t.Errorf("legacy shapes exported as proxyProtocol %q, originPort %v", legacy.ProxyProtocol, legacy.OriginPort)
	}
	numeric := Spec(testZone, decode(t, exportCases[3].json), DefaultSecret)
	if numeric.OriginPort == nil || numeric.OriginPort.IntValue() != 8080 || numeric.OriginPort.Type != 0 {
		t.Errorf("a numeric string origin_port exported as %+v, want the number 8080", numeric.OriginPort)
	}
	cased := Spec(testZone, decode(t, exportCases[12].json), DefaultSecret)
	if cased.DNS.Type != "CNAME" || cased.OriginDNS.Type != "AAAA" || cased.EdgeIPs != nil {
		t.Errorf("enum values exported as dns.type %q, originDNS.type %q, edgeIPs %+v", cased.DNS.Type, cased.OriginDNS.Type, cased.EdgeIPs)
	}
	full := Spec(testZone, decode(t, exportCases[5].json), DefaultSecret)
	if full.EdgeIPs == nil || full.EdgeIPs.Connectivity != "ipv4" || full.EdgeIPs.IPs != nil {
		t.Errorf("dynamic edge IPs exported as %+v, want connectivity ipv4 without the assigned addresses", full.EdgeIPs)
	}
}
