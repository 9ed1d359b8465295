package rules

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// FuzzValidateSpec builds specs from arbitrary strings and numbers: the rules
// must never panic, and every violation must name a field and carry its code.
// Run it with: go test ./api/v1alpha1/rules -run '^$' -fuzz FuzzValidateSpec -fuzztime 20s
func FuzzValidateSpec(f *testing.F) {
	f.Add("tcp/22", "CNAME", "ssh.example.com", "tcp://192.0.2.1:22", "", "", "", int32(0), "", int32(0), "", "", "", "", uint16(0))
	f.Add("tcp/1000-1010", "ADDRESS", "*.example.com", "tcp://2001:db8::1:1000", "udp://[::1]:1-2", "_x._tcp.example.com", "SRV", int32(599), "3000-4000", int32(70000), "static", "198.51.100.1", "http", "not-a-uuid", uint16(0xffff))
	f.Add("udp/0-65536", "A", "", "tcp://[fe80::1%eth0]:22", "tcp://[", "origin.example.com.", "MX", int32(-1), "-", int32(-5), "dynamic", "x", "https", "0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e", uint16(0x5555))

	f.Fuzz(func(t *testing.T, protocol, dnsType, dnsName, origin1, origin2, originDNSName, originDNSType string,
		ttl int32, originPortStr string, originPortInt int32, edgeType, edgeIP, trafficType, vnet string, flags uint16) {
		on := func(bit uint) bool { return flags&(1<<bit) != 0 }
		spec := &v1alpha1.SpectrumAppSpec{
			ZoneID:           dnsName,
			Protocol:         protocol,
			DNS:              v1alpha1.DNS{Type: dnsType, Name: dnsName},
			TrafficType:      trafficType,
			VirtualNetworkID: vnet,
		}
		if on(0) {
			spec.OriginDirect = append(spec.OriginDirect, origin1)
		}
		if on(1) {
			spec.OriginDirect = append(spec.OriginDirect, origin2)
		}
		if on(2) {
			spec.OriginDNS = &v1alpha1.OriginDNS{Name: originDNSName, Type: originDNSType}
			if on(3) {
				spec.OriginDNS.TTL = &ttl
			}
		}
		switch {
		case on(4):
			v := intstr.FromString(originPortStr)
			spec.OriginPort = &v
		case on(5):
			v := intstr.FromInt32(originPortInt)
			spec.OriginPort = &v
		}
		if on(6) {
			spec.EdgeIPs = &v1alpha1.EdgeIPs{Type: edgeType}
			if on(7) {
				spec.EdgeIPs.IPs = []string{edgeIP}
			}
		}
		if on(8) {
			b := on(9)
			spec.ArgoSmartRouting = &b
		}
		if on(10) {
			spec.TLS = trafficType
			spec.ProxyProtocol = vnet
		}

		path := field.NewPath("spec")
		old := spec.DeepCopy()
		old.DNS.Type, old.ZoneID = edgeType, protocol
		siblings := []v1alpha1.SpectrumAppSpec{*old}
		for _, vs := range []Violations{
			ValidateSpec(spec, path),
			ValidateUpdate(old, spec, path),
			ValidatePlan(v1alpha1.PlanPayAsYouGo, spec, siblings, path),
		} {
			for _, v := range vs {
				checkViolation(t, v)
			}
			rejections := len(vs.Rejections())
			if len(vs.FieldErrors()) != rejections || len(vs.Codes()) != rejections || rejections+len(vs.Warnings()) != len(vs) {
				t.Fatalf("FieldErrors/Codes/Warnings do not split the %d violations", len(vs))
			}
		}
	})
}
