package controller_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

func TestCreateUpdateDelete(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("ssh", zoneMain, "example.com")
	f.create(app)

	ready := f.waitForCondition("ssh", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	if ready.Status.ApplicationID == "" || ready.Status.ObservedGeneration != ready.Generation {
		t.Fatalf("status %+v: want an applicationID and observedGeneration %d", ready.Status, ready.Generation)
	}
	if ready.Status.CreatedOn == nil {
		t.Errorf("status.createdOn not recorded")
	}
	stored := simApps(zoneMain, app.Spec.DNS.Name)
	if len(stored) != 1 || stored[0].ID != ready.Status.ApplicationID {
		t.Fatalf("simulator holds %+v, want one app with ID %s", stored, ready.Status.ApplicationID)
	}
	f.waitForEvent("ssh", corev1.EventTypeNormal, "Created")

	// Update: the new origin reaches Cloudflare.
	ready = f.update("ssh", func(a *v1alpha1.SpectrumApp) { a.Spec.OriginDirect = []string{"tcp://192.0.2.99:22"} })
	eventually(t, 20*time.Second, func() string {
		stored := simApps(zoneMain, app.Spec.DNS.Name)
		if len(stored) != 1 || fmt.Sprint(stored[0].OriginDirect) != "[tcp://192.0.2.99:22]" {
			return fmt.Sprintf("simulator holds %+v, want the new origin", stored)
		}
		return ""
	})
	f.waitForCondition("ssh", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	f.waitForEvent("ssh", corev1.EventTypeNormal, "Updated")

	// Delete (policy Delete, the default): gone at Cloudflare, then in Kubernetes.
	if err := k8sClient.Delete(f.ctx, ready); err != nil {
		t.Fatal(err)
	}
	f.waitForDeletion("ssh")
	if stored := simApps(zoneMain, app.Spec.DNS.Name); len(stored) != 0 {
		t.Fatalf("simulator still holds %+v after delete", stored)
	}
}

func TestOrphanPolicyLeavesTheApplication(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("orphan", zoneMain, "example.com")
	app.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
	f.create(app)
	ready := f.waitForCondition("orphan", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")

	if err := k8sClient.Delete(f.ctx, ready); err != nil {
		t.Fatal(err)
	}
	f.waitForDeletion("orphan")
	stored := simApps(zoneMain, app.Spec.DNS.Name)
	if len(stored) != 1 || stored[0].ID != ready.Status.ApplicationID {
		t.Fatalf("simulator holds %+v, want the orphaned app %s", stored, ready.Status.ApplicationID)
	}
	if err := sim.DeleteApp(zoneMain, stored[0].ID); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteTreatsAMissingApplicationAsGone(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	f.create(f.app("gone", zoneMain, "example.com"))
	ready := f.waitForCondition("gone", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	// Delete it behind the operator's back, then ask for deletion: the 404
	// must not hold the finalizer.
	if err := sim.DeleteApp(zoneMain, ready.Status.ApplicationID); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Delete(f.ctx, ready); err != nil {
		t.Fatal(err)
	}
	f.waitForDeletion("gone")
}

func TestDriftIsRestored(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("drift", zoneDrift, "drift.example")
	f.create(app)
	ready := f.waitForCondition("drift", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("drift")

	// Changed outside Kubernetes: restored within a resync or two.
	err := sim.ModifyApp(zoneDrift, ready.Status.ApplicationID, func(a *spectrumtest.App) {
		a.OriginDirect = []string{"tcp://203.0.113.66:22"}
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*resyncPeriod+10*time.Second, func() string {
		stored := simApps(zoneDrift, app.Spec.DNS.Name)
		if len(stored) != 1 || fmt.Sprint(stored[0].OriginDirect) != "[tcp://192.0.2.10:22]" {
			return fmt.Sprintf("simulator holds %+v, want the origin restored", stored)
		}
		return ""
	})

	// Deleted outside Kubernetes: recreated, and the new ID recorded.
	if err := sim.DeleteApp(zoneDrift, ready.Status.ApplicationID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*resyncPeriod+10*time.Second, func() string {
		stored := simApps(zoneDrift, app.Spec.DNS.Name)
		current := f.get("drift")
		if len(stored) != 1 || stored[0].ID == ready.Status.ApplicationID || stored[0].ID != current.Status.ApplicationID {
			return fmt.Sprintf("simulator holds %+v, status has %s: want one recreated app recorded in status", stored, current.Status.ApplicationID)
		}
		return ""
	})
}

func TestResyncCostsOneListPerZoneAndNoWrites(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	const n = 12
	for i := range n {
		f.create(f.app(fmt.Sprintf("quiet-%d", i), zoneDrift, "drift.example"))
	}
	for i := range n {
		f.waitForCondition(fmt.Sprintf("quiet-%d", i), v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	}
	defer func() {
		for i := range n {
			f.deleteAndWait(fmt.Sprintf("quiet-%d", i))
		}
	}()

	lists, gets, writes := calls.count("GET", zoneDrift, "list"), calls.count("GET", zoneDrift, "app"), calls.writes(zoneDrift)
	reconciles := reconcileCount(t)
	const periods = 3
	// Apps in sync are checked against the listing, not reconciled: a
	// reconcile per app and period would be periods*n.
	testenv.Consistently(t, periods*resyncPeriod, func() string {
		if got := reconcileCount(t) - reconciles; got >= n {
			return fmt.Sprintf("%.0f reconciles of %d apps in sync; want fewer than %d (only drifted apps are reconciled)", got, n, n)
		}
		if got := calls.count("GET", zoneDrift, "app") - gets; got != 0 {
			return fmt.Sprintf("%d per-app GETs of %d apps in sync; want 0 (list-based drift checks)", got, n)
		}
		if got := calls.writes(zoneDrift) - writes; got != 0 {
			return fmt.Sprintf("%d writes while nothing changed; want 0", got)
		}
		return ""
	})
	listed := calls.count("GET", zoneDrift, "list") - lists
	// Every app is checked each period, yet the zone is listed about once
	// per period (one page holds these apps), not once per app.
	if listed < 1 || listed > periods+1 {
		t.Errorf("%d list calls in %d resync periods; want between 1 and %d", listed, periods, periods+1)
	}
}

// reconcileCount is controller-runtime's count of SpectrumApp reconciles.
func reconcileCount(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, family := range families {
		if family.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range family.GetMetric() {
			for _, label := range m.GetLabel() {
				if label.GetName() == "controller" && label.GetValue() == "spectrumapp" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// A drift check that meets a temporary failure (Cloudflare's 503) leaves
// Ready apps as they are, instead of turning every app of the zone
// not-Ready for a blip; once Cloudflare answers, drift is repaired.
func TestADriftCheckFailureLeavesReadyAppsAlone(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("calm", zoneDrift, "drift.example")
	f.create(app)
	ready := f.waitForCondition("calm", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("calm")

	// Every read of the zone fails, and meanwhile the app is changed at
	// Cloudflare.
	addFault(t, spectrumtest.Fault{Kind: spectrumtest.FaultUnavailable, Method: "GET", PathPrefix: "/zones/" + zoneDrift})
	if err := sim.ModifyApp(zoneDrift, ready.Status.ApplicationID, func(a *spectrumtest.App) {
		a.OriginDirect = []string{"tcp://203.0.113.77:22"}
	}); err != nil {
		t.Fatal(err)
	}
	fired := sim.FaultsFired()
	testenv.Consistently(t, 3*resyncPeriod, func() string {
		current := f.get("calm")
		if c := meta.FindStatusCondition(current.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Sprintf("a failed drift check changed Ready: %+v", c)
		}
		return ""
	})
	// Positive control: the drift checks did meet the failure.
	if sim.FaultsFired() == fired {
		t.Fatal("no drift check met the failure: the test proves nothing")
	}

	// The positive control of the outcome: once Cloudflare answers, the
	// same check finds and repairs the drift.
	sim.ClearFaults()
	eventually(t, 4*resyncPeriod+10*time.Second, func() string {
		stored := simApps(zoneDrift, app.Spec.DNS.Name)
		if len(stored) != 1 || fmt.Sprint(stored[0].OriginDirect) != "[tcp://192.0.2.10:22]" {
			return fmt.Sprintf("simulator holds %+v, want the origin restored once Cloudflare answers", stored)
		}
		return ""
	})
	for _, e := range f.events("calm") {
		if e.Type == corev1.EventTypeWarning {
			t.Errorf("a failed drift check was told as a warning: %s %s", e.Reason, e.Note)
		}
	}
}
