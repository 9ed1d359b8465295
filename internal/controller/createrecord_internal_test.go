package controller

import (
	"maps"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
)

// A create record promises when its create has landed, if it ever will:
// the next manager (after a SIGKILL, a lost answer) waits until then. Issue
// 21 asks that an uncertain create that did not land cost at most 30 s, at
// any request timeout; and that the promise still covers the send window,
// the request and Cloudflare applying it after the client gave up.
func TestCreateRecordPromisesLandingWithin30s(t *testing.T) {
	recorded := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, requestTimeout := range []time.Duration{0, 3 * time.Second, 30 * time.Second, 2 * time.Minute} {
		t.Run(requestTimeout.String(), func(t *testing.T) {
			e := &cloudflareApp{requestTimeout: requestTimeout, app: &v1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{
				Annotations: map[string]string{v1alpha1.CreatePendingAnnotation: recorded.Format(time.RFC3339)}}}}
			promise := e.pendingCreateLandedBy().Sub(recorded)
			if promise > 30*time.Second {
				t.Errorf("an uncertain create is waited for %s after its record, want at most 30s", promise)
			}
			if requestTimeout > 0 && e.createTimeout() > requestTimeout {
				t.Errorf("a create's request gets %s, more than the request timeout %s", e.createTimeout(), requestTimeout)
			}
			if covered := e.createSendWindow() + 2*e.createTimeout(); promise < covered {
				t.Errorf("promise %s is shorter than send window + request + settle = %s", promise, covered)
			}
		})
	}
}

// The cache keeps a create record only while it is unsettled: a reconcile
// decides from the cache whether a create may be in flight.
func TestCacheTransformForgetsOnlySettledCreateRecords(t *testing.T) {
	at := func(s string) *metav1.Time {
		parsed, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &metav1.Time{Time: parsed}
	}
	const record = "2026-12-04T10:00:05Z"
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		settled     *metav1.Time
		want        map[string]string
	}{
		{"no record", map[string]string{"team": "a"}, nil, map[string]string{"team": "a"}},
		{"unsettled: kept", map[string]string{v1alpha1.CreatePendingAnnotation: record}, nil,
			map[string]string{v1alpha1.CreatePendingAnnotation: record}},
		{"an earlier record settled: kept", map[string]string{v1alpha1.CreatePendingAnnotation: record}, at("2026-12-04T10:00:04Z"),
			map[string]string{v1alpha1.CreatePendingAnnotation: record}},
		{"settled: dropped", map[string]string{v1alpha1.CreatePendingAnnotation: record}, at(record), nil},
		{"settled, other annotations kept", map[string]string{v1alpha1.CreatePendingAnnotation: record, "team": "a"}, at(record),
			map[string]string{"team": "a"}},
		{"not a time: kept as it is", map[string]string{v1alpha1.CreatePendingAnnotation: "soon"}, at(record),
			map[string]string{v1alpha1.CreatePendingAnnotation: "soon"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &v1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{Annotations: tc.annotations,
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
			app.Status.CreateSettled = tc.settled
			unsettledBefore := app.UnsettledCreate()
			out, err := CacheTransform()(app)
			if err != nil {
				t.Fatal(err)
			}
			got := out.(*appcache.Record).App()
			if !maps.Equal(got.Annotations, tc.want) || (tc.want == nil) != (got.Annotations == nil) {
				t.Errorf("annotations %v, want %v", got.Annotations, tc.want)
			}
			if got.ManagedFields != nil {
				t.Errorf("managedFields %v kept", got.ManagedFields)
			}
			if unsettled := got.UnsettledCreate(); (unsettled == nil) != (unsettledBefore == nil) {
				t.Errorf("unsettled create %v after the transform, %v before", unsettled, unsettledBefore)
			}
		})
	}
}
