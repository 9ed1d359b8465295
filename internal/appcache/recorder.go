package appcache

import (
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/intern"
)

// Recorder makes the Records of the cache, handing out one copy of each
// value the apps repeat: the shapes, the strings (namespace, finalizer,
// zone, protocol, the conditions' reasons and messages), the status
// timestamps, which apps created in the same second repeat, and the
// conditions, which apps that reached the same state in the same second
// (Ready, Synced, at generation 1) repeat to the last field. Decoded from
// every watch event, each app held its own copy of each.
//
// Each table holds at most maxSharedValues values (the condition lists
// maxSharedConditionLists), and starts afresh when full: values seen once
// (a name) only pass through, and what repeats is learnt again at once.
type Recorder struct {
	mu      sync.Mutex
	strings *intern.Table[string, string]
	// times are the status's timestamps.
	times       *intern.Table[time.Time, *metav1.Time]
	credentials *intern.Table[v1alpha1.SecretKeyReference, *v1alpha1.SecretKeyReference]
	ports       *intern.Table[intstr.IntOrString, *intstr.IntOrString]
	edges       *intern.Table[dynamicEdge, *v1alpha1.EdgeIPs]
	conditions  *intern.Table[conditionList, []metav1.Condition]
	shapes      *intern.Table[shapeKey, *shape]
}

// maxSharedValues bounds each table: tens of namespaces, zones and reasons
// are common, thousands are not.
const maxSharedValues = 4096

// dynamicEdge is an edge without addresses of its own, the usual one.
type dynamicEdge struct{ edgeType, connectivity string }

// maxSharedConditions is the longest list of conditions shared: Ready,
// Reconciling or Stalled, OriginsHealthy.
const maxSharedConditions = 4

// maxSharedConditionLists bounds the table of condition lists, whose keys
// are large (~400 bytes): apps that reach a state together share a list,
// and a state is seldom reached in more than a few different seconds at once.
const maxSharedConditionLists = 256

// conditionList is a list of conditions as a table's key.
type conditionList struct {
	n          int
	conditions [maxSharedConditions]metav1.Condition
}

// NewRecorder returns a Recorder that shares nothing yet.
func NewRecorder() *Recorder { return newRecorder() }

func newRecorder() *Recorder {
	return &Recorder{
		strings:     intern.NewTable[string, string](maxSharedValues),
		times:       intern.NewTable[time.Time, *metav1.Time](maxSharedValues),
		credentials: intern.NewTable[v1alpha1.SecretKeyReference, *v1alpha1.SecretKeyReference](maxSharedValues),
		ports:       intern.NewTable[intstr.IntOrString, *intstr.IntOrString](maxSharedValues),
		edges:       intern.NewTable[dynamicEdge, *v1alpha1.EdgeIPs](maxSharedValues),
		conditions:  intern.NewTable[conditionList, []metav1.Condition](maxSharedConditionLists),
		shapes:      intern.NewTable[shapeKey, *shape](maxSharedValues),
	}
}

// Record makes the app's Record. The Record takes over what it keeps of
// the app: the app is not to be used after.
func (t *Recorder) Record(app *v1alpha1.SpectrumApp) *Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.record(app)
}

func (t *Recorder) record(app *v1alpha1.SpectrumApp) *Record {
	r := &Record{
		shape:              t.shapeOf(app),
		name:               app.Name,
		generation:         app.Generation,
		creationTimestamp:  app.CreationTimestamp,
		labels:             app.Labels,
		annotations:        app.Annotations,
		dnsName:            app.Spec.DNS.Name,
		originDirect:       slices.Clip(app.Spec.OriginDirect),
		originDNS:          app.Spec.OriginDNS,
		syncedGeneration:   app.Status.SyncedGeneration,
		observedGeneration: app.Status.ObservedGeneration,
		conditions:         t.shareConditions(app.Status.Conditions),
		createSettled:      t.time(app.Status.CreateSettled),
		createdOn:          t.time(app.Status.CreatedOn),
		modifiedOn:         t.time(app.Status.ModifiedOn),
		traffic:            app.Status.Traffic,
	}
	x := &rare{
		generateName:               app.GenerateName,
		selfLink:                   app.SelfLink,
		deletionTimestamp:          app.DeletionTimestamp,
		deletionGracePeriodSeconds: app.DeletionGracePeriodSeconds,
		ownerReferences:            app.OwnerReferences,
		pendingCreate:              app.Status.PendingCreate,
		edgeIPs:                    app.Status.EdgeIPs,
		differences:                app.Status.Differences,
		lastHandledReconcileAt:     app.Status.LastHandledReconcileAt,
	}
	if len(app.Finalizers) > 1 {
		x.finalizers = app.Finalizers
	}
	var ok bool
	if r.uid, ok = parseUUID(string(app.UID)); !ok {
		x.uid = app.UID
	}
	if r.resourceVersion, ok = parseResourceVersion(app.ResourceVersion); !ok {
		x.resourceVersion = app.ResourceVersion
	}
	if r.applicationID, ok = parseID(app.Status.ApplicationID); !ok {
		x.applicationID = app.Status.ApplicationID
	}
	if !x.none() {
		r.rare = x
	}
	return r
}

// none tells whether the app has none of what rare holds.
func (x *rare) none() bool {
	return x.generateName == "" && x.selfLink == "" && x.deletionTimestamp == nil && x.deletionGracePeriodSeconds == nil &&
		x.ownerReferences == nil && x.finalizers == nil && x.uid == "" && x.resourceVersion == "" && x.applicationID == "" &&
		x.pendingCreate == nil && x.edgeIPs == nil && x.differences == nil && x.lastHandledReconcileAt == ""
}

// shapeOf returns the shared shape of the app.
func (t *Recorder) shapeOf(app *v1alpha1.SpectrumApp) *shape {
	spec, status := &app.Spec, &app.Status
	key := shapeKey{
		apiVersion:       t.use(app.APIVersion),
		kind:             t.use(app.Kind),
		namespace:        t.use(app.Namespace),
		zoneID:           t.use(spec.ZoneID),
		zoneName:         t.use(spec.ZoneName),
		credentialsRef:   t.credentialsRef(spec.CredentialsRef),
		deletionPolicy:   v1alpha1.DeletionPolicy(t.use(string(spec.DeletionPolicy))),
		protocol:         t.use(spec.Protocol),
		dnsType:          t.use(spec.DNS.Type),
		originPort:       t.port(spec.OriginPort),
		ipFirewall:       intern.Flag(spec.IPFirewall),
		proxyProtocol:    t.use(spec.ProxyProtocol),
		tls:              t.use(spec.TLS),
		trafficType:      t.use(spec.TrafficType),
		edgeIPs:          t.edge(spec.EdgeIPs),
		argoSmartRouting: intern.Flag(spec.ArgoSmartRouting),
		virtualNetworkID: t.use(spec.VirtualNetworkID),
		statusZoneID:     t.use(status.ZoneID),
		reconcilePolicy:  t.use(status.ReconcilePolicy),
		adopted:          status.Adopted,
	}
	if len(app.Finalizers) == 1 {
		key.finalizer, key.hasFinalizer = t.use(app.Finalizers[0]), true
	}
	if s, ok := t.shapes.Get(key); ok {
		return s
	}
	s := &shape{shapeKey: key}
	if key.hasFinalizer {
		s.finalizers = []string{key.finalizer}
	}
	return t.shapes.Share(key, s)
}

// use returns the table's copy of s, or makes s the copy.
func (t *Recorder) use(s string) string {
	if s == "" {
		return ""
	}
	return t.strings.Share(s, s)
}

// time returns the table's copy of the same time, or makes p the copy.
func (t *Recorder) time(p *metav1.Time) *metav1.Time {
	if p == nil {
		return nil
	}
	return t.times.Share(p.Time, p)
}

func (t *Recorder) credentialsRef(ref *v1alpha1.SecretKeyReference) *v1alpha1.SecretKeyReference {
	if ref == nil {
		return nil
	}
	ref.Name, ref.Key = t.use(ref.Name), t.use(ref.Key)
	return t.credentials.Share(*ref, ref)
}

func (t *Recorder) port(port *intstr.IntOrString) *intstr.IntOrString {
	if port == nil {
		return nil
	}
	port.StrVal = t.use(port.StrVal)
	return t.ports.Share(*port, port)
}

// edge shares an edge without addresses of its own; one with addresses is
// the app's.
func (t *Recorder) edge(edge *v1alpha1.EdgeIPs) *v1alpha1.EdgeIPs {
	if edge == nil {
		return nil
	}
	edge.Type, edge.Connectivity = t.use(edge.Type), t.use(edge.Connectivity)
	if edge.IPs != nil {
		return edge
	}
	return t.edges.Share(dynamicEdge{edge.Type, edge.Connectivity}, edge)
}

// shareConditions shares the conditions' strings, and the whole list when
// another app holds the same. Decoding grows a list by doubling (three
// conditions took room for four): a list kept is a copy without spare room.
func (t *Recorder) shareConditions(list []metav1.Condition) []metav1.Condition {
	if list == nil {
		return nil
	}
	conditions := slices.Clip(slices.Clone(list))
	for i := range conditions {
		c := &conditions[i]
		c.Type = t.use(c.Type)
		c.Status = metav1.ConditionStatus(t.use(string(c.Status)))
		c.Reason = t.use(c.Reason)
		c.Message = t.use(c.Message)
	}
	if n := len(conditions); n > 0 && n <= maxSharedConditions {
		key := conditionList{n: n}
		copy(key.conditions[:], conditions)
		conditions = t.conditions.Share(key, conditions)
	}
	return conditions
}
