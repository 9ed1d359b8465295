package spectrumtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const (
	modelZone   = "023e105f4ecef8ad9ca31a8372d0c353" // example.com, enterprise
	modelPaygZ  = "7c5dae5552338874e5053f2534d2767a" // example.net, pay-as-you-go, tcp/22 only
	modelVNet   = "0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e"
	modelToken  = "model-test-token"
	modelPaygTk = "model-payg-token"
)

// modelServer is a world with an enterprise zone (a virtual network
// routing 10.0.0.0/24, a denied origin range) and a Pay-as-you-go zone.
func modelServer(t *testing.T, extra string) *Server {
	t.Helper()
	cfg, err := ParseConfig([]byte(`
accounts:
  - {id: ent, plan: enterprise, virtualNetworks: [{id: ` + modelVNet + `, routes: [10.0.0.0/24]}]}
  - {id: payg, plan: pay-as-you-go}
tokens:
  - {token: ` + modelToken + `, account: ent}
  - {token: ` + modelPaygTk + `, account: payg}
zones:
  - {id: ` + modelZone + `, name: example.com, account: ent}
  - {id: ` + modelPaygZ + `, name: example.net, account: payg, edgePorts: {tcp: ["22"]}}
deniedOrigins: [198.18.0.0/15]
` + extra))
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg)
	t.Cleanup(s.Close)
	return s
}

func appsURL(s *Server, zone string) string { return s.URL + "/zones/" + zone + "/spectrum/apps" }

// resultFields decodes an answer's result as raw JSON fields.
func resultFields(t *testing.T, env wireEnvelope) map[string]any {
	t.Helper()
	var fields map[string]any
	if err := json.Unmarshal(env.Result, &fields); err != nil {
		t.Fatalf("result %s: %v", env.Result, err)
	}
	return fields
}

func codesOf(env wireEnvelope) []int {
	var codes []int
	for _, e := range env.Errors {
		codes = append(codes, e.Code)
	}
	return codes
}

// Cloudflare accepts these (API notes and its Terraform provider's
// acceptance tests, which run against the live API); the simulator must
// too, and read them back as sent.
func TestAcceptsWhatCloudflareAccepts(t *testing.T) {
	cases := []struct {
		name string
		body string
		// want are fields of the read-back app and their JSON values.
		want map[string]any
	}{
		{"named protocol ssh (TF spectrumapplicationconfigbasic)",
			`{"protocol":"ssh","dns":{"type":"CNAME","name":"ssh.example.com"},"origin_direct":["tcp://128.66.0.1:22"]}`,
			map[string]any{"protocol": "ssh"}},
		{"named protocol rdp",
			`{"protocol":"rdp","dns":{"type":"CNAME","name":"rdp.example.com"},"origin_direct":["tcp://128.66.0.1:3389"]}`,
			map[string]any{"protocol": "rdp"}},
		{"named protocol minecraft",
			`{"protocol":"minecraft","dns":{"type":"CNAME","name":"mc.example.com"},"origin_direct":["tcp://128.66.0.1:25565"]}`,
			map[string]any{"protocol": "minecraft"}},
		{"origin_port beside origin_direct (TF spectrumapplicationconfigbasicupdated.tf)",
			`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.example.com"},"origin_direct":["tcp://128.66.0.2:23"],"origin_port":22}`,
			map[string]any{"origin_port": float64(22), "origin_direct": []any{"tcp://128.66.0.2:23"}}},
		{"origin scheme other than the protocol's",
			`{"protocol":"tcp/53","dns":{"type":"CNAME","name":"dns.example.com"},"origin_direct":["udp://192.0.2.1:53"]}`,
			map[string]any{"origin_direct": []any{"udp://192.0.2.1:53"}}},
		{"loopback and private origins (no access check configured for them)",
			`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"lo.example.com"},"origin_direct":["tcp://127.0.0.1:22","tcp://10.1.2.3:22"]}`,
			map[string]any{"origin_direct": []any{"tcp://127.0.0.1:22", "tcp://10.1.2.3:22"}}},
		{"protocol range with a virtual network and a single origin port",
			`{"protocol":"tcp/2000-2001","dns":{"type":"CNAME","name":"vn.example.com"},"origin_direct":["tcp://10.0.0.5:22"],"virtual_network_id":"` + modelVNet + `"}`,
			map[string]any{"protocol": "tcp/2000-2001", "virtual_network_id": modelVNet}},
		{"origin_dns without ttl reads back without ttl",
			`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"od.example.com"},"origin_dns":{"name":"origin.example.com"},"origin_port":22}`,
			map[string]any{"origin_dns": map[string]any{"name": "origin.example.com", "type": ""}}},
		{"origin_dns with a short ttl (the range is not published)",
			`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"od.example.com"},"origin_dns":{"name":"origin.example.com","type":"A","ttl":60},"origin_port":"2022-2022"}`,
			map[string]any{"origin_dns": map[string]any{"name": "origin.example.com", "type": "A", "ttl": float64(60)}, "origin_port": float64(2022)}},
		{"origin range matching the protocol range",
			`{"protocol":"tcp/2000-2009","dns":{"type":"CNAME","name":"r.example.com"},"origin_direct":["tcp://[2001:db8::1]:3000-3009"]}`,
			map[string]any{"origin_direct": []any{"tcp://[2001:db8::1]:3000-3009"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := modelServer(t, "")
			resp, env := call(t, "POST", appsURL(s, modelZone), modelToken, tc.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST: HTTP %d %+v", resp.StatusCode, env.Errors)
			}
			id, _ := resultFields(t, env)["id"].(string)
			_, env = call(t, "GET", appsURL(s, modelZone)+"/"+id, modelToken, "")
			got := resultFields(t, env)
			for field, want := range tc.want {
				if g, _ := json.Marshal(got[field]); string(g) != mustJSON(t, want) {
					t.Errorf("%s read back as %s, want %s", field, g, mustJSON(t, want))
				}
			}
			// The test-inspection boundary reads it too.
			if apps := s.Apps(); len(apps) != 1 || apps[0].App.ID != id {
				t.Errorf("Apps() = %+v", apps)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Many origins and long addresses: the notes set no cap.
func TestNoCapOnOriginDirect(t *testing.T) {
	s := modelServer(t, "")
	var origins []string
	for i := range 80 {
		origins = append(origins, fmt.Sprintf("tcp://[2001:db8:1234:5678:9abc:def0:1234:%x]:22", i))
	}
	body := mustJSON(t, map[string]any{"protocol": "tcp/22", "dns": map[string]any{"type": "CNAME", "name": "many.example.com"}, "origin_direct": origins})
	if resp, env := call(t, "POST", appsURL(s, modelZone), modelToken, body); resp.StatusCode != http.StatusOK {
		t.Fatalf("80 origins: HTTP %d %+v", resp.StatusCode, env.Errors)
	}
}

// Each refusal answers with its code, and a stage reports every refusal it
// finds.
func TestRefusals(t *testing.T) {
	const vn = `"virtual_network_id":"` + modelVNet + `"`
	app := func(rest string) string {
		return `{"protocol":"tcp/22","dns":{"type":"CNAME","name":"x.example.com"}` + rest + `}`
	}
	cases := []struct {
		name   string
		zone   string
		token  string
		body   string
		status int
		codes  []int
	}{
		{"not JSON", modelZone, modelToken, `{"protocol":`, 400, []int{codeInvalidRequest}},
		{"not an object", modelZone, modelToken, `["tcp/22"]`, 400, []int{codeInvalidRequest}},
		{"wrong type", modelZone, modelToken, app(`,"origin_direct":"tcp://192.0.2.1:22"`), 400, []int{codeInvalidRequest}},
		{"unknown protocol name", modelZone, modelToken, `{"protocol":"http","dns":{"type":"CNAME","name":"x.example.com"},"origin_direct":["tcp://192.0.2.1:80"]}`, 400, []int{codeInvalidRequest}},
		{"unknown tls value", modelZone, modelToken, app(`,"origin_direct":["tcp://192.0.2.1:22"],"tls":"maybe"`), 400, []int{codeInvalidRequest}},
		{"pay-as-you-go extra fields, one entry each", modelPaygZ, modelPaygTk,
			`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"x.example.net"},"origin_direct":["tcp://192.0.2.1:22"],"tls":"off","ip_firewall":false}`,
			400, []int{codeUnknownField, codeUnknownField}},
		{"no origin", modelZone, modelToken, app(``), 400, []int{codeOriginChoice}},
		{"both origins", modelZone, modelToken, app(`,"origin_direct":["tcp://192.0.2.1:22"],"origin_dns":{"name":"o.example.com"},"origin_port":22`), 400, []int{codeOriginChoice}},
		{"origin_dns without port", modelZone, modelToken, app(`,"origin_dns":{"name":"o.example.com"}`), 400, []int{codeOriginDNS}},
		{"origin_dns bad name and type", modelZone, modelToken, app(`,"origin_dns":{"name":"not a name","type":"MX"},"origin_port":22`), 400, []int{codeOriginDNS, codeOriginDNS}},
		{"SRV origin without port is fine but not negative ttl", modelZone, modelToken, app(`,"origin_dns":{"name":"_ssh._tcp.example.com","type":"SRV","ttl":-1}`), 400, []int{codeOriginDNS}},
		{"IPv6 origin without brackets", modelZone, modelToken, app(`,"origin_direct":["tcp://2001:db8::1:22"]`), 400, []int{codeOriginAddress}},
		{"hostname as origin address", modelZone, modelToken, app(`,"origin_direct":["tcp://origin.example.com:22"]`), 400, []int{codeOriginAddress}},
		{"denied origin range", modelZone, modelToken, app(`,"origin_direct":["tcp://198.18.0.1:22"]`), 400, []int{codeOriginAddress}},
		{"origin range of another size", modelZone, modelToken, `{"protocol":"tcp/2000-2001","dns":{"type":"CNAME","name":"x.example.com"},"origin_direct":["tcp://192.0.2.1:3000-3004"]}`, 400, []int{codeOriginAddress}},
		{"ADDRESS with dynamic edge IPs", modelZone, modelToken, `{"protocol":"tcp/22","dns":{"type":"ADDRESS","name":"x.example.com"},"origin_direct":["tcp://192.0.2.1:22"]}`, 400, []int{codeDNSType}},
		{"virtual network with origin_dns", modelZone, modelToken, app(`,"origin_dns":{"name":"o.example.com"},"origin_port":22,` + vn), 400, []int{codeVirtualNetworkDNS}},
		{"virtual network with two origins", modelZone, modelToken, app(`,"origin_direct":["tcp://10.0.0.5:22","tcp://10.0.0.6:22"],` + vn), 400, []int{codeVirtualNetworkOrigins}},
		{"virtual network with an origin_direct range", modelZone, modelToken, `{"protocol":"tcp/2000-2001","dns":{"type":"CNAME","name":"x.example.com"},"origin_direct":["tcp://10.0.0.5:2000-2001"],` + vn + `}`, 400, []int{codeVirtualNetworkRange}},
		{"virtual network with an origin_port range", modelZone, modelToken, `{"protocol":"tcp/2000-2001","dns":{"type":"CNAME","name":"x.example.com"},"origin_direct":["tcp://10.0.0.5:22"],"origin_port":"2000-2001",` + vn + `}`, 400, []int{codeVirtualNetworkRange}},
		{"virtual network id not a UUID", modelZone, modelToken, app(`,"origin_direct":["tcp://10.0.0.5:22"],"virtual_network_id":"private"`), 400, []int{codeVirtualNetworkID}},
		{"validation codes reported together", modelZone, modelToken, `{"protocol":"tcp/22","dns":{"type":"ADDRESS","name":"x.example.com"},"origin_direct":["tcp://2001:db8::1:22"]}`, 400, []int{codeOriginAddress, codeDNSType}},
		{"validation before entitlements", modelZone, modelToken, app(`,"argo_smart_routing":true`), 400, []int{codeOriginChoice}},
		{"FTP", modelZone, modelToken, `{"protocol":"tcp/20-21","dns":{"type":"CNAME","name":"ftp.example.com"},"origin_direct":["tcp://192.0.2.1:21"]}`, 403, []int{codeFTPNotEnabled}},
		{"entitlements reported together", modelZone, modelToken, `{"protocol":"tcp/21","dns":{"type":"CNAME","name":"ftp.example.com"},"origin_direct":["tcp://192.0.2.1:21"],"argo_smart_routing":true}`, 403, []int{codeFTPNotEnabled, codeArgoNotEnabled}},
		{"virtual network without a route", modelZone, modelToken, app(`,"origin_direct":["tcp://10.9.0.5:22"],` + vn), 400, []int{codeNoVirtualNetworkRule}},
		{"named protocol counts as its port for 13002", modelPaygZ, modelPaygTk, `{"protocol":"rdp","dns":{"type":"CNAME","name":"rdp.example.net"},"origin_direct":["tcp://192.0.2.1:3389"]}`, 400, []int{codeProtocolUnavailable}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := modelServer(t, "")
			resp, env := call(t, "POST", appsURL(s, tc.zone), tc.token, tc.body)
			if resp.StatusCode != tc.status || !slices.Equal(codesOf(env), tc.codes) {
				t.Errorf("HTTP %d codes %v, want HTTP %d codes %v: %+v", resp.StatusCode, codesOf(env), tc.status, tc.codes, env.Errors)
			}
			if len(s.Apps()) != 0 {
				t.Error("a refused request stored an app")
			}
		})
	}
}

// "ssh" is tcp/22 for the edge-port check: a zone allowing only tcp/22
// takes it.
func TestNamedProtocolWithinEdgePorts(t *testing.T) {
	s := modelServer(t, "")
	body := `{"protocol":"ssh","dns":{"type":"CNAME","name":"ssh.example.net"},"origin_direct":["tcp://192.0.2.1:22"]}`
	if resp, env := call(t, "POST", appsURL(s, modelPaygZ), modelPaygTk, body); resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d %+v", resp.StatusCode, env.Errors)
	}
}

// An update is a whole-config PUT: what the body leaves out goes back to
// its default, ttl included.
func TestPutResetsOmittedFieldsToDefaults(t *testing.T) {
	s := modelServer(t, "")
	_, env := call(t, "POST", appsURL(s, modelZone), modelToken,
		`{"protocol":"tcp/443","dns":{"type":"CNAME","name":"web.example.com"},"origin_dns":{"name":"o.example.com","type":"A","ttl":1200},"origin_port":443,
		  "tls":"full","proxy_protocol":"v2","traffic_type":"https","ip_firewall":true,"edge_ips":{"type":"dynamic","connectivity":"ipv4"}}`)
	created := resultFields(t, env)
	id, _ := created["id"].(string)
	if created["tls"] != "full" || created["ip_firewall"] != true {
		t.Fatalf("created %v %+v", created, env.Errors)
	}
	for _, method := range []string{"PUT", "PATCH"} {
		resp, env := call(t, method, appsURL(s, modelZone)+"/"+id, modelToken,
			`{"protocol":"tcp/443","dns":{"type":"CNAME","name":"web.example.com"},"origin_dns":{"name":"o.example.com"},"origin_port":443}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d %+v", method, resp.StatusCode, env.Errors)
		}
		_, env = call(t, "GET", appsURL(s, modelZone)+"/"+id, modelToken, "")
		got := resultFields(t, env)
		want := map[string]string{
			"tls": `"off"`, "proxy_protocol": `"off"`, "traffic_type": `"direct"`, "ip_firewall": "false", "argo_smart_routing": "false",
			"edge_ips": `{"connectivity":"all","type":"dynamic"}`, "origin_dns": `{"name":"o.example.com","type":""}`,
			"created_on": mustJSON(t, created["created_on"]),
		}
		for field, w := range want {
			if g := mustJSON(t, got[field]); g != w {
				t.Errorf("%s: %s = %s, want %s", method, field, g, w)
			}
		}
	}
}

// Apps created years ago come back in the old shapes.
func TestLegacyShapes(t *testing.T) {
	cases := []struct {
		name string
		app  App
		want map[string]string // field → JSON; "absent" when it must be missing
	}{
		{"single origin port as a string, type-less origin_dns",
			App{Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "a.example.com"},
				OriginDNS: &OriginDNS{Name: "o.example.com"}, OriginPort: Port(22), ProxyProtocol: "off"},
			map[string]string{"origin_port": `"22"`, "origin_dns": `{"name":"o.example.com"}`, "proxy_protocol": "false", "ipv4": "true", "spp": "false", "edge_ips": "absent"}},
		{"origin port range, typed origin_dns kept",
			App{Protocol: "tcp/2022-2023", DNS: DNS{Type: "CNAME", Name: "b.example.com"},
				OriginDNS: &OriginDNS{Name: "o.example.com", Type: "AAAA"}, OriginPort: Ports(2022, 2023),
				EdgeIPs: &EdgeIPs{Type: "dynamic", Connectivity: "all"}},
			map[string]string{"origin_port": `"2022-2023"`, "origin_dns": `{"name":"o.example.com","type":"AAAA"}`, "edge_ips": "absent"}},
		{"proxy protocol v1 as true",
			App{Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "c.example.com"}, OriginDirect: []string{"tcp://192.0.2.1:22"}, ProxyProtocol: "v1"},
			map[string]string{"proxy_protocol": "true", "origin_port": "absent"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := modelServer(t, "")
			stored, err := s.PutApp(modelZone, tc.app, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, url := range []string{appsURL(s, modelZone) + "/" + stored.App.ID, appsURL(s, modelZone)} {
				_, env := call(t, "GET", url, modelToken, "")
				raw := env.Result
				if strings.HasPrefix(string(raw), "[") {
					var list []json.RawMessage
					if err := json.Unmarshal(raw, &list); err != nil || len(list) != 1 {
						t.Fatalf("list %s", raw)
					}
					raw = list[0]
				}
				var fields map[string]json.RawMessage
				if err := json.Unmarshal(raw, &fields); err != nil {
					t.Fatal(err)
				}
				for field, want := range tc.want {
					got, present := fields[field]
					if want == "absent" {
						if present {
							t.Errorf("%s: %s = %s, want it absent", url, field, got)
						}
						continue
					}
					if string(got) != want {
						t.Errorf("%s: %s = %s, want %s", url, field, got, want)
					}
				}
			}
			// The inspection API shows the app in the current shape.
			if got := s.Apps()[0].App; portText(got.OriginPort) != portText(tc.app.OriginPort) || got.ProxyProtocol != tc.app.ProxyProtocol {
				t.Errorf("Apps() = %+v", got)
			}
		})
	}
}

func portText(p *PortRange) string {
	if p == nil {
		return "none"
	}
	return p.String()
}

// Accepting a legacy shape in a request too: proxy_protocol as a boolean
// and origin_port as a numeric string.
func TestAcceptsLegacyShapesInRequests(t *testing.T) {
	s := modelServer(t, "")
	_, env := call(t, "POST", appsURL(s, modelZone), modelToken,
		`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"x.example.com"},"origin_dns":{"name":"o.example.com"},"origin_port":"22","proxy_protocol":true}`)
	got := resultFields(t, env)
	if got["proxy_protocol"] != "v1" || got["origin_port"] != float64(22) {
		t.Errorf("result %v %+v", got, env.Errors)
	}
}

// The 9109 answer echoes the token, as a careless API might, so that the
// operator's redaction is exercised.
func TestInvalidTokenEchoed(t *testing.T) {
	s := modelServer(t, "")
	if err := s.SetTokenRevoked(modelToken, true); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"no-such-token-1234", modelToken} {
		resp, env := call(t, "GET", appsURL(s, modelZone), tok, "")
		if resp.StatusCode != http.StatusForbidden || len(env.Errors) != 1 || env.Errors[0].Code != codeInvalidToken ||
			env.Errors[0].Message != "Invalid access token: "+tok {
			t.Errorf("%s: HTTP %d %+v", tok, resp.StatusCode, env.Errors)
		}
	}
}

// Every row of the table names a source, and the package shares no code
// with the operator: neither it nor its tests depend, even through another
// package, on any package of this module. A simulator that reached the
// client's codec or the rules through a helper could only agree with them.
func TestIndependentOfTheOperator(t *testing.T) {
	for i, c := range admissionTable {
		if c.source == "" || c.code == 0 || c.status == 0 || c.run == nil || c.stage == "" {
			t.Errorf("admission row %d is incomplete: %+v", i, c)
		}
	}
	module := goList(t, "list", "-m", "-f", "{{.Path}}")[0]
	self := goList(t, "list", "-f", "{{.ImportPath}}", ".")[0]
	// -test counts the dependencies of the package's tests too; a package
	// recompiled for the tests shows as "path [self.test]".
	for _, dep := range goList(t, "list", "-deps", "-test", "-f", "{{.ImportPath}}", ".") {
		path, _, _ := strings.Cut(dep, " ")
		if path == self || path == self+".test" {
			continue
		}
		if path == module || strings.HasPrefix(path, module+"/") {
			t.Errorf("the simulator depends on %s, a package of the operator (go list -deps -test)", dep)
		}
	}
}

// goList runs the go command in the package's directory and returns its
// output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}
