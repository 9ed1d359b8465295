package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
