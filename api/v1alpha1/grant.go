package v1alpha1

import (
	"fmt"
	"path"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations on the operator's default credentials Secret (the one
// --default-credentials-secret names) that grant its use to SpectrumApps
// without credentialsRef. Each is a comma-separated list; "*" grants all.
// A SpectrumApp may use the default credentials only when all three grant
// it: the default credentials are granted, not assumed. The Secret lives in
// the operator's namespace, so only those who may edit it there grant.
const (
	// GrantedNamespacesAnnotation lists namespaces, or shell patterns of
	// them ("team-*"), whose SpectrumApps may use the default credentials.
	GrantedNamespacesAnnotation = "spectrum.cloudflare-operator.io/granted-namespaces"
	// GrantedZonesAnnotation lists zones, by ID or by name, the default
	// credentials may be used for. An app matches by spec.zoneID,
	// spec.zoneName or the zone ID it resolved (status.zoneID): list both
	// forms when apps name the zone both ways.
	GrantedZonesAnnotation = "spectrum.cloudflare-operator.io/granted-zones"
	// GrantedHostnamesAnnotation lists hostnames, or shell patterns of them
	// ("*.team-a.example.com", where * also spans dots), the default
	// credentials may serve (spec.dns.name).
	GrantedHostnamesAnnotation = "spectrum.cloudflare-operator.io/granted-hostnames"
)

// CredentialsGrant is what the default credentials Secret grants.
type CredentialsGrant struct {
	Namespaces, Zones, Hostnames []string
}

// GrantOf reads the grant annotations of the default credentials Secret.
func GrantOf(secret metav1.Object) CredentialsGrant {
	a := secret.GetAnnotations()
	return CredentialsGrant{
		Namespaces: grantList(a[GrantedNamespacesAnnotation]),
		Zones:      grantList(a[GrantedZonesAnnotation]),
		Hostnames:  grantList(a[GrantedHostnamesAnnotation]),
	}
}

func grantList(value string) []string {
	var out []string
	for _, item := range strings.Split(value, ",") {
		if item = strings.ToLower(strings.TrimSpace(item)); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Refusal says which grant app lacks to use the default credentials of
// Secret secret ("namespace/name"); "" when all three grant it. It names
// only the app's own namespace, zone and hostname and the annotation to
// extend, never another tenant's.
func (g CredentialsGrant) Refusal(secret string, app *SpectrumApp) string {
	missing := func(what, value, annotation string) string {
		return fmt.Sprintf("the default credentials (Secret %s) are not granted to %s %q: its annotation %s does not list it",
			secret, what, value, annotation)
	}
	if !slices.ContainsFunc(g.Namespaces, matches(strings.ToLower(app.Namespace))) {
		return missing("namespace", app.Namespace, GrantedNamespacesAnnotation)
	}
	zones := []string{app.Spec.ZoneID, app.Spec.ZoneName, app.Status.ZoneID}
	if !slices.ContainsFunc(g.Zones, func(granted string) bool {
		return granted == "*" || slices.ContainsFunc(zones, func(z string) bool { return z != "" && strings.EqualFold(z, granted) })
	}) {
		zone := app.Spec.ZoneID
		if zone == "" {
			zone = app.Spec.ZoneName
		}
		return missing("zone", zone, GrantedZonesAnnotation)
	}
	hostname := strings.TrimSuffix(strings.ToLower(app.Spec.DNS.Name), ".")
	if !slices.ContainsFunc(g.Hostnames, matches(hostname)) {
		return missing("hostname", app.Spec.DNS.Name, GrantedHostnamesAnnotation)
	}
	return ""
}

// matches reports whether a granted pattern matches value; "*" matches
// anything, dots included (path.Match's * stops only at '/').
func matches(value string) func(pattern string) bool {
	return func(pattern string) bool {
		ok, err := path.Match(strings.TrimSuffix(pattern, "."), value)
		return err == nil && ok
	}
}
