// Package controller reconciles SpectrumApps with Cloudflare.
package controller

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/rules"
)

// Connector hands out a Cloudflare client per API token; clients of one
// token share its rate limit.
type Connector interface {
	ForToken(token string) spectrum.Client
}

// SpectrumAppReconciler keeps each SpectrumApp's Cloudflare application in
// line with its spec.
type SpectrumAppReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the apiserver, so the manager
	// does not cache every Secret of the cluster.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Connector Connector

	// DefaultCredentials, when Name is set, is the Secret used by apps
	// without a credentialsRef.
	DefaultCredentials DefaultCredentials
	// ResyncPeriod is how often Ready apps are compared with Cloudflare, a
	// zone listing at a time, to find changes made outside Kubernetes.
	ResyncPeriod time.Duration
	// MaxConcurrentReconciles bounds parallel reconciles.
	MaxConcurrentReconciles int
	// Metrics, when set, counts apps by condition.
	Metrics *AppMetrics
	// CreateSettle is how long after a create failed without an answer
	// Cloudflare may still apply it; the request timeout when zero.
	CreateSettle time.Duration

	zones   *zoneCache
	secrets *tokenCache
	creates *createTracker
}

// requestTimeout is the Connector's request timeout, when it tells.
func (r *SpectrumAppReconciler) requestTimeout() time.Duration {
	if c, ok := r.Connector.(interface{ RequestTimeout() time.Duration }); ok {
		return c.RequestTimeout()
	}
	return spectrum.DefaultTimeout
}

// createSettle is CreateSettle or else the request timeout: a create
// Cloudflare has not answered by then it applies soon after, if at all.
func (r *SpectrumAppReconciler) createSettle() time.Duration {
	if r.CreateSettle > 0 {
		return r.CreateSettle
	}
	return r.requestTimeout()
}

// DefaultCredentials names the Secret used by apps without a credentialsRef.
type DefaultCredentials struct {
	Namespace, Name, Key string
}

// +kubebuilder:rbac:groups=spectrum.cloudflare-operator.io,resources=spectrumapps,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=spectrum.cloudflare-operator.io,resources=spectrumapps/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=spectrum.cloudflare-operator.io,resources=spectrumapps/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create

// Reconcile moves one SpectrumApp a step towards its spec: delete, or
// connect, observe, then create, update or nothing; and report it in status.
func (r *SpectrumAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	app := &v1alpha1.SpectrumApp{}
	if err := r.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forget(req.NamespacedName)
			r.creates.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !app.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, app)
	}
	if controllerutil.AddFinalizer(app, v1alpha1.Finalizer) {
		// No create can have been sent for an app without the finalizer.
		r.creates.firstSeen(req.NamespacedName)
		if err := r.Update(ctx, app); err != nil {
			return ctrl.Result{}, err
		}
	}

	before := app.DeepCopy()
	outcome := r.sync(ctx, app)
	r.report(app, outcome)
	if err := r.writeStatus(ctx, app, before); err != nil {
		if outcome.event == eventCreated {
			// The new ID is not recorded: the next attempt adopts the
			// app, from a listing that cannot predate it.
			r.creates.unsure(req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	r.Metrics.observe(req.NamespacedName, app)
	return r.requeue(outcome)
}

// outcome is what one sync achieved: an event to tell (created, updated,
// adopted, in sync) or a failure, explained.
type outcome struct {
	event   string
	message string
	failure *spectrum.Classification
}

// sync makes the Cloudflare application match the spec.
func (r *SpectrumAppReconciler) sync(ctx context.Context, app *v1alpha1.SpectrumApp) outcome {
	// The webhook should have rejected these; it may have been bypassed, and
	// Cloudflare must never see an invalid app.
	if violations := rules.ValidateSpec(&app.Spec, specPath); len(violations) > 0 {
		return failed(invalidSpec(violations))
	}
	cf, err := r.connect(ctx, app)
	if err != nil {
		return failed(spectrum.Classify(err))
	}
	desired := spectrum.FromSpec(&app.Spec)
	observed, found, err := r.observe(ctx, cf, app)
	if err != nil {
		return failed(spectrum.Classify(err))
	}
	switch {
	case !found:
		if wait := r.unconfirmedCreate(app); wait > 0 {
			return failed(createUnconfirmed(wait))
		}
		return r.create(ctx, cf, app, desired)
	case spectrum.Differs(desired, observed):
		return r.update(ctx, cf, app, desired, observed)
	default:
		recordObserved(app, observed)
		return outcome{event: eventInSync}
	}
}

// create makes the Cloudflare application. Its ID goes into status in the
// status write that ends this reconcile, with nothing between that can fail;
// if that write is lost anyway (a crash), the next reconcile adopts the app by
// hostname and protocol instead of creating it twice.
func (r *SpectrumAppReconciler) create(ctx context.Context, cf spectrum.Client, app *v1alpha1.SpectrumApp, desired spectrum.App) outcome {
	created, err := cf.CreateApp(ctx, app.Spec.ZoneID, desired)
	if err != nil {
		// The create may have been applied with its answer lost, or be
		// applied later still: forget the zone's listing, and look for the
		// app again only once it would have landed (see createTracker).
		r.zones.invalidate(cf, app.Spec.ZoneID)
		if mayHaveApplied(err) {
			r.creates.unsure(keyOf(app))
		}
		return failed(spectrum.Classify(err))
	}
	r.zones.put(cf, app.Spec.ZoneID, created)
	r.creates.settled(keyOf(app))
	app.Status.Adopted = false
	recordObserved(app, created)
	return outcome{event: eventCreated, message: "Created Cloudflare Spectrum application " + created.ID}
}

// update sends the whole desired configuration, as the API's PUT expects.
func (r *SpectrumAppReconciler) update(ctx context.Context, cf spectrum.Client, app *v1alpha1.SpectrumApp, desired, observed spectrum.App) outcome {
	changed := spectrum.Differences(desired, observed)
	updated, err := cf.UpdateApp(ctx, app.Spec.ZoneID, observed.ID, desired)
	if err != nil {
		r.zones.invalidate(cf, app.Spec.ZoneID)
		return failed(spectrum.Classify(err))
	}
	r.zones.put(cf, app.Spec.ZoneID, updated)
	recordObserved(app, updated)
	return outcome{event: eventUpdated, message: "Updated Cloudflare Spectrum application " + updated.ID + " (" + joinFields(changed) + ")"}
}

// reconcileDelete removes the Cloudflare application (or leaves it, per
// deletionPolicy) and then lets Kubernetes delete the object.
func (r *SpectrumAppReconciler) reconcileDelete(ctx context.Context, app *v1alpha1.SpectrumApp) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(app, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if app.Spec.DeletionPolicy != v1alpha1.DeletionPolicyOrphan {
		if failure := r.deleteApplication(ctx, app); failure != nil {
			before := app.DeepCopy()
			r.report(app, outcome{failure: failure})
			if err := r.writeStatus(ctx, app, before); err != nil {
				return ctrl.Result{}, err
			}
			return r.requeue(outcome{failure: failure})
		}
	}
	r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, deletedReason(app), "Delete", deletedMessage(app))
	controllerutil.RemoveFinalizer(app, v1alpha1.Finalizer)
	r.Metrics.forget(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
	r.creates.forget(keyOf(app))
	return ctrl.Result{}, client.IgnoreNotFound(r.Update(ctx, app))
}

// deleteApplication deletes the app at Cloudflare; one already gone counts
// as deleted.
func (r *SpectrumAppReconciler) deleteApplication(ctx context.Context, app *v1alpha1.SpectrumApp) *spectrum.Classification {
	cf, err := r.connect(ctx, app)
	if err != nil {
		return classified(err)
	}
	if id := app.Status.ApplicationID; id != "" {
		err := cf.DeleteApp(ctx, app.Spec.ZoneID, id)
		r.zones.remove(cf, app.Spec.ZoneID, id)
		if err != nil && !spectrum.IsNotFound(err) {
			return classified(err)
		}
		if err == nil {
			return nil
		}
		// The recorded app was already gone: it may have been recreated
		// without the new ID being recorded, which the search below finds.
	}
	// A create whose answer was lost leaves an app we never learned the ID
	// of: find it the way adoption would.
	existing, found, err := r.findAdoptable(ctx, cf, app)
	var claimed *spectrum.ClaimedError
	if errors.As(err, &claimed) {
		// The application is another SpectrumApp's, not ours to delete.
		return nil
	}
	if err != nil {
		return classified(err)
	}
	if !found {
		// A create still in flight would land after the finalizer is
		// gone, an orphan: wait until it would have landed.
		if wait := r.unconfirmedCreate(app); wait > 0 {
			c := createUnconfirmed(wait)
			return &c
		}
		return nil
	}
	err = cf.DeleteApp(ctx, app.Spec.ZoneID, existing.ID)
	r.zones.remove(cf, app.Spec.ZoneID, existing.ID)
	if err != nil && !spectrum.IsNotFound(err) {
		return classified(err)
	}
	return nil
}

// writeStatus patches status when, and only when, it changed. A merge patch
// of the whole status cannot conflict, and status is the operator's alone.
func (r *SpectrumAppReconciler) writeStatus(ctx context.Context, app, before *v1alpha1.SpectrumApp) error {
	if equality.Semantic.DeepEqual(before.Status, app.Status) {
		return nil
	}
	return client.IgnoreNotFound(r.Status().Patch(ctx, app, client.MergeFrom(before)))
}

// requeue retries only what can succeed by itself. Failures that need a
// person wait for a change: the spec, the credentials Secret, or the
// reconcile-requested-at annotation.
func (r *SpectrumAppReconciler) requeue(o outcome) (ctrl.Result, error) {
	if o.failure == nil {
		// In sync: the drift check looks at it again every resync period.
		return ctrl.Result{}, nil
	}
	if o.failure.Class != spectrum.Retryable {
		return ctrl.Result{}, nil
	}
	if o.failure.RetryAfter > 0 {
		return ctrl.Result{RequeueAfter: o.failure.RetryAfter}, nil
	}
	// Returning an error hands the retry to the workqueue's exponential
	// backoff (see SetupWithManager).
	return ctrl.Result{}, errRetry{o.failure.Reason}
}

// errRetry asks the workqueue for a retry with backoff. It carries only the
// reason: the details are in status and events, and never a secret.
type errRetry struct{ reason string }

func (e errRetry) Error() string { return "retrying after a temporary failure: " + e.reason }

// SetupWithManager registers the controller: it watches SpectrumApps and the
// Secrets they use, and the drift check's findings.
func (r *SpectrumAppReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.zones = newZoneCache(r.ResyncPeriod)
	r.secrets = newTokenCache()
	r.creates = newCreateTracker(r.requestTimeout(), r.createSettle())
	if err := indexCredentials(context.Background(), mgr); err != nil {
		return err
	}
	if err := indexZones(context.Background(), mgr); err != nil {
		return err
	}
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 1
	}
	drift := newDriftCheck(r, r.zones.maxAge)
	if err := mgr.Add(drift); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.SpectrumApp{}, builder.WithPredicates(specOrRequestChanged())).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.appsUsingSecret)).
		WatchesRawSource(source.Channel(drift.drifted, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, maxBackoff),
		}).
		Named("spectrumapp").
		Complete(r)
}

// maxBackoff caps the wait between retries of a temporary failure.
const maxBackoff = 5 * time.Minute

func failed(c spectrum.Classification) outcome { return outcome{failure: &c} }

func classified(err error) *spectrum.Classification {
	c := spectrum.Classify(err)
	return &c
}
