package appcache

import (
	"fmt"
	"testing"
	"unsafe"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/randfill"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// randomApp fills every field of a SpectrumApp, its identifiers in the
// apiserver's and Cloudflare's forms or in any other.
func randomApp(seed int64) *v1alpha1.SpectrumApp {
	app := &v1alpha1.SpectrumApp{}
	filler := randfill.NewWithSeed(seed).NilChance(0.3).NumElements(0, 3).Funcs(
		func(uid *types.UID, c randfill.Continue) {
			if c.Bool() {
				*uid = types.UID(fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", c.Uint32(), c.Uint32()&0xffff, c.Uint32()&0xffff, c.Uint32()&0xffff, c.Uint64()&0xffffffffffff))
				return
			}
			*uid = types.UID(c.String(40))
		},
		func(meta *metav1.ObjectMeta, c randfill.Continue) {
			c.FillNoCustom(meta)
			meta.ManagedFields = nil // the cache keeps none
			if c.Bool() {
				meta.ResourceVersion = fmt.Sprint(c.Uint64())
			}
			if c.Bool() {
				meta.Finalizers = []string{v1alpha1.Finalizer}
			}
		},
		func(status *v1alpha1.SpectrumAppStatus, c randfill.Continue) {
			c.FillNoCustom(status)
			if c.Bool() {
				status.ApplicationID = fmt.Sprintf("%016x%016x", c.Uint64(), c.Uint64())
			}
		},
	)
	filler.Fill(app)
	return app
}

// A Record reads as the app it was made from: its deep copy, its view
// and its metadata, whatever the app holds, shared with other apps or not.
func FuzzRecordKeepsTheApp(f *testing.F) {
	for seed := range int64(64) {
		f.Add(seed)
	}
	recorder := NewRecorder()
	f.Fuzz(func(t *testing.T, seed int64) {
		app := randomApp(seed)
		want := app.DeepCopy()
		record := recorder.Record(app)
		if got := record.DeepCopyObject(); !equality.Semantic.DeepEqual(got, want) {
			t.Fatalf("the record's deep copy reads\n%+v\nthe app was\n%+v", got, want)
		}
		if got := record.View(); !equality.Semantic.DeepEqual(got, want) {
			t.Fatalf("the record's view reads\n%+v\nthe app was\n%+v", got, want)
		}
		var asObject metav1.Object = record
		if asObject.GetName() != want.Name || asObject.GetNamespace() != want.Namespace || asObject.GetUID() != want.UID ||
			asObject.GetResourceVersion() != want.ResourceVersion || asObject.GetGeneration() != want.Generation ||
			!equality.Semantic.DeepEqual(asObject.GetLabels(), want.Labels) ||
			!equality.Semantic.DeepEqual(asObject.GetAnnotations(), want.Annotations) ||
			!equality.Semantic.DeepEqual(asObject.GetFinalizers(), want.Finalizers) ||
			!equality.Semantic.DeepEqual(asObject.GetDeletionTimestamp(), want.DeletionTimestamp) {
			t.Fatalf("the record's metadata differs from the app's\n%+v", want.ObjectMeta)
		}
		if record.GetObjectKind().GroupVersionKind() != want.GroupVersionKind() {
			t.Fatalf("kind %v, want %v", record.GetObjectKind().GroupVersionKind(), want.GroupVersionKind())
		}
		if record.CloudflareZoneID() != want.CloudflareZoneID() || record.ApplicationID() != want.Status.ApplicationID ||
			record.Hostname() != want.Spec.DNS.Name || record.Protocol() != want.Spec.Protocol {
			t.Fatal("the record's accessors differ from the app's fields")
		}
	})
}

// What a reader of the cache changes in the copy it got changes neither
// the Record nor the apps that share its values.
func TestRecordCopiesAreTheirOwn(t *testing.T) {
	recorder := NewRecorder()
	var records []*Record
	var wants []*v1alpha1.SpectrumApp
	for seed := range int64(200) {
		app := randomApp(seed)
		wants = append(wants, app.DeepCopy())
		records = append(records, recorder.Record(app))
	}
	for _, record := range records {
		scribble(record.App())
	}
	for i, record := range records {
		if got := record.App(); !equality.Semantic.DeepEqual(got, wants[i]) {
			t.Fatalf("app %d changed through a copy:\n%+v\nwas\n%+v", i, got, wants[i])
		}
	}
}

// scribble changes, in place, what a copy of a Record could share with it.
func scribble(app *v1alpha1.SpectrumApp) {
	for i := range app.Finalizers {
		app.Finalizers[i] = "scribbled"
	}
	for key := range app.Labels {
		app.Labels[key] = "scribbled"
	}
	for key := range app.Annotations {
		app.Annotations[key] = "scribbled"
	}
	for i := range app.Status.Conditions {
		app.Status.Conditions[i].Reason = "Scribbled"
	}
	if ref := app.Spec.CredentialsRef; ref != nil {
		ref.Name = "scribbled"
	}
	for _, p := range []*bool{app.Spec.IPFirewall, app.Spec.ArgoSmartRouting} {
		if p != nil {
			*p = !*p
		}
	}
	if port := app.Spec.OriginPort; port != nil {
		port.IntVal++
	}
	if edge := app.Spec.EdgeIPs; edge != nil {
		edge.Connectivity = "scribbled"
	}
	for i := range app.Spec.OriginDirect {
		app.Spec.OriginDirect[i] = "scribbled"
	}
	for _, p := range []*metav1.Time{app.Status.CreatedOn, app.Status.ModifiedOn, app.Status.CreateSettled, app.DeletionTimestamp} {
		if p != nil {
			p.Time = p.Add(1)
		}
	}
}

// A Record's setters change it, and only it.
func TestRecordSetters(t *testing.T) {
	recorder := NewRecorder()
	app := randomApp(42)
	other := app.DeepCopy()
	other.Name = "other"
	wantOther := other.DeepCopy()
	record, sharing := recorder.Record(app.DeepCopy()), recorder.Record(other)
	record.SetNamespace("elsewhere")
	record.SetFinalizers([]string{"a", "b"})
	record.SetLabels(map[string]string{"team": "a"})
	record.SetUID("not-a-uuid")
	record.SetResourceVersion("0042")
	got := record.App()
	if got.Namespace != "elsewhere" || len(got.Finalizers) != 2 || got.Labels["team"] != "a" || got.UID != "not-a-uuid" || got.ResourceVersion != "0042" {
		t.Fatalf("the setters did not take: %+v", got.ObjectMeta)
	}
	got.ObjectMeta = app.ObjectMeta
	if !equality.Semantic.DeepEqual(got.Spec, app.Spec) || !equality.Semantic.DeepEqual(got.Status, app.Status) {
		t.Fatal("a setter changed what it does not set")
	}
	if !equality.Semantic.DeepEqual(sharing.App(), wantOther) {
		t.Fatal("a setter changed an app that shared the record's values")
	}
}

// The tables stay bounded however many different values pass through, and
// what repeats is shared again once they have started afresh.
func TestSharedValuesStayBounded(t *testing.T) {
	recorder := NewRecorder()
	for i := range 3 * maxSharedValues {
		message := fmt.Sprintf("Created Cloudflare Spectrum application %032x", i)
		recorder.use(message)
		if recorder.strings.Len() > maxSharedValues {
			t.Fatalf("%d strings held after %d, want at most %d", recorder.strings.Len(), i+1, maxSharedValues)
		}
	}
	for i := range 2 * maxSharedValues {
		app := randomApp(int64(i))
		recorder.Record(app)
		if n := recorder.shapes.Len(); n > maxSharedValues {
			t.Fatalf("%d shapes held after %d apps, want at most %d", n, i+1, maxSharedValues)
		}
	}
	a, b := string([]byte("team-a")), string([]byte("team-a"))
	if unsafe.StringData(recorder.use(a)) != unsafe.StringData(recorder.use(b)) {
		t.Fatal("a repeated string is not shared after the table started afresh")
	}
}

// Apps that differ only in what is their own (name, IDs, hostname,
// origins, generations, times) share one shape; another namespace or
// setting is another shape.
func TestAppsAlikeShareAShape(t *testing.T) {
	recorder := NewRecorder()
	app := randomApp(7)
	app.Finalizers = []string{v1alpha1.Finalizer}
	app.Spec.EdgeIPs = &v1alpha1.EdgeIPs{Type: "dynamic", Connectivity: "all"} // an edge of its own addresses is the app's alone
	alike := randomApp(8)
	alike.TypeMeta, alike.Namespace, alike.Finalizers = app.TypeMeta, app.Namespace, []string{v1alpha1.Finalizer}
	alike.Spec = *app.Spec.DeepCopy()
	alike.Spec.DNS.Name, alike.Spec.OriginDirect = "other.example.com", []string{"tcp://192.0.2.9:22"}
	alike.Status.ZoneID, alike.Status.ReconcilePolicy, alike.Status.Adopted = app.Status.ZoneID, app.Status.ReconcilePolicy, app.Status.Adopted
	other := alike.DeepCopy()
	other.Namespace += "-other"
	first, second, third := recorder.Record(app.DeepCopy()), recorder.Record(alike.DeepCopy()), recorder.Record(other)
	if first.shape != second.shape {
		t.Errorf("two apps alike hold a shape each:\n%+v\n%+v", first.shape, second.shape)
	}
	if third.shape == first.shape {
		t.Error("an app of another namespace shares the shape")
	}
	if got := second.App(); !equality.Semantic.DeepEqual(got, alike) {
		t.Fatalf("the second app reads\n%+v\nit was\n%+v", got, alike)
	}
}

// A View made into a caller's app reads as the Record, whatever that app
// held before.
func TestViewIntoReplacesWhatTheAppHeld(t *testing.T) {
	recorder := NewRecorder()
	var app v1alpha1.SpectrumApp
	for seed := range int64(50) {
		want := randomApp(seed)
		record := recorder.Record(want.DeepCopy())
		record.ViewInto(&app)
		if !equality.Semantic.DeepEqual(&app, want) {
			t.Fatalf("seed %d: the view reads\n%+v\nthe app was\n%+v", seed, &app, want)
		}
	}
}
