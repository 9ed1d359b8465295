package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
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
			e := &cloudflareApp{requestTimeout: requestTimeout, app: &v1alpha1.SpectrumApp{
				Status: v1alpha1.SpectrumAppStatus{PendingCreate: &metav1.Time{Time: recorded}}}}
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
