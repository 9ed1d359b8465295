package controller

import (
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/intern"
)

// sharedValues hands out one copy of each value the cached SpectrumApps
// repeat: the strings (API version and kind, namespace, finalizer, zone,
// protocol, the conditions' reasons and messages), the status timestamps,
// which apps created in the same second repeat, and the small parts apps
// hold whole: the finalizer list, the credentials reference, a dynamic
// edge, and the conditions, which apps that reached the same state in the
// same second (Ready, Synced, at generation 1) repeat to the last field.
// Decoded from every watch event, each app held its own copy of each,
// about a third of its size in the cache (docs/benchmarks.md).
//
// The cache's objects are read, never modified (what a reconcile changes
// is its deep copy), so apps may share what they hold by pointer or slice.
//
// Each table holds at most maxSharedValues values (the condition lists
// maxSharedConditionLists), and starts afresh when full: values seen once
// (a name) only pass through, and what repeats is learnt again at once.
type sharedValues struct {
	mu      sync.Mutex
	strings *intern.Table[string, string]
	// times are the status's timestamps.
	times       *intern.Table[time.Time, *metav1.Time]
	finalizers  *intern.Table[string, []string]
	credentials *intern.Table[v1alpha1.SecretKeyReference, *v1alpha1.SecretKeyReference]
	edges       *intern.Table[dynamicEdge, *v1alpha1.EdgeIPs]
	conditions  *intern.Table[conditionList, []metav1.Condition]
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

func newSharedValues() *sharedValues {
	return &sharedValues{
		strings:     intern.NewTable[string, string](maxSharedValues),
		times:       intern.NewTable[time.Time, *metav1.Time](maxSharedValues),
		finalizers:  intern.NewTable[string, []string](maxSharedValues),
		credentials: intern.NewTable[v1alpha1.SecretKeyReference, *v1alpha1.SecretKeyReference](maxSharedValues),
		edges:       intern.NewTable[dynamicEdge, *v1alpha1.EdgeIPs](maxSharedValues),
		conditions:  intern.NewTable[conditionList, []metav1.Condition](maxSharedConditionLists),
	}
}

// share makes the app's repeated values the tables' copies.
func (t *sharedValues) share(app *v1alpha1.SpectrumApp) {
	t.mu.Lock()
	defer t.mu.Unlock()
	shared := []*string{
		&app.APIVersion, &app.Kind, &app.Namespace,
		&app.Spec.ZoneID, &app.Spec.ZoneName, &app.Spec.Protocol, &app.Spec.DNS.Type,
		&app.Spec.ProxyProtocol, &app.Spec.TLS, &app.Spec.TrafficType, (*string)(&app.Spec.DeletionPolicy),
		&app.Status.ZoneID, &app.Status.ReconcilePolicy,
	}
	for _, s := range shared {
		t.use(s)
	}
	t.shareFinalizers(app)
	if ref := app.Spec.CredentialsRef; ref != nil {
		t.use(&ref.Name)
		t.use(&ref.Key)
		app.Spec.CredentialsRef = t.credentials.Share(*ref, ref)
	}
	if edge := app.Spec.EdgeIPs; edge != nil {
		t.use(&edge.Type)
		t.use(&edge.Connectivity)
		if edge.IPs == nil {
			app.Spec.EdgeIPs = t.edges.Share(dynamicEdge{edge.Type, edge.Connectivity}, edge)
		}
	}
	for _, p := range []**metav1.Time{&app.Status.PendingCreate, &app.Status.CreateSettled, &app.Status.CreatedOn, &app.Status.ModifiedOn} {
		t.useTime(p)
	}
	t.shareConditions(app)
}

// shareFinalizers shares a list of one finalizer, the operator's.
func (t *sharedValues) shareFinalizers(app *v1alpha1.SpectrumApp) {
	for i := range app.Finalizers {
		t.use(&app.Finalizers[i])
	}
	if len(app.Finalizers) == 1 {
		app.Finalizers = t.finalizers.Share(app.Finalizers[0], slices.Clip(app.Finalizers))
	}
}

// shareConditions shares the conditions' strings, and the whole list when
// another app holds the same. Decoding grows a list by doubling (three
// conditions took room for four): a list kept is a copy without spare room.
func (t *sharedValues) shareConditions(app *v1alpha1.SpectrumApp) {
	conditions := slices.Clip(slices.Clone(app.Status.Conditions))
	for i := range conditions {
		c := &conditions[i]
		t.use(&c.Type)
		t.use((*string)(&c.Status))
		t.use(&c.Reason)
		t.use(&c.Message)
	}
	if n := len(conditions); n > 0 && n <= maxSharedConditions {
		key := conditionList{n: n}
		copy(key.conditions[:], conditions)
		conditions = t.conditions.Share(key, conditions)
	}
	app.Status.Conditions = conditions
}

// use replaces *s with the table's copy, or makes *s the copy. The caller
// holds mu.
func (t *sharedValues) use(s *string) {
	if *s != "" {
		*s = t.strings.Share(*s, *s)
	}
}

// useTime replaces *p with the table's copy of the same time, or makes *p
// the copy. The caller holds mu.
func (t *sharedValues) useTime(p **metav1.Time) {
	if *p != nil {
		*p = t.times.Share((*p).Time, *p)
	}
}
