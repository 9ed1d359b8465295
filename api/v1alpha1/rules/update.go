package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// ValidateUpdate checks a changed spec: every create-time rule on the new
// spec, plus the fields that cannot change once the application exists.
func ValidateUpdate(oldSpec, newSpec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	vs := ValidateSpec(newSpec, path)
	if oldSpec == nil || newSpec == nil {
		return vs
	}
	vs = append(vs, validateDNSTypeUnchanged(oldSpec, newSpec, path)...)
	vs = append(vs, validateZoneIDUnchanged(oldSpec, newSpec, path)...)
	return vs
}

// validateDNSTypeUnchanged mirrors 11004 on update: Cloudflare refuses to
// switch an existing application between CNAME and ADDRESS.
func validateDNSTypeUnchanged(oldSpec, newSpec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	if oldSpec.DNS.Type == newSpec.DNS.Type {
		return nil
	}
	return Violations{violation(CodeDNSType, SourceAPIPage, field.Invalid(path.Child("dns", "type"), newSpec.DNS.Type,
		fmt.Sprintf("dns.type cannot change from %s to %s once the application exists; create a new SpectrumApp",
			oldSpec.DNS.Type, newSpec.DNS.Type)))}
}

// validateZoneIDUnchanged: an application lives in one zone; the API has no
// move, so there is no Cloudflare code. The CRD's CEL rule says the same; this
// copy keeps the rule set complete for callers without the apiserver.
func validateZoneIDUnchanged(oldSpec, newSpec *v1alpha1.SpectrumAppSpec, path *field.Path) Violations {
	var vs Violations
	if oldSpec.ZoneID != newSpec.ZoneID {
		vs = append(vs, violation(CodeNone, SourceKubernetes, field.Invalid(path.Child("zoneID"), newSpec.ZoneID,
			"zoneID is immutable; create a new SpectrumApp to use another zone")))
	}
	if oldSpec.ZoneName != newSpec.ZoneName {
		vs = append(vs, violation(CodeNone, SourceKubernetes, field.Invalid(path.Child("zoneName"), newSpec.ZoneName,
			"zoneName is immutable; create a new SpectrumApp to use another zone")))
	}
	return vs
}
