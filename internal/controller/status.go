package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// handled records what every reconcile records: the generation, policy and
// retry request it acted on.
func handled(app *v1alpha1.SpectrumApp, policy string) {
	app.Status.ObservedGeneration = app.Generation
	app.Status.ReconcilePolicy = policy
	app.Status.LastHandledReconcileAt = app.Annotations[v1alpha1.ReconcileRequestedAtAnnotation]
}

// recordObserved copies what Cloudflare reports into status.
func recordObserved(app *v1alpha1.SpectrumApp, observed spectrum.App) {
	app.Status.ApplicationID = observed.ID
	app.Status.CreatedOn = metaTime(observed.CreatedOn)
	app.Status.ModifiedOn = metaTime(observed.ModifiedOn)
	app.Status.EdgeIPs = nil
	if observed.EdgeIPs != nil && len(observed.EdgeIPs.IPs) > 0 {
		app.Status.EdgeIPs = append([]string(nil), observed.EdgeIPs.IPs...)
	}
}

// recordAdopted records an application found by hostname and protocol: the
// create record, if any, is settled by it.
func recordAdopted(app *v1alpha1.SpectrumApp, adopted spectrum.App) {
	recordObserved(app, adopted)
	app.Status.Adopted = true
	app.SettleCreate()
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	m := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &m
}

// writeStatus patches status when, and only when, it changed. A merge patch
// of the whole status cannot conflict, and status is the operator's alone.
func (r *SpectrumAppReconciler) writeStatus(ctx context.Context, app, before *v1alpha1.SpectrumApp, o outcome) error {
	if equality.Semantic.DeepEqual(before.Status, app.Status) {
		return nil
	}
	patch, err := statusPatch(&before.Status, &app.Status)
	if err != nil {
		return err
	}
	return client.IgnoreNotFound(r.patchStatus(ctx, app, patch))
}

// statusPatch is the merge patch that takes status from before to after:
// a field that changed is sent (an object as the merge patch of its own
// fields, anything else whole: a merge patch replaces lists whole anyway),
// a field gone as null. Only the status is encoded: diffing whole objects
// (client.MergeFrom) was 3 % of the CPU to converge 10,000 apps.
func statusPatch(before, after *v1alpha1.SpectrumAppStatus) ([]byte, error) {
	old, err := json.Marshal(before)
	if err != nil {
		return nil, err
	}
	current, err := json.Marshal(after)
	if err != nil {
		return nil, err
	}
	changes, err := objectPatch(old, current)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]json.RawMessage{"status": changes})
}

// objectPatch is the RFC 7386 merge patch from one JSON object to another.
func objectPatch(before, after json.RawMessage) (json.RawMessage, error) {
	var old, current map[string]json.RawMessage
	if err := json.Unmarshal(before, &old); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(after, &current); err != nil {
		return nil, err
	}
	changes := make(map[string]json.RawMessage, len(current))
	for name, value := range current {
		was, ok := old[name]
		switch {
		case ok && bytes.Equal(was, value):
		case ok && isObject(was) && isObject(value):
			nested, err := objectPatch(was, value)
			if err != nil {
				return nil, err
			}
			changes[name] = nested
		default:
			changes[name] = value
		}
	}
	for name := range old {
		if _, kept := current[name]; !kept {
			changes[name] = json.RawMessage("null")
		}
	}
	return json.Marshal(changes)
}

func isObject(value json.RawMessage) bool {
	return len(value) > 0 && value[0] == '{'
}
