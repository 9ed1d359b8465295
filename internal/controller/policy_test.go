package controller_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

func withPolicy(app *v1alpha1.SpectrumApp, policy string) *v1alpha1.SpectrumApp {
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[v1alpha1.ReconcilePolicyAnnotation] = policy
	return app
}

func (f *fixture) setPolicy(name, policy string) {
	f.t.Helper()
	f.update(name, func(app *v1alpha1.SpectrumApp) { withPolicy(app, policy) })
}

// noWrites shows that zone sees no write at Cloudflare for d.
func noWrites(t *testing.T, zone string, d time.Duration) {
	t.Helper()
	writes := calls.writes(zone)
	testenv.Consistently(t, d, func() string {
		if n := calls.writes(zone) - writes; n > 0 {
			return fmt.Sprintf("%d writes to Cloudflare", n)
		}
		return ""
	})
}

// observe reads only: status says whether Cloudflare matches the spec and
// which fields differ; nothing is ever written there, deletion included;
// switching to manage syncs.
func TestObservePolicy(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("watched", zoneDrift, "drift.example")
	existing, err := sim.PutApp(zoneDrift, spectrumtest.App{Protocol: "tcp/22", DNS: spectrumtest.DNS{Type: "CNAME", Name: app.Spec.DNS.Name},
		OriginDirect: app.Spec.OriginDirect, TLS: "full"}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.DeleteApp(zoneDrift, existing.App.ID) })
	untilTheNextSecond()
	writes := calls.writes(zoneDrift)
	app.Annotations = map[string]string{v1alpha1.AdoptApplicationIDAnnotation: existing.App.ID}
	f.create(withPolicy(app, v1alpha1.ReconcilePolicyObserve))

	outOfSync := f.waitForCondition("watched", v1alpha1.ConditionReady, metav1.ConditionFalse, "OutOfSync")
	if !slices.Equal(outOfSync.Status.Differences, []string{"tls"}) || outOfSync.Status.ReconcilePolicy != "observe" {
		t.Errorf("status %+v: want differences [tls] under observe", outOfSync.Status)
	}
	f.waitForEvent("watched", corev1.EventTypeWarning, "OutOfSync")
	noWrites(t, zoneDrift, resyncPeriod)
	if calls.writes(zoneDrift) != writes {
		t.Fatal("observe wrote to Cloudflare")
	}

	// Fixed at Cloudflare: the drift check sees it match now.
	if err := sim.ModifyApp(zoneDrift, existing.App.ID, func(a *spectrumtest.App) { a.TLS = "off" }); err != nil {
		t.Fatal(err)
	}
	matched := f.waitForCondition("watched", v1alpha1.ConditionReady, metav1.ConditionTrue, "Observed")
	if len(matched.Status.Differences) != 0 {
		t.Errorf("differences %v after Cloudflare matched", matched.Status.Differences)
	}

	// Switching to manage resumes: the next reconcile syncs a change.
	if err := sim.ModifyApp(zoneDrift, existing.App.ID, func(a *spectrumtest.App) { a.TLS = "strict" }); err != nil {
		t.Fatal(err)
	}
	f.waitForCondition("watched", v1alpha1.ConditionReady, metav1.ConditionFalse, "OutOfSync")
	f.setPolicy("watched", v1alpha1.ReconcilePolicyManage)
	f.waitForCondition("watched", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	if got := simApp(t, zoneDrift, app.Spec.DNS.Name); got.TLS != "off" {
		t.Errorf("manage did not correct tls: %s", got.TLS)
	}

	// Back to observe, then deleted: the application stays.
	f.setPolicy("watched", v1alpha1.ReconcilePolicyObserve)
	f.waitForCondition("watched", v1alpha1.ConditionReady, metav1.ConditionTrue, "Observed")
	f.deleteAndWait("watched")
	if len(simApps(zoneDrift, app.Spec.DNS.Name)) != 1 {
		t.Error("deleting an observed SpectrumApp deleted the Cloudflare application")
	}
}

// skip makes no Cloudflare call at all, and deleting under it neither
// deletes nor hangs, even without credentials.
func TestSkipPolicy(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := withPolicy(f.app("skipped", zoneDrift, "drift.example"), v1alpha1.ReconcilePolicySkip)
	before := calls.count("GET", zoneDrift, "list") + calls.count("GET", zoneDrift, "app") + calls.writes(zoneDrift)
	f.create(app)
	skipped := f.waitForCondition("skipped", v1alpha1.ConditionReady, metav1.ConditionUnknown, "ReconcileSkipped")
	if skipped.Status.ReconcilePolicy != "skip" {
		t.Errorf("status.reconcilePolicy %q", skipped.Status.ReconcilePolicy)
	}
	testenv.Consistently(t, resyncPeriod, func() string {
		if n := calls.count("GET", zoneDrift, "list") + calls.count("GET", zoneDrift, "app") + calls.writes(zoneDrift) - before; n > 0 {
			return fmt.Sprintf("%d Cloudflare calls under skip", n)
		}
		return ""
	})
	// Positive control: manage creates it.
	f.setPolicy("skipped", v1alpha1.ReconcilePolicyManage)
	ready := f.waitForCondition("skipped", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")

	f.setPolicy("skipped", v1alpha1.ReconcilePolicySkip)
	f.waitForCondition("skipped", v1alpha1.ConditionReady, metav1.ConditionUnknown, "ReconcileSkipped")
	f.deleteAndWait("skipped")
	if got := simApps(zoneDrift, app.Spec.DNS.Name); len(got) != 1 || got[0].ID != ready.Status.ApplicationID {
		t.Errorf("deleting under skip touched Cloudflare: %+v", got)
	}
	_ = sim.DeleteApp(zoneDrift, ready.Status.ApplicationID)
}

// A policy admission would have refused (the webhook bypassed) is reported
// and nothing is done.
func TestUnknownPolicyStalls(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	f.create(withPolicy(f.app("typo", zoneDrift, "drift.example"), "pause"))
	f.waitForCondition("typo", v1alpha1.ConditionStalled, metav1.ConditionTrue, "InvalidReconcilePolicy")
	f.deleteAndWait("typo")
}

// A credentials Secret deleted before the SpectrumApps that use it (as a
// namespace deletion may do, in any order) stays until they have deleted
// their applications, then goes.
func TestCredentialsOutliveTheAppsThatNeedThem(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("needs-token", zoneDrift, "drift.example")
	f.create(app)
	ready := f.waitForCondition("needs-token", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: f.namespace, Name: "cloudflare"}
	eventually(t, 10*time.Second, func() string {
		if err := k8sClient.Get(f.ctx, key, secret); err != nil {
			return err.Error()
		}
		if !slices.Contains(secret.Finalizers, controller.CredentialsInUseFinalizer) {
			return fmt.Sprintf("Secret finalizers %v", secret.Finalizers)
		}
		return ""
	})

	if err := k8sClient.Delete(f.ctx, secret); err != nil {
		t.Fatal(err)
	}
	f.deleteAndWait("needs-token")
	if n := len(simApps(zoneDrift, app.Spec.DNS.Name)); n != 0 {
		t.Errorf("the application %s was not deleted at Cloudflare (%d left)", ready.Status.ApplicationID, n)
	}
	eventually(t, 10*time.Second, func() string {
		if err := k8sClient.Get(f.ctx, key, secret); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("the Secret is still there (finalizers %v, err %v)", secret.Finalizers, err)
		}
		return ""
	})
}

// Apps that will not delete anything at Cloudflare do not hold the Secret.
func TestOrphanPolicyDoesNotHoldCredentials(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("orphaned", zoneDrift, "drift.example")
	app.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
	f.create(app)
	ready := f.waitForCondition("orphaned", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	t.Cleanup(func() { _ = sim.DeleteApp(zoneDrift, ready.Status.ApplicationID) })
	secret := &corev1.Secret{}
	if err := k8sClient.Get(f.ctx, types.NamespacedName{Namespace: f.namespace, Name: "cloudflare"}, secret); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(secret.Finalizers, controller.CredentialsInUseFinalizer) {
		t.Errorf("an Orphan app put %v on its Secret", secret.Finalizers)
	}
	f.deleteAndWait("orphaned")
}

// The apps of one Secret, created together, are reconciled side by side
// and all put the credentials-in-use finalizer on the same Secret: the
// conflicts among them are the operator's own business, not a failure to
// report. On the old code each app but the first failed once with
// UnexpectedError (a Warning event and an error in the log).
func TestAppsSharingASecretDoNotFailOnItsFinalizer(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	names := make([]string, 8)
	for i := range names {
		names[i] = fmt.Sprintf("sharing-%d", i)
		f.create(f.app(names[i], zoneDrift, "drift.example"))
	}
	for _, name := range names {
		f.waitForCondition(name, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	}
	for _, name := range names {
		for _, e := range f.events(name) {
			if e.Type == corev1.EventTypeWarning {
				t.Errorf("%s has a warning event %s: %s", name, e.Reason, e.Note)
			}
		}
	}
	for _, name := range names {
		f.deleteAndWait(name)
	}
}
