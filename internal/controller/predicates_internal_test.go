package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// The operator's own create record does not wake the controller; every
// other annotation change does (a retry request, a policy).
func TestAnnotationChangesBesidesTheCreateRecordWakeTheController(t *testing.T) {
	const record = v1alpha1.CreatePendingAnnotation
	for _, tc := range []struct {
		name       string
		old, new   map[string]string
		wantWakeUp bool
	}{
		{"none", nil, nil, false},
		{"the record written", nil, map[string]string{record: "2026-12-04T10:00:00Z"}, false},
		{"the record rewritten", map[string]string{record: "a", "team": "x"}, map[string]string{record: "b", "team": "x"}, false},
		{"a retry requested", map[string]string{record: "a"}, map[string]string{record: "a", v1alpha1.ReconcileRequestedAtAnnotation: "1"}, true},
		{"an annotation removed", map[string]string{"team": "x"}, nil, true},
		{"an annotation changed", map[string]string{"team": "x"}, map[string]string{"team": "y"}, true},
		{"the record written with a policy", nil, map[string]string{record: "a", v1alpha1.ReconcilePolicyAnnotation: "observe"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, updated := &v1alpha1.SpectrumApp{}, &v1alpha1.SpectrumApp{}
			old.Annotations, updated.Annotations = tc.old, tc.new
			old.Generation, updated.Generation = 1, 1
			if got := specOrRequestChanged().Update(event.UpdateEvent{ObjectOld: old, ObjectNew: updated}); got != tc.wantWakeUp {
				t.Errorf("wakes the controller: %v, want %v", got, tc.wantWakeUp)
			}
		})
	}
}

// A Secret wakes the apps that use it when it appears or its content
// changes; not for the cache's initial list (each app is reconciled at
// start by its own), nor for a finalizer coming or going.
func TestSecretEventsThatWakeTheAppsUsingIt(t *testing.T) {
	secret := func(finalizers ...string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cloudflare", Namespace: "team-a", Finalizers: finalizers}}
	}
	held := secret(CredentialsInUseFinalizer)
	for _, tc := range []struct {
		name       string
		wakes      func(predicate.Predicate) bool
		wantWakeUp bool
	}{
		{"listed when the manager starts", func(p predicate.Predicate) bool {
			return p.Create(event.CreateEvent{Object: secret(), IsInInitialList: true})
		}, false},
		{"created while the manager runs", func(p predicate.Predicate) bool {
			return p.Create(event.CreateEvent{Object: secret()})
		}, true},
		{"its token changed", func(p predicate.Predicate) bool {
			return p.Update(event.UpdateEvent{ObjectOld: held, ObjectNew: held.DeepCopy()})
		}, true},
		{"only the operator's finalizer added", func(p predicate.Predicate) bool {
			return p.Update(event.UpdateEvent{ObjectOld: secret(), ObjectNew: held})
		}, false},
		{"only the operator's finalizer removed", func(p predicate.Predicate) bool {
			return p.Update(event.UpdateEvent{ObjectOld: held, ObjectNew: secret()})
		}, false},
		{"deleted", func(p predicate.Predicate) bool {
			return p.Delete(event.DeleteEvent{Object: secret()})
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.wakes(secretChanges()); got != tc.wantWakeUp {
				t.Errorf("wakes the apps: %v, want %v", got, tc.wantWakeUp)
			}
		})
	}
}
