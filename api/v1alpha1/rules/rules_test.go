package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

const testVNet = "0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e"

// validSpec is a correct TCP application with a direct origin; each case
// changes what it tests.
func validSpec() *v1alpha1.SpectrumAppSpec {
	return &v1alpha1.SpectrumAppSpec{
		ZoneID:       "0123456789abcdef0123456789abcdef",
		Protocol:     "tcp/22",
		DNS:          v1alpha1.DNS{Type: "CNAME", Name: "ssh.example.com"},
		OriginDirect: []string{"tcp://192.0.2.1:22"},
	}
}

// dnsOrigin turns the spec into one with an origin reached by name.
func dnsOrigin(s *v1alpha1.SpectrumAppSpec, name, typ string, port *intstr.IntOrString) {
	s.OriginDirect = nil
	s.OriginDNS = &v1alpha1.OriginDNS{Name: name, Type: typ}
	s.OriginPort = port
}

func portInt(n int32) *intstr.IntOrString  { v := intstr.FromInt32(n); return &v }
func portStr(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }

// summarize renders violations as "field code" for exact comparison, and
// checks each one's message carries its code.
func summarize(t *testing.T, vs Violations) []string {
	t.Helper()
	out := []string{}
	for _, v := range vs {
		checkViolation(t, v)
		if v.Warning {
			out = append(out, v.Err.Field+" warning")
			continue
		}
		out = append(out, fmt.Sprintf("%s %d", v.Err.Field, v.Code))
	}
	return out
}

func checkViolation(t testing.TB, v Violation) {
	t.Helper()
	if v.Err == nil {
		t.Fatalf("violation with code %d has no field error", v.Code)
	}
	suffix := fmt.Sprintf("(Cloudflare error %d)", v.Code)
	switch {
	case v.Source == "":
		t.Errorf("%s: the rule names no source", v.Err.Field)
	case v.Source == SourceNone && !v.Warning:
		t.Errorf("%s: a rule without a Cloudflare source rejects; it may only warn", v.Err.Field)
	case v.Warning && v.Code != CodeNone:
		t.Errorf("%s: a warning claims Cloudflare code %d", v.Err.Field, v.Code)
	case v.Code == CodeNone && strings.Contains(v.Err.Detail, "Cloudflare error"):
		t.Errorf("%s: code-less violation claims a Cloudflare code: %q", v.Err.Field, v.Err.Detail)
	case v.Code != CodeNone && !strings.HasSuffix(v.Err.Detail, suffix):
		t.Errorf("%s: detail %q does not end with %q", v.Err.Field, v.Err.Detail, suffix)
	case strings.TrimSpace(strings.TrimSuffix(v.Err.Detail, suffix)) == "":
		t.Errorf("%s: empty detail", v.Err.Field)
	}
}

type specCase struct {
	name   string
	mutate func(s *v1alpha1.SpectrumAppSpec)
	want   []string // "field code", in order; empty means valid
}

func runSpecCases(t *testing.T, cases []specCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.mutate(s)
			got := summarize(t, ValidateSpec(s, field.NewPath("spec")))
			want := tc.want
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("violations:\n got  %q\n want %q\n errors: %v", got, want, ValidateSpec(s, field.NewPath("spec")).FieldErrors())
			}
		})
	}
}

func TestValidSpecIsValid(t *testing.T) {
	if vs := ValidateSpec(validSpec(), field.NewPath("spec")); len(vs) != 0 {
		t.Fatalf("baseline spec is invalid: %v", vs.FieldErrors())
	}
	if vs := ValidateSpec(nil, field.NewPath("spec")); len(vs) != 0 {
		t.Fatalf("nil spec: %v", vs.FieldErrors())
	}
}

func TestProtocol(t *testing.T) {
	runSpecCases(t, []specCase{
		{"udp", func(s *v1alpha1.SpectrumAppSpec) {
			s.Protocol = "udp/53"
			s.OriginDirect = []string{"udp://192.0.2.1:53"}
		}, nil},
		{"range", func(s *v1alpha1.SpectrumAppSpec) {
			s.Protocol = "tcp/1000-1010"
			s.OriginDirect = []string{"tcp://192.0.2.1:2000-2010"}
		}, nil},
		{"max port", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "tcp/65535" }, nil},
		{"empty", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "" }, []string{"spec.protocol 0"}},
		{"port 0", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "tcp/0" }, []string{"spec.protocol 0"}},
		{"port too big", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "tcp/65536" }, []string{"spec.protocol 0"}},
		{"start after end", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "tcp/2000-1000" }, []string{"spec.protocol 0"}},
		{"signed port", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "tcp/+22" }, []string{"spec.protocol 0"}},
		{"unknown scheme", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "sctp/22" }, []string{"spec.protocol 0"}},
		{"no slash", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "tcp22" }, []string{"spec.protocol 0"}},
		// Cloudflare's Terraform provider acceptance tests create "ssh"
		// and "rdp" apps against the live API and read them back.
		{"named ssh", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "ssh" }, nil},
		{"named rdp", func(s *v1alpha1.SpectrumAppSpec) {
			s.Protocol = "rdp"
			s.OriginDirect = []string{"tcp://192.0.2.1:3389"}
		}, nil},
		{"named minecraft", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "minecraft" }, nil},
		{"named protocol upper case", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "SSH" }, nil},
		{"unknown name warns", func(s *v1alpha1.SpectrumAppSpec) { s.Protocol = "quake" }, []string{"spec.protocol warning"}},
		{"named protocol is tcp", func(s *v1alpha1.SpectrumAppSpec) {
			s.Protocol = "ssh"
			s.OriginDirect = []string{"tcp://192.0.2.1:22-23"}
		}, []string{"spec.originDirect[0] 11002"}},
	})
}

func TestDNSName(t *testing.T) {
	runSpecCases(t, []specCase{
		{"upper case", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Name = "SSH.Example.com" }, nil},
		{"wildcard", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Name = "*.example.com" }, nil},
		{"empty", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Name = "" }, []string{"spec.dns.name 0"}},
		{"trailing dot warns", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Name = "ssh.example.com." }, []string{"spec.dns.name warning"}},
		{"trailing dot on a bad name", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Name = "-ssh.example.com." }, []string{"spec.dns.name 0"}},
		{"single label", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Name = "localhost" }, []string{"spec.dns.name 0"}},
		{"underscore", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Name = "ssh_1.example.com" }, []string{"spec.dns.name 0"}},
		{"leading hyphen", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Name = "-ssh.example.com" }, []string{"spec.dns.name 0"}},
	})
}

// 11000: exactly one of originDirect and originDNS.
func TestOriginChoice(t *testing.T) {
	runSpecCases(t, []specCase{
		{"dns only", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "", portInt(22)) }, nil},
		{"neither", func(s *v1alpha1.SpectrumAppSpec) { s.OriginDirect = nil }, []string{"spec.originDirect 11000"}},
		{"empty list", func(s *v1alpha1.SpectrumAppSpec) { s.OriginDirect = []string{} }, []string{"spec.originDirect 11000"}},
		{"both", func(s *v1alpha1.SpectrumAppSpec) {
			s.OriginDNS = &v1alpha1.OriginDNS{Name: "_ssh._tcp.example.com", Type: "SRV"}
		}, []string{"spec.originDNS 11000"}},
	})
}

// 11002: origin_direct addresses.
func TestOriginDirect(t *testing.T) {
	one := func(addr string) func(s *v1alpha1.SpectrumAppSpec) {
		return func(s *v1alpha1.SpectrumAppSpec) { s.OriginDirect = []string{addr} }
	}
	bad := []string{"spec.originDirect[0] 11002"}
	warn := []string{"spec.originDirect[0] warning"}
	runSpecCases(t, []specCase{
		{"ipv6 in brackets", one("tcp://[2001:db8::1]:22"), nil},
		{"load balanced", func(s *v1alpha1.SpectrumAppSpec) {
			s.OriginDirect = []string{"tcp://192.0.2.1:22", "tcp://[2001:db8::2]:2222"}
		}, nil},
		{"private IP", one("tcp://10.0.0.1:22"), nil},
		{"single origin port behind an edge range", func(s *v1alpha1.SpectrumAppSpec) {
			s.Protocol = "tcp/1000-1010"
			s.OriginDirect = []string{"tcp://192.0.2.1:22"}
		}, nil},
		{"one-port range", one("tcp://192.0.2.1:22-22"), nil},
		{"ipv6 without brackets", one("tcp://2001:db8::1:22"), bad},
		{"hostname", one("tcp://origin.example.com:22"), bad},
		{"scheme mismatch warns", one("udp://192.0.2.1:22"), warn},
		{"unknown scheme", one("http://192.0.2.1:22"), bad},
		{"no scheme", one("192.0.2.1:22"), bad},
		{"no port", one("tcp://192.0.2.1"), bad},
		{"port 0", one("tcp://192.0.2.1:0"), bad},
		{"port too big", one("tcp://192.0.2.1:70000"), bad},
		{"reversed range", one("tcp://192.0.2.1:2000-1000"), bad},
		{"path", one("tcp://192.0.2.1:22/x"), bad},
		{"ipv4 in brackets", one("tcp://[192.0.2.1]:22"), bad},
		{"unclosed bracket", one("tcp://[2001:db8::1:22"), bad},
		{"loopback warns", one("tcp://127.0.0.1:22"), warn},
		{"unspecified warns", one("tcp://0.0.0.0:22"), warn},
		{"link-local v6 warns", one("tcp://[fe80::1]:22"), warn},
		{"zone", one("tcp://[fe80::1%eth0]:22"), bad},
		{"multicast warns", one("tcp://224.0.0.1:22"), warn},
		{"second entry", func(s *v1alpha1.SpectrumAppSpec) {
			s.OriginDirect = []string{"tcp://192.0.2.1:22", "tcp://192.0.2.2"}
		}, []string{"spec.originDirect[1] 11002"}},
		{"origin range smaller than edge range", func(s *v1alpha1.SpectrumAppSpec) {
			s.Protocol = "tcp/1000-1010"
			s.OriginDirect = []string{"tcp://192.0.2.1:2000-2005"}
		}, bad},
		{"origin range behind a single edge port", one("tcp://192.0.2.1:22-23"), bad},
		{"scheme mismatch and count mismatch", func(s *v1alpha1.SpectrumAppSpec) {
			s.Protocol = "tcp/1000-1001"
			s.OriginDirect = []string{"udp://192.0.2.1:1000-1005"}
		}, []string{"spec.originDirect[0] warning", "spec.originDirect[0] 11002"}},
	})
}

func TestIPv6WithoutBracketsMessage(t *testing.T) {
	s := validSpec()
	s.Protocol = "tcp/443"
	s.OriginDirect = []string{"tcp://2001:db8::1:443"}
	vs := ValidateSpec(s, field.NewPath("spec"))
	if len(vs) != 1 {
		t.Fatalf("want one violation, got %v", vs.FieldErrors())
	}
	want := `spec.originDirect[0]: Invalid value: "tcp://2001:db8::1:443": IPv6 origin must be in brackets, e.g. tcp://[2001:db8::1]:443 (Cloudflare error 11002)`
	if got := vs[0].Err.Error(); got != want {
		t.Errorf("message:\n got  %s\n want %s", got, want)
	}
}

// 11001 (and 11000 for a stray originPort): origin_dns and origin_port.
func TestOriginDNS(t *testing.T) {
	runSpecCases(t, []specCase{
		{"A and AAAA", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "", portInt(22)) }, nil},
		{"type A", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "A", portInt(22)) }, nil},
		{"string port", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "", portStr("22")) }, nil},
		{"port range", func(s *v1alpha1.SpectrumAppSpec) {
			s.Protocol = "tcp/1000-2000"
			dnsOrigin(s, "origin.example.com", "", portStr("3000-4000"))
		}, nil},
		{"SRV without port", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "_ssh._tcp.example.com", "SRV", nil) }, nil},
		{"SRV with port", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "_ssh._tcp.example.com", "SRV", portInt(22)) }, nil},
		{"ttl at minimum", func(s *v1alpha1.SpectrumAppSpec) {
			dnsOrigin(s, "origin.example.com", "", portInt(22))
			s.OriginDNS.TTL = ptr.To[int32](600)
		}, nil},
		{"empty name", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "", "", portInt(22)) }, []string{"spec.originDNS.name 11001"}},
		{"trailing dot", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com.", "", portInt(22)) }, []string{"spec.originDNS.name 11001"}},
		{"underscore outside SRV", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "_ssh._tcp.example.com", "A", portInt(22)) }, []string{"spec.originDNS.name 11001"}},
		{"not a name", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin example.com", "", portInt(22)) }, []string{"spec.originDNS.name 11001"}},
		{"unknown type", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "MX", portInt(22)) }, []string{"spec.originDNS.type 11001"}},
		{"ttl too small", func(s *v1alpha1.SpectrumAppSpec) {
			dnsOrigin(s, "origin.example.com", "", portInt(22))
			s.OriginDNS.TTL = ptr.To[int32](599)
		}, []string{"spec.originDNS.ttl 11001"}},
		{"ttl zero", func(s *v1alpha1.SpectrumAppSpec) {
			dnsOrigin(s, "origin.example.com", "", portInt(22))
			s.OriginDNS.TTL = ptr.To[int32](0)
		}, []string{"spec.originDNS.ttl 11001"}},
		{"missing port", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "AAAA", nil) }, []string{"spec.originPort 11001"}},
		{"port 0", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "", portInt(0)) }, []string{"spec.originPort 11001"}},
		{"port too big", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "", portInt(65536)) }, []string{"spec.originPort 11001"}},
		{"port not a number", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "", portStr("ssh")) }, []string{"spec.originPort 11001"}},
		{"reversed range", func(s *v1alpha1.SpectrumAppSpec) { dnsOrigin(s, "origin.example.com", "", portStr("4000-3000")) }, []string{"spec.originPort 11001"}},
		{"range size mismatch", func(s *v1alpha1.SpectrumAppSpec) {
			s.Protocol = "tcp/1000-2000"
			dnsOrigin(s, "origin.example.com", "", portStr("3000-3999"))
		}, []string{"spec.originPort 11001"}},
		// Cloudflare's Terraform provider acceptance tests create exactly
		// this against the live API and read origin_port 22 back.
		{"originPort with originDirect warns", func(s *v1alpha1.SpectrumAppSpec) {
			s.OriginDirect = []string{"tcp://128.66.0.2:23"}
			s.OriginPort = portInt(22)
		}, []string{"spec.originPort warning"}},
		{"bad originPort with originDirect", func(s *v1alpha1.SpectrumAppSpec) { s.OriginPort = portStr("x") }, []string{"spec.originPort warning", "spec.originPort 0"}},
	})
}

// 11004: dns.type against the edge IP mode.
func TestEdgeIPs(t *testing.T) {
	static := func(ips ...string) *v1alpha1.EdgeIPs { return &v1alpha1.EdgeIPs{Type: "static", IPs: ips} }
	runSpecCases(t, []specCase{
		{"dynamic", func(s *v1alpha1.SpectrumAppSpec) {
			s.EdgeIPs = &v1alpha1.EdgeIPs{Type: "dynamic", Connectivity: "ipv4"}
		}, nil},
		{"static", func(s *v1alpha1.SpectrumAppSpec) {
			s.DNS.Type = "ADDRESS"
			s.EdgeIPs = static("198.51.100.10", "2001:db8::10")
		}, nil},
		{"ADDRESS with default edge IPs", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Type = "ADDRESS" }, []string{"spec.dns.type 11004"}},
		{"ADDRESS with dynamic", func(s *v1alpha1.SpectrumAppSpec) {
			s.DNS.Type = "ADDRESS"
			s.EdgeIPs = &v1alpha1.EdgeIPs{Type: "dynamic"}
		}, []string{"spec.dns.type 11004"}},
		{"CNAME with static", func(s *v1alpha1.SpectrumAppSpec) { s.EdgeIPs = static("198.51.100.10") }, []string{"spec.dns.type 11004"}},
		{"static without ips", func(s *v1alpha1.SpectrumAppSpec) {
			s.DNS.Type = "ADDRESS"
			s.EdgeIPs = static()
		}, []string{"spec.edgeIPs.ips 11004"}},
		{"dynamic with ips", func(s *v1alpha1.SpectrumAppSpec) {
			s.EdgeIPs = &v1alpha1.EdgeIPs{Type: "dynamic", IPs: []string{"198.51.100.10"}}
		}, []string{"spec.edgeIPs.ips warning"}},
		{"unknown dns type", func(s *v1alpha1.SpectrumAppSpec) { s.DNS.Type = "A" }, []string{"spec.dns.type 11004"}},
		{"unknown edge type", func(s *v1alpha1.SpectrumAppSpec) {
			s.EdgeIPs = &v1alpha1.EdgeIPs{Type: "anycast"}
		}, []string{"spec.edgeIPs.type 11004"}},
		{"static IP not an IP", func(s *v1alpha1.SpectrumAppSpec) {
			s.DNS.Type = "ADDRESS"
			s.EdgeIPs = static("198.51.100.10", "edge.example.com")
		}, []string{"spec.edgeIPs.ips[1] 0"}},
	})
}

func TestTrafficTypeAndArgo(t *testing.T) {
	udp := func(s *v1alpha1.SpectrumAppSpec) {
		s.Protocol = "udp/27015"
		s.OriginDirect = []string{"udp://192.0.2.1:27015"}
	}
	runSpecCases(t, []specCase{
		{"tcp https", func(s *v1alpha1.SpectrumAppSpec) { s.TrafficType = "https" }, nil},
		{"udp direct", func(s *v1alpha1.SpectrumAppSpec) { udp(s); s.TrafficType = "direct" }, nil},
		{"udp http warns", func(s *v1alpha1.SpectrumAppSpec) { udp(s); s.TrafficType = "http" }, []string{"spec.trafficType warning"}},
		{"argo tcp direct", func(s *v1alpha1.SpectrumAppSpec) { s.ArgoSmartRouting = ptr.To(true) }, nil},
		{"argo tcp explicit direct", func(s *v1alpha1.SpectrumAppSpec) {
			s.TrafficType = "direct"
			s.ArgoSmartRouting = ptr.To(true)
		}, nil},
		{"argo udp", func(s *v1alpha1.SpectrumAppSpec) { udp(s); s.ArgoSmartRouting = ptr.To(true) }, nil},
		{"argo off with http", func(s *v1alpha1.SpectrumAppSpec) {
			s.TrafficType = "http"
			s.ArgoSmartRouting = ptr.To(false)
		}, nil},
		{"argo with http", func(s *v1alpha1.SpectrumAppSpec) {
			s.TrafficType = "http"
			s.ArgoSmartRouting = ptr.To(true)
		}, []string{"spec.argoSmartRouting warning"}},
	})
}

// 11041, 11042, 11043, 11045: virtual network origins.
func TestVirtualNetwork(t *testing.T) {
	vnet := func(s *v1alpha1.SpectrumAppSpec) {
		s.VirtualNetworkID = testVNet
		s.OriginDirect = []string{"tcp://10.0.0.5:22"}
	}
	runSpecCases(t, []specCase{
		{"valid", vnet, nil},
		{"upper-case UUID", func(s *v1alpha1.SpectrumAppSpec) { vnet(s); s.VirtualNetworkID = strings.ToUpper(testVNet) }, nil},
		{"not a UUID", func(s *v1alpha1.SpectrumAppSpec) { vnet(s); s.VirtualNetworkID = "office-network" }, []string{"spec.virtualNetworkID 11045"}},
		{"UUID in braces", func(s *v1alpha1.SpectrumAppSpec) { vnet(s); s.VirtualNetworkID = "{" + testVNet + "}" }, []string{"spec.virtualNetworkID 11045"}},
		{"with originDNS", func(s *v1alpha1.SpectrumAppSpec) {
			vnet(s)
			dnsOrigin(s, "origin.example.com", "", portInt(22))
		}, []string{"spec.originDNS 11041"}},
		{"two addresses", func(s *v1alpha1.SpectrumAppSpec) {
			vnet(s)
			s.OriginDirect = append(s.OriginDirect, "tcp://10.0.0.6:22")
		}, []string{"spec.originDirect 11042"}},
		{"port ranges", func(s *v1alpha1.SpectrumAppSpec) {
			vnet(s)
			s.Protocol = "tcp/1000-1001"
			s.OriginDirect = []string{"tcp://10.0.0.5:1000-1001"}
		}, []string{"spec.protocol warning", "spec.originDirect[0] 11043"}},
		// 11043 names origin_port and origin_direct ranges, not the
		// protocol's: an edge range into one tunnel port is admitted.
		{"protocol range alone warns", func(s *v1alpha1.SpectrumAppSpec) {
			vnet(s)
			s.Protocol = "tcp/1000-1001"
		}, []string{"spec.protocol warning"}},
		{"originPort range with originDNS", func(s *v1alpha1.SpectrumAppSpec) {
			vnet(s)
			s.Protocol = "tcp/1000-1001"
			dnsOrigin(s, "origin.example.com", "", portStr("2000-2001"))
		}, []string{"spec.originDNS 11041", "spec.protocol warning", "spec.originPort 11043"}},
	})
}

// One object with many mistakes reports every one, in a stable order.
func TestReportsEveryViolation(t *testing.T) {
	s := &v1alpha1.SpectrumAppSpec{
		ZoneID:           "0123456789abcdef0123456789abcdef",
		Protocol:         "tcp/1000-1010",
		DNS:              v1alpha1.DNS{Type: "ADDRESS", Name: "game.example.com"},
		OriginDirect:     []string{"tcp://2001:db8::1:1000", "udp://192.0.2.1:2000-2005", "tcp://192.0.2.2:22"},
		OriginPort:       portInt(22),
		TrafficType:      "http",
		ArgoSmartRouting: ptr.To(true),
		VirtualNetworkID: "not-a-uuid",
	}
	want := []string{
		"spec.originDirect[0] 11002",    // IPv6 without brackets
		"spec.originDirect[1] warning",  // udp behind a tcp protocol
		"spec.originDirect[1] 11002",    // 6 ports behind 11
		"spec.originPort warning",       // originPort with originDirect
		"spec.dns.type 11004",           // ADDRESS with dynamic edge IPs
		"spec.argoSmartRouting warning", // Argo with http
		"spec.virtualNetworkID 11045",   // not a UUID
		"spec.originDirect 11042",       // three addresses
		"spec.protocol warning",         // edge range
		"spec.originDirect[1] 11043",    // origin range
	}
	vs := ValidateSpec(s, field.NewPath("spec"))
	if got := summarize(t, vs); !slices.Equal(got, want) {
		t.Errorf("violations:\n got  %q\n want %q", got, want)
	}
	if got := len(vs.FieldErrors()); got != 6 {
		t.Errorf("FieldErrors has %d entries, want the 6 rejections", got)
	}
	if got := len(vs.Warnings()); got != 4 {
		t.Errorf("Warnings has %d entries, want 4", got)
	}
	if !slices.Equal(vs.Codes(), []int{11002, 11002, 11004, 11045, 11042, 11043}) {
		t.Errorf("codes: %v", vs.Codes())
	}
	// Deterministic: the same input gives the same output.
	if again := ValidateSpec(s, field.NewPath("spec")); fmt.Sprint(again.FieldErrors()) != fmt.Sprint(vs.FieldErrors()) {
		t.Errorf("not deterministic:\n%v\n%v", vs.FieldErrors(), again.FieldErrors())
	}
}

func TestValidateUpdate(t *testing.T) {
	toStatic := func(s *v1alpha1.SpectrumAppSpec) {
		s.DNS.Type = "ADDRESS"
		s.EdgeIPs = &v1alpha1.EdgeIPs{Type: "static", IPs: []string{"198.51.100.10"}}
	}
	cases := []struct {
		name   string
		mutate func(s *v1alpha1.SpectrumAppSpec)
		want   []string
	}{
		{"origin change", func(s *v1alpha1.SpectrumAppSpec) { s.OriginDirect = []string{"tcp://192.0.2.9:22"} }, nil},
		{"dns.type change", toStatic, []string{"spec.dns.type 11004"}},
		{"zoneID change", func(s *v1alpha1.SpectrumAppSpec) { s.ZoneID = "fedcba9876543210fedcba9876543210" }, []string{"spec.zoneID 0"}},
		{"invalid new spec", func(s *v1alpha1.SpectrumAppSpec) { s.OriginDirect = nil }, []string{"spec.originDirect 11000"}},
		{"all at once", func(s *v1alpha1.SpectrumAppSpec) {
			toStatic(s)
			s.OriginDirect = nil
			s.ZoneID = "fedcba9876543210fedcba9876543210"
		}, []string{"spec.originDirect 11000", "spec.dns.type 11004", "spec.zoneID 0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oldSpec, newSpec := validSpec(), validSpec()
			tc.mutate(newSpec)
			got := summarize(t, ValidateUpdate(oldSpec, newSpec, field.NewPath("spec")))
			want := tc.want
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("violations:\n got  %q\n want %q", got, want)
			}
		})
	}

	t.Run("messages", func(t *testing.T) {
		oldSpec, newSpec := validSpec(), validSpec()
		toStatic(newSpec)
		newSpec.ZoneID = "fedcba9876543210fedcba9876543210"
		errs := ValidateUpdate(oldSpec, newSpec, field.NewPath("spec")).FieldErrors().ToAggregate().Error()
		for _, want := range []string{
			"dns.type cannot change from CNAME to ADDRESS once the application exists; create a new SpectrumApp (Cloudflare error 11004)",
			"create a new SpectrumApp to use another zone",
		} {
			if !strings.Contains(errs, want) {
				t.Errorf("%q missing from %s", want, errs)
			}
		}
	})
}

func TestValidatePlan(t *testing.T) {
	extras := func(s *v1alpha1.SpectrumAppSpec) {
		s.TLS = "off"
		s.IPFirewall = ptr.To(false)
		s.EdgeIPs = &v1alpha1.EdgeIPs{Type: "dynamic"}
	}
	sibling := func(protocol string) v1alpha1.SpectrumAppSpec {
		s := validSpec()
		s.Protocol = protocol
		s.DNS.Name = "other.example.com"
		return *s
	}
	cases := []struct {
		name     string
		plan     v1alpha1.AccountPlan
		mutate   func(s *v1alpha1.SpectrumAppSpec)
		siblings []v1alpha1.SpectrumAppSpec
		want     []string
	}{
		{"enterprise may set anything", v1alpha1.PlanEnterprise, extras, []v1alpha1.SpectrumAppSpec{sibling("tcp/22")}, nil},
		{"unset plan is not limited", "", extras, nil, nil},
		{"payg minimal", v1alpha1.PlanPayAsYouGo, func(*v1alpha1.SpectrumAppSpec) {}, []v1alpha1.SpectrumAppSpec{sibling("tcp/3389")}, nil},
		{"payg extra fields", v1alpha1.PlanPayAsYouGo, extras, nil,
			[]string{"spec.ipFirewall 10012", "spec.tls 10012", "spec.edgeIPs 10012"}},
		{"payg every extra field", v1alpha1.PlanPayAsYouGo, func(s *v1alpha1.SpectrumAppSpec) {
			dnsOrigin(s, "origin.example.com", "", portInt(22))
			s.IPFirewall = ptr.To(true)
			s.ProxyProtocol = "v1"
			s.TLS = "full"
			s.TrafficType = "direct"
			s.EdgeIPs = &v1alpha1.EdgeIPs{Type: "dynamic"}
			s.ArgoSmartRouting = ptr.To(false)
			s.VirtualNetworkID = testVNet
		}, nil, []string{
			"spec.originDNS 10012", "spec.originPort 10012", "spec.ipFirewall 10012", "spec.proxyProtocol 10012",
			"spec.tls 10012", "spec.trafficType 10012", "spec.edgeIPs 10012", "spec.argoSmartRouting 10012",
			"spec.virtualNetworkID 10012",
		}},
		{"payg same protocol", v1alpha1.PlanPayAsYouGo, func(*v1alpha1.SpectrumAppSpec) {},
			[]v1alpha1.SpectrumAppSpec{sibling("tcp/3389"), sibling("tcp/22"), sibling("tcp/22")}, []string{"spec.protocol 11034"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.mutate(s)
			got := summarize(t, ValidatePlan(tc.plan, s, tc.siblings, field.NewPath("spec")))
			want := tc.want
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("violations:\n got  %q\n want %q", got, want)
			}
		})
	}
}

// CanonicalProtocol writes a protocol as its ports mean it, and hands back
// one already written so as itself, not a copy of it.
func TestCanonicalProtocol(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tcp/22", "tcp/22"},
		{"ssh", "tcp/22"},
		{"TCP/22", "tcp/22"},
		{" tcp/22 ", "tcp/22"},
		{"tcp/22-22", "tcp/22"},
		{"udp/1000-2000", "udp/1000-2000"},
		{"minecraft", "tcp/25565"},
		{"Gopher", "gopher"},
	} {
		got := CanonicalProtocol(tc.in)
		if got != tc.want {
			t.Errorf("CanonicalProtocol(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if tc.in == tc.want && unsafe.StringData(got) != unsafe.StringData(tc.in) {
			t.Errorf("CanonicalProtocol(%q) is a copy of its argument", tc.in)
		}
	}
}
