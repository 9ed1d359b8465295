package controller

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/rules"
)

// Event and condition reasons of successful steps.
const (
	eventCreated = "Created"
	eventUpdated = "Updated"
	eventAdopted = "Adopted"
	eventInSync  = ""

	reasonSynced      = "Synced"
	reasonInvalidSpec = "InvalidSpec"
)

// report writes the outcome into the app's conditions, kstatus style, and
// tells it as an event. Failures are told once per reason, not every retry.
func (r *SpectrumAppReconciler) report(app *v1alpha1.SpectrumApp, o outcome) {
	app.Status.ObservedGeneration = app.Generation
	app.Status.LastHandledReconcileAt = app.Annotations[v1alpha1.ReconcileRequestedAtAnnotation]
	if o.failure == nil {
		r.reportSuccess(app, o)
		return
	}
	r.reportFailure(app, *o.failure)
}

func (r *SpectrumAppReconciler) reportSuccess(app *v1alpha1.SpectrumApp, o outcome) {
	setCondition(app, v1alpha1.ConditionReady, metav1.ConditionTrue, reasonSynced,
		"The Cloudflare Spectrum application "+app.Status.ApplicationID+" matches the spec")
	meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionStalled)
	if o.event != eventInSync {
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, o.event, o.event, o.message)
	}
}

func (r *SpectrumAppReconciler) reportFailure(app *v1alpha1.SpectrumApp, f spectrum.Classification) {
	previous := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
	message := f.Message + " " + whatHappensNext(f)
	setCondition(app, v1alpha1.ConditionReady, metav1.ConditionFalse, f.Reason, message)
	if f.Class == spectrum.Retryable {
		setCondition(app, v1alpha1.ConditionReconciling, metav1.ConditionTrue, f.Reason, message)
		meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionStalled)
	} else {
		setCondition(app, v1alpha1.ConditionStalled, metav1.ConditionTrue, f.Reason, message)
		meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionReconciling)
	}
	// Ray IDs differ on every attempt; the reason is what a person needs to
	// hear about once.
	if previous == nil || previous.Status != metav1.ConditionFalse || previous.Reason != f.Reason {
		eventType := corev1.EventTypeWarning
		if f.Reason == reasonCreateUnconfirmed {
			// A deliberate wait, not a failure.
			eventType = corev1.EventTypeNormal
		}
		r.Recorder.Eventf(app, nil, eventType, f.Reason, "Reconcile", message)
	}
}

// whatHappensNext tells the user whether to wait or act.
func whatHappensNext(f spectrum.Classification) string {
	if f.Class == spectrum.Retryable {
		return "The operator retries with backoff."
	}
	return "Not retried until the spec or the credentials Secret changes, or the " +
		v1alpha1.ReconcileRequestedAtAnnotation + " annotation is set to a new value."
}

func setCondition(app *v1alpha1.SpectrumApp, conditionType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&app.Status.Conditions, metav1.Condition{
		Type:               conditionType,
		Status:             status,
		Reason:             reason,
		Message:            truncate(message, maxConditionMessage),
		ObservedGeneration: app.Generation,
	})
}

// maxConditionMessage keeps messages well inside the apiserver's 32 KiB limit.
const maxConditionMessage = 4096

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// invalidSpec explains violations of the rule set found by the controller
// itself: admission was bypassed or the rules changed since.
func invalidSpec(violations rules.Violations) spectrum.Classification {
	details := make([]string, 0, len(violations))
	for _, v := range violations {
		details = append(details, v.Err.Error())
	}
	return spectrum.Classification{
		Class:      spectrum.InvalidSpec,
		Reason:     reasonInvalidSpec,
		Codes:      violations.Codes(),
		Resolution: "Fix the spec; nothing was sent to Cloudflare.",
		Message:    "The spec breaks rules Cloudflare enforces, so it was not sent: " + strings.Join(details, "; ") + ". Fix the spec; nothing was sent to Cloudflare.",
	}
}

func deletedReason(app *v1alpha1.SpectrumApp) string {
	if app.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan {
		return "Orphaned"
	}
	return "Deleted"
}

func deletedMessage(app *v1alpha1.SpectrumApp) string {
	if app.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan {
		return "Left Cloudflare Spectrum application " + app.Status.ApplicationID + " in place (deletionPolicy Orphan)"
	}
	return "Deleted Cloudflare Spectrum application " + app.Status.ApplicationID
}
