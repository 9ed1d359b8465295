package controller

import (
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// sharedStrings hands out one copy of each string the cached SpectrumApps
// repeat: the API version and kind, the namespace, the finalizer, the zone,
// the protocol, the conditions the controller writes; and of each status
// timestamp, which apps created in the same second repeat. Decoded from every
// watch event, each app held its own copy of each, about a third of its
// size in the cache (docs/benchmarks.md).
//
// It holds at most maxSharedStrings strings, and starts afresh when full:
// strings seen once (a message naming an application ID) only pass
// through, and what repeats is learnt again at once.
type sharedStrings struct {
	mu      sync.Mutex
	strings map[string]string
	// times are the status's timestamps: apps created in the same second
	// record the same times.
	times map[time.Time]*metav1.Time
}

// maxSharedStrings bounds the table: tens of namespaces, zones and reasons
// are common, thousands are not.
const maxSharedStrings = 4096

func newSharedStrings() *sharedStrings {
	return &sharedStrings{strings: make(map[string]string), times: make(map[time.Time]*metav1.Time)}
}

// share makes the app's repeated strings the table's copies.
func (t *sharedStrings) share(app *v1alpha1.SpectrumApp) {
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
	for i := range app.Finalizers {
		t.use(&app.Finalizers[i])
	}
	if ref := app.Spec.CredentialsRef; ref != nil {
		t.use(&ref.Name)
		t.use(&ref.Key)
	}
	if edge := app.Spec.EdgeIPs; edge != nil {
		t.use(&edge.Type)
		t.use(&edge.Connectivity)
	}
	for _, p := range []**metav1.Time{&app.Status.PendingCreate, &app.Status.CreateSettled, &app.Status.CreatedOn, &app.Status.ModifiedOn} {
		t.useTime(p)
	}
	// Decoding grows a list by doubling: three conditions took room for four.
	app.Status.Conditions = slices.Clone(app.Status.Conditions)
	for i := range app.Status.Conditions {
		c := &app.Status.Conditions[i]
		t.use(&c.Type)
		t.use((*string)(&c.Status))
		t.use(&c.Reason)
		t.use(&c.Message)
	}
}

// use replaces *s with the table's copy, or makes *s the copy. The caller
// holds mu.
func (t *sharedStrings) use(s *string) {
	if *s != "" {
		*s = shareIn(t.strings, *s, *s)
	}
}

// useTime replaces *p with the table's copy of the same time, or makes *p
// the copy. The caller holds mu.
func (t *sharedStrings) useTime(p **metav1.Time) {
	if *p != nil {
		*p = shareIn(t.times, (*p).Time, *p)
	}
}

// shareIn returns the table's value for key, or makes value it; a full
// table starts afresh (maxSharedStrings).
func shareIn[K comparable, V any](table map[K]V, key K, value V) V {
	if shared, ok := table[key]; ok {
		return shared
	}
	if len(table) >= maxSharedStrings {
		clear(table)
	}
	table[key] = value
	return value
}
