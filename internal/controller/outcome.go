package controller

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// Events of successful steps.
const (
	eventCreated  = "Created"
	eventUpdated  = "Updated"
	eventAdopted  = "Adopted"
	eventDeleted  = "Deleted"
	eventOrphaned = "Orphaned"
)

// outcomeKind is what one reconcile came to.
type outcomeKind int

const (
	// kindSynced: the application matches the spec, whether a write made it so
	// or it already did.
	kindSynced outcomeKind = iota + 1
	// kindObserved: the observe policy looked at the application and wrote
	// nothing.
	kindObserved
	// kindSkipped: the skip policy; no Cloudflare call was made.
	kindSkipped
	// kindFailed: a failure, explained; retried or not per its class.
	kindFailed
	// kindWaiting: a deliberate wait, not a failure: a create whose answer was
	// lost may still land.
	kindWaiting
	// kindReleased: Kubernetes may delete the object; its application is gone
	// or left in place, per deletionPolicy.
	kindReleased
	// kindReadAgain: the object read was stale and nothing was done; the
	// reconcile is repeated once the cache catches up, with nothing to
	// report.
	kindReadAgain
	// kindQueued: a request waits for its turn in the token's line; nothing
	// failed and nothing is reported.
	kindQueued
)

// outcome is what one reconcile achieved, on every path: its kind, and
// what that kind carries. Only report, writeStatus and requeue act on it.
type outcome struct {
	kind outcomeKind
	// event and message tell a synced or released outcome; no event when
	// the application was already in sync.
	event, message string
	// wroteCloudflare: the event tells of a write at Cloudflare, which is
	// logged at info.
	wroteCloudflare bool
	// failure explains a failed or waiting outcome.
	failure failure.Classification
	// observation is what the observe policy found.
	observation observation
	// turnExpectedIn is when a queued request's turn is expected.
	turnExpectedIn time.Duration
	// driftCorrected names the fields an update brought back to the spec
	// after they were changed outside Kubernetes, or at adoption.
	driftCorrected []string
	// pendingCreateWritten is the create record this reconcile wrote
	// before sending a create.
	pendingCreateWritten *metav1.Time
}

// alreadySynced: the application already matched the spec.
func alreadySynced() outcome { return outcome{kind: kindSynced} }

// succeeded tells of a step that wrote nothing at Cloudflare (an
// adoption of an application that already matched).
func succeeded(event, message string) outcome {
	return outcome{kind: kindSynced, event: event, message: message}
}

// wroteCloudflare tells of a write at Cloudflare: a create or update.
func wroteCloudflare(event, message string) outcome {
	return outcome{kind: kindSynced, event: event, message: message, wroteCloudflare: true}
}

func released(event, message string, wrote bool) outcome {
	return outcome{kind: kindReleased, event: event, message: message, wroteCloudflare: wrote}
}

func failed(c failure.Classification) outcome { return outcome{kind: kindFailed, failure: c} }

func waitingFor(c failure.Classification) outcome { return outcome{kind: kindWaiting, failure: c} }

func readAgain() outcome { return outcome{kind: kindReadAgain} }

func skipped() outcome { return outcome{kind: kindSkipped} }

// observedOnly records what the observe policy found.
func observedOnly(app *v1alpha1.SpectrumApp, found observation) outcome {
	if found.exists {
		recordObserved(app, found.app)
		app.Status.Adopted = found.adopted || app.Status.Adopted
	}
	return outcome{kind: kindObserved, observation: found}
}

// failedWith is the outcome of an error: a wait for the token's turn, or
// a failure as spectrum.Classify explains it.
func failedWith(err error) outcome {
	if wait, ok := budget.WaitingForTurn(err); ok {
		// At least a moment, so that zero never reads as "not waiting".
		return outcome{kind: kindQueued, turnExpectedIn: max(wait, time.Millisecond)}
	}
	return failed(spectrum.Classify(err))
}

// corrected notes the fields of a drift corrected at Cloudflare.
func (o outcome) corrected(fields []string) outcome {
	o.driftCorrected = fields
	return o
}

// wrote notes that the create record was written at recordedAt.
func (o outcome) wrote(recordedAt time.Time) outcome {
	at := metav1.NewTime(recordedAt)
	o.pendingCreateWritten = &at
	return o
}

// readAgainAfter gives the cache a moment to catch up with the apiserver.
const readAgainAfter = 200 * time.Millisecond
