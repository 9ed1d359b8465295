package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// ValidatePlan checks what the account's plan allows. Enterprise accounts
// (and any plan other than Pay-as-you-go) have no extra limits. siblings are
// the specs of the account's other applications, not including this one.
func ValidatePlan(plan v1alpha1.AccountPlan, spec *v1alpha1.SpectrumAppSpec, siblings []v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	if plan != v1alpha1.PlanPayAsYouGo || spec == nil {
		return nil
	}
	var vs Violations
	vs = append(vs, validatePayAsYouGoFields(spec, path)...)
	vs = append(vs, validateOneAppPerProtocol(spec, siblings, path)...)
	return vs
}

// validatePayAsYouGoFields mirrors 10012: without the paid add-on, a
// Pay-as-you-go app may send only protocol, dns and origin_direct. A field
// counts as sent when it is set at all, even to false or "off", because the
// operator sends every field that is set.
func validatePayAsYouGoFields(spec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	set := []struct {
		name string
		set  bool
	}{
		{"originDNS", spec.OriginDNS != nil},
		{"originPort", spec.OriginPort != nil},
		{"ipFirewall", spec.IPFirewall != nil},
		{"proxyProtocol", spec.ProxyProtocol != ""},
		{"tls", spec.TLS != ""},
		{"trafficType", spec.TrafficType != ""},
		{"edgeIPs", spec.EdgeIPs != nil},
		{"argoSmartRouting", spec.ArgoSmartRouting != nil},
		{"virtualNetworkID", spec.VirtualNetworkID != ""},
	}
	var vs Violations
	for _, f := range set {
		if f.set {
			vs = append(vs, violation(CodeUnknownField, SourceAPIPage, field.Forbidden(path.Child(f.name),
				"a Pay-as-you-go account may only set protocol, dns and originDirect: remove this field, or have Spectrum enabled as a paid add-on")))
		}
	}
	return vs
}

// validateOneAppPerProtocol mirrors 11034: a Pay-as-you-go account may have
// one application per protocol.
func validateOneAppPerProtocol(spec *v1alpha1.SpectrumAppSpec, siblings []v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	for i := range siblings {
		if CanonicalProtocol(siblings[i].Protocol) == CanonicalProtocol(spec.Protocol) {
			return Violations{violation(CodeOneAppPerProtocol, SourceAPIPage, field.Invalid(path.Child("protocol"), spec.Protocol,
				fmt.Sprintf("another SpectrumApp using the same Pay-as-you-go account (%s) already has this protocol, and the plan allows one application per protocol: remove it, or have Spectrum enabled as a paid add-on",
					siblings[i].DNS.Name)))}
		}
	}
	return nil
}
