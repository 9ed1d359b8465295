package controller

import (
	"encoding/json"
	"fmt"
	"testing"
	"unsafe"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
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

// Two cached apps hold one copy of each string they repeat, and each
// reads exactly as decoded.
func TestCachedAppsShareTheStringsTheyRepeat(t *testing.T) {
	transform := CacheTransform()
	var cached []*v1alpha1.SpectrumApp
	for i, name := range []string{"ssh", "rdp"} {
		app := decodeCachedApp(t, name, fmt.Sprintf("ea95132c15732412d22c1476fa83f27%d", i))
		decoded := app.DeepCopy()
		out, err := transform(app)
		if err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(out, decoded) {
			t.Fatalf("the cached app reads\n%+v\nit was decoded as\n%+v", out, decoded)
		}
		cached = append(cached, out.(*v1alpha1.SpectrumApp))
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
	// Decoding doubled the list's room as it grew: the cached list has
	// none to spare.
	if conditions := first.Status.Conditions; cap(conditions) != len(conditions) {
		t.Errorf("conditions: room for %d, want %d", cap(conditions), len(conditions))
	}
}

// The table stays bounded however many different strings pass through,
// and what repeats is shared again once it has started afresh.
func TestSharedStringsStayBounded(t *testing.T) {
	table := newSharedStrings()
	for i := range 3 * maxSharedStrings {
		message := fmt.Sprintf("Created Cloudflare Spectrum application %032x", i)
		table.use(&message)
		if table.strings.Len() > maxSharedStrings {
			t.Fatalf("%d strings held after %d, want at most %d", table.strings.Len(), i+1, maxSharedStrings)
		}
	}
	a, b := string([]byte("team-a")), string([]byte("team-a"))
	table.use(&a)
	table.use(&b)
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("a repeated string is not shared after the table started afresh")
	}
}
