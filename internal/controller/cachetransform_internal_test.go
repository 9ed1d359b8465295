package controller

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
)

// cachedAppJSON is a Ready app as a watch event brings it.
const cachedAppJSON = `{"apiVersion":"spectrum.cloudflare-operator.io/v1alpha1","kind":"SpectrumApp",
"metadata":{"name":"%s","namespace":"team-a","finalizers":["spectrum.cloudflare-operator.io/finalizer"]},
"spec":{"zoneID":"023e105f4ecef8ad9ca31a8372d0c353","protocol":"tcp/22","dns":{"type":"CNAME","name":"%s.example.com"},
"originDirect":["tcp://192.0.2.1:22"],"edgeIPs":{"type":"dynamic","connectivity":"all"},"credentialsRef":{"name":"cloudflare"}},
"status":{"zoneID":"023e105f4ecef8ad9ca31a8372d0c353","applicationID":"%s","reconcilePolicy":"manage",
"createSettled":"2026-12-04T10:00:00Z","createdOn":"2026-12-04T10:00:00Z","modifiedOn":"2026-12-04T10:00:00Z",
"conditions":[{"type":"Ready","status":"True","reason":"Synced","message":"The Cloudflare application matches the spec","lastTransitionTime":"2026-12-04T10:00:00Z"},
{"type":"Reconciling","status":"False","reason":"Synced","message":"Nothing to do","lastTransitionTime":"2026-12-04T10:00:00Z"},
{"type":"Stalled","status":"False","reason":"Synced","message":"Nothing to do","lastTransitionTime":"2026-12-04T10:00:00Z"}]}}`

func decodeCachedApp(t *testing.T, name, id string) *v1alpha1.SpectrumApp {
	t.Helper()
	app := &v1alpha1.SpectrumApp{}
	if err := json.Unmarshal(fmt.Appendf(nil, cachedAppJSON, name, name, id), app); err != nil {
		t.Fatal(err)
	}
	return app
}

// cachedView passes a decoded app through the cache's transform, checks the
// cache's readers get it as decoded, and returns the view of its Record,
// which shares what the Record holds.
func cachedView(t *testing.T, transform toolscache.TransformFunc, decoded *v1alpha1.SpectrumApp) *v1alpha1.SpectrumApp {
	t.Helper()
	want := decoded.DeepCopy()
	out, err := transform(decoded)
	if err != nil {
		t.Fatal(err)
	}
	record := out.(*appcache.Record)
	if got := record.DeepCopyObject(); !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("the cached app reads\n%+v\nit was decoded as\n%+v", got, want)
	}
	return record.View()
}

// Two cached apps hold one copy of each value they repeat, and each reads
// exactly as decoded.
func TestCachedAppsShareWhatTheyRepeat(t *testing.T) {
	transform := CacheTransform()
	var cached []*v1alpha1.SpectrumApp
	for i, name := range []string{"ssh", "rdp"} {
		app := decodeCachedApp(t, name, fmt.Sprintf("ea95132c15732412d22c1476fa83f27%d", i))
		cached = append(cached, cachedView(t, transform, app))
	}
	first, second := cached[0], cached[1]
	for _, tc := range []struct {
		field         string
		first, second string
		want          bool
	}{
		{"apiVersion", first.APIVersion, second.APIVersion, true},
		{"kind", first.Kind, second.Kind, true},
		{"namespace", first.Namespace, second.Namespace, true},
		{"finalizer", first.Finalizers[0], second.Finalizers[0], true},
		{"spec.zoneID", first.Spec.ZoneID, second.Spec.ZoneID, true},
		{"status.zoneID and spec.zoneID", first.Status.ZoneID, second.Spec.ZoneID, true},
		{"spec.protocol", first.Spec.Protocol, second.Spec.Protocol, true},
		{"spec.dns.type", first.Spec.DNS.Type, second.Spec.DNS.Type, true},
		{"spec.edgeIPs.connectivity", first.Spec.EdgeIPs.Connectivity, second.Spec.EdgeIPs.Connectivity, true},
		{"spec.credentialsRef.name", first.Spec.CredentialsRef.Name, second.Spec.CredentialsRef.Name, true},
		{"status.reconcilePolicy", first.Status.ReconcilePolicy, second.Status.ReconcilePolicy, true},
		{"Ready's message", first.Status.Conditions[0].Message, second.Status.Conditions[0].Message, true},
		{"Ready's reason and Reconciling's", first.Status.Conditions[0].Reason, second.Status.Conditions[1].Reason, true},
		// What differs is each app's own.
		{"name", first.Name, second.Name, false},
		{"status.applicationID", first.Status.ApplicationID, second.Status.ApplicationID, false},
	} {
		if shared := unsafe.StringData(tc.first) == unsafe.StringData(tc.second); shared != tc.want {
			t.Errorf("%s: one copy = %v, want %v", tc.field, shared, tc.want)
		}
	}
	// Apps written in the same second record the same times.
	for _, tc := range []struct {
		field         string
		first, second *metav1.Time
	}{
		{"status.createSettled", first.Status.CreateSettled, second.Status.CreateSettled},
		{"status.createdOn", first.Status.CreatedOn, second.Status.CreatedOn},
		{"status.createdOn and status.modifiedOn", first.Status.CreatedOn, second.Status.ModifiedOn},
	} {
		if tc.first != tc.second {
			t.Errorf("%s: one copy = false, want true", tc.field)
		}
	}
	// Parts held whole: one copy of each.
	for _, tc := range []struct {
		field         string
		first, second unsafe.Pointer
	}{
		{"metadata.finalizers", unsafe.Pointer(unsafe.SliceData(first.Finalizers)), unsafe.Pointer(unsafe.SliceData(second.Finalizers))},
		{"spec.credentialsRef", unsafe.Pointer(first.Spec.CredentialsRef), unsafe.Pointer(second.Spec.CredentialsRef)},
		{"spec.edgeIPs", unsafe.Pointer(first.Spec.EdgeIPs), unsafe.Pointer(second.Spec.EdgeIPs)},
		{"status.conditions", unsafe.Pointer(unsafe.SliceData(first.Status.Conditions)), unsafe.Pointer(unsafe.SliceData(second.Status.Conditions))},
	} {
		if tc.first != tc.second {
			t.Errorf("%s: one copy = false, want true", tc.field)
		}
	}
	// Decoding doubled the lists' room as they grew: a list kept has none
	// to spare, so that nothing appended to one could land in another's.
	for _, tc := range []struct {
		field    string
		len, cap int
	}{
		{"metadata.finalizers", len(first.Finalizers), cap(first.Finalizers)},
		{"status.conditions", len(first.Status.Conditions), cap(first.Status.Conditions)},
	} {
		if tc.cap != tc.len {
			t.Errorf("%s: room for %d, want %d", tc.field, tc.cap, tc.len)
		}
	}
}

// Apps the controller found in sync in the same second hold one list of
// conditions in the cache: nothing in it is any app's own. An app that got
// there in another second, or is not there, holds its own.
func TestAppsSyncedTogetherShareTheirConditions(t *testing.T) {
	transform := CacheTransform()
	second := metav1.NewTime(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
	cache := func(name, id string, o outcome, at metav1.Time) *v1alpha1.SpectrumApp {
		t.Helper()
		app := decodeCachedApp(t, name, id)
		app.Generation = 1
		app.Status.Conditions = nil
		setReadiness(app, readinessOf(o))
		for i := range app.Status.Conditions {
			app.Status.Conditions[i].LastTransitionTime = at
		}
		// As a watch event brings it.
		written, err := json.Marshal(app)
		if err != nil {
			t.Fatal(err)
		}
		decoded := &v1alpha1.SpectrumApp{}
		if err := json.Unmarshal(written, decoded); err != nil {
			t.Fatal(err)
		}
		return cachedView(t, transform, decoded)
	}
	synced := outcome{kind: kindSynced}
	ssh := cache("ssh", "ea95132c15732412d22c1476fa83f270", synced, second)
	rdp := cache("rdp", "ea95132c15732412d22c1476fa83f271", synced, second)
	later := cache("vnc", "ea95132c15732412d22c1476fa83f272", synced, metav1.NewTime(second.Add(time.Second)))
	skipped := cache("ftp", "ea95132c15732412d22c1476fa83f273", outcome{kind: kindSkipped}, second)
	conditions := func(app *v1alpha1.SpectrumApp) *metav1.Condition { return unsafe.SliceData(app.Status.Conditions) }
	if conditions(ssh) != conditions(rdp) {
		t.Errorf("two apps synced in the same second hold a list each:\n%+v\n%+v", ssh.Status.Conditions, rdp.Status.Conditions)
	}
	for _, other := range []*v1alpha1.SpectrumApp{later, skipped} {
		if conditions(other) == conditions(ssh) {
			t.Errorf("%s shares the conditions of an app in another state: %+v", other.Name, other.Status.Conditions)
		}
	}
}
