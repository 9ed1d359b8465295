package controller

import (
	"context"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/rules"
)

// Event and condition reasons of successful steps.
const (
	eventCreated  = "Created"
	eventUpdated  = "Updated"
	eventAdopted  = "Adopted"
	eventDeleted  = "Deleted"
	eventOrphaned = "Orphaned"

	reasonSynced      = "Synced"
	reasonInvalidSpec = "InvalidSpec"
)

var specPath = field.NewPath("spec")

// outcome is what one reconcile achieved, on every path: an event to tell
// (created, updated, adopted, deleted; none when already in sync), or a
// failure, explained. Only report and writeStatus act on it.
type outcome struct {
	event   string
	message string
	failure *spectrum.Classification
	// release lets Kubernetes delete the object: its application is gone
	// or left in place, per deletionPolicy.
	release bool
	// wroteCloudflare is true when the event tells of a write at
	// Cloudflare, which is logged at info.
	wroteCloudflare bool
	// readAgain: the object read was stale, nothing was done; the
	// reconcile is repeated once the cache catches up, with nothing to
	// report.
	readAgain bool
	// skipped: the skip policy, no Cloudflare call was made.
	skipped bool
	// observedOnly is what the observe policy found; nothing was written.
	observedOnly *observation
	// driftCorrected names the fields an update brought back to the
	// spec after they were changed outside Kubernetes, or at adoption.
	driftCorrected []string
	// waitingForTurn: a request waits for its turn in the token's line,
	// expected after this long; nothing failed.
	waitingForTurn time.Duration
	// pendingCreateWritten is the status.pendingCreate this reconcile
	// wrote on its own before sending a create; the final status write
	// starts from it.
	pendingCreateWritten *metav1.Time
}

func succeeded(event, message string) outcome { return outcome{event: event, message: message} }

// wroteCloudflare tells of a write at Cloudflare: a create, update or
// delete.
func wroteCloudflare(event, message string) outcome {
	return outcome{event: event, message: message, wroteCloudflare: true}
}

func released(event, message string, wrote bool) outcome {
	return outcome{event: event, message: message, release: true, wroteCloudflare: wrote}
}

func failed(c spectrum.Classification) outcome { return outcome{failure: &c} }

func readAgain() outcome { return outcome{readAgain: true} }

func skipped() outcome { return outcome{skipped: true} }

// observedOnly records what the observe policy found.
func observedOnly(app *v1alpha1.SpectrumApp, observed observation) outcome {
	if observed.exists {
		recordObserved(app, observed.app)
		app.Status.Adopted = observed.adopted || app.Status.Adopted
	}
	return outcome{observedOnly: &observed}
}

// policyOf is the app's reconcile policy; manage when unset.
func policyOf(app *v1alpha1.SpectrumApp) string {
	policy, ok := app.Annotations[v1alpha1.ReconcilePolicyAnnotation]
	if !ok || policy == "" {
		return v1alpha1.ReconcilePolicyManage
	}
	return policy
}

// reasonInvalidReconcilePolicy: admission rejects unknown policies; one
// that got through (admission bypassed) is reported, and nothing is done.
const reasonInvalidReconcilePolicy = "InvalidReconcilePolicy"

func unknownPolicy(policy string) spectrum.Classification {
	return spectrum.Explain(spectrum.InvalidSpec, reasonInvalidReconcilePolicy,
		"Set it to manage, observe or skip; nothing was sent to Cloudflare.",
		"The "+v1alpha1.ReconcilePolicyAnnotation+" annotation is "+strconv.Quote(policy)+", which the operator does not know")
}

// readAgainAfter gives the cache a moment to catch up with the apiserver.
const readAgainAfter = 200 * time.Millisecond

func failedWith(err error) outcome {
	if wait, ok := spectrum.WaitingForTurn(err); ok {
		// At least a moment, so that zero never reads as "not waiting".
		return outcome{waitingForTurn: max(wait, time.Millisecond)}
	}
	return failed(spectrum.Classify(err))
}

// corrected notes the fields of a drift corrected at Cloudflare.
func (o outcome) corrected(fields []string) outcome {
	o.driftCorrected = fields
	return o
}

// wrote notes that status.pendingCreate was written at recordedAt.
func (o outcome) wrote(recordedAt time.Time) outcome {
	at := metav1.NewTime(recordedAt)
	o.pendingCreateWritten = &at
	return o
}

// report writes the outcome into the app's conditions, kstatus style, tells
// it as an event, and logs it. Failures are told once per reason, not every
// retry; writes at Cloudflare are logged at info, and failures that need a
// person as errors.
func (r *SpectrumAppReconciler) report(ctx context.Context, app *v1alpha1.SpectrumApp, o outcome) {
	log := ctrl.LoggerFrom(ctx).WithValues("zone", zoneOf(app), "applicationID", app.Status.ApplicationID)
	if o.failure != nil {
		r.reportFailure(app, *o.failure)
		if o.failure.Class == spectrum.Retryable {
			log.V(1).Info("Reconcile failed; retrying", "reason", o.failure.Reason, "codes", o.failure.Codes,
				"httpStatus", o.failure.HTTPStatus, "rayID", o.failure.RayID, "message", o.failure.Message)
		} else {
			log.Error(nil, "Reconcile failed; a person must act", "reason", o.failure.Reason, "codes", o.failure.Codes,
				"httpStatus", o.failure.HTTPStatus, "rayID", o.failure.RayID)
		}
		return
	}
	switch {
	case o.skipped:
		r.reportSkipped(app)
		return
	case o.observedOnly != nil:
		r.reportObserved(app, *o.observedOnly)
		return
	}
	if o.event != "" {
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, o.event, o.event, o.message)
		if o.wroteCloudflare {
			log.Info(o.message, "event", o.event)
		} else {
			log.V(1).Info(o.message, "event", o.event)
		}
	}
	if !o.release {
		r.reportSuccess(app)
	}
}

// Reasons of the observe and skip policies.
const (
	reasonObserved         = "Observed"
	reasonOutOfSync        = "OutOfSync"
	reasonNotFound         = "NotFound"
	reasonReconcileSkipped = "ReconcileSkipped"
)

// reportObserved tells whether the application matches the spec, and which
// fields differ, without writing anything at Cloudflare.
func (r *SpectrumAppReconciler) reportObserved(app *v1alpha1.SpectrumApp, observed observation) {
	r.handled(app, v1alpha1.ReconcilePolicyObserve)
	app.Status.Differences = observed.differences
	previous := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
	const nothingWritten = " (reconcile-policy observe: nothing is written at Cloudflare; annotate with manage to correct it)"
	var reason, message string
	switch {
	case !observed.exists:
		reason, message = reasonNotFound, "No Cloudflare Spectrum application with this hostname and protocol"+nothingWritten
	case len(observed.differences) > 0:
		reason, message = reasonOutOfSync, "The Cloudflare Spectrum application "+observed.app.ID+" differs from the spec in: "+joinFields(observed.differences)+nothingWritten
	default:
		setCondition(app, v1alpha1.ConditionReady, metav1.ConditionTrue, reasonObserved,
			"The Cloudflare Spectrum application "+observed.app.ID+" matches the spec (reconcile-policy observe)")
		meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionStalled)
		return
	}
	setCondition(app, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	setCondition(app, v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionReconciling)
	if previous == nil || previous.Reason != reason || previous.Message != message {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, reason, "Observe", message)
	}
}

// reportSkipped says that nothing was looked at.
func (r *SpectrumAppReconciler) reportSkipped(app *v1alpha1.SpectrumApp) {
	r.handled(app, v1alpha1.ReconcilePolicySkip)
	app.Status.Differences = nil
	setCondition(app, v1alpha1.ConditionReady, metav1.ConditionUnknown, reasonReconcileSkipped,
		"reconcile-policy skip: the operator makes no Cloudflare call for this SpectrumApp")
	meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionStalled)
}

// handled records what every reconcile records: the generation, policy and
// retry request it acted on.
func (r *SpectrumAppReconciler) handled(app *v1alpha1.SpectrumApp, policy string) {
	app.Status.ObservedGeneration = app.Generation
	app.Status.ReconcilePolicy = policy
	app.Status.LastHandledReconcileAt = app.Annotations[v1alpha1.ReconcileRequestedAtAnnotation]
}

func (r *SpectrumAppReconciler) reportSuccess(app *v1alpha1.SpectrumApp) {
	r.handled(app, v1alpha1.ReconcilePolicyManage)
	app.Status.Differences = nil
	app.Status.SyncedGeneration = app.Generation
	setCondition(app, v1alpha1.ConditionReady, metav1.ConditionTrue, reasonSynced,
		"The Cloudflare Spectrum application "+app.Status.ApplicationID+" matches the spec")
	meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&app.Status.Conditions, v1alpha1.ConditionStalled)
}

func (r *SpectrumAppReconciler) reportFailure(app *v1alpha1.SpectrumApp, f spectrum.Classification) {
	r.handled(app, policyOf(app))
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

// writeStatus patches status when, and only when, it changed. A merge patch
// of the whole status cannot conflict, and status is the operator's alone.
func (r *SpectrumAppReconciler) writeStatus(ctx context.Context, app, before *v1alpha1.SpectrumApp, o outcome) error {
	if o.pendingCreateWritten != nil {
		// Already on the apiserver: the patch must clear it, if cleared.
		before = before.DeepCopy()
		before.Status.PendingCreate = o.pendingCreateWritten
	}
	if equality.Semantic.DeepEqual(before.Status, app.Status) {
		return nil
	}
	patch, err := client.MergeFrom(before).Data(app)
	if err != nil {
		return err
	}
	return client.IgnoreNotFound(r.patchStatus(ctx, app, patch))
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

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// checkSpec re-checks the rules admission applies, since admission may have
// been bypassed and Cloudflare must never see an invalid app. A spec
// Cloudflare already accepted at this generation is not held back by a rule
// that changed since (an upgrade of the operator): it did not change.
func (r *SpectrumAppReconciler) checkSpec(app *v1alpha1.SpectrumApp) *spectrum.Classification {
	violations := rules.ValidateSpec(&app.Spec, specPath).Rejections()
	if len(violations) == 0 || (app.Status.SyncedGeneration == app.Generation && app.Generation != 0) {
		return nil
	}
	c := invalidSpec(violations)
	return &c
}

// invalidSpec explains violations of the rule set found by the controller
// itself: admission was bypassed.
func invalidSpec(violations rules.Violations) spectrum.Classification {
	details := make([]string, 0, len(violations))
	for _, v := range violations {
		details = append(details, v.Err.Error())
	}
	c := spectrum.Explain(spectrum.InvalidSpec, reasonInvalidSpec, "Fix the spec; nothing was sent to Cloudflare.",
		"The spec breaks rules Cloudflare enforces, so it was not sent: "+strings.Join(details, "; "))
	c.Codes = violations.Codes()
	return c
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
	app.Status.PendingCreate = nil
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	m := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &m
}

func joinFields(fields []string) string { return strings.Join(fields, ", ") }
