package controller

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// The release of a credentials Secret is woken only by the app events that
// can free it. On the old code every event woke it, and each wake listed
// every app of the Secret: at 10,000 apps on one Secret, 42 % of the
// manager's CPU and 87 % of its allocations (issue 23's profile).
func TestOnlyAppsLettingGoWakeTheCredentialsRelease(t *testing.T) {
	holding := func() *v1alpha1.SpectrumApp {
		return &v1alpha1.SpectrumApp{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app", Finalizers: []string{v1alpha1.Finalizer}},
			Spec:       v1alpha1.SpectrumAppSpec{CredentialsRef: &v1alpha1.SecretKeyReference{Name: "cloudflare"}},
		}
	}
	changed := func(change func(*v1alpha1.SpectrumApp)) *v1alpha1.SpectrumApp {
		app := holding()
		change(app)
		return app
	}
	now := metav1.Now()
	updates := []struct {
		name     string
		old, new *v1alpha1.SpectrumApp
		wakes    bool
	}{
		{"status written", holding(), changed(func(a *v1alpha1.SpectrumApp) { a.Status.ApplicationID = "abc" }), false},
		{"label added", holding(), changed(func(a *v1alpha1.SpectrumApp) { a.Labels = map[string]string{"team": "a"} }), false},
		{"deletion started, finalizer still on", holding(), changed(func(a *v1alpha1.SpectrumApp) { a.DeletionTimestamp = &now }), false},
		{"credentials given to an app without", changed(func(a *v1alpha1.SpectrumApp) { a.Spec.CredentialsRef = nil }), holding(), false},
		{"finalizer removed while deleting", changed(func(a *v1alpha1.SpectrumApp) { a.DeletionTimestamp = &now }),
			changed(func(a *v1alpha1.SpectrumApp) { a.DeletionTimestamp = &now; a.Finalizers = nil }), true},
		{"another Secret", holding(), changed(func(a *v1alpha1.SpectrumApp) { a.Spec.CredentialsRef.Name = "other" }), true},
		{"default credentials instead", holding(), changed(func(a *v1alpha1.SpectrumApp) { a.Spec.CredentialsRef = nil }), true},
		{"deletion policy Orphan", holding(), changed(func(a *v1alpha1.SpectrumApp) { a.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan }), true},
		{"observe only", holding(), changed(func(a *v1alpha1.SpectrumApp) {
			a.Annotations = map[string]string{v1alpha1.ReconcilePolicyAnnotation: v1alpha1.ReconcilePolicyObserve}
		}), true},
	}
	for _, tc := range updates {
		t.Run(tc.name, func(t *testing.T) {
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
			defer q.ShutDown()
			holders := newCredentialsHolders()
			holders.Create(context.Background(), event.CreateEvent{Object: tc.old}, q)
			if q.Len() != 0 {
				t.Fatal("a new app woke the release")
			}
			holders.Update(context.Background(), event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}, q)
			if woke := q.Len() == 1; woke != tc.wakes {
				t.Errorf("woke the release: %t, want %t", woke, tc.wakes)
			}
			if q.Len() == 1 {
				if req, _ := q.Get(); req.Name != "cloudflare" || req.Namespace != "team" {
					t.Errorf("woke %s, want team/cloudflare", req)
				}
			}
		})
	}

	// Two apps hold the Secret: it is held until the last goes.
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	holders := newCredentialsHolders()
	secret := types.NamespacedName{Namespace: "team", Name: "cloudflare"}
	other := holding()
	other.Name = "other"
	holders.Create(context.Background(), event.CreateEvent{Object: holding()}, q)
	holders.Create(context.Background(), event.CreateEvent{Object: other}, q)
	if q.Len() != 0 || !holders.holding(secret) {
		t.Fatalf("two new apps: woke %d, holding %t; want 0, true", q.Len(), holders.holding(secret))
	}
	holders.Delete(context.Background(), event.DeleteEvent{Object: holding()}, q)
	if q.Len() != 1 || !holders.holding(secret) {
		t.Errorf("one of two deleted: woke %d, holding %t; want 1, true", q.Len(), holders.holding(secret))
	}
	holders.Delete(context.Background(), event.DeleteEvent{Object: other}, q)
	if holders.holding(secret) {
		t.Error("the last app deleted, the Secret is still held")
	}
}
