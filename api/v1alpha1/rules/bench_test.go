package rules

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// The webhook runs the rule set on every create and update; admission
// latency is bounded by it (make bench reports these).

func BenchmarkValidateSpecValid(b *testing.B) {
	spec := &v1alpha1.SpectrumAppSpec{
		ZoneID:       "023e105f4ecef8ad9ca31a8372d0c353",
		Protocol:     "tcp/1000-1010",
		DNS:          v1alpha1.DNS{Type: "CNAME", Name: "game.example.com"},
		OriginDirect: []string{"tcp://192.0.2.1:2000-2010", "tcp://[2001:db8::1]:2000-2010"},
		TLS:          "full",
		TrafficType:  "direct",
		EdgeIPs:      &v1alpha1.EdgeIPs{Type: "dynamic", Connectivity: "all"},
	}
	path := field.NewPath("spec")
	b.ReportAllocs()
	for b.Loop() {
		if vs := ValidateSpec(spec, path); len(vs) != 0 {
			b.Fatalf("valid spec rejected: %v", vs.FieldErrors())
		}
	}
}

func BenchmarkValidateSpecInvalid(b *testing.B) {
	spec := &v1alpha1.SpectrumAppSpec{
		ZoneID:           "023e105f4ecef8ad9ca31a8372d0c353",
		Protocol:         "tcp/22",
		DNS:              v1alpha1.DNS{Type: "ADDRESS", Name: "db.example.com"},
		OriginDirect:     []string{"tcp://2001:db8::5:5432", "tcp://192.0.2.7:5432"},
		OriginDNS:        &v1alpha1.OriginDNS{Name: "origin.example.com", TTL: ptr.To[int32](5)},
		OriginPort:       ptr.To(intstr.FromString("3000-4000")),
		VirtualNetworkID: "my-network",
	}
	path := field.NewPath("spec")
	b.ReportAllocs()
	for b.Loop() {
		if vs := ValidateSpec(spec, path); len(vs) == 0 {
			b.Fatal("invalid spec accepted")
		}
	}
}
