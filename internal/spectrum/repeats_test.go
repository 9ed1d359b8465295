package spectrum

import (
	"encoding/json"
	"fmt"
	"testing"
	"unsafe"
)

// appJSON is an application as the simulator answers for it, with
// Cloudflare's defaults filled in.
func appJSON(i int, modified string) []byte {
	return fmt.Appendf(nil, `{"id":"%032x","created_on":"2026-12-05T04:21:02.%09dZ","modified_on":"%s",`+
		`"protocol":"tcp/22","dns":{"type":"CNAME","name":"app-%05d.example.com"},"origin_direct":["tcp://192.0.2.1:22"],"origin_port":22,`+
		`"ip_firewall":false,"proxy_protocol":"off","tls":"off","traffic_type":"direct","edge_ips":{"type":"dynamic","connectivity":"all"},"argo_smart_routing":true}`,
		i, i, modified, i)
}

// Applications decoded apart share what they repeat (settings, origins,
// flags) and keep their own ID, hostname and times: the operator holds
// every application of every zone it manages, and each held its own copy
// of the same dozen values.
func TestDecodedAppsShareWhatTheyRepeat(t *testing.T) {
	var a, b App
	if err := json.Unmarshal(appJSON(1, "2026-12-05T04:21:02.000000001Z"), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(appJSON(2, "2026-12-05T05:00:00Z"), &b); err != nil {
		t.Fatal(err)
	}
	sameString := func(field, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are not one shared copy", field, x, y)
		}
	}
	sameString("protocol", a.Protocol, b.Protocol)
	sameString("dns.type", a.DNS.Type, b.DNS.Type)
	sameString("origin_direct", a.OriginDirect[0], b.OriginDirect[0])
	sameString("proxy_protocol", a.ProxyProtocol, b.ProxyProtocol)
	sameString("tls", a.TLS, b.TLS)
	sameString("traffic_type", a.TrafficType, b.TrafficType)
	for field, pair := range map[string][2]any{
		"ip_firewall":        {a.IPFirewall, b.IPFirewall},
		"argo_smart_routing": {a.ArgoSmartRouting, b.ArgoSmartRouting},
		"edge_ips":           {a.EdgeIPs, b.EdgeIPs},
		"origin_port":        {a.OriginPort, b.OriginPort},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: two copies of the same value", field)
		}
	}
	if *a.IPFirewall || !*a.ArgoSmartRouting || a.EdgeIPs.Type != "dynamic" || a.OriginPort.Start != 22 {
		t.Errorf("shared values changed what was decoded: %+v", a)
	}
	// Never modified: one time serves as both.
	if a.ModifiedOn != a.CreatedOn {
		t.Error("modified_on equal to created_on is a second copy of it")
	}
	if b.ModifiedOn == b.CreatedOn || !b.ModifiedOn.After(*b.CreatedOn) {
		t.Errorf("a later modified_on was lost: created %v, modified %v", b.CreatedOn, b.ModifiedOn)
	}
	if a.ID == b.ID || a.DNS.Name == b.DNS.Name {
		t.Errorf("own values mixed up: %q %q, %q %q", a.ID, b.ID, a.DNS.Name, b.DNS.Name)
	}
}

// An edge with addresses of its own is not shared: only the edge that is
// all defaults is.
func TestStaticEdgeAddressesAreTheAppsOwn(t *testing.T) {
	body := []byte(`{"id":"a","protocol":"tcp/22","dns":{"type":"ADDRESS","name":"a.example.com"},"edge_ips":{"type":"static","ips":["203.0.113.10"]}}`)
	var a, b App
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	if a.EdgeIPs == b.EdgeIPs {
		t.Fatal("an edge with addresses is shared between applications")
	}
	sameType := unsafe.StringData(a.EdgeIPs.Type) == unsafe.StringData(b.EdgeIPs.Type)
	if !sameType || a.EdgeIPs.IPs[0] != "203.0.113.10" {
		t.Errorf("edge: %+v %+v (type shared: %t)", *a.EdgeIPs, *b.EdgeIPs, sameType)
	}
}
