package controller_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

// kubectl get events tells an app's story and nothing more: one Normal
// event per write at Cloudflare, one Warning for a failure however often it
// is retried.
func TestEventsTellEachWriteAndEachNewFailureOnce(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	addFault(t, spectrumtest.Fault{Kind: spectrumtest.FaultInternalError, Method: "POST", PathPrefix: "/zones/" + zoneMain, Count: 3})
	app := f.app("story", zoneMain, "example.com")
	f.create(app)
	ready := f.waitForCondition("story", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	if left := sim.Faults(); len(left) != 0 {
		t.Fatalf("faults left %+v: the create was not refused three times", left)
	}

	ready.Spec.OriginDirect = []string{"tcp://192.0.2.77:22"}
	if err := k8sClient.Update(f.ctx, ready); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() string {
		if current := f.get("story"); !isReadyAt(current, current.Generation) || current.Generation < 2 {
			return "not Ready at the new generation yet"
		}
		return ""
	})
	f.deleteAndWait("story")

	want := "Warning CloudflareInternalError, Normal Created, Normal Updated, Normal Deleted"
	eventually(t, 10*time.Second, func() string {
		var got []string
		for _, e := range f.events("story") {
			got = append(got, e.Type+" "+e.Reason)
		}
		if strings.Join(got, ", ") != want {
			return fmt.Sprintf("events %v, want %s", got, want)
		}
		return ""
	})
}
