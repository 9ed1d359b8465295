package controller

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// A status patch, applied as the apiserver applies a merge patch, must
// give exactly the new status: fields set, changed, emptied and removed;
// and must carry nothing but status.
func TestStatusPatchTakesStatusFromBeforeToAfter(t *testing.T) {
	recorded := metav1.NewTime(time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC))
	ready := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSynced,
		Message: "matches", ObservedGeneration: 1, LastTransitionTime: recorded}
	reconciling := metav1.Condition{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: "Waiting",
		Message: "waiting", ObservedGeneration: 1, LastTransitionTime: recorded}
	cases := []struct {
		name          string
		before, after v1alpha1.SpectrumAppStatus
	}{
		{"create recorded", v1alpha1.SpectrumAppStatus{}, v1alpha1.SpectrumAppStatus{ZoneID: "z", PendingCreate: &recorded}},
		{"create answered", v1alpha1.SpectrumAppStatus{ZoneID: "z", PendingCreate: &recorded, Conditions: []metav1.Condition{reconciling}},
			v1alpha1.SpectrumAppStatus{ZoneID: "z", ApplicationID: "a1", ObservedGeneration: 1, SyncedGeneration: 1,
				CreatedOn: &recorded, EdgeIPs: []string{"192.0.2.1"}, Conditions: []metav1.Condition{ready}}},
		{"differences gone", v1alpha1.SpectrumAppStatus{ApplicationID: "a1", Differences: []string{"tls", "dns.name"}, Adopted: true},
			v1alpha1.SpectrumAppStatus{ApplicationID: "a1"}},
		{"a condition changed in place", v1alpha1.SpectrumAppStatus{Conditions: []metav1.Condition{ready, reconciling}},
			v1alpha1.SpectrumAppStatus{Conditions: []metav1.Condition{ready}}},
		{"no change", v1alpha1.SpectrumAppStatus{ApplicationID: "a1"}, v1alpha1.SpectrumAppStatus{ApplicationID: "a1"}},
		{"a nested field gone", v1alpha1.SpectrumAppStatus{ApplicationID: "a1", Traffic: &v1alpha1.Traffic{Connections: 3, ReadAt: recorded}},
			v1alpha1.SpectrumAppStatus{ApplicationID: "a1", Traffic: &v1alpha1.Traffic{Connections: 4}}},
		{"a nested object gone", v1alpha1.SpectrumAppStatus{ApplicationID: "a1", Traffic: &v1alpha1.Traffic{Connections: 3}},
			v1alpha1.SpectrumAppStatus{ApplicationID: "a1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			patch, err := statusPatch(&tc.before, &tc.after)
			if err != nil {
				t.Fatal(err)
			}
			var outer map[string]map[string]json.RawMessage
			if err := json.Unmarshal(patch, &outer); err != nil {
				t.Fatalf("patch %s: %v", patch, err)
			}
			if _, ok := outer["status"]; !ok || len(outer) != 1 {
				t.Fatalf("patch %s carries more than status", patch)
			}
			got := applyMergePatch(t, tc.before, outer["status"])
			want := asJSONObject(t, tc.after)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("patch %s gives\n%v\nwant\n%v", patch, got, want)
			}
		})
	}
}

// applyMergePatch applies a merge patch to status as RFC 7386 does: null
// removes, an object merges into an object field by field, anything else
// replaces.
func applyMergePatch(t *testing.T, status v1alpha1.SpectrumAppStatus, patch map[string]json.RawMessage) map[string]any {
	t.Helper()
	var changes map[string]any
	encoded, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(encoded, &changes); err != nil {
		t.Fatal(err)
	}
	return mergeInto(asJSONObject(t, status), changes)
}

func mergeInto(doc, patch map[string]any) map[string]any {
	for name, value := range patch {
		nested, isObject := value.(map[string]any)
		target, targetIsObject := doc[name].(map[string]any)
		switch {
		case value == nil:
			delete(doc, name)
		case isObject && targetIsObject:
			doc[name] = mergeInto(target, nested)
		case isObject:
			doc[name] = mergeInto(map[string]any{}, nested)
		default:
			doc[name] = value
		}
	}
	return doc
}

// asJSONObject is v as the apiserver keeps it after a merge patch: a null
// (a zero time) is no field at all.
func asJSONObject(t *testing.T, v any) map[string]any {
	t.Helper()
	encoded, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(encoded, &out); err != nil {
		t.Fatal(err)
	}
	return withoutNulls(out)
}

func withoutNulls(doc map[string]any) map[string]any {
	for name, value := range doc {
		switch value := value.(type) {
		case nil:
			delete(doc, name)
		case map[string]any:
			withoutNulls(value)
		}
	}
	return doc
}

// A field gone from a nested object is sent as null: sent whole, the
// nested object would merge into the stored one and keep the field.
func TestObjectPatchRemovesNestedFields(t *testing.T) {
	patch, err := objectPatch(json.RawMessage(`{"a":{"x":1,"y":2},"b":[1]}`), json.RawMessage(`{"a":{"x":1},"b":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(patch), `{"a":{"y":null}}`; got != want {
		t.Errorf("patch %s, want %s", got, want)
	}
}
