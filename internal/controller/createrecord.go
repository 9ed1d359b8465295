package controller

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
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
// about to be sent (the create-pending annotation) before sending it, and
// settles the record once the outcome is known: the ID is recorded, or
// Cloudflare answered with a refusal (status.createSettled). A record left
// unsettled means a create may have been applied unseen; any manager, after
// any restart, reads it and looks for that application
// (cloudflareApp.byNameAfterPendingCreate) instead of guessing from timing.
//
// The record is an annotation, not a status field, so that it goes out in
// the same write as the finalizer a new app needs before anything of its
// exists at Cloudflare; the status write that reports the outcome settles
// it. A record in status took a write of its own: a third of the
// apiserver writes, and a quarter of the manager's CPU, to converge 10,000
// apps (issue 23).

// recordPendingCreate writes the create record, and the finalizer when the
// app lacks it, before a create is sent, and returns the time recorded. It
// must succeed before the create goes out.
//
// The write is conditional on the resourceVersion the reconcile read: the
// manager's cache may not yet show a record an earlier attempt wrote (or
// the ID it recorded), and a create decided on such a stale view could
// duplicate the application. Then the write fails with a conflict
// (errStaleRead) and nothing is sent.
func (r *SpectrumAppReconciler) recordPendingCreate(ctx context.Context, app *v1alpha1.SpectrumApp) (time.Time, error) {
	// Rounded up to the second the record keeps, so the recorded time is
	// never earlier than the create's start.
	at := time.Now().Add(time.Second).Truncate(time.Second).UTC()
	if settled := app.Status.CreateSettled; settled != nil && !at.After(settled.Time) {
		// A record is settled by its time: a new one must be later.
		at = settled.Add(time.Second).UTC()
	}
	metadata := map[string]any{
		"resourceVersion": app.ResourceVersion,
		"annotations":     map[string]string{v1alpha1.CreatePendingAnnotation: at.Format(time.RFC3339)},
	}
	finalizers := app.Finalizers
	if !controllerutil.ContainsFinalizer(app, v1alpha1.Finalizer) {
		finalizers = append(slices.Clone(finalizers), v1alpha1.Finalizer)
		metadata["finalizers"] = finalizers
	}
	patch, err := json.Marshal(map[string]any{"metadata": metadata})
	if err != nil {
		return time.Time{}, err
	}
	// Only the new resourceVersion is read back: the whole answer would
	// overwrite what this reconcile has found so far but not yet written.
	meta := appMetadata(app)
	if err := r.writer.patch(ctx, spectrumAppsResource, meta, patch); err != nil {
		if apierrors.IsConflict(err) {
			return time.Time{}, errStaleRead
		}
		return time.Time{}, err
	}
	app.ResourceVersion = meta.ResourceVersion
	app.Finalizers = finalizers
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[v1alpha1.CreatePendingAnnotation] = at.Format(time.RFC3339)
	return at, nil
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
		"An earlier create of this application got no answer and may still be applied at Cloudflare (the create-pending annotation records it); "+
			"waiting "+wait.String()+" before looking for it again, so that it is not created twice nor left behind")
	c.RetryAfter = wait
	return c
}

// CacheTransform is the transform of the manager's cache: it keeps
// SpectrumApps as Records (internal/appcache), without a create record
// already settled, which says nothing, and no object's managedFields,
// which nothing here reads. Every created app carries its settled record
// for good; without this, 10,000 apps held 4 MiB more of the manager's
// memory (a map per app, for one void annotation).
func CacheTransform() toolscache.TransformFunc {
	stripManagedFields := cache.TransformStripManagedFields()
	records := appcache.NewRecorder()
	return func(in any) (any, error) {
		if app, ok := in.(*v1alpha1.SpectrumApp); ok {
			forgetSettledCreateRecord(app)
			return records.Record(app), nil
		}
		return stripManagedFields(in)
	}
}

// forgetSettledCreateRecord drops the create-pending annotation when
// status.createSettled settles it.
func forgetSettledCreateRecord(app *v1alpha1.SpectrumApp) {
	record, settled := app.CreateRecord(), app.Status.CreateSettled
	if record == nil || settled == nil || settled.Before(record) {
		return
	}
	delete(app.Annotations, v1alpha1.CreatePendingAnnotation)
	if len(app.Annotations) == 0 {
		app.Annotations = nil
	}
}
