package spectrum

import (
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
)

// Cloudflare's defaults for optional fields, the one place they are
// written: an app that leaves a field unset reads back with these values
// (Differences reads an unset field as its default, and export leaves a
// default out of the manifest).
const (
	DefaultProxyProtocol = "off"
	DefaultTLS           = "off"
	DefaultTrafficType   = "direct"
	// DefaultEdgeIPsType and DefaultConnectivity: dynamic addresses on
	// both address families.
	DefaultEdgeIPsType  = "dynamic"
	DefaultConnectivity = "all"
)

// FromSpec returns the app a spec asks for: only the Cloudflare fields, and
// optional fields left unset stay unset so that Cloudflare's defaults apply.
func FromSpec(spec *v1alpha1.SpectrumAppSpec) App {
	app := App{
		Protocol:         spec.Protocol,
		DNS:              DNS{Type: spec.DNS.Type, Name: spec.DNS.Name},
		OriginDirect:     slices.Clone(spec.OriginDirect),
		IPFirewall:       cloneBool(spec.IPFirewall),
		ProxyProtocol:    spec.ProxyProtocol,
		TLS:              spec.TLS,
		TrafficType:      spec.TrafficType,
		ArgoSmartRouting: cloneBool(spec.ArgoSmartRouting),
		VirtualNetworkID: spec.VirtualNetworkID,
	}
	if spec.OriginDNS != nil {
		app.OriginDNS = &OriginDNS{Name: spec.OriginDNS.Name, Type: spec.OriginDNS.Type}
		if spec.OriginDNS.TTL != nil {
			ttl := *spec.OriginDNS.TTL
			app.OriginDNS.TTL = &ttl
		}
	}
	if spec.OriginPort != nil {
		port := originPortFromSpec(*spec.OriginPort)
		app.OriginPort = &port
	}
	if spec.EdgeIPs != nil {
		app.EdgeIPs = &EdgeIPs{
			Type:         spec.EdgeIPs.Type,
			Connectivity: spec.EdgeIPs.Connectivity,
			IPs:          slices.Clone(spec.EdgeIPs.IPs),
		}
	}
	return app
}

// originPortFromSpec reads the spec's port. A string that is not a port
// becomes port 0, which the rule set rejects with the code Cloudflare would.
func originPortFromSpec(port intstr.IntOrString) OriginPort {
	if port.Type == intstr.Int {
		return OriginPort{Start: int(port.IntVal)}
	}
	parsed, err := ParseOriginPort(port.StrVal)
	if err != nil {
		return OriginPort{}
	}
	return parsed
}

// ToSpec returns the spec fields of an app, for running the rule set on an
// API request body. Kubernetes-only fields (zoneID, credentials, deletion
// policy) stay empty.
func ToSpec(app App) v1alpha1.SpectrumAppSpec {
	spec := v1alpha1.SpectrumAppSpec{
		Protocol:         app.Protocol,
		DNS:              v1alpha1.DNS{Type: app.DNS.Type, Name: app.DNS.Name},
		OriginDirect:     slices.Clone(app.OriginDirect),
		IPFirewall:       cloneBool(app.IPFirewall),
		ProxyProtocol:    app.ProxyProtocol,
		TLS:              app.TLS,
		TrafficType:      app.TrafficType,
		ArgoSmartRouting: cloneBool(app.ArgoSmartRouting),
		VirtualNetworkID: app.VirtualNetworkID,
	}
	if app.OriginDNS != nil {
		spec.OriginDNS = &v1alpha1.OriginDNS{Name: app.OriginDNS.Name, Type: app.OriginDNS.Type}
		if app.OriginDNS.TTL != nil {
			ttl := *app.OriginDNS.TTL
			spec.OriginDNS.TTL = &ttl
		}
	}
	if app.OriginPort != nil {
		var port intstr.IntOrString
		if app.OriginPort.IsRange() {
			port = intstr.FromString(app.OriginPort.String())
		} else {
			port = intstr.FromInt32(int32(app.OriginPort.Start))
		}
		spec.OriginPort = &port
	}
	if app.EdgeIPs != nil {
		spec.EdgeIPs = &v1alpha1.EdgeIPs{
			Type:         app.EdgeIPs.Type,
			Connectivity: app.EdgeIPs.Connectivity,
			IPs:          slices.Clone(app.EdgeIPs.IPs),
		}
	}
	return spec
}

// Differs reports whether observed fails to match desired in any field.
// See Differences.
func Differs(desired, observed App) bool {
	return len(Differences(desired, observed)) > 0
}

// Differences names the API fields in which observed does not match
// desired. desired is the whole configuration, as the API's PUT takes it:
// an optional field it leaves unset means Cloudflare's default, so a value
// observed there (set in the dashboard, or left from an earlier spec) is a
// difference too. The read-only id and timestamps never count. Defaults
// Cloudflare fills in ("off", "direct", "all", false, dynamic edge IPs)
// match an absent value on either side; a named protocol matches its port
// ("ssh" is "tcp/22"); hostnames match without case or a trailing dot.
// origin_direct is compared in order, since Cloudflare keeps it in order;
// edge IPs as a set.
func Differences(desired, observed App) []string {
	var fields []string
	differ := func(field string, differs bool) {
		if differs {
			fields = append(fields, field)
		}
	}
	// Equal text is the common case (the drift check compares every app in
	// sync each period) and needs no parsing.
	differ("protocol", desired.Protocol != observed.Protocol &&
		rules.CanonicalProtocol(desired.Protocol) != rules.CanonicalProtocol(observed.Protocol))
	differ("dns.type", !strings.EqualFold(desired.DNS.Type, observed.DNS.Type))
	differ("dns.name", desired.DNS.Name != observed.DNS.Name &&
		NormalizeHostname(desired.DNS.Name) != NormalizeHostname(observed.DNS.Name))
	differ("origin_direct", !slices.Equal(desired.OriginDirect, observed.OriginDirect))
	fields = append(fields, originDNSDifferences(desired.OriginDNS, observed.OriginDNS)...)
	differ("origin_port", originPortText(desired.OriginPort) != originPortText(observed.OriginPort))
	differ("ip_firewall", boolOrFalse(desired.IPFirewall) != boolOrFalse(observed.IPFirewall))
	differ("proxy_protocol", orDefault(desired.ProxyProtocol, DefaultProxyProtocol) != orDefault(observed.ProxyProtocol, DefaultProxyProtocol))
	differ("tls", orDefault(desired.TLS, DefaultTLS) != orDefault(observed.TLS, DefaultTLS))
	differ("traffic_type", orDefault(desired.TrafficType, DefaultTrafficType) != orDefault(observed.TrafficType, DefaultTrafficType))
	fields = append(fields, edgeIPsDifferences(desired.EdgeIPs, observed.EdgeIPs)...)
	differ("argo_smart_routing", boolOrFalse(desired.ArgoSmartRouting) != boolOrFalse(observed.ArgoSmartRouting))
	differ("virtual_network_id", !strings.EqualFold(desired.VirtualNetworkID, observed.VirtualNetworkID))
	return fields
}

func originPortText(p *OriginPort) string {
	if p == nil {
		return ""
	}
	return p.String()
}

func originDNSDifferences(desired, observed *OriginDNS) []string {
	switch {
	case desired == nil && observed == nil:
		return nil
	case desired == nil || observed == nil:
		return []string{"origin_dns"}
	}
	var fields []string
	if NormalizeHostname(desired.Name) != NormalizeHostname(observed.Name) {
		fields = append(fields, "origin_dns.name")
	}
	// "" is a value here (A and AAAA), and old apps come back without the
	// field, which means the same.
	if !strings.EqualFold(desired.Type, observed.Type) {
		fields = append(fields, "origin_dns.type")
	}
	// Cloudflare sets no TTL of its own when none is sent (its Terraform
	// provider keeps ttl optional, not computed): unset matches only unset.
	if (desired.TTL == nil) != (observed.TTL == nil) || (desired.TTL != nil && *desired.TTL != *observed.TTL) {
		fields = append(fields, "origin_dns.ttl")
	}
	return fields
}

// defaultEdgeIPs is what an application without edge_ips has: apps that
// predate the field read back without it, and were given dynamic addresses
// on all families, as an app that does not send it is given now.
var defaultEdgeIPs = EdgeIPs{Type: DefaultEdgeIPsType, Connectivity: DefaultConnectivity}

func edgeIPsDifferences(desired, observed *EdgeIPs) []string {
	if desired == nil {
		desired = &defaultEdgeIPs
	}
	if observed == nil {
		observed = &defaultEdgeIPs
	}
	var fields []string
	if !strings.EqualFold(desired.Type, observed.Type) {
		return []string{"edge_ips.type"}
	}
	if strings.EqualFold(desired.Type, DefaultEdgeIPsType) {
		// Cloudflare reports the addresses it assigned to a dynamic app;
		// only the families are the user's to choose.
		if orDefault(desired.Connectivity, DefaultConnectivity) != orDefault(observed.Connectivity, DefaultConnectivity) {
			fields = append(fields, "edge_ips.connectivity")
		}
		return fields
	}
	if !sameAddresses(desired.IPs, observed.IPs) {
		fields = append(fields, "edge_ips.ips")
	}
	return fields
}

// NormalizeHostname is the one form in which hostnames are compared: DNS
// names are case-insensitive and may carry a trailing root dot.
func NormalizeHostname(name string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
}

// sameAddresses compares IP lists as sets, in canonical form: Cloudflare
// may return them in another order or spelling (2001:DB8::1, 2001:db8::1).
func sameAddresses(a, b []string) bool {
	return slices.Equal(canonicalAddressSet(a), canonicalAddressSet(b))
}

func canonicalAddressSet(addresses []string) []string {
	set := make([]string, 0, len(addresses))
	for _, address := range addresses {
		if ip, err := netip.ParseAddr(strings.TrimSpace(address)); err == nil {
			address = ip.String()
		}
		set = append(set, address)
	}
	slices.Sort(set)
	return slices.Compact(set)
}

func orDefault(value, fallback string) string {
	if value == "" {
		return fallback
	}
	return value
}

func boolOrFalse(b *bool) bool { return b != nil && *b }

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}
