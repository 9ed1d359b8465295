// Package controller reconciles SpectrumApps with Cloudflare.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// SpectrumAppReconciler keeps each SpectrumApp's Cloudflare application in
// line with its spec.
type SpectrumAppReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the apiserver, so the manager
	// does not cache every Secret of the cluster.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	// Connector hands out the Cloudflare client of each API token, and
	// keeps each token's request budget.
	Connector *budget.Connector

	// DefaultCredentials, when Name is set, is the Secret used by apps
	// without a credentialsRef.
	DefaultCredentials v1alpha1.SecretKey
	// ResyncPeriod is how often Ready apps are compared with Cloudflare, a
	// zone listing at a time, to find changes made outside Kubernetes.
	ResyncPeriod time.Duration
	// MaxConcurrentReconciles bounds parallel reconciles.
	MaxConcurrentReconciles int
	// Metrics, when set, counts apps by condition.
	Metrics *AppMetrics
	// Traffic, when set, reads each app's traffic from Cloudflare's
	// analytics into its status (see traffic.go).
	Traffic *TrafficOptions

	zones   *zoneCache
	secrets *tokenCache
	// stubConnect, when set, stands in for connect: the table tests of the
	// reconcile branches hand the reconciler a stub seam through it. Nil in
	// production.
	stubConnect func(ctx context.Context, app *v1alpha1.SpectrumApp) (external, error)
	// zoneApps are the cached SpectrumApps by zone.
	zoneApps *zoneApps
	writer   metadataWriter
	// turnCame wakes an app whose turn in its token's line has come.
	turnCame chan event.GenericEvent
	traffic  *trafficWatch
}

// +kubebuilder:rbac:groups=spectrum.cloudflare-operator.io,resources=spectrumapps,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=spectrum.cloudflare-operator.io,resources=spectrumapps/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=spectrum.cloudflare-operator.io,resources=spectrumapps/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create

// Reconcile moves one SpectrumApp a step towards its spec. The whole story:
// get the object; if it is being deleted, delete its application (or leave
// it, per deletionPolicy) and let it go; otherwise make sure of the
// finalizer, connect with its credentials, observe its application, and
// create, update or leave it; then report the outcome in status and events,
// and requeue only what can succeed by itself.
func (r *SpectrumAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// No worker waits for a token's budget: the app takes its turn among
	// the apps of that token, namespaces in turn, and is woken when it
	// comes (budget.WithTurn).
	ctx = budget.WithTurn(ctx, budget.Waiter{Group: req.Namespace, Name: req.Name}, func() { r.wake(req) })
	result, err := r.reconcile(ctx, req)
	if err != nil && ctx.Err() != nil {
		// Cut short by the manager's stop, which is not a failure: the next
		// leader reconciles every app again.
		return ctrl.Result{}, nil
	}
	return result, err
}

func (r *SpectrumAppReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	started := time.Now()
	app := &v1alpha1.SpectrumApp{}
	if err := r.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forget(req.NamespacedName)
			r.traffic.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !app.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(app, v1alpha1.Finalizer) {
			return ctrl.Result{}, nil
		}
		// What to delete rests on status (the ID, a pending create): read
		// it from the apiserver, not from a cache that may lag our writes.
		if err := r.APIReader.Get(ctx, req.NamespacedName, app); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		before := app.DeepCopy()
		return r.finish(ctx, app, before, started, r.delete(ctx, app, app.Policy()))
	}
	if err := r.holdFinalizer(ctx, app); err != nil {
		return ctrl.Result{}, err
	}
	before := app.DeepCopy()
	return r.finish(ctx, app, before, started, r.sync(ctx, app, app.Policy()))
}

// holdFinalizer puts the finalizer on an app that has something at
// Cloudflare to delete: an application whose ID status records, or a create
// that may have made one. A new app gets it with its create record (one
// write, not two), and an adopted one before its ID is recorded (finish);
// one that never gets that far can be deleted at once. Only the manage
// policy deletes at Cloudflare.
func (r *SpectrumAppReconciler) holdFinalizer(ctx context.Context, app *v1alpha1.SpectrumApp) error {
	if app.Policy() != v1alpha1.ReconcilePolicyManage || (app.Status.ApplicationID == "" && app.UnsettledCreate() == nil) {
		return nil
	}
	if !controllerutil.AddFinalizer(app, v1alpha1.Finalizer) {
		return nil
	}
	return r.writeFinalizers(ctx, app)
}

// sync makes the Cloudflare application match the spec: connect, observe,
// then create, update or nothing. The observe policy stops after observing,
// and skip before connecting.
func (r *SpectrumAppReconciler) sync(ctx context.Context, app *v1alpha1.SpectrumApp, policy string) outcome {
	switch policy {
	case v1alpha1.ReconcilePolicyManage, v1alpha1.ReconcilePolicyObserve:
	case v1alpha1.ReconcilePolicySkip:
		return skipped()
	default:
		return failed(unknownPolicy(policy))
	}
	if invalid := r.checkSpec(app); invalid != nil {
		return failed(*invalid)
	}
	cloudflare, err := r.externalOf(ctx, app)
	if err != nil {
		return failedWith(err)
	}
	if err := r.protectCredentials(ctx, app); err != nil {
		return failedWith(err)
	}
	observed, err := cloudflare.Observe(ctx)
	switch {
	case err != nil:
		return failedWith(err)
	case policy == v1alpha1.ReconcilePolicyObserve:
		return observedOnly(app, observed)
	case !observed.exists:
		return r.create(ctx, cloudflare, app, observed)
	case len(observed.differences) > 0:
		return r.update(ctx, cloudflare, app, observed)
	}
	return alreadyInSync(app, observed)
}

// externalOf is the seam to the app's Cloudflare application, as sync and
// delete reach it: connect's, unless a test stubs it.
func (r *SpectrumAppReconciler) externalOf(ctx context.Context, app *v1alpha1.SpectrumApp) (external, error) {
	if r.stubConnect != nil {
		return r.stubConnect(ctx, app)
	}
	return r.connect(ctx, app)
}

var specPath = field.NewPath("spec")

// checkSpec re-checks the rules admission applies, since admission may have
// been bypassed and Cloudflare must never see an invalid app. A spec
// Cloudflare already accepted at this generation is not held back by a rule
// that changed since (an upgrade of the operator): it did not change.
func (r *SpectrumAppReconciler) checkSpec(app *v1alpha1.SpectrumApp) *failure.Classification {
	violations := rules.ValidateSpec(&app.Spec, specPath).Rejections()
	if len(violations) == 0 || (app.Status.SyncedGeneration == app.Generation && app.Generation != 0) {
		return nil
	}
	c := invalidSpec(violations)
	return &c
}

// invalidSpec explains violations of the rule set found by the controller
// itself: admission was bypassed.
func invalidSpec(violations rules.Violations) failure.Classification {
	details := make([]string, 0, len(violations))
	for _, v := range violations {
		details = append(details, v.Err.Error())
	}
	c := failure.Explain(failure.InvalidSpec, v1alpha1.ReasonInvalidSpec, "Fix the spec; nothing was sent to Cloudflare.",
		"The spec breaks rules Cloudflare enforces, so it was not sent: "+strings.Join(details, "; "))
	c.Codes = violations.Codes()
	return c
}

// unknownPolicy: admission rejects unknown policies; one that got through
// (admission bypassed) is reported, and nothing is done.
func unknownPolicy(policy string) failure.Classification {
	return failure.Explain(failure.InvalidSpec, v1alpha1.ReasonInvalidReconcilePolicy,
		"Set it to manage, observe or skip; nothing was sent to Cloudflare.",
		"The "+v1alpha1.ReconcilePolicyAnnotation+" annotation is "+strconv.Quote(policy)+", which the operator does not know")
}

// create records that a create is pending, then sends it. Only an answer
// from Cloudflare, success or refusal, settles the record; a create that got
// none keeps it, so that the next attempt (by any manager) looks for the
// application before creating another.
func (r *SpectrumAppReconciler) create(ctx context.Context, cloudflare external, app *v1alpha1.SpectrumApp, observed observation) outcome {
	if observed.unconfirmed > 0 {
		// The record may be one the cache has not yet seen cleared.
		stale, err := r.readStale(ctx, app)
		switch {
		case err != nil:
			return failedWith(err)
		case stale:
			return readAgain()
		}
		return waitingFor(createUnconfirmed(observed.unconfirmed))
	}
	// The record promises the create goes out within seconds: it is
	// written once the create's turn has come.
	if err := cloudflare.TakeTurn(ctx); err != nil {
		return failedWith(err)
	}
	recordedAt, err := r.recordPendingCreate(ctx, app)
	if errors.Is(err, errStaleRead) {
		return readAgain()
	}
	if err != nil {
		return failedWith(err)
	}
	created, err := cloudflare.Create(ctx, recordedAt)
	if err != nil {
		o := failedWith(err)
		if !spectrum.MayHaveBeenApplied(err) {
			app.SettleCreate()
		}
		return o.wrote(recordedAt)
	}
	app.SettleCreate()
	app.Status.Adopted = false
	recordObserved(app, created)
	return wroteCloudflare(eventCreated, "Created Cloudflare Spectrum application "+created.ID).wrote(recordedAt)
}

// update sends the whole desired configuration. An adopted application is
// brought to the spec the same way, and the adoption is what is told.
func (r *SpectrumAppReconciler) update(ctx context.Context, cloudflare external, app *v1alpha1.SpectrumApp, observed observation) outcome {
	updated, err := cloudflare.Update(ctx, observed.app)
	if err != nil {
		return failedWith(err)
	}
	fields := joinFields(observed.differences)
	if observed.adopted {
		recordAdopted(app, updated)
		return wroteCloudflare(eventAdopted, "Adopted existing Cloudflare Spectrum application "+updated.ID+
			" with the same hostname and protocol, and brought it to the spec: "+fields).corrected(observed.differences)
	}
	o := wroteCloudflare(eventUpdated, "Updated Cloudflare Spectrum application "+updated.ID+" ("+fields+")")
	if app.Status.SyncedGeneration == app.Generation {
		// Cloudflare had accepted this very spec: what differed was
		// changed outside Kubernetes, not by a new spec.
		o = o.corrected(observed.differences)
	}
	recordObserved(app, updated)
	return o
}

// alreadyInSync records an application that matches the spec.
func alreadyInSync(app *v1alpha1.SpectrumApp, observed observation) outcome {
	if observed.adopted {
		recordAdopted(app, observed.app)
		return succeeded(eventAdopted, "Adopted existing Cloudflare Spectrum application "+observed.app.ID+
			" with the same hostname and protocol; it already matched the spec")
	}
	recordObserved(app, observed.app)
	return alreadySynced()
}

// delete removes the Cloudflare application, or leaves it per
// deletionPolicy Orphan or a policy other than manage, before Kubernetes
// lets the object go.
func (r *SpectrumAppReconciler) delete(ctx context.Context, app *v1alpha1.SpectrumApp, policy string) outcome {
	if app.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan {
		return released(eventOrphaned, "Left Cloudflare Spectrum application "+app.Status.ApplicationID+" in place (deletionPolicy Orphan)", false)
	}
	if policy != v1alpha1.ReconcilePolicyManage {
		// Neither observe nor skip ever writes at Cloudflare, and deleting
		// under them must not hang either.
		return released(eventOrphaned, "Left Cloudflare Spectrum application "+app.Status.ApplicationID+
			" in place (reconcile-policy "+policy+" never writes at Cloudflare)", false)
	}
	if app.Status.ApplicationID == "" && app.UnsettledCreate() == nil {
		// It never created nor adopted anything: nothing at Cloudflare is
		// its to delete, whatever has its hostname.
		return released(eventDeleted, "No Cloudflare Spectrum application to delete: none was created or adopted", false)
	}
	cloudflare, err := r.externalOf(ctx, app)
	if err != nil {
		return failedWith(err)
	}
	deleted, err := cloudflare.Delete(ctx)
	switch {
	case err != nil:
		return failedWith(err)
	case deleted.unconfirmed > 0:
		// A create still in flight would land after the finalizer is gone,
		// an orphan: wait until it would have landed.
		return waitingFor(createUnconfirmed(deleted.unconfirmed))
	}
	if len(deleted.deletedIDs) == 0 {
		return released(eventDeleted, "No Cloudflare Spectrum application to delete: the pending create never landed", false)
	}
	return released(eventDeleted, "Deleted Cloudflare Spectrum application "+joinFields(deleted.deletedIDs), true)
}

// finish reports the outcome, writes status, lets a deleted object go, and
// requeues; started is when the reconcile began.
func (r *SpectrumAppReconciler) finish(ctx context.Context, app, before *v1alpha1.SpectrumApp, started time.Time, o outcome) (ctrl.Result, error) {
	if o.kind == kindReadAgain {
		return ctrl.Result{RequeueAfter: readAgainAfter}, nil
	}
	if ctx.Err() != nil {
		return r.stopping(ctx, app, o)
	}
	if o.kind == kindQueued {
		return r.awaitTurn(ctx, app, before, o)
	}
	r.report(ctx, app, o)
	r.Metrics.driftCorrected(o.driftCorrected)
	if o.kind == kindReleased {
		controllerutil.RemoveFinalizer(app, v1alpha1.Finalizer)
		r.Metrics.forget(client.ObjectKeyFromObject(app))
		r.traffic.forget(client.ObjectKeyFromObject(app))
		return ctrl.Result{}, client.IgnoreNotFound(r.writeFinalizers(ctx, app))
	}
	r.traffic.carry(before, app)
	// An adopted application is the app's to delete once its ID is
	// recorded: the finalizer goes first.
	if err := r.holdFinalizer(ctx, app); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.writeStatus(ctx, app, before, o); err != nil {
		return ctrl.Result{}, err
	}
	r.Metrics.observe(client.ObjectKeyFromObject(app), before, app, started)
	return r.requeue(o)
}

// awaitTurn ends a reconcile whose request waits for its turn in the
// token's line: nothing failed, so nothing is reported; only a create
// record written for a create that was not sent is cleared. The app is
// woken when its turn comes, and looked at again after the expected wait
// should the wake be lost.
func (r *SpectrumAppReconciler) awaitTurn(ctx context.Context, app, before *v1alpha1.SpectrumApp, o outcome) (ctrl.Result, error) {
	ctrl.LoggerFrom(ctx).V(1).Info("Waiting for its turn in the API token's request budget", "expectedIn", o.turnExpectedIn.String())
	if o.pendingCreateWritten != nil {
		if err := r.writeStatus(ctx, app, before, o); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: o.turnExpectedIn + turnWakeSlack}, nil
}

// turnWakeSlack is how much later than its turn's expected time an app
// looks again by itself: the wake normally comes first.
const turnWakeSlack = time.Second

// wake enqueues the app whose turn came. The line's goroutine must not
// block: when the channel is full, the requeue after the expected wait
// brings the app back instead.
func (r *SpectrumAppReconciler) wake(req ctrl.Request) {
	app := &v1alpha1.SpectrumApp{}
	app.Namespace, app.Name = req.Namespace, req.Name
	select {
	case r.turnCame <- event.GenericEvent{Object: app}:
	default:
	}
}

// turnCamePriority puts an app whose turn came ahead of the queue: its
// slot of the budget is already spent, and the line grants no further
// turns until it is claimed (package budget, maxGrantedAhead). Behind a
// burst of new apps, each waiting for its first reconcile, it would wait
// for all of them, and the token's requests for it.
const turnCamePriority = 100

// enqueueTurnCame enqueues the apps woken by their turn, at
// turnCamePriority.
func enqueueTurnCame() handler.EventHandler {
	return handler.Funcs{GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)}
		if queue, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
			queue.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(turnCamePriority)}, req)
			return
		}
		q.Add(req)
	}}
}

// stopWriteTimeout bounds the one write a reconcile cut short by the
// manager's stop still makes, within the pod's termination grace period.
const stopWriteTimeout = 2 * time.Second

// stopping ends a reconcile cut short by the manager's stop (a rolling
// upgrade, a lost lease): nothing is reported, as nothing failed, and the
// next leader reconciles every app again. Only a create record this
// reconcile wrote for a create that was never sent is cleared, through a
// context of its own: left, it would make the next leader wait for a create
// that cannot land before creating the application.
func (r *SpectrumAppReconciler) stopping(ctx context.Context, app *v1alpha1.SpectrumApp, o outcome) (ctrl.Result, error) {
	if o.pendingCreateWritten == nil || app.UnsettledCreate() != nil {
		return ctrl.Result{}, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopWriteTimeout)
	defer cancel()
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"createSettled": app.Status.CreateSettled, "pendingCreate": nil}})
	if err != nil {
		return ctrl.Result{}, nil
	}
	if err := r.Status().Patch(ctx, app, client.RawPatch(types.MergePatchType, patch)); client.IgnoreNotFound(err) != nil {
		ctrl.LoggerFrom(ctx).Info("The create record of a create never sent could not be cleared; the next leader waits for it", "error", err.Error())
	}
	return ctrl.Result{}, nil
}

// requeue retries only what can succeed by itself. Failures that need a
// person wait for a change: the spec, the credentials Secret, or the
// reconcile-requested-at annotation.
func (r *SpectrumAppReconciler) requeue(o outcome) (ctrl.Result, error) {
	switch {
	case o.kind != kindFailed && o.kind != kindWaiting:
		// In sync, observed or skipped: the drift check looks at it again
		// every resync period.
		return ctrl.Result{}, nil
	case o.failure.Class != failure.Retryable:
		return ctrl.Result{}, nil
	case o.failure.RetryAfter > 0:
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

// controllerName names the controller in metrics and logs.
const controllerName = "spectrumapp"

// maxBackoff caps the wait between retries of a temporary failure.
const maxBackoff = 5 * time.Minute

// UnreadableApplications counts applications skipped from zone listings
// because they could not be decoded; register it with the metrics registry.
var UnreadableApplications = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "spectrum_cloudflare_unreadable_applications_total",
	Help: "Applications skipped from a zone listing because they could not be decoded (each listing counts each one).",
})

// SetupWithManager registers the controller: it watches SpectrumApps and the
// Secrets they use, and the drift check's findings.
func (r *SpectrumAppReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.zones = newZoneCache(r.ResyncPeriod, mgr.GetLogger().WithName("zones"), UnreadableApplications)
	// A forgotten token's zone listings go with it.
	r.zones.held = r.Connector.Holds
	r.secrets = newTokenCache()
	r.zoneApps = newZoneApps()
	apps, err := mgr.GetCache().GetInformer(context.Background(), &v1alpha1.SpectrumApp{})
	if err != nil {
		return err
	}
	if _, err := apps.AddEventHandler(r.zoneApps); err != nil {
		return err
	}
	writer, err := newMetadataWriter(mgr)
	if err != nil {
		return err
	}
	r.writer = writer
	if err := setupCredentialsRelease(mgr, writer); err != nil {
		return err
	}
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 1
	}
	r.turnCame = make(chan event.GenericEvent, 1024)
	drift := newDriftCheck(r, r.zones.maxAge)
	if err := mgr.Add(drift); err != nil {
		return err
	}
	if r.Traffic != nil {
		r.traffic = newTrafficWatch(r, *r.Traffic)
		if err := mgr.Add(r.traffic); err != nil {
			return err
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.SpectrumApp{}, builder.WithPredicates(specOrRequestChanged())).
		WatchesMetadata(&corev1.Secret{}, forgetDeletedSecrets{handler.EnqueueRequestsFromMapFunc(r.appsUsingSecret), r.secrets},
			builder.WithPredicates(secretChanges())).
		WatchesRawSource(source.Channel(drift.drifted, &handler.EnqueueRequestForObject{})).
		WatchesRawSource(source.Channel(r.turnCame, enqueueTurnCame())).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, maxBackoff),
		}).
		WithLogConstructor(reconcileLogs(mgr.GetLogger(), controllerName)).
		Named(controllerName).
		Complete(r)
}
