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

// validateProtocol: the edge port or range must be tcp|udp/PORT[-END] with
// ports 1-65535 and start <= end. The reference gives no Cloudflare code for
// a malformed protocol (13002 is about ports the plan does not allow, a
// different, human problem), so the rule carries none.
func validateProtocol(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	p := path.Child("protocol")
	if spec.Protocol == "" {
		return Violations{violation(CodeNone, field.Required(p, "set the edge port, e.g. tcp/22 or tcp/1000-2000"))}
	}
	if _, msg := parseProtocol(spec.Protocol); msg != "" {
		return Violations{violation(CodeNone, field.Invalid(p, spec.Protocol, msg))}
	}
	return nil
}

// validateDNSName: dns.name must be a hostname of at least two labels. The
// reference gives no code for a malformed name (16001 is a name owned by
// another zone). A leading "*." is accepted: the rules cannot tell whether the
// zone allows wildcards, and Cloudflare will say so if it does not.
func validateDNSName(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	p := path.Child("dns", "name")
	name := spec.DNS.Name
	if name == "" {
		return Violations{violation(CodeNone, field.Required(p, "set the application's hostname, e.g. ssh.example.com"))}
	}
	if msg := hostnameProblem(name, false); msg != "" {
		return Violations{violation(CodeNone, field.Invalid(p, name, msg))}
	}
	return nil
}

// hostnameProblem says what is wrong with a DNS name, or "" when nothing is.
// DNS is case-insensitive, so upper case is accepted. A trailing dot is
// refused: Cloudflare's schema types these fields as "hostname", which has
// none, and refusing it here costs the user one character instead of a failed
// API call. underscores allows "_service._proto" labels for SRV names.
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
// origin_dns.
func validateOriginChoice(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	hasDirect, hasDNS := len(spec.OriginDirect) > 0, spec.OriginDNS != nil
	switch {
	case !hasDirect && !hasDNS:
		return Violations{violation(CodeOriginChoice, field.Required(path.Child("originDirect"),
			"set exactly one of originDirect and originDNS"))}
	case hasDirect && hasDNS:
		return Violations{violation(CodeOriginChoice, field.Forbidden(path.Child("originDNS"),
			"set exactly one of originDirect and originDNS, not both"))}
	}
	return nil
}

// validateOriginDirect mirrors 11002: every address parses as
// tcp|udp://IP:PORT[-END] with IPv6 in brackets, its scheme matches the
// protocol's, and a port range holds as many ports as the edge range (edge
// port N+k goes to origin port M+k). A single origin port behind an edge range
// is allowed: Cloudflare only constrains the size of an origin *range*.
func validateOriginDirect(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	edge, edgeOK := edgeProtocol(spec)
	var vs Violations
	for i, s := range spec.OriginDirect {
		p := path.Child("originDirect").Index(i)
		o, msg := parseOrigin(s)
		if msg != "" {
			vs = append(vs, violation(CodeOriginAddress, field.Invalid(p, s, msg)))
			continue
		}
		if !edgeOK {
			continue
		}
		if o.Scheme != edge.Scheme {
			vs = append(vs, violation(CodeOriginAddress, field.Invalid(p, s,
				fmt.Sprintf("scheme %s does not match protocol %s: use %s://", o.Scheme, spec.Protocol, edge.Scheme))))
		}
		if msg := portCountProblem(o.Ports, edge, spec.Protocol); msg != "" {
			vs = append(vs, violation(CodeOriginAddress, field.Invalid(p, s, msg)))
		}
	}
	return vs
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

// validateOriginDNS mirrors 11001: origin_dns.name is a valid DNS name (SRV
// names may have "_service._proto" labels), its type is one Cloudflare knows,
// and ttl is at least MinOriginDNSTTL.
func validateOriginDNS(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	o := spec.OriginDNS
	if o == nil {
		return nil
	}
	p := path.Child("originDNS")
	var vs Violations
	switch {
	case o.Name == "":
		vs = append(vs, violation(CodeOriginDNS, field.Required(p.Child("name"), "set the origin's DNS name")))
	default:
		if msg := hostnameProblem(o.Name, o.Type == originDNSTypeSRV); msg != "" {
			vs = append(vs, violation(CodeOriginDNS, field.Invalid(p.Child("name"), o.Name, msg)))
		}
	}
	switch o.Type {
	case "", "A", "AAAA", originDNSTypeSRV:
	default:
		vs = append(vs, violation(CodeOriginDNS, field.NotSupported(p.Child("type"), o.Type, []string{"", "A", "AAAA", "SRV"})))
	}
	if o.TTL != nil && *o.TTL < MinOriginDNSTTL {
		vs = append(vs, violation(CodeOriginDNS, field.Invalid(p.Child("ttl"), *o.TTL,
			fmt.Sprintf("must be at least %d seconds, or omitted for Cloudflare's default", MinOriginDNSTTL))))
	}
	return vs
}

// validateOriginPort covers origin_port, which belongs to origin_dns:
//   - set without originDNS: 11000, because a port beside originDirect mixes
//     the two ways of naming an origin, which is what 11000 refuses (the
//     address already carries its port);
//   - missing with a non-SRV originDNS: 11001 (the SRV record carries the
//     port; an explicit port with SRV is accepted);
//   - not a port 1-65535 or a START-END range, or a range of another size
//     than the edge range: 11001, the origin_dns code.
func validateOriginPort(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	p := path.Child("originPort")
	switch {
	case spec.OriginDNS == nil && spec.OriginPort != nil:
		return Violations{violation(CodeOriginChoice, field.Forbidden(p,
			"originPort is only used with originDNS; with originDirect, put the port in each address"))}
	case spec.OriginDNS == nil:
		return nil
	case spec.OriginPort == nil:
		if spec.OriginDNS.Type == originDNSTypeSRV {
			return nil
		}
		return Violations{violation(CodeOriginDNS, field.Required(p,
			"originDNS needs originPort unless originDNS.type is SRV"))}
	}
	r, msg := parseOriginPort(spec.OriginPort)
	if msg != "" {
		return Violations{violation(CodeOriginDNS, field.Invalid(p, spec.OriginPort.String(), msg))}
	}
	if edge, ok := edgeProtocol(spec); ok {
		if msg := portCountProblem(r, edge, spec.Protocol); msg != "" {
			return Violations{violation(CodeOriginDNS, field.Invalid(p, spec.OriginPort.String(), msg))}
		}
	}
	return nil
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

// validateEdgeIPs mirrors 11004: dynamic edge IPs (also what an unset edgeIPs
// means) need dns.type CNAME and take no ips; static (BYOIP) edge IPs need
// dns.type ADDRESS and at least one IP.
func validateEdgeIPs(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	dnsType := path.Child("dns", "type")
	switch spec.DNS.Type {
	case dnsTypeCNAME, dnsTypeAddress:
	default:
		return Violations{violation(CodeDNSType, field.NotSupported(dnsType, spec.DNS.Type, []string{dnsTypeCNAME, dnsTypeAddress}))}
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
			vs = append(vs, violation(CodeDNSType, field.Invalid(dnsType, spec.DNS.Type,
				"dynamic edge IPs (the default when edgeIPs is unset) need dns.type CNAME; ADDRESS needs static edgeIPs with ips")))
		}
		if len(ips) > 0 {
			vs = append(vs, violation(CodeDNSType, field.Forbidden(p.Child("ips"),
				"only static edge IPs take ips; set edgeIPs.type to static (with dns.type ADDRESS) or remove ips")))
		}
	case edgeIPsStatic:
		if spec.DNS.Type != dnsTypeAddress {
			vs = append(vs, violation(CodeDNSType, field.Invalid(dnsType, spec.DNS.Type,
				"static edge IPs need dns.type ADDRESS")))
		}
		if len(ips) == 0 {
			vs = append(vs, violation(CodeDNSType, field.Required(p.Child("ips"),
				"static edge IPs need at least one BYOIP address")))
		}
		vs = append(vs, validateEdgeIPList(ips, p.Child("ips"))...)
	default:
		vs = append(vs, violation(CodeDNSType, field.NotSupported(p.Child("type"), mode, []string{edgeIPsDynamic, edgeIPsStatic})))
	}
	return vs
}

// validateEdgeIPList: each static edge address must be an IP. The reference
// has no code for a malformed one (11019 is about addresses the account does
// not own), so the rule carries none.
func validateEdgeIPList(ips []string, path *field.Path) Violations {
	var vs Violations
	for i, ip := range ips {
		if addr, err := netip.ParseAddr(ip); err != nil || addr.Zone() != "" {
			vs = append(vs, violation(CodeNone, field.Invalid(path.Index(i), ip, "must be an IPv4 or IPv6 address")))
		}
	}
	return vs
}

// validateTrafficType: the http and https traffic types proxy HTTP, which
// runs over TCP only. The reference gives no code.
func validateTrafficType(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	edge, ok := edgeProtocol(spec)
	if !ok || edge.Scheme == schemeTCP || spec.TrafficType == "" || spec.TrafficType == trafficTypeDirect {
		return nil
	}
	return Violations{violation(CodeNone, field.Invalid(path.Child("trafficType"), spec.TrafficType,
		fmt.Sprintf("traffic type %s needs a tcp protocol; use direct with %s", spec.TrafficType, spec.Protocol)))}
}

// validateArgoSmartRouting: Argo Smart Routing works for TCP with traffic
// type direct, and for UDP (beta). The reference gives no code (11026 is the
// missing entitlement, a human problem).
func validateArgoSmartRouting(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	edge, ok := edgeProtocol(spec)
	if !ok || spec.ArgoSmartRouting == nil || !*spec.ArgoSmartRouting {
		return nil
	}
	direct := spec.TrafficType == "" || spec.TrafficType == trafficTypeDirect
	if edge.Scheme == schemeUDP || direct {
		return nil
	}
	return Violations{violation(CodeNone, field.Invalid(path.Child("argoSmartRouting"), true,
		fmt.Sprintf("Argo Smart Routing needs trafficType direct on a tcp protocol (or a udp protocol), not %s", spec.TrafficType)))}
}

// uuidPattern is the canonical 8-4-4-4-12 form Cloudflare shows for virtual
// networks; the braces and urn: forms other parsers accept are not sent.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// validateVirtualNetwork mirrors the virtual network codes: the id is a UUID
// (11045); the origin is originDirect, not originDNS (11041); exactly one
// address (11042); and no port range (11043). A range in the protocol is
// refused with 11043 too: without an origin range it could only fan many edge
// ports into one tunnel port, and Cloudflare's resolution for 11043 is
// "single port; one app per port".
func validateVirtualNetwork(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	if spec.VirtualNetworkID == "" {
		return nil
	}
	var vs Violations
	if !uuidPattern.MatchString(spec.VirtualNetworkID) {
		vs = append(vs, violation(CodeVirtualNetworkID, field.Invalid(path.Child("virtualNetworkID"), spec.VirtualNetworkID,
			"must be the virtual network's UUID, e.g. 0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e")))
	}
	if spec.OriginDNS != nil {
		vs = append(vs, violation(CodeVirtualNetworkOriginDNS, field.Forbidden(path.Child("originDNS"),
			"virtualNetworkID routes to an IP: use originDirect with one tcp|udp://IP:PORT address instead of originDNS")))
	}
	if n := len(spec.OriginDirect); n > 1 {
		e := field.TooMany(path.Child("originDirect"), n, 1)
		e.Detail = "virtualNetworkID needs exactly one origin address"
		vs = append(vs, violation(CodeVirtualNetworkOrigins, e))
	}
	const noRange = "virtualNetworkID needs a single port, not a range; create one SpectrumApp per port"
	if edge, ok := edgeProtocol(spec); ok && edge.Ports.IsRange() {
		vs = append(vs, violation(CodeVirtualNetworkPortRange, field.Invalid(path.Child("protocol"), spec.Protocol, noRange)))
	}
	for i, s := range spec.OriginDirect {
		if o, msg := parseOrigin(s); msg == "" && o.Ports.IsRange() {
			vs = append(vs, violation(CodeVirtualNetworkPortRange, field.Invalid(path.Child("originDirect").Index(i), s, noRange)))
		}
	}
	if spec.OriginPort != nil {
		if r, msg := parseOriginPort(spec.OriginPort); msg == "" && r.IsRange() {
			vs = append(vs, violation(CodeVirtualNetworkPortRange, field.Invalid(path.Child("originPort"), spec.OriginPort.String(), noRange)))
		}
	}
	return vs
}
