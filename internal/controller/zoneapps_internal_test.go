package controller

import (
	"context"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// The zone index follows the informer's events: an app is found in its
// zone, moves when its zoneName is resolved, shows its latest version, and
// is gone after a deletion, seen or missed while the watch was down.
func TestZoneAppsFollowTheInformer(t *testing.T) {
	z := newZoneApps()
	byID := func(ns, name, zoneID string) *v1alpha1.SpectrumApp {
		return &v1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.SpectrumAppSpec{ZoneID: zoneID}}
	}
	names := func(zoneID string) map[string]string {
		out := map[string]string{}
		for _, app := range z.of(zoneID) {
			out[app.NamespacedName().String()] = app.ApplicationID()
		}
		return out
	}
	expect := func(zoneID string, want map[string]string) {
		t.Helper()
		got := names(zoneID)
		if len(got) != len(want) {
			t.Fatalf("zone %q holds %v, want %v", zoneID, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("zone %q holds %v, want %v", zoneID, got, want)
			}
		}
	}

	a, b := byID("team-a", "web", "z1"), byID("team-b", "web", "z1")
	z.OnAdd(a, true)
	z.OnAdd(b, false)
	expect("z1", map[string]string{"team-a/web": "", "team-b/web": ""})

	recorded := a.DeepCopy()
	recorded.Status.ApplicationID = "app-1"
	z.OnUpdate(a, recorded)
	expect("z1", map[string]string{"team-a/web": "app-1", "team-b/web": ""})

	byName := &v1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ssh"},
		Spec: v1alpha1.SpectrumAppSpec{ZoneName: "example.com"}}
	z.OnAdd(byName, false)
	expect("", map[string]string{"team-a/ssh": ""})
	resolved := byName.DeepCopy()
	resolved.Status.ZoneID = "z2"
	z.OnUpdate(byName, resolved)
	expect("", nil)
	expect("z2", map[string]string{"team-a/ssh": ""})

	z.OnDelete(recorded)
	z.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "team-b/web", Obj: b})
	expect("z1", nil)
	expect("z2", map[string]string{"team-a/ssh": ""})
}

// A Secret's change wakes the apps that take their token from it: by
// credentialsRef in its namespace, or, for the operator's default
// credentials, every app without one.
func TestSecretChangeWakesTheAppsThatUseIt(t *testing.T) {
	defaults := v1alpha1.SecretKey{NamespacedName: types.NamespacedName{Namespace: "operator", Name: "cloudflare"}}
	r := &SpectrumAppReconciler{zoneApps: newZoneApps(), DefaultCredentials: defaults}
	app := func(ns, name, secret string) *v1alpha1.SpectrumApp {
		a := &v1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.SpectrumAppSpec{ZoneID: "z1"}}
		if secret != "" {
			a.Spec.CredentialsRef = &v1alpha1.SecretKeyReference{Name: secret}
		}
		return a
	}
	for _, a := range []*v1alpha1.SpectrumApp{
		app("team-a", "ssh", "token"), app("team-a", "rdp", "other"), app("team-b", "ssh", "token"),
		app("team-a", "web", ""), app("team-b", "web", ""),
	} {
		r.zoneApps.OnAdd(a, false)
	}
	for _, tc := range []struct {
		secret types.NamespacedName
		want   []string
	}{
		{types.NamespacedName{Namespace: "team-a", Name: "token"}, []string{"team-a/ssh"}},
		{types.NamespacedName{Namespace: "team-b", Name: "token"}, []string{"team-b/ssh"}},
		{types.NamespacedName{Namespace: "team-c", Name: "token"}, nil},
		{defaults.NamespacedName, []string{"team-a/web", "team-b/web"}},
	} {
		secret := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: tc.secret.Namespace, Name: tc.secret.Name}}
		var got []string
		for _, request := range r.appsUsingSecret(context.Background(), secret) {
			got = append(got, request.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Secret %s wakes %v, want %v", tc.secret, got, tc.want)
		}
	}
}
