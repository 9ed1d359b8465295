package controller

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// report summarizes the outcome in the app's status (readinessOf, then
// setReadiness), tells it as an event, and logs it. Failures are told once
// per reason, not every retry; writes at Cloudflare are logged at info, and
// failures that need a person as errors.
func (r *SpectrumAppReconciler) report(ctx context.Context, app *v1alpha1.SpectrumApp, o outcome) {
	previous := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
	recordHandled(app, o)
	if o.kind != kindReleased {
		setReadiness(app, readinessOf(o))
	}
	r.tell(ctx, app, o, previous)
}

// recordHandled records, beside the conditions, what the outcome says of
// the spec: the policy acted on, the fields that differ, the generation
// Cloudflare accepted.
func recordHandled(app *v1alpha1.SpectrumApp, o outcome) {
	switch o.kind {
	case kindSynced:
		handled(app, v1alpha1.ReconcilePolicyManage)
		app.Status.Differences = nil
		app.Status.SyncedGeneration = app.Generation
	case kindObserved:
		handled(app, v1alpha1.ReconcilePolicyObserve)
		app.Status.Differences = o.observation.differences
	case kindSkipped:
		handled(app, v1alpha1.ReconcilePolicySkip)
		app.Status.Differences = nil
	case kindFailed, kindWaiting:
		handled(app, app.Policy())
	}
}

// nothingWritten ends the message of an observed app that does not match.
const nothingWritten = " (reconcile-policy observe: nothing is written at Cloudflare; annotate with manage to correct it)"

// syncedMessage is Ready's message when the application matches the spec.
const syncedMessage = "The Cloudflare Spectrum application named in status.applicationID matches the spec"

// readinessOf summarizes the outcome of a reconcile as conditions.
func readinessOf(o outcome) readiness {
	switch o.kind {
	case kindObserved:
		found := o.observation
		switch {
		case !found.exists:
			return readiness{metav1.ConditionFalse, v1alpha1.ReasonNotFound,
				"No Cloudflare Spectrum application with this hostname and protocol" + nothingWritten, needsAPerson}
		case len(found.differences) > 0:
			return readiness{metav1.ConditionFalse, v1alpha1.ReasonOutOfSync,
				"The Cloudflare Spectrum application " + found.app.ID + " differs from the spec in: " + joinFields(found.differences) + nothingWritten, needsAPerson}
		}
		return readiness{metav1.ConditionTrue, v1alpha1.ReasonObserved,
			"The Cloudflare Spectrum application " + found.app.ID + " matches the spec (reconcile-policy observe)", nothingToDo}
	case kindSkipped:
		return readiness{metav1.ConditionUnknown, v1alpha1.ReasonReconcileSkipped,
			"reconcile-policy skip: the operator makes no Cloudflare call for this SpectrumApp", nothingToDo}
	case kindFailed, kindWaiting:
		return readiness{metav1.ConditionFalse, o.failure.Reason, o.failure.Message + " " + whatHappensNext(o.failure), nextFor(o.failure.Class)}
	}
	// Nothing in it is the app's own (the ID is in status.applicationID):
	// apps synced in the same second hold one list of conditions in the
	// manager's cache (appcache.Recorder).
	return readiness{metav1.ConditionTrue, v1alpha1.ReasonSynced, syncedMessage, nothingToDo}
}

// tell records the event and the log line of an outcome. A change of
// readiness is told once; previous is Ready before this reconcile.
func (r *SpectrumAppReconciler) tell(ctx context.Context, app *v1alpha1.SpectrumApp, o outcome, previous *metav1.Condition) {
	log := ctrl.LoggerFrom(ctx).WithValues("zone", app.CloudflareZoneID(), "applicationID", app.Status.ApplicationID)
	ready := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
	switch o.kind {
	case kindFailed, kindWaiting:
		f := o.failure
		// Ray IDs differ on every attempt; the reason is what a person
		// needs to hear about once.
		if previous == nil || previous.Status != metav1.ConditionFalse || previous.Reason != f.Reason {
			eventType := corev1.EventTypeWarning
			if o.kind == kindWaiting {
				eventType = corev1.EventTypeNormal
			}
			r.Recorder.Eventf(app, nil, eventType, f.Reason, "Reconcile", ready.Message)
		}
		if f.Class == failure.Retryable {
			log.V(1).Info("Reconcile failed; retrying", "reason", f.Reason, "codes", f.Codes,
				"httpStatus", f.HTTPStatus, "rayID", f.RayID, "message", f.Message)
		} else {
			log.Error(nil, "Reconcile failed; a person must act", "reason", f.Reason, "codes", f.Codes,
				"httpStatus", f.HTTPStatus, "rayID", f.RayID)
		}
	case kindObserved:
		if ready.Status != metav1.ConditionTrue &&
			(previous == nil || previous.Reason != ready.Reason || previous.Message != ready.Message) {
			r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, ready.Reason, "Observe", ready.Message)
		}
	case kindSynced, kindReleased:
		if o.event == "" {
			return
		}
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, o.event, o.event, o.message)
		if o.wroteCloudflare {
			log.Info(o.message, "event", o.event)
		} else {
			log.V(1).Info(o.message, "event", o.event)
		}
	}
}

// whatHappensNext tells the user whether to wait or act.
func whatHappensNext(f failure.Classification) string {
	if f.Class == failure.Retryable {
		return "The operator retries with backoff."
	}
	return "Not retried until the spec or the credentials Secret changes, or the " +
		v1alpha1.ReconcileRequestedAtAnnotation + " annotation is set to a new value."
}

func joinFields(fields []string) string { return strings.Join(fields, ", ") }
