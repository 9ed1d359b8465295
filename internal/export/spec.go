// Package export turns the Spectrum applications a zone already has (made in
// the dashboard, with Terraform, or by hand) into SpectrumApp manifests, so
// that the operator can adopt them without changing anything at Cloudflare.
//
// The spec is the application's whole configuration (an unset optional field
// means Cloudflare's default), so an exported spec carries every field
// Cloudflare returned: spectrum.Differences(spectrum.FromSpec(&spec), app) is
// empty for every exported app, and the operator adopts it with no write.
package export

import (
	"strings"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// Spec returns the SpectrumApp spec that describes app, an application of the
// zone zoneID as Cloudflare returned it (legacy shapes already decoded by the
// client: a boolean proxy_protocol is a string, an origin_port of any shape
// is a port or a range). secret names the credentials Secret.
func Spec(zoneID string, app spectrum.App, secret string) v1alpha1.SpectrumAppSpec {
	spec := spectrum.ToSpec(app)
	spec.ZoneID = zoneID
	if secret != "" {
		spec.CredentialsRef = &v1alpha1.SecretKeyReference{Name: secret}
	}

	// The CRD's enums are upper case where Cloudflare's comparison is not
	// case-sensitive; an old app may come back in another case.
	spec.DNS.Type = strings.ToUpper(spec.DNS.Type)
	if spec.OriginDNS != nil {
		spec.OriginDNS.Type = strings.ToUpper(spec.OriginDNS.Type)
	}

	// A value equal to Cloudflare's default (spectrum.Default*) is left
	// out: it means the same to the operator, and keeps the manifest valid
	// for a Pay-as-you-go account, whose admission refuses any field but
	// protocol, dns and originDirect, even one set to its default
	// (Cloudflare error 10012).
	spec.ProxyProtocol = unlessDefault(spec.ProxyProtocol, spectrum.DefaultProxyProtocol)
	spec.TLS = unlessDefault(spec.TLS, spectrum.DefaultTLS)
	spec.TrafficType = unlessDefault(spec.TrafficType, spectrum.DefaultTrafficType)
	spec.IPFirewall = unlessFalse(spec.IPFirewall)
	spec.ArgoSmartRouting = unlessFalse(spec.ArgoSmartRouting)
	spec.EdgeIPs = edgeIPs(spec.EdgeIPs)
	return spec
}

// edgeIPs keeps what the user chose. Cloudflare reports the addresses it
// assigned to a dynamic app, but only the address families are the user's
// to choose (the operator ignores the addresses), and an app without
// edge_ips (one that predates the field) has dynamic addresses on all
// families, which is also what an unset edgeIPs asks for.
func edgeIPs(e *v1alpha1.EdgeIPs) *v1alpha1.EdgeIPs {
	if e == nil {
		return nil
	}
	e.Type = strings.ToLower(e.Type)
	if e.Type != spectrum.DefaultEdgeIPsType {
		return e
	}
	e.IPs = nil
	if e.Connectivity == "" || e.Connectivity == spectrum.DefaultConnectivity {
		return nil
	}
	return e
}

func unlessDefault(value, fallback string) string {
	if value == fallback {
		return ""
	}
	return value
}

func unlessFalse(b *bool) *bool {
	if b == nil || !*b {
		return nil
	}
	return b
}
