// Package appcache holds the SpectrumApps of the manager's cache in a
// compact form, a Record, and lets its readers read them.
//
// The typed SpectrumApp is 704 bytes before any of its values, most of
// them fields an app leaves empty or holds alike with hundreds of others
// (namespace, zone, protocol, settings, finalizer, status). At 20,000 apps
// the cache held 18 MB of them, a third of the manager's heap
// (docs/benchmarks.md). A Record keeps what is an app's own (name, IDs,
// hostname, origins, generations) and one shared shape for what apps hold
// alike; the rest only when an app has it.
//
// A Record is what the cache stores, and so what its informer's handlers,
// predicates and indexes see. Reads through the manager's client never see
// one: the cache deep-copies what it returns, and a Record's deep copy is
// the typed SpectrumApp it was made from.
package appcache

import (
	"encoding/hex"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// Record is a cached SpectrumApp. It is read, never modified, by those the
// cache hands it to: several Records share their shape and the values they
// repeat. Its setters (metav1.Object's) make what they change its own.
type Record struct {
	shape *shape

	name              string
	uid               [16]byte
	resourceVersion   uint64
	generation        int64
	creationTimestamp metav1.Time
	labels            map[string]string
	annotations       map[string]string

	dnsName      string
	originDirect []string
	originDNS    *v1alpha1.OriginDNS

	applicationID      [16]byte
	syncedGeneration   int64
	observedGeneration int64
	conditions         []metav1.Condition
	createSettled      *metav1.Time
	createdOn          *metav1.Time
	modifiedOn         *metav1.Time
	traffic            *v1alpha1.Traffic

	// rare holds what few apps have, or have for a moment (a deletion), and
	// the identifiers not in their usual form; nil for most apps.
	rare *rare
}

// shape is what many apps hold alike: with the same namespace, zone and
// settings, and the same status in their account, apps share one.
type shape struct {
	shapeKey
	// finalizers is the list of shapeKey's finalizer, or nil.
	finalizers []string
}

// shapeKey is a shape as a key of the table that shares them. Its pointers
// are themselves shared values, so that equal settings meet on one key.
type shapeKey struct {
	apiVersion, kind string
	namespace        string
	// finalizer is the app's only finalizer; apps with more keep them in
	// rare.
	finalizer    string
	hasFinalizer bool

	zoneID, zoneName string
	credentialsRef   *v1alpha1.SecretKeyReference
	deletionPolicy   v1alpha1.DeletionPolicy
	protocol         string
	dnsType          string
	originPort       *intstr.IntOrString
	ipFirewall       *bool
	proxyProtocol    string
	tls              string
	trafficType      string
	edgeIPs          *v1alpha1.EdgeIPs
	argoSmartRouting *bool
	virtualNetworkID string

	statusZoneID    string
	reconcilePolicy string
	adopted         bool
}

// rare is what a Record holds only when its app has it.
type rare struct {
	generateName               string
	selfLink                   string
	deletionTimestamp          *metav1.Time
	deletionGracePeriodSeconds *int64
	ownerReferences            []metav1.OwnerReference
	finalizers                 []string

	// uid, resourceVersion and applicationID when they are not in the
	// form a Record holds compactly.
	uid             types.UID
	resourceVersion string
	applicationID   string

	pendingCreate          *metav1.Time
	edgeIPs                []string
	differences            []string
	lastHandledReconcileAt string
}

var _ client.Object = (*Record)(nil)

// View returns the typed SpectrumApp, sharing the Record's values: it is
// for reading only, and costs one allocation.
func (r *Record) View() *v1alpha1.SpectrumApp {
	app := &v1alpha1.SpectrumApp{}
	r.into(app)
	return app
}

// ViewInto makes app a View of the Record, for a caller that reads many
// Records in turn and keeps none of them (app may then live on its stack).
func (r *Record) ViewInto(app *v1alpha1.SpectrumApp) {
	*app = v1alpha1.SpectrumApp{}
	r.into(app)
}

// App returns the typed SpectrumApp the Record was made from, a copy of
// its own.
func (r *Record) App() *v1alpha1.SpectrumApp {
	var view v1alpha1.SpectrumApp
	r.into(&view)
	return view.DeepCopy()
}

// DeepCopyObject implements runtime.Object: the cache's readers get the
// typed SpectrumApp.
func (r *Record) DeepCopyObject() runtime.Object { return r.App() }

// into fills app with the Record's values, shared.
func (r *Record) into(app *v1alpha1.SpectrumApp) {
	s, x := r.shape, r.rareOrNone()
	app.APIVersion, app.Kind = s.apiVersion, s.kind
	app.ObjectMeta = metav1.ObjectMeta{
		Name:                       r.name,
		GenerateName:               x.generateName,
		Namespace:                  s.namespace,
		SelfLink:                   x.selfLink,
		UID:                        r.GetUID(),
		ResourceVersion:            r.GetResourceVersion(),
		Generation:                 r.generation,
		CreationTimestamp:          r.creationTimestamp,
		DeletionTimestamp:          x.deletionTimestamp,
		DeletionGracePeriodSeconds: x.deletionGracePeriodSeconds,
		Labels:                     r.labels,
		Annotations:                r.annotations,
		OwnerReferences:            x.ownerReferences,
		Finalizers:                 r.GetFinalizers(),
	}
	app.Spec = v1alpha1.SpectrumAppSpec{
		ZoneID:           s.zoneID,
		ZoneName:         s.zoneName,
		CredentialsRef:   s.credentialsRef,
		DeletionPolicy:   s.deletionPolicy,
		Protocol:         s.protocol,
		DNS:              v1alpha1.DNS{Type: s.dnsType, Name: r.dnsName},
		OriginDirect:     r.originDirect,
		OriginDNS:        r.originDNS,
		OriginPort:       s.originPort,
		IPFirewall:       s.ipFirewall,
		ProxyProtocol:    s.proxyProtocol,
		TLS:              s.tls,
		TrafficType:      s.trafficType,
		EdgeIPs:          s.edgeIPs,
		ArgoSmartRouting: s.argoSmartRouting,
		VirtualNetworkID: s.virtualNetworkID,
	}
	app.Status = v1alpha1.SpectrumAppStatus{
		ZoneID:                 s.statusZoneID,
		ApplicationID:          r.ApplicationID(),
		PendingCreate:          x.pendingCreate,
		CreateSettled:          r.createSettled,
		SyncedGeneration:       r.syncedGeneration,
		ObservedGeneration:     r.observedGeneration,
		Conditions:             r.conditions,
		CreatedOn:              r.createdOn,
		ModifiedOn:             r.modifiedOn,
		EdgeIPs:                x.edgeIPs,
		Adopted:                s.adopted,
		ReconcilePolicy:        s.reconcilePolicy,
		Differences:            x.differences,
		LastHandledReconcileAt: x.lastHandledReconcileAt,
		Traffic:                r.traffic,
	}
}

// What the informer's handlers read on every event, without a View.

// ZoneID is spec.zoneID.
func (r *Record) ZoneID() string { return r.shape.zoneID }

// ZoneName is spec.zoneName.
func (r *Record) ZoneName() string { return r.shape.zoneName }

// StatusZoneID is status.zoneID, the zone the controller resolved.
func (r *Record) StatusZoneID() string { return r.shape.statusZoneID }

// CloudflareZoneID is SpectrumApp.CloudflareZoneID.
func (r *Record) CloudflareZoneID() string {
	if r.shape.zoneID != "" {
		return r.shape.zoneID
	}
	return r.shape.statusZoneID
}

// Hostname is spec.dns.name.
func (r *Record) Hostname() string { return r.dnsName }

// Protocol is spec.protocol.
func (r *Record) Protocol() string { return r.shape.protocol }

// CredentialsRef is spec.credentialsRef, shared: read it only.
func (r *Record) CredentialsRef() *v1alpha1.SecretKeyReference { return r.shape.credentialsRef }

// DeletionPolicy is spec.deletionPolicy.
func (r *Record) DeletionPolicy() v1alpha1.DeletionPolicy { return r.shape.deletionPolicy }

// ApplicationID is status.applicationID.
func (r *Record) ApplicationID() string {
	if r.rare != nil && r.rare.applicationID != "" {
		return r.rare.applicationID
	}
	if r.applicationID == ([16]byte{}) {
		return ""
	}
	return hex.EncodeToString(r.applicationID[:])
}

// NamespacedName is the app's namespace and name.
func (r *Record) NamespacedName() types.NamespacedName {
	return types.NamespacedName{Namespace: r.shape.namespace, Name: r.name}
}

// GetObjectKind implements runtime.Object.
func (r *Record) GetObjectKind() schema.ObjectKind { return recordKind{r} }

// recordKind is a Record's API version and kind, which its shape holds.
type recordKind struct{ r *Record }

func (k recordKind) GroupVersionKind() schema.GroupVersionKind {
	return schema.FromAPIVersionAndKind(k.r.shape.apiVersion, k.r.shape.kind)
}

func (k recordKind) SetGroupVersionKind(gvk schema.GroupVersionKind) {
	k.r.modify(func(app *v1alpha1.SpectrumApp) { app.SetGroupVersionKind(gvk) })
}

// modify changes the Record through its typed app; what it holds after is
// its own. Only setters use it: the cache's Records are not modified.
func (r *Record) modify(change func(*v1alpha1.SpectrumApp)) {
	app := r.App()
	change(app)
	*r = *newRecorder().record(app)
}
