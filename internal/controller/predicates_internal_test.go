package controller

import (
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/event"

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
