package v1alpha1

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	spectrumv1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

const claimZone = "023e105f4ecef8ad9ca31a8372d0c353"

func claimingApp(namespace, name, hostname string) *spectrumv1alpha1.SpectrumApp {
	app := &spectrumv1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	app.Spec.ZoneID = claimZone
	app.Spec.Protocol = "tcp/22"
	app.Spec.DNS.Name = hostname
	return app
}

func byZoneName(app *spectrumv1alpha1.SpectrumApp, resolved string) *spectrumv1alpha1.SpectrumApp {
	app = app.DeepCopy()
	app.Spec.ZoneID, app.Spec.ZoneName, app.Status.ZoneID = "", "example.com", resolved
	return app
}

// The registry follows the informer's events: each key is held by the apps
// that claim it now, whatever they claimed before.
func TestClaimRegistryFollowsTheApps(t *testing.T) {
	ssh := claimingApp("team-a", "ssh", "ssh.example.com")
	moved := claimingApp("team-a", "ssh", "bastion.example.com")
	twin := claimingApp("team-b", "ssh-too", "SSH.example.com.")
	sshKey, bastionKey := claimKeys(&ssh.Spec, "")[0], claimKeys(&moved.Spec, "")[0]
	byNameKey, byResolvedIDKey := claimKey(&byZoneName(ssh, "").Spec), claimKeyIn(claimZone, &ssh.Spec)
	a := types.NamespacedName{Namespace: "team-a", Name: "ssh"}
	b := types.NamespacedName{Namespace: "team-b", Name: "ssh-too"}
	for _, tc := range []struct {
		name   string
		events func(r *claimRegistry)
		want   map[string][]types.NamespacedName
	}{
		{"added", func(r *claimRegistry) { r.OnAdd(ssh, false) },
			map[string][]types.NamespacedName{sshKey: {a}}},
		{"a status write claims nothing anew", func(r *claimRegistry) {
			r.OnAdd(ssh, false)
			written := ssh.DeepCopy()
			written.Status.ApplicationID = "ea95132c15732412d22c1476fa83f27a"
			r.OnUpdate(ssh, written)
		}, map[string][]types.NamespacedName{sshKey: {a}}},
		{"its hostname changed", func(r *claimRegistry) {
			r.OnAdd(ssh, false)
			r.OnUpdate(ssh, moved)
		}, map[string][]types.NamespacedName{bastionKey: {a}}},
		{"two apps, one key (the hostname as written differs)", func(r *claimRegistry) {
			r.OnAdd(ssh, false)
			r.OnAdd(twin, false)
		}, map[string][]types.NamespacedName{sshKey: {a, b}}},
		{"one of two deleted", func(r *claimRegistry) {
			r.OnAdd(ssh, false)
			r.OnAdd(twin, false)
			r.OnDelete(ssh)
		}, map[string][]types.NamespacedName{sshKey: {b}}},
		{"deleted while the watch was down", func(r *claimRegistry) {
			r.OnAdd(ssh, false)
			r.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "team-a/ssh", Obj: ssh})
		}, map[string][]types.NamespacedName{}},
		{"by zoneName, then resolved: the zone's ID too", func(r *claimRegistry) {
			r.OnAdd(byZoneName(ssh, ""), false)
			r.OnUpdate(byZoneName(ssh, ""), byZoneName(ssh, claimZone))
		}, map[string][]types.NamespacedName{byNameKey: {a}, byResolvedIDKey: {a}}},
		{"a second add of the same app", func(r *claimRegistry) {
			r.OnAdd(ssh, false)
			r.OnAdd(ssh, true)
		}, map[string][]types.NamespacedName{sshKey: {a}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newClaimRegistry()
			tc.events(r)
			if len(r.holders) != len(tc.want) {
				t.Errorf("%d keys held %v, want %d", len(r.holders), r.holders, len(tc.want))
			}
			for key, want := range tc.want {
				got, err := r.holdersOf(context.Background(), key)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s is held by %v, want %v", key, got, want)
				}
			}
		})
	}
}

// Until the informer has told of every app it listed, the registry is not
// read: an admission then waits, and gives up with its request.
func TestClaimRegistryIsNotReadBeforeItKnowsEveryApp(t *testing.T) {
	r := newClaimRegistry()
	r.OnAdd(claimingApp("team-a", "ssh", "ssh.example.com"), true)
	r.synced = func() bool { return false }
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if holders, err := r.holdersOf(ctx, claimKeys(&claimingApp("team-a", "ssh", "ssh.example.com").Spec, "")[0]); err == nil {
		t.Fatalf("read before it was synced: %v", holders)
	}
}

// Admission learns a zone's ID from the apps the controller resolved its
// name for, as long as one of them is there.
func TestClaimRegistryLearnsResolvedZones(t *testing.T) {
	ssh := byZoneName(claimingApp("team-a", "ssh", "ssh.example.com"), "")
	rdp := byZoneName(claimingApp("team-b", "rdp", "rdp.example.com"), "")
	r := newClaimRegistry()
	zoneOf := func(name string) string {
		t.Helper()
		id, err := r.zoneIDNamed(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, step := range []struct {
		name  string
		event func()
		want  string
	}{
		{"named, not resolved", func() { r.OnAdd(ssh, false) }, ""},
		{"resolved", func() { r.OnUpdate(ssh, byZoneName(ssh, claimZone)) }, claimZone},
		{"another app resolved it too", func() { r.OnAdd(byZoneName(rdp, claimZone), false) }, claimZone},
		{"one of them deleted", func() { r.OnDelete(byZoneName(ssh, claimZone)) }, claimZone},
		{"the last deleted", func() { r.OnDelete(byZoneName(rdp, claimZone)) }, ""},
	} {
		step.event()
		if got := zoneOf("example.com"); got != step.want {
			t.Fatalf("%s: zone example.com is %q, want %q", step.name, got, step.want)
		}
	}
	if len(r.zones) != 0 {
		t.Fatalf("the registry still counts zones: %v", r.zones)
	}
}
