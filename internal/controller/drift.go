package controller

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// driftCheck finds, every resync period, the Ready apps whose Cloudflare
// application was changed or deleted outside Kubernetes, and hands only
// those to the reconciler. One listing per zone (and page) answers for all
// of the zone's apps, so an app in sync costs no reconcile and no workqueue
// entry: requeueing every Ready app each period did the same check with
// 10,000 reconciles per period at 10,000 apps (docs/benchmarks.md).
type driftCheck struct {
	r       *SpectrumAppReconciler
	period  time.Duration
	drifted chan event.GenericEvent
	log     logr.Logger
}

func newDriftCheck(r *SpectrumAppReconciler, period time.Duration) *driftCheck {
	return &driftCheck{
		r:       r,
		period:  period,
		drifted: make(chan event.GenericEvent, 1024),
		log:     ctrl.Log.WithName("drift-check"),
	}
}

// NeedLeaderElection is true: only the leader reconciles, so only it looks.
func (d *driftCheck) NeedLeaderElection() bool { return true }

// Start checks every zone a period after the last check ended, so a zone
// is never listed twice within a period by the check itself.
func (d *driftCheck) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d.period):
		}
		d.checkAll(ctx)
	}
}

// credentialsZone is one zone as seen with one credentials Secret: the
// unit one listing serves.
type credentialsZone struct {
	secret types.NamespacedName
	key    string
	zoneID string
}

func (d *driftCheck) checkAll(ctx context.Context) {
	groups, err := d.inSyncApps(ctx)
	if err != nil {
		d.log.Error(err, "Listing SpectrumApps for the drift check")
		return
	}
	for zone, apps := range groups {
		drifted, err := d.check(ctx, zone, apps)
		if err != nil {
			failure := spectrum.Classify(err)
			if failure.Class == spectrum.Retryable {
				// Cloudflare or the network is having a moment: the apps
				// stay as they were and the next period looks again.
				d.log.Info("Drift check of a zone postponed", "zone", zone.zoneID, "reason", failure.Reason, "rayID", failure.RayID)
				continue
			}
			// A person has to act (a revoked token, a lost entitlement):
			// each app's reconcile meets the same answer and says so.
			drifted = apps
		}
		for _, app := range drifted {
			select {
			case d.drifted <- event.GenericEvent{Object: app}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// inSyncApps groups the apps whose last reconcile found them in sync with
// their spec by credentials and zone. The others are reconciling already:
// a spec change, a retry, or a stall waiting for a person.
func (d *driftCheck) inSyncApps(ctx context.Context) (map[credentialsZone][]*v1alpha1.SpectrumApp, error) {
	var apps v1alpha1.SpectrumAppList
	// Read-only, so the cache's objects are not copied.
	if err := d.r.List(ctx, &apps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	groups := map[credentialsZone][]*v1alpha1.SpectrumApp{}
	for i := range apps.Items {
		app := &apps.Items[i]
		if !inSync(app) {
			continue
		}
		secret, key := d.r.credentialsSecret(app)
		zone := credentialsZone{secret: secret, key: key, zoneID: app.Spec.ZoneID}
		// Only what the check and the enqueue need; the cache's object
		// stays the cache's.
		groups[zone] = append(groups[zone], &v1alpha1.SpectrumApp{
			ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: app.Name},
			Spec:       app.Spec,
			Status:     v1alpha1.SpectrumAppStatus{ApplicationID: app.Status.ApplicationID},
		})
	}
	return groups, nil
}

func inSync(app *v1alpha1.SpectrumApp) bool {
	if !app.DeletionTimestamp.IsZero() || app.Status.ApplicationID == "" {
		return false
	}
	ready := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionReady)
	return ready != nil && ready.Status == metav1.ConditionTrue && ready.ObservedGeneration == app.Generation
}

// check returns the apps whose application the zone's listing lacks or
// holds with another configuration.
func (d *driftCheck) check(ctx context.Context, zone credentialsZone, apps []*v1alpha1.SpectrumApp) ([]*v1alpha1.SpectrumApp, error) {
	token, err := d.r.token(ctx, zone.secret, zone.key)
	if err != nil {
		return nil, err
	}
	cf := d.r.Connector.ForToken(token)
	// A listing a reconcile fetched moments ago is as good as a new one.
	listing, err := d.r.zones.refresh(ctx, cf, zone.zoneID, time.Now().Add(-d.period/10))
	if err != nil {
		return nil, err
	}
	d.r.zones.mu.Lock()
	defer d.r.zones.mu.Unlock()
	if listing.apps == nil {
		// A write's outcome became unknown since: the next period looks
		// again, and the reconcile of that write has the app meanwhile.
		return nil, nil
	}
	var drifted []*v1alpha1.SpectrumApp
	for _, app := range apps {
		observed, found := listing.apps[app.Status.ApplicationID]
		if !found || spectrum.Differs(spectrum.FromSpec(&app.Spec), observed) {
			drifted = append(drifted, app)
		}
	}
	return drifted, nil
}
