package controller

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// Cloudflare's API has no idempotency key: a create whose answer never came
// (a timeout, a reset, an HTML page from the edge) may be applied after the
// client gave up, and one sent by a manager that was then killed may land
// after its successor started. Creating again before it lands makes a
// duplicate; deleting the SpectrumApp before it lands makes an orphan.
//
// So, as crossplane-runtime does with its external-create-pending
// annotation, the operator writes down on the apiserver that a create is
// about to be sent (status.pendingCreate) before sending it, and clears the
// record once the outcome is known: the ID is recorded, or Cloudflare
// answered with a refusal. A record left behind means a create may have been
// applied unseen; any manager, after any restart, reads it and looks for
// that application (cloudflareApp.byNameAfterPendingCreate) instead of
// guessing from timing.

// recordPendingCreate writes status.pendingCreate before a create is sent,
// and returns the time recorded. It is written on its own, and must succeed
// before the create goes out.
//
// The write is conditional on the resourceVersion the reconcile read: the
// manager's cache may not yet show a record an earlier attempt wrote (or
// the ID it recorded), and a create decided on such a stale view could
// duplicate the application. Then the write fails with a conflict
// (errStaleRead) and nothing is sent.
func (r *SpectrumAppReconciler) recordPendingCreate(ctx context.Context, app *v1alpha1.SpectrumApp) (time.Time, error) {
	// Rounded up to the second the field keeps, so the recorded time is
	// never earlier than the create's start.
	at := metav1.NewTime(time.Now().Add(time.Second).Truncate(time.Second))
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": app.ResourceVersion},
		"status":   map[string]any{"pendingCreate": at},
	})
	if err != nil {
		return time.Time{}, err
	}
	// Only the new resourceVersion is read back: the whole answer would
	// overwrite what this reconcile has found so far but not yet written.
	if err := r.patchStatus(ctx, app, patch); err != nil {
		if apierrors.IsConflict(err) {
			return time.Time{}, errStaleRead
		}
		return time.Time{}, err
	}
	app.Status.PendingCreate = &at
	return at.Time, nil
}

// readStale reports whether the apiserver holds a newer version of app
// than the one this reconcile read from the cache.
func (r *SpectrumAppReconciler) readStale(ctx context.Context, app *v1alpha1.SpectrumApp) (bool, error) {
	current := &v1alpha1.SpectrumApp{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(app), current); err != nil {
		return false, err
	}
	return current.ResourceVersion != app.ResourceVersion, nil
}

// errStaleRead says the object the reconcile read is older than the
// apiserver's: it is read again before anything is decided.
var errStaleRead = errors.New("the SpectrumApp changed since it was read")

// createUnconfirmed explains the wait for an unconfirmed create.
func createUnconfirmed(wait time.Duration) failure.Classification {
	wait = wait.Round(time.Second) + time.Second
	c := failure.Explain(failure.Retryable, v1alpha1.ReasonCreateUnconfirmed,
		"Nothing to do: the operator looks again once it has landed, and creates the application only if it has not.",
		"An earlier create of this application got no answer and may still be applied at Cloudflare (status.pendingCreate records it); "+
			"waiting "+wait.String()+" before looking for it again, so that it is not created twice nor left behind")
	c.RetryAfter = wait
	return c
}
