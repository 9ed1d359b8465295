package spectrum_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

func ptr[T any](v T) *T { return &v }

func fullSpec() *v1alpha1.SpectrumAppSpec {
	port := intstr.FromString("3000-3001")
	return &v1alpha1.SpectrumAppSpec{
		ZoneID:           "023e105f4ecef8ad9ca31a8372d0c353",
		CredentialsRef:   &v1alpha1.SecretKeyReference{Name: "cf"},
		DeletionPolicy:   v1alpha1.DeletionPolicyOrphan,
		Protocol:         "tcp/3000-3001",
		DNS:              v1alpha1.DNS{Type: "ADDRESS", Name: "game.example.com"},
		OriginDNS:        &v1alpha1.OriginDNS{Name: "origin.example.com", TTL: ptr(int32(600)), Type: "A"},
		OriginPort:       &port,
		IPFirewall:       ptr(true),
		ProxyProtocol:    "v2",
		TLS:              "full",
		TrafficType:      "direct",
		EdgeIPs:          &v1alpha1.EdgeIPs{Type: "static", IPs: []string{"203.0.113.1", "203.0.113.2"}},
		ArgoSmartRouting: ptr(false),
	}
}

func TestFromSpecSendsOnlyWhatIsSet(t *testing.T) {
	minimal := &v1alpha1.SpectrumAppSpec{
		ZoneID: "023e105f4ecef8ad9ca31a8372d0c353", Protocol: "tcp/22",
		DNS:          v1alpha1.DNS{Type: "CNAME", Name: "ssh.example.com"},
		OriginDirect: []string{"tcp://192.0.2.1:22"},
	}
	out, err := json.Marshal(spectrum.FromSpec(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.example.com"},"origin_direct":["tcp://192.0.2.1:22"]}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}

	app := spectrum.FromSpec(fullSpec())
	if app.OriginPort == nil || *app.OriginPort != (spectrum.OriginPort{Start: 3000, End: 3001}) ||
		app.OriginDNS.TTL == nil || *app.OriginDNS.TTL != 600 || app.ArgoSmartRouting == nil || *app.ArgoSmartRouting ||
		app.EdgeIPs == nil || len(app.EdgeIPs.IPs) != 2 {
		t.Errorf("FromSpec(full) = %+v", app)
	}
	intPort := intstr.FromInt32(22)
	if got := spectrum.FromSpec(&v1alpha1.SpectrumAppSpec{OriginPort: &intPort}).OriginPort; got == nil || got.Start != 22 || got.IsRange() {
		t.Errorf("int origin port = %+v", got)
	}
}

func TestToSpecRoundTrip(t *testing.T) {
	spec := fullSpec()
	back := spectrum.ToSpec(spectrum.FromSpec(spec))
	// Kubernetes-only fields are not Cloudflare's.
	spec.ZoneID, spec.CredentialsRef, spec.DeletionPolicy = "", nil, ""
	if !reflect.DeepEqual(&back, spec) {
		t.Errorf("round trip\ngot  %+v\nwant %+v", back, *spec)
	}
	single := spectrum.ToSpec(spectrum.App{OriginPort: &spectrum.OriginPort{Start: 22}})
	if single.OriginPort == nil || single.OriginPort.Type != intstr.Int || single.OriginPort.IntVal != 22 {
		t.Errorf("single port = %+v", single.OriginPort)
	}
}

func TestFromSpecDoesNotAlias(t *testing.T) {
	spec := fullSpec()
	spec.OriginDirect = []string{"tcp://192.0.2.1:22"}
	app := spectrum.FromSpec(spec)
	app.OriginDirect[0] = "changed"
	app.EdgeIPs.IPs[0] = "changed"
	*app.OriginDNS.TTL = 1
	if spec.OriginDirect[0] == "changed" || spec.EdgeIPs.IPs[0] == "changed" || *spec.OriginDNS.TTL == 1 {
		t.Error("FromSpec shares memory with the spec")
	}
}

func TestDifferences(t *testing.T) {
	base := spectrum.App{
		Protocol:     "tcp/22",
		DNS:          spectrum.DNS{Type: "CNAME", Name: "ssh.example.com"},
		OriginDirect: []string{"tcp://192.0.2.1:22", "tcp://192.0.2.2:22"},
	}
	// What Cloudflare answers for base: its defaults and read-only fields.
	now := time.Now()
	observedBase := base
	observedBase.ID, observedBase.CreatedOn, observedBase.ModifiedOn = "a1", &now, &now
	observedBase.ProxyProtocol, observedBase.TLS, observedBase.TrafficType = "off", "off", "direct"
	observedBase.IPFirewall, observedBase.ArgoSmartRouting = ptr(false), ptr(false)
	observedBase.EdgeIPs = &spectrum.EdgeIPs{Type: "dynamic", Connectivity: "all"}

	with := func(app spectrum.App, change func(*spectrum.App)) spectrum.App {
		app.OriginDirect = slices.Clone(app.OriginDirect)
		change(&app)
		return app
	}
	cases := []struct {
		name              string
		desired, observed spectrum.App
		want              []string
	}{
		{"same", base, base, nil},
		{"defaults and read-only fields", base, observedBase, nil},
		{"hostname case and root dot", base, with(observedBase, func(a *spectrum.App) { a.DNS.Name = "SSH.example.com." }), nil},
		{"protocol", base, with(observedBase, func(a *spectrum.App) { a.Protocol = "tcp/2222" }), []string{"protocol"}},
		{"dns type", base, with(observedBase, func(a *spectrum.App) { a.DNS.Type = "ADDRESS" }), []string{"dns.type"}},
		{"hostname changed", base, with(observedBase, func(a *spectrum.App) { a.DNS.Name = "ssh2.example.com" }), []string{"dns.name"}},
		{"hostname moved to a subdomain", base, with(observedBase, func(a *spectrum.App) { a.DNS.Name = "ssh.eu.example.com" }), []string{"dns.name"}},
		{"origin order matters", base, with(observedBase, func(a *spectrum.App) { slices.Reverse(a.OriginDirect) }), []string{"origin_direct"}},
		{"origin removed", base, with(observedBase, func(a *spectrum.App) { a.OriginDirect = a.OriginDirect[:1] }), []string{"origin_direct"}},
		{"explicit default matches absent", with(base, func(a *spectrum.App) {
			a.ProxyProtocol, a.TLS, a.TrafficType = "off", "off", "direct"
			a.IPFirewall, a.ArgoSmartRouting = ptr(false), ptr(false)
			a.EdgeIPs = &spectrum.EdgeIPs{Type: "dynamic"}
		}), base, nil},
		{"proxy protocol drift", with(base, func(a *spectrum.App) { a.ProxyProtocol = "v1" }), observedBase, []string{"proxy_protocol"}},
		{"tls drift", with(base, func(a *spectrum.App) { a.TLS = "strict" }), observedBase, []string{"tls"}},
		{"traffic type drift", with(base, func(a *spectrum.App) { a.TrafficType = "https" }), observedBase, []string{"traffic_type"}},
		{"ip firewall drift", with(base, func(a *spectrum.App) { a.IPFirewall = ptr(true) }), observedBase, []string{"ip_firewall"}},
		{"argo drift", with(base, func(a *spectrum.App) { a.ArgoSmartRouting = ptr(true) }), observedBase, []string{"argo_smart_routing"}},
		// The spec is the whole configuration: a field it leaves unset
		// means Cloudflare's default, so a value set elsewhere differs.
		{"unset desired means the default", base, with(observedBase, func(a *spectrum.App) {
			a.TLS, a.ProxyProtocol, a.IPFirewall = "full", "v2", ptr(true)
		}), []string{"ip_firewall", "proxy_protocol", "tls"}},
		{"argo removed from the spec", base, with(observedBase, func(a *spectrum.App) { a.ArgoSmartRouting = ptr(true) }), []string{"argo_smart_routing"}},
		{"traffic type removed from the spec", base, with(observedBase, func(a *spectrum.App) { a.TrafficType = "https" }), []string{"traffic_type"}},
		{"connectivity removed from the spec", base, with(observedBase, func(a *spectrum.App) { a.EdgeIPs = &spectrum.EdgeIPs{Type: "dynamic", Connectivity: "ipv6"} }), []string{"edge_ips.connectivity"}},
		{"origin port set elsewhere", base, with(observedBase, func(a *spectrum.App) { a.OriginPort = &spectrum.OriginPort{Start: 22} }), []string{"origin_port"}},
		{"virtual network set elsewhere", base, with(observedBase, func(a *spectrum.App) { a.VirtualNetworkID = "0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e" }), []string{"virtual_network_id"}},
		{"named protocol is its port", with(base, func(a *spectrum.App) { a.Protocol = "ssh" }), observedBase, nil},
		{"named protocol read back as named", base, with(observedBase, func(a *spectrum.App) { a.Protocol = "SSH" }), nil},
		{"dynamic edge IPs report assigned addresses", base, with(observedBase, func(a *spectrum.App) {
			a.EdgeIPs = &spectrum.EdgeIPs{Type: "dynamic", Connectivity: "all", IPs: []string{"198.51.100.7"}}
		}), nil},
		{"connectivity", with(base, func(a *spectrum.App) { a.EdgeIPs = &spectrum.EdgeIPs{Type: "dynamic", Connectivity: "ipv4"} }),
			observedBase, []string{"edge_ips.connectivity"}},
		{"legacy app without edge_ips is dynamic", with(base, func(a *spectrum.App) { a.EdgeIPs = &spectrum.EdgeIPs{Type: "dynamic", Connectivity: "all"} }),
			base, nil},
		{"static IPs as a set, canonical", with(base, func(a *spectrum.App) {
			a.EdgeIPs = &spectrum.EdgeIPs{Type: "static", IPs: []string{"2001:DB8::1", "203.0.113.1"}}
		}), with(base, func(a *spectrum.App) {
			a.EdgeIPs = &spectrum.EdgeIPs{Type: "static", IPs: []string{"203.0.113.1", "2001:db8::1"}}
		}), nil},
		{"static IPs changed", with(base, func(a *spectrum.App) { a.EdgeIPs = &spectrum.EdgeIPs{Type: "static", IPs: []string{"203.0.113.1"}} }),
			with(base, func(a *spectrum.App) { a.EdgeIPs = &spectrum.EdgeIPs{Type: "static", IPs: []string{"203.0.113.2"}} }),
			[]string{"edge_ips.ips"}},
		{"origin dns", originDNSApp("o.example.com", "", nil, 22), originDNSApp("O.example.com.", "", nil, 22), nil},
		{"origin dns name", originDNSApp("o.example.com", "", nil, 22), originDNSApp("p.example.com", "", nil, 22), []string{"origin_dns.name"}},
		{"origin dns name and ttl", originDNSApp("o.example.com", "", ptr(int32(600)), 22), originDNSApp("o2.example.com", "", ptr(int32(300)), 22), []string{"origin_dns.name", "origin_dns.ttl"}},
		{"origin dns ttl removed from the spec", originDNSApp("o.example.com", "", nil, 22), originDNSApp("o.example.com", "", ptr(int32(900)), 22), []string{"origin_dns.ttl"}},
		{"origin dns type removed from the spec", originDNSApp("o.example.com", "", nil, 22), originDNSApp("o.example.com", "SRV", nil, 22), []string{"origin_dns.type"}},
		{"origin dns ttl", originDNSApp("o.example.com", "", ptr(int32(600)), 22), originDNSApp("o.example.com", "", ptr(int32(300)), 22), []string{"origin_dns.ttl"}},
		{"origin dns type", originDNSApp("o.example.com", "AAAA", nil, 22), originDNSApp("o.example.com", "", nil, 22), []string{"origin_dns.type"}},
		{"origin dns missing", originDNSApp("o.example.com", "", nil, 22), with(base, func(a *spectrum.App) { a.OriginDirect = nil }), []string{"origin_dns", "origin_port"}},
		{"origin switched to dns", originDNSApp("o.example.com", "", nil, 22), base, []string{"origin_direct", "origin_dns", "origin_port"}},
		{"origin port", originDNSApp("o.example.com", "", nil, 22), originDNSApp("o.example.com", "", nil, 2222), []string{"origin_port"}},
		{"virtual network case", with(base, func(a *spectrum.App) { a.VirtualNetworkID = "0F4C5C3E-2A55-4F2E-9C1E-8E4A5B6C7D8E" }),
			with(base, func(a *spectrum.App) { a.VirtualNetworkID = "0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e" }), nil},
		{"virtual network removed", with(base, func(a *spectrum.App) { a.VirtualNetworkID = "0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e" }),
			base, []string{"virtual_network_id"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := spectrum.Differences(tc.desired, tc.observed)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Differences = %v, want %v", got, tc.want)
			}
			if spectrum.Differs(tc.desired, tc.observed) != (len(tc.want) > 0) {
				t.Errorf("Differs disagrees with Differences")
			}
		})
	}
}

func originDNSApp(name, recordType string, ttl *int32, port int) spectrum.App {
	return spectrum.App{
		Protocol:   "tcp/22",
		DNS:        spectrum.DNS{Type: "CNAME", Name: "ssh.example.com"},
		OriginDNS:  &spectrum.OriginDNS{Name: name, Type: recordType, TTL: ttl},
		OriginPort: &spectrum.OriginPort{Start: port},
	}
}
