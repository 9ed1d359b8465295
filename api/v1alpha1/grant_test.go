package v1alpha1

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCredentialsGrant(t *testing.T) {
	secret := func(annotations map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
	}
	full := map[string]string{
		GrantedNamespacesAnnotation: "team-a, platform-*",
		GrantedZonesAnnotation:      "023e105f4ecef8ad9ca31a8372d0c353, Example.COM",
		GrantedHostnamesAnnotation:  "*.team-a.example.com,ssh.example.com",
	}
	app := func(ns, zoneID, zoneName, statusZone, host string) *SpectrumApp {
		return &SpectrumApp{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns},
			Spec:       SpectrumAppSpec{ZoneID: zoneID, ZoneName: zoneName, DNS: DNS{Name: host}},
			Status:     SpectrumAppStatus{ZoneID: statusZone},
		}
	}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		app         *SpectrumApp
		missing     string // the annotation the refusal names; "" when granted
	}{
		{"granted by zone ID", full, app("team-a", "023e105f4ecef8ad9ca31a8372d0c353", "", "", "web.team-a.example.com"), ""},
		{"granted by zone name, any case", full, app("team-a", "", "example.com", "", "ssh.example.com"), ""},
		{"zone name app matched by its resolved ID", map[string]string{GrantedNamespacesAnnotation: "*", GrantedZonesAnnotation: "023e105f4ecef8ad9ca31a8372d0c353", GrantedHostnamesAnnotation: "*"},
			app("team-b", "", "example.com", "023e105f4ecef8ad9ca31a8372d0c353", "x.example.com"), ""},
		{"namespace pattern", full, app("platform-edge", "", "example.com", "", "deep.sub.team-a.example.com"), ""},
		{"trailing dot and case of the hostname", full, app("team-a", "", "example.com", "", "SSH.example.com."), ""},
		{"no annotations: nothing granted", nil, app("team-a", "", "example.com", "", "ssh.example.com"), GrantedNamespacesAnnotation},
		{"another namespace", full, app("team-c", "", "example.com", "", "ssh.example.com"), GrantedNamespacesAnnotation},
		{"pattern does not cover a prefix", full, app("platform", "", "example.com", "", "ssh.example.com"), GrantedNamespacesAnnotation},
		{"another zone", full, app("team-a", "", "other.example", "", "ssh.example.com"), GrantedZonesAnnotation},
		{"another hostname", full, app("team-a", "", "example.com", "", "ssh.team-b.example.com"), GrantedHostnamesAnnotation},
		{"the pattern's own domain is not under it", full, app("team-a", "", "example.com", "", "team-a.example.com"), GrantedHostnamesAnnotation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := GrantOf(secret(tc.annotations)).Refusal("ops/cf", tc.app)
			if tc.missing == "" {
				if got != "" {
					t.Errorf("refused: %s", got)
				}
				return
			}
			if !strings.Contains(got, tc.missing) || !strings.Contains(got, "ops/cf") {
				t.Errorf("refusal %q does not name the Secret and annotation %s", got, tc.missing)
			}
		})
	}
}
