package spectrum_test

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

// validationCodes are the 400 codes about the configuration itself, the ones
// admission mirrors. Refusals about the account (entitlements, conflicts,
// quotas) are not the rules' business, and the differential world grants
// everything so they do not happen.
var validationCodes = map[int]bool{10001: true, 11000: true, 11001: true, 11002: true, 11004: true,
	11041: true, 11042: true, 11043: true, 11045: true}

// differentialConfig is a world that refuses nothing but invalid
// configurations: every entitlement, the BYOIP prefix of Cloudflare's own
// acceptance tests, and the virtual network the corpus routes to.
func differentialConfig() spectrumtest.Config {
	return spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{{ID: enterpriseAccount, Plan: spectrumtest.PlanEnterprise,
			Entitlements:    spectrumtest.Entitlements{BYOIP: true, Argo: true, FTP: true},
			BYOIPPrefixes:   []string{"172.65.64.0/24", "203.0.113.0/24", "2001:db8:ffff::/48"},
			VirtualNetworks: []spectrumtest.VirtualNetworkConfig{{ID: virtualNetworkID, Routes: []string{"10.0.0.0/24"}}}}},
		Tokens: []spectrumtest.TokenConfig{{Token: enterpriseToken, Account: enterpriseAccount, IPPrefixesPermission: true}},
		Zones:  []spectrumtest.ZoneConfig{{ID: enterpriseZone, Name: "example.com", Account: enterpriseAccount}},
	}
}

// corpusCase is one configuration, from Cloudflare's published material
// where it says so.
type corpusCase struct {
	name   string
	source string
	spec   v1alpha1.SpectrumAppSpec
}

func port(v intstr.IntOrString) *intstr.IntOrString { return &v }

// corpus holds the configurations of Cloudflare's Terraform provider
// acceptance tests (run against the live API; their values reused as
// facts), the examples of the shared API page, and configurations either
// side should refuse.
func corpus() []corpusCase {
	cname := func(name string) v1alpha1.DNS { return v1alpha1.DNS{Type: "CNAME", Name: name + ".example.com"} }
	const tf = "Terraform provider acceptance test"
	const page = "shared API page"
	return []corpusCase{
		{"basic: origin_port beside origin_direct", tf + " spectrumapplicationconfigbasic", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/22", DNS: cname("basic"), OriginDirect: []string{"tcp://128.66.0.1:23"}, OriginPort: port(intstr.FromInt32(22))}},
		{"basic updated", tf + " spectrumapplicationconfigbasicupdated", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/22", DNS: cname("updated"), OriginDirect: []string{"tcp://128.66.0.2:23"}, OriginPort: port(intstr.FromInt32(22)),
			EdgeIPs: &v1alpha1.EdgeIPs{Type: "dynamic", Connectivity: "all"}}},
		{"named protocol ssh", tf + " spectrumapplicationconfigbasictypes (ssh, 22)", v1alpha1.SpectrumAppSpec{
			Protocol: "ssh", DNS: cname("ssh"), OriginDirect: []string{"tcp://128.66.0.4:22"}}},
		{"named protocol rdp", tf + " spectrumapplicationconfigbasictypes (rdp, 3389)", v1alpha1.SpectrumAppSpec{
			Protocol: "rdp", DNS: cname("rdp"), OriginDirect: []string{"tcp://128.66.0.4:3389"}}},
		{"named protocol minecraft", "Spectrum settings by plan", v1alpha1.SpectrumAppSpec{
			Protocol: "minecraft", DNS: cname("mc"), OriginDirect: []string{"tcp://128.66.0.4:25565"}}},
		{"origin DNS", tf + " TestAccCloudflareSpectrumApplication_OriginDNS", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/22", DNS: cname("origindns"), OriginDNS: &v1alpha1.OriginDNS{Name: "rnd.origin.example.com"}, OriginPort: port(intstr.FromInt32(22))}},
		{"port range to an origin DNS range", tf + " TestAccCloudflareSpectrumApplication_PortRange", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/8080-8081", DNS: cname("range"), OriginDNS: &v1alpha1.OriginDNS{Name: "rnd.origin.example.com"}, OriginPort: port(intstr.FromString("8080-8081"))}},
		{"port range to another origin range", tf + " spectrumapplicationconfigoriginportrange", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/22-23", DNS: cname("range2"), OriginDNS: &v1alpha1.OriginDNS{Name: "rnd.origin.example.com"}, OriginPort: port(intstr.FromString("2022-2023"))}},
		{"UDP with simple proxy protocol", tf + " spectrumapplicationconfigsimpleproxyprotocol", v1alpha1.SpectrumAppSpec{
			Protocol: "udp/22", DNS: cname("udpsimple"), OriginDirect: []string{"udp://128.66.0.6:22"}, OriginPort: port(intstr.FromInt32(22)),
			ProxyProtocol: "simple", EdgeIPs: &v1alpha1.EdgeIPs{Type: "dynamic", Connectivity: "all"}}},
		{"UDP", tf + " spectrumapplicationconfigudp", v1alpha1.SpectrumAppSpec{
			Protocol: "udp/53", DNS: cname("udp"), OriginDirect: []string{"udp://128.66.0.11:53"}, OriginPort: port(intstr.FromInt32(53)), TrafficType: "direct"}},
		{"static edge IPs", tf + " TestAccCloudflareSpectrumApplication_EdgeIPsMultiple", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/22", DNS: v1alpha1.DNS{Type: "ADDRESS", Name: "static.example.com"}, OriginDirect: []string{"tcp://128.66.0.4:23"},
			OriginPort: port(intstr.FromInt32(22)), EdgeIPs: &v1alpha1.EdgeIPs{Type: "static", IPs: []string{"172.65.64.13", "172.65.64.49"}}}},
		{"IPv6 edge connectivity", tf + " spectrumapplicationconfigipv6", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/22", DNS: cname("v6edge"), OriginDirect: []string{"tcp://128.66.0.10:22"}, OriginPort: port(intstr.FromInt32(22)),
			EdgeIPs: &v1alpha1.EdgeIPs{Type: "dynamic", Connectivity: "ipv6"}}},
		{"traffic type https", tf + " spectrumapplicationconfigtraffictype", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/80", DNS: cname("https"), OriginDirect: []string{"tcp://128.66.0.9:80"}, OriginPort: port(intstr.FromInt32(80)), TrafficType: "https"}},
		{"every option", tf + " spectrumapplicationmigrationcomplex", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/443", DNS: cname("complex"), OriginDirect: []string{"tcp://128.66.0.3:443"}, TLS: "flexible",
			ArgoSmartRouting: ptr(true), ProxyProtocol: "v1", IPFirewall: ptr(true), TrafficType: "direct",
			EdgeIPs: &v1alpha1.EdgeIPs{Type: "dynamic", Connectivity: "all"}}},
		{"IPv6 origin in brackets", page + ", origin_direct row", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/443", DNS: cname("v6origin"), OriginDirect: []string{"tcp://[2001:db8::1]:443"}}},
		{"load-balanced origins", page + ", origin_direct row", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/22", DNS: cname("lb"), OriginDirect: []string{"tcp://192.0.2.1:22", "tcp://[2001:db8::2]:22"}}},
		{"SRV origin without a port", page + ", origin_port row", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/22", DNS: cname("srv"), OriginDNS: &v1alpha1.OriginDNS{Name: "_ssh._tcp.example.com", Type: "SRV"}}},
		{"virtual network", page + ", virtual_network_id row", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/5432", DNS: cname("db"), OriginDirect: []string{"tcp://10.0.0.5:5432"}, VirtualNetworkID: virtualNetworkID}},
		{"virtual network behind an edge range", page + ", 11043 names origin ranges only", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/5432-5433", DNS: cname("dbrange"), OriginDirect: []string{"tcp://10.0.0.5:5432"}, VirtualNetworkID: virtualNetworkID}},
		{"origin scheme other than the protocol's", "no source refuses it", v1alpha1.SpectrumAppSpec{
			Protocol: "tcp/53", DNS: cname("scheme"), OriginDirect: []string{"udp://192.0.2.1:53"}}},

		// Refused by both.
		{"11000 no origin", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22", DNS: cname("noorigin")}},
		{"11000 both origins", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22", DNS: cname("both"),
			OriginDirect: []string{"tcp://192.0.2.1:22"}, OriginDNS: &v1alpha1.OriginDNS{Name: "o.example.com"}, OriginPort: port(intstr.FromInt32(22))}},
		{"11001 origin DNS without a port", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22", DNS: cname("noport"),
			OriginDNS: &v1alpha1.OriginDNS{Name: "o.example.com"}}},
		{"11002 IPv6 without brackets", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/443", DNS: cname("nobrackets"),
			OriginDirect: []string{"tcp://2001:db8::1:443"}}},
		{"11002 unparseable origin", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22", DNS: cname("garbage"),
			OriginDirect: []string{"tcp://not-an-ip:22"}}},
		{"port counts differ", page + ", port ranges", v1alpha1.SpectrumAppSpec{Protocol: "tcp/1000-1010", DNS: cname("counts"),
			OriginDirect: []string{"tcp://192.0.2.1:2000-2005"}}},
		{"11004 ADDRESS with dynamic edge IPs", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22",
			DNS: v1alpha1.DNS{Type: "ADDRESS", Name: "addr.example.com"}, OriginDirect: []string{"tcp://192.0.2.1:22"}}},
		{"11004 CNAME with static edge IPs", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22", DNS: cname("cnamestatic"),
			OriginDirect: []string{"tcp://192.0.2.1:22"}, EdgeIPs: &v1alpha1.EdgeIPs{Type: "static", IPs: []string{"172.65.64.13"}}}},
		{"11041 virtual network with origin DNS", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22", DNS: cname("vndns"),
			OriginDNS: &v1alpha1.OriginDNS{Name: "o.example.com"}, OriginPort: port(intstr.FromInt32(22)), VirtualNetworkID: virtualNetworkID}},
		{"11042 virtual network with two origins", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22", DNS: cname("vntwo"),
			OriginDirect: []string{"tcp://10.0.0.5:22", "tcp://10.0.0.6:22"}, VirtualNetworkID: virtualNetworkID}},
		{"11043 virtual network with an origin range", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22-23", DNS: cname("vnrange"),
			OriginDirect: []string{"tcp://10.0.0.5:22-23"}, VirtualNetworkID: virtualNetworkID}},
		{"11045 virtual network id not a UUID", page, v1alpha1.SpectrumAppSpec{Protocol: "tcp/22", DNS: cname("vnid"),
			OriginDirect: []string{"tcp://10.0.0.5:22"}, VirtualNetworkID: "office"}},
	}
}

// TestRulesAgreeWithTheSimulator runs one corpus through the admission
// rules and through the simulator, an independent model of Cloudflare, and
// fails on every disagreement: a rule that refuses what Cloudflare accepts
// breaks a user's valid manifest, and one that accepts what it refuses
// lets a mistake through to the API.
func TestRulesAgreeWithTheSimulator(t *testing.T) {
	sim := startSimulator(t, differentialConfig())
	client := newClient(sim, enterpriseToken)
	for _, tc := range corpus() {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.ZoneID = enterpriseZone
			rejections := rules.ValidateSpec(&spec, field.NewPath("spec")).Rejections()
			_, err := client.CreateApp(testContext(t), enterpriseZone, spectrum.FromSpec(&spec))
			simRefused, codes := refusedForItsConfiguration(t, err)
			switch {
			case len(rejections) > 0 && !simRefused:
				t.Errorf("admission rejects what Cloudflare accepts (%s): %v", tc.source, rejections.FieldErrors())
			case len(rejections) == 0 && simRefused:
				t.Errorf("admission accepts what Cloudflare refuses with %v (%s): %v", codes, tc.source, err)
			}
		})
	}
}

// refusedForItsConfiguration reports whether err is Cloudflare refusing
// the configuration itself, and with which codes. Any other failure fails
// the test: the differential world refuses nothing else.
func refusedForItsConfiguration(t *testing.T, err error) (bool, []int) {
	t.Helper()
	if err == nil {
		return false, nil
	}
	var apiErr *spectrum.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != 400 {
		t.Fatalf("the simulator failed for another reason: %v", err)
	}
	for _, code := range apiErr.Codes() {
		if !validationCodes[code] {
			t.Fatalf("refused with %d, a code about the account, not the configuration: %v", code, err)
		}
	}
	return true, apiErr.Codes()
}

// The corpus is not empty of either kind, so the test above compares both
// ways.
func TestDifferentialCorpusHasBothKinds(t *testing.T) {
	accepted, refused := 0, 0
	for _, tc := range corpus() {
		spec := tc.spec
		if len(rules.ValidateSpec(&spec, field.NewPath("spec")).Rejections()) > 0 {
			refused++
		} else {
			accepted++
		}
	}
	if accepted < 15 || refused < 10 {
		t.Fatalf("corpus has %d accepted and %d refused configurations", accepted, refused)
	}
}
