package controller

import (
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/intern"
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
	strings *intern.Table[string, string]
	// times are the status's timestamps: apps created in the same second
	// record the same times.
	times *intern.Table[time.Time, *metav1.Time]
}

// maxSharedStrings bounds the table: tens of namespaces, zones and reasons
// are common, thousands are not.
const maxSharedStrings = 4096

func newSharedStrings() *sharedStrings {
	return &sharedStrings{strings: intern.NewTable[string, string](maxSharedStrings), times: intern.NewTable[time.Time, *metav1.Time](maxSharedStrings)}
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
		*s = t.strings.Share(*s, *s)
	}
}

// useTime replaces *p with the table's copy of the same time, or makes *p
// the copy. The caller holds mu.
func (t *sharedStrings) useTime(p **metav1.Time) {
	if *p != nil {
		*p = t.times.Share((*p).Time, *p)
	}
}
