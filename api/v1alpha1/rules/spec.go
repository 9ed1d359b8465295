package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// Values of the Cloudflare enums the rules compare against.
const (
	dnsTypeCNAME   = "CNAME"
	dnsTypeAddress = "ADDRESS"

	edgeIPsDynamic = "dynamic"
	edgeIPsStatic  = "static"

	originDNSTypeSRV = "SRV"

	trafficTypeDirect = "direct"
)

// MinOriginDNSTTL is the smallest origin_dns.ttl Cloudflare accepts. The
// Spectrum error-codes page only says an out-of-range ttl is refused with
// 11001; Cloudflare's OpenAPI schema (spectrum-config_dns_ttl, also enforced by
// the official Terraform provider) publishes "minimum: 600" and no maximum,
// so no upper bound is enforced here beyond the int32 type.
const MinOriginDNSTTL = 600

// ValidateSpec checks every create-time rule of a SpectrumApp spec and
// reports all broken rules at once, each at its exact field path under path.
// It is pure: no client, no context, and the same input always gives the same
// output in the same order.
func ValidateSpec(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	if spec == nil {
		return nil
	}
	var vs Violations
	vs = append(vs, validateProtocol(spec, path)...)
	vs = append(vs, validateDNSName(spec, path)...)
	vs = append(vs, validateOriginChoice(spec, path)...)
	vs = append(vs, validateOriginDirect(spec, path)...)
	vs = append(vs, validateOriginDNS(spec, path)...)
	vs = append(vs, validateOriginPort(spec, path)...)
	vs = append(vs, validateEdgeIPs(spec, path)...)
	vs = append(vs, validateTrafficType(spec, path)...)
	vs = append(vs, validateArgoSmartRouting(spec, path)...)
	vs = append(vs, validateVirtualNetwork(spec, path)...)
	return vs
}

// edgeProtocol is the parsed protocol, or false when it does not parse (the
// protocol rule reports that; rules that compare against it then stay quiet).
func edgeProtocol(spec *v1alpha1.SpectrumAppSpec) (protocol, bool) {
	p, msg := parseProtocol(spec.Protocol)
	return p, msg == ""
}

// validateProtocol: the edge port or range is tcp|udp/PORT[-END] with ports
// 1-65535 and start <= end, or a protocol name (API page, protocol row).
// Cloudflare reads ssh, rdp and minecraft back unchanged (its Terraform
// provider's acceptance tests); another name may be one a plan offers that
// the operator does not know, so it is a warning, not a rejection. The
// reference gives no Cloudflare code for a malformed protocol (13002 is
// about ports the plan does not allow, a different, human problem).
func validateProtocol(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	p := path.Child("protocol")
	if spec.Protocol == "" {
		return Violations{violation(CodeNone, SourceAPIPage, field.Required(p, "set the edge port, e.g. tcp/22, tcp/1000-2000 or ssh"))}
	}
	if _, msg := parseProtocol(spec.Protocol); msg != "" {
		if isProtocolName(strings.ToLower(spec.Protocol)) {
			return Violations{caution(SourceTerraformAcceptance, field.Invalid(p, spec.Protocol,
				"is not a protocol name the operator knows (ssh, rdp, minecraft): rules about its port are skipped, and Cloudflare says whether the plan offers it"))}
		}
		return Violations{violation(CodeNone, SourceAPIPage, field.Invalid(p, spec.Protocol, msg))}
	}
	return nil
}

// validateDNSName: dns.name is the application's hostname (API page, dns
// row). The reference gives no code for a malformed name (16001 is a name
// owned by another zone). A leading "*." is accepted: the rules cannot tell
// whether the zone allows wildcards, and Cloudflare will say so if it does
// not. A trailing dot is only a warning: nothing says Cloudflare refuses
// it, and names are compared without it.
func validateDNSName(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	p := path.Child("dns", "name")
	name := spec.DNS.Name
	if name == "" {
		return Violations{violation(CodeNone, SourceAPIPage, field.Required(p, "set the application's hostname, e.g. ssh.example.com"))}
	}
	if strings.HasSuffix(name, ".") {
		if msg := hostnameProblem(strings.TrimSuffix(name, "."), false); msg == "" {
			return Violations{caution(SourceNone, field.Invalid(p, name, "ends with a dot: Cloudflare's schema types the name as a hostname, written without it"))}
		}
	}
	if msg := hostnameProblem(name, false); msg != "" {
		return Violations{violation(CodeNone, SourceAPIPage, field.Invalid(p, name, msg))}
	}
	return nil
}

// hostnameProblem says what is wrong with a DNS name, or "" when nothing is.
// DNS is case-insensitive, so upper case is accepted. underscores allows
// "_service._proto" labels for SRV names.
func hostnameProblem(name string, underscores bool) string {
	if strings.HasSuffix(name, ".") {
		return "must not end with a dot: write the name without the trailing dot"
	}
	lower := strings.ToLower(name)
	var errs []string
	switch {
	case underscores:
		errs = validation.IsDNS1123SubdomainWithUnderscore(lower)
	case strings.HasPrefix(lower, "*."):
		errs = validation.IsWildcardDNS1123Subdomain(lower)
	default:
		errs = validation.IsDNS1123Subdomain(lower)
	}
	if len(errs) > 0 {
		return "must be a valid DNS name: " + strings.Join(errs, "; ")
	}
	if !strings.Contains(lower, ".") {
		return "must be a fully qualified name with at least two labels, e.g. origin.example.com"
	}
	return ""
}

// validateOriginChoice mirrors 11000: exactly one of origin_direct and
// origin_dns (API page).
func validateOriginChoice(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	hasDirect, hasDNS := len(spec.OriginDirect) > 0, spec.OriginDNS != nil
	switch {
	case !hasDirect && !hasDNS:
		return Violations{violation(CodeOriginChoice, SourceAPIPage, field.Required(path.Child("originDirect"),
			"set exactly one of originDirect and originDNS"))}
	case hasDirect && hasDNS:
		return Violations{violation(CodeOriginChoice, SourceAPIPage, field.Forbidden(path.Child("originDNS"),
			"set exactly one of originDirect and originDNS, not both"))}
	}
	return nil
}

// validateOriginDirect mirrors 11002 (API page): every address parses as
// tcp|udp://IP:PORT[-END] with IPv6 in brackets, and an origin port range
// holds as many ports as the edge range (API page, "Port ranges"). A single
// origin port behind an edge range is allowed: Cloudflare only constrains
// the size of an origin *range*. Two cautions have no source and are only
// warnings: a scheme other than the protocol's, and an address Cloudflare's
// edge could never reach (loopback, link-local, multicast, unspecified).
func validateOriginDirect(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	edge, edgeOK := edgeProtocol(spec)
	var vs Violations
	for i, s := range spec.OriginDirect {
		p := path.Child("originDirect").Index(i)
		o, msg := parseOrigin(s)
		if msg != "" {
			vs = append(vs, violation(CodeOriginAddress, SourceAPIPage, field.Invalid(p, s, msg)))
			continue
		}
		if msg := unreachableOrigin(o.Addr); msg != "" {
			vs = append(vs, caution(SourceNone, field.Invalid(p, s, msg)))
		}
		if !edgeOK {
			continue
		}
		if o.Scheme != edge.Scheme {
			vs = append(vs, caution(SourceNone, field.Invalid(p, s,
				fmt.Sprintf("scheme %s differs from protocol %s, whose traffic is %s", o.Scheme, spec.Protocol, edge.Scheme))))
		}
		if msg := portCountProblem(o.Ports, edge, spec.Protocol); msg != "" {
			vs = append(vs, violation(CodeOriginAddress, SourceAPIPage, field.Invalid(p, s, msg)))
		}
	}
	return vs
}

// unreachableOrigin explains an address no edge can connect to, or "".
func unreachableOrigin(addr netip.Addr) string {
	if addr.IsUnspecified() || addr.IsLoopback() || addr.IsMulticast() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() {
		return fmt.Sprintf("IP %s is unspecified, loopback, link-local or multicast: Cloudflare's edge cannot reach it", addr)
	}
	return ""
}

// portCountProblem explains an origin range whose size differs from the edge
// range's, or returns "".
func portCountProblem(origin portRange, edge protocol, protocolText string) string {
	if !origin.IsRange() || origin.Count() == edge.Ports.Count() {
		return ""
	}
	return fmt.Sprintf("origin port range %s has %d ports but protocol %s has %d: the counts must match (edge port N+k goes to origin port M+k)",
		origin, origin.Count(), protocolText, edge.Ports.Count())
}

// validateOriginDNS mirrors 11001 (API page): origin_dns.name is a valid DNS
// name (SRV names may have "_service._proto" labels) and its type is one
// Cloudflare knows; ttl is at least MinOriginDNSTTL (API schema).
func validateOriginDNS(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	o := spec.OriginDNS
	if o == nil {
		return nil
	}
	p := path.Child("originDNS")
	var vs Violations
	switch {
	case o.Name == "":
		vs = append(vs, violation(CodeOriginDNS, SourceAPIPage, field.Required(p.Child("name"), "set the origin's DNS name")))
	default:
		if msg := hostnameProblem(o.Name, o.Type == originDNSTypeSRV); msg != "" {
			vs = append(vs, violation(CodeOriginDNS, SourceAPIPage, field.Invalid(p.Child("name"), o.Name, msg)))
		}
	}
	switch o.Type {
	case "", "A", "AAAA", originDNSTypeSRV:
	default:
		vs = append(vs, violation(CodeOriginDNS, SourceAPIPage, field.NotSupported(p.Child("type"), o.Type, []string{"", "A", "AAAA", "SRV"})))
	}
	if o.TTL != nil && *o.TTL < MinOriginDNSTTL {
		vs = append(vs, violation(CodeOriginDNS, SourceAPISchema, field.Invalid(p.Child("ttl"), *o.TTL,
			fmt.Sprintf("must be at least %d seconds, or omitted for Cloudflare's default", MinOriginDNSTTL))))
	}
	return vs
}

// validateOriginPort covers origin_port:
//   - beside originDirect it is accepted: Cloudflare's schema says "only with
//     origin_dns", yet the live API takes it and reads it back (its Terraform
//     provider's acceptance tests), so it is a warning that says so;
//   - missing with a non-SRV originDNS: 11001 (API page; the SRV record
//     carries the port; an explicit port with SRV is accepted);
//   - not a port 1-65535 or a START-END range (API page, origin_port row), or
//     a range of another size than the edge range (API page, "Port ranges"):
//     11001, the origin_dns code, or no code beside originDirect.
func validateOriginPort(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	p := path.Child("originPort")
	if spec.OriginPort == nil {
		if spec.OriginDNS != nil && spec.OriginDNS.Type != originDNSTypeSRV {
			return Violations{violation(CodeOriginDNS, SourceAPIPage, field.Required(p,
				"originDNS needs originPort unless originDNS.type is SRV"))}
		}
		return nil
	}
	code := CodeOriginDNS
	var vs Violations
	if spec.OriginDNS == nil {
		code = CodeNone
		vs = append(vs, caution(SourceTerraformAcceptance, field.Invalid(p, spec.OriginPort.String(),
			"is documented for originDNS only; Cloudflare accepts it beside originDirect and stores it, but each originDirect address names its own port, which is where Cloudflare's documentation sends the traffic")))
	}
	r, msg := parseOriginPort(spec.OriginPort)
	if msg != "" {
		return append(vs, violation(code, SourceAPIPage, field.Invalid(p, spec.OriginPort.String(), msg)))
	}
	if edge, ok := edgeProtocol(spec); ok {
		if msg := portCountProblem(r, edge, spec.Protocol); msg != "" {
			vs = append(vs, violation(code, SourceAPIPage, field.Invalid(p, spec.OriginPort.String(), msg)))
		}
	}
	return vs
}

// parseOriginPort reads origin_port as the API does: a number, or a string
// holding a port or a START-END range.
func parseOriginPort(v *intstr.IntOrString) (portRange, string) {
	if v.Type == intstr.Int {
		if v.IntVal < 1 || v.IntVal > 65535 {
			return portRange{}, "must be a port from 1 to 65535 or a range such as \"3000-4000\""
		}
		return portRange{First: int(v.IntVal), Last: int(v.IntVal)}, ""
	}
	return parsePortRange(v.StrVal)
}

// validateEdgeIPs mirrors 11004 (API page): dynamic edge IPs (also what an
// unset edgeIPs means) need dns.type CNAME; static (BYOIP) edge IPs need
// dns.type ADDRESS and their addresses. ips beside dynamic edge IPs are
// only a warning: nothing says Cloudflare refuses them.
func validateEdgeIPs(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	dnsType := path.Child("dns", "type")
	switch spec.DNS.Type {
	case dnsTypeCNAME, dnsTypeAddress:
	default:
		return Violations{violation(CodeDNSType, SourceAPIPage, field.NotSupported(dnsType, spec.DNS.Type, []string{dnsTypeCNAME, dnsTypeAddress}))}
	}

	mode := edgeIPsDynamic
	var ips []string
	if spec.EdgeIPs != nil {
		mode, ips = spec.EdgeIPs.Type, spec.EdgeIPs.IPs
	}
	p := path.Child("edgeIPs")
	var vs Violations
	switch mode {
	case edgeIPsDynamic:
		if spec.DNS.Type != dnsTypeCNAME {
			vs = append(vs, violation(CodeDNSType, SourceAPIPage, field.Invalid(dnsType, spec.DNS.Type,
				"dynamic edge IPs (the default when edgeIPs is unset) need dns.type CNAME; ADDRESS needs static edgeIPs with ips")))
		}
		if len(ips) > 0 {
			vs = append(vs, caution(SourceAPIPage, field.Invalid(p.Child("ips"), ips,
				"only static edge IPs take ips; with dynamic edge IPs Cloudflare assigns the addresses")))
		}
	case edgeIPsStatic:
		if spec.DNS.Type != dnsTypeAddress {
			vs = append(vs, violation(CodeDNSType, SourceAPIPage, field.Invalid(dnsType, spec.DNS.Type,
				"static edge IPs need dns.type ADDRESS")))
		}
		if len(ips) == 0 {
			vs = append(vs, violation(CodeDNSType, SourceAPIPage, field.Required(p.Child("ips"),
				"static edge IPs need at least one BYOIP address")))
		}
		vs = append(vs, validateEdgeIPList(ips, p.Child("ips"))...)
	default:
		vs = append(vs, violation(CodeDNSType, SourceAPIPage, field.NotSupported(p.Child("type"), mode, []string{edgeIPsDynamic, edgeIPsStatic})))
	}
	return vs
}

// validateEdgeIPList: each static edge address must be an IP (API page,
// edge_ips row). The reference has no code for a malformed one (11019 is
// about addresses the account does not own), so the rule carries none.
func validateEdgeIPList(ips []string, path *field.Path) Violations {
	var vs Violations
	for i, ip := range ips {
		if addr, err := netip.ParseAddr(ip); err != nil || addr.Zone() != "" {
			vs = append(vs, violation(CodeNone, SourceAPIPage, field.Invalid(path.Index(i), ip, "must be an IPv4 or IPv6 address")))
		}
	}
	return vs
}

// validateTrafficType: the http and https traffic types proxy HTTP, which
// runs over TCP. No source says Cloudflare refuses them on UDP, so this is
// a warning.
func validateTrafficType(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	edge, ok := edgeProtocol(spec)
	if !ok || edge.Scheme == schemeTCP || spec.TrafficType == "" || spec.TrafficType == trafficTypeDirect {
		return nil
	}
	return Violations{caution(SourceNone, field.Invalid(path.Child("trafficType"), spec.TrafficType,
		fmt.Sprintf("traffic type %s proxies HTTP, which runs over TCP, not %s", spec.TrafficType, spec.Protocol)))}
}

// validateArgoSmartRouting: the API page says Argo Smart Routing works for
// TCP with traffic type direct, and for UDP (beta); it does not say that
// Cloudflare refuses it otherwise, so this is a warning. (11026 is the
// missing entitlement, a human problem.)
func validateArgoSmartRouting(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	edge, ok := edgeProtocol(spec)
	if !ok || spec.ArgoSmartRouting == nil || !*spec.ArgoSmartRouting {
		return nil
	}
	direct := spec.TrafficType == "" || spec.TrafficType == trafficTypeDirect
	if edge.Scheme == schemeUDP || direct {
		return nil
	}
	return Violations{caution(SourceAPIPage, field.Invalid(path.Child("argoSmartRouting"), true,
		fmt.Sprintf("Argo Smart Routing works for trafficType direct on a tcp protocol (or a udp protocol), not %s", spec.TrafficType)))}
}

// uuidPattern is the canonical 8-4-4-4-12 form Cloudflare shows for virtual
// networks; the braces and urn: forms other parsers accept are not sent.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// validateVirtualNetwork mirrors the virtual network codes (API page): the
// id is a UUID (11045); the origin is originDirect, not originDNS (11041);
// exactly one address (11042); and no port range in origin_port or
// origin_direct (11043). A range in the protocol alone is not what 11043
// names, so it is only a warning.
func validateVirtualNetwork(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	if spec.VirtualNetworkID == "" {
		return nil
	}
	var vs Violations
	if !uuidPattern.MatchString(spec.VirtualNetworkID) {
		vs = append(vs, violation(CodeVirtualNetworkID, SourceAPIPage, field.Invalid(path.Child("virtualNetworkID"), spec.VirtualNetworkID,
			"must be the virtual network's UUID, e.g. 0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e")))
	}
	if spec.OriginDNS != nil {
		vs = append(vs, violation(CodeVirtualNetworkOriginDNS, SourceAPIPage, field.Forbidden(path.Child("originDNS"),
			"virtualNetworkID routes to an IP: use originDirect with one tcp|udp://IP:PORT address instead of originDNS")))
	}
	if n := len(spec.OriginDirect); n > 1 {
		e := field.TooMany(path.Child("originDirect"), n, 1)
		e.Detail = "virtualNetworkID needs exactly one origin address"
		vs = append(vs, violation(CodeVirtualNetworkOrigins, SourceAPIPage, e))
	}
	const noRange = "virtualNetworkID needs a single port, not a range; create one SpectrumApp per port"
	if edge, ok := edgeProtocol(spec); ok && edge.Ports.IsRange() {
		vs = append(vs, caution(SourceAPIPage, field.Invalid(path.Child("protocol"), spec.Protocol,
			"an edge port range with virtualNetworkID sends every edge port to the one origin port")))
	}
	for i, s := range spec.OriginDirect {
		if o, msg := parseOrigin(s); msg == "" && o.Ports.IsRange() {
			vs = append(vs, violation(CodeVirtualNetworkPortRange, SourceAPIPage, field.Invalid(path.Child("originDirect").Index(i), s, noRange)))
		}
	}
	if spec.OriginPort != nil {
		if r, msg := parseOriginPort(spec.OriginPort); msg == "" && r.IsRange() {
			vs = append(vs, violation(CodeVirtualNetworkPortRange, SourceAPIPage, field.Invalid(path.Child("originPort"), spec.OriginPort.String(), noRange)))
		}
	}
	return vs
}
