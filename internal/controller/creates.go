package controller

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// createTracker knows, per SpectrumApp, until when a create of it may still
// be in flight at Cloudflare, so that "no such application in the zone" is
// only believed from a listing taken after that. Cloudflare's API has no
// idempotency key: a create whose answer never came (a timeout, a reset, a
// 5xx from a proxy) may be applied after the client gave up, and one sent
// by a manager that was then killed may land after its successor started.
// Creating again before it lands makes a duplicate.
type createTracker struct {
	// settle is how long after a create failed Cloudflare may still apply
	// it.
	settle time.Duration
	// inherited is when every create an earlier manager may have sent has
	// landed: such a create was sent before this manager started, would
	// have failed a request timeout later at the latest, and may be
	// applied up to settle after that.
	inherited time.Time

	mu sync.Mutex
	// unsettled holds when the last create of each app ended without an
	// answer that rules out its having been applied.
	unsettled map[types.NamespacedName]time.Time
	// ours are the apps this manager saw first (it added their
	// finalizer): no earlier manager sent a create for them.
	ours map[types.NamespacedName]bool
}

func newCreateTracker(requestTimeout, settle time.Duration) *createTracker {
	return &createTracker{
		settle:    settle,
		inherited: time.Now().Add(requestTimeout + settle),
		unsettled: map[types.NamespacedName]time.Time{},
		ours:      map[types.NamespacedName]bool{},
	}
}

// firstSeen records that this manager added the app's finalizer.
func (t *createTracker) firstSeen(app types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ours[app] = true
}

// unsure records that a create of app may have been applied unseen.
func (t *createTracker) unsure(app types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unsettled[app] = time.Now()
}

// settled forgets the app's unsettled creates: its application is known.
func (t *createTracker) settled(app types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.unsettled, app)
}

// forget drops everything about a deleted app.
func (t *createTracker) forget(app types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.unsettled, app)
	delete(t.ours, app)
}

// barrier is the time after which every create of app that may be in
// flight has landed: only a zone listing started after it can show that
// the app has no application. Zero when no create can be in flight.
func (t *createTracker) barrier(app types.NamespacedName) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b time.Time
	if !t.ours[app] {
		b = t.inherited
	}
	if last, ok := t.unsettled[app]; ok && last.Add(t.settle).After(b) {
		b = last.Add(t.settle)
	}
	return b
}

// mayHaveApplied reports whether a failed create may have been applied
// anyway: anything but Cloudflare's refusal (a 4xx) or the operator's own
// budget stopping it before it was sent.
func mayHaveApplied(err error) bool {
	if errors.Is(err, spectrum.ErrRateLimited) {
		return false
	}
	var apiErr *spectrum.APIError
	if errors.As(err, &apiErr) {
		return apiErr.HTTPStatus < http.StatusBadRequest || apiErr.HTTPStatus >= http.StatusInternalServerError
	}
	return true
}

// reasonCreateUnconfirmed is the Reconciling reason while the operator waits
// for an earlier create to land before it looks for it again.
const reasonCreateUnconfirmed = "CreateUnconfirmed"

// createUnconfirmed explains the wait for an unconfirmed create.
func createUnconfirmed(wait time.Duration) spectrum.Classification {
	wait = wait.Round(time.Second) + time.Second
	return spectrum.Classification{
		Class:      spectrum.Retryable,
		Reason:     reasonCreateUnconfirmed,
		RetryAfter: wait,
		Resolution: "Nothing to do: the operator looks again once it has landed, and creates the application only if it has not.",
		Message: "An earlier create of this application got no answer (or the operator restarted) and may still be applied at Cloudflare; " +
			"waiting " + wait.String() + " before looking for it again, so that it is not created twice.",
	}
}
