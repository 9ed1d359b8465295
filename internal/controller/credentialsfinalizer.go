package controller

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
)

// CredentialsInUseFinalizer keeps a credentials Secret while a SpectrumApp
// that will delete its Cloudflare application uses it. Deleting a namespace
// deletes everything in it at once, in no set order: without it, the Secret
// could go first, and the SpectrumApps could then never delete their
// applications (no token), stuck in Terminating in a namespace that refuses
// a new Secret. With it, the Secret stays, terminating, until the last such
// SpectrumApp is gone.
const CredentialsInUseFinalizer = "spectrum.cloudflare-operator.io/credentials-in-use"

// needsCredentialsToDelete is true for an app whose deletion will call
// Cloudflare with its own credentials Secret.
func needsCredentialsToDelete(app *v1alpha1.SpectrumApp) bool {
	return deletesWithOwnCredentials(app.Spec.CredentialsRef, app.Spec.DeletionPolicy, app.Policy())
}

func deletesWithOwnCredentials(ref *v1alpha1.SecretKeyReference, deletion v1alpha1.DeletionPolicy, policy string) bool {
	return ref != nil && deletion != v1alpha1.DeletionPolicyOrphan && policy == v1alpha1.ReconcilePolicyManage
}

// protectCredentials puts CredentialsInUseFinalizer on the app's
// credentials Secret, once.
func (r *SpectrumAppReconciler) protectCredentials(ctx context.Context, app *v1alpha1.SpectrumApp) error {
	if !needsCredentialsToDelete(app) {
		return nil
	}
	name := app.CredentialsSecret(r.DefaultCredentials).NamespacedName
	// The apps of one Secret are reconciled side by side, and all but the
	// first to add the finalizer meet a conflict: the Secret is then read
	// again from the apiserver (the cache may not show the finalizer yet).
	var reader client.Reader = r.Client
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		secret := secretMetadata()
		if err := reader.Get(ctx, name, secret); err != nil {
			return client.IgnoreNotFound(err)
		}
		reader = r.APIReader
		// An unmarked Secret is not the operator's to hold.
		if !v1alpha1.IsCredentialsSecret(secret) || slices.Contains(secret.Finalizers, CredentialsInUseFinalizer) || !secret.DeletionTimestamp.IsZero() {
			return nil
		}
		return r.writer.patchFinalizers(ctx, secretsResource, secret, append(slices.Clone(secret.Finalizers), CredentialsInUseFinalizer))
	})
}

func secretMetadata() *metav1.PartialObjectMetadata {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return meta
}

// patchFinalizers sets an object's finalizers (a Secret's, a SpectrumApp's)
// on the resourceVersion it was read at: an object changed meanwhile is a
// conflict. Only the object's metadata is read back into obj.
func (w metadataWriter) patchFinalizers(ctx context.Context, resource schema.GroupVersionResource, obj *metav1.PartialObjectMetadata, finalizers []string) error {
	if finalizers == nil {
		finalizers = []string{}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"finalizers": finalizers, "resourceVersion": obj.ResourceVersion}})
	if err != nil {
		return err
	}
	return w.patch(ctx, resource, obj, patch)
}

// credentialsRelease takes CredentialsInUseFinalizer off a Secret once no
// SpectrumApp that will delete its application uses it any more.
type credentialsRelease struct {
	client.Client
	writer  metadataWriter
	holders *credentialsHolders
}

// Reconcile releases the Secret when it is no longer needed.
func (c *credentialsRelease) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	secret := secretMetadata()
	if err := c.Get(ctx, req.NamespacedName, secret); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !slices.Contains(secret.Finalizers, CredentialsInUseFinalizer) {
		return reconcile.Result{}, nil
	}
	if c.holders.holding(req.NamespacedName) {
		return reconcile.Result{}, nil
	}
	kept := slices.DeleteFunc(slices.Clone(secret.Finalizers), func(f string) bool { return f == CredentialsInUseFinalizer })
	return reconcile.Result{}, client.IgnoreNotFound(c.writer.patchFinalizers(ctx, secretsResource, secret, kept))
}

// holdsCredentials is true for an app that still needs its credentials
// Secret: one that will delete its application with them, and has not
// done so yet.
func holdsCredentials(app *appcache.Record) bool {
	return deletesWithOwnCredentials(app.CredentialsRef(), app.DeletionPolicy(), v1alpha1.PolicyOf(app.GetAnnotations())) &&
		(app.GetDeletionTimestamp().IsZero() || controllerutil.ContainsFinalizer(app, v1alpha1.Finalizer))
}

// credentialsHolders counts, for each credentials Secret, the cached apps
// that hold it (holdsCredentials), and wakes the release of a Secret when
// an app lets go of it: stops holding it (finalizer gone, another Secret,
// Orphan or a policy that deletes nothing) or goes. The count is changed
// before the release is woken, in one handler of the SpectrumApp
// informer, so a release never reads a count older than what woke it.
// Every other event (status writes above all, several per app) cannot free
// a Secret, and waking on them listed every app of the Secret on every
// write: most of the manager's CPU at 10,000 apps.
//
// It is the release controller's source of app events: it counts on the
// leader only, from the informer's replay of every cached app when the
// controller starts, before its first reconcile.
type credentialsHolders struct {
	mu     sync.Mutex
	counts map[types.NamespacedName]int
}

var _ handler.EventHandler = (*credentialsHolders)(nil)

func newCredentialsHolders() *credentialsHolders {
	return &credentialsHolders{counts: map[types.NamespacedName]int{}}
}

// holding tells whether some app holds the Secret.
func (h *credentialsHolders) holding(secret types.NamespacedName) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[secret] > 0
}

func (h *credentialsHolders) Create(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if app, ok := appcache.Of(e.Object); ok {
		h.move(nil, app, q)
	}
}

func (h *credentialsHolders) Update(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	old, okOld := appcache.Of(e.ObjectOld)
	updated, okNew := appcache.Of(e.ObjectNew)
	if okOld && okNew {
		h.move(old, updated, q)
	}
}

func (h *credentialsHolders) Delete(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if app, ok := appcache.Of(e.Object); ok {
		h.move(app, nil, q)
	}
}

func (h *credentialsHolders) Generic(context.Context, event.GenericEvent, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
}

// move counts out the Secret that from holds and counts in the one that
// to holds (either nil: none); both are versions of one app. A Secret let
// go of is woken.
func (h *credentialsHolders) move(from, to *appcache.Record, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	gone, hadOne := heldSecret(from)
	taken, hasOne := heldSecret(to)
	if hadOne == hasOne && gone == taken {
		return
	}
	h.mu.Lock()
	if hasOne {
		h.counts[taken]++
	}
	if hadOne {
		if h.counts[gone]--; h.counts[gone] <= 0 {
			delete(h.counts, gone)
		}
	}
	h.mu.Unlock()
	if hadOne {
		q.Add(reconcile.Request{NamespacedName: gone})
	}
}

// heldSecret is the Secret the app holds, if it holds one.
func heldSecret(app *appcache.Record) (types.NamespacedName, bool) {
	if app == nil || !holdsCredentials(app) {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: app.GetNamespace(), Name: app.CredentialsRef().Name}, true
}

// setupCredentialsRelease watches the Secrets that carry the finalizer,
// and the SpectrumApps that let go of them.
func setupCredentialsRelease(mgr manager.Manager, writer metadataWriter) error {
	holders := newCredentialsHolders()
	carriesFinalizer := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return slices.Contains(obj.GetFinalizers(), CredentialsInUseFinalizer)
	})
	return builder.ControllerManagedBy(mgr).
		Named("credentials-release").
		For(&corev1.Secret{}, builder.OnlyMetadata, builder.WithPredicates(carriesFinalizer)).
		Watches(&v1alpha1.SpectrumApp{}, holders).
		Complete(&credentialsRelease{Client: mgr.GetClient(), writer: writer, holders: holders})
}
