package controller

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
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
// is never listed twice within a period by the check itself. A check that
// Cloudflare could not answer is tried again sooner, backing off from a
// second to the period, so drift during an outage is found soon after it.
func (d *driftCheck) Start(ctx context.Context) error {
	wait, retry := d.period, time.Duration(0)
	var lastPass time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		pass := time.Now()
		if postponed := d.checkAll(ctx, lastPass); postponed {
			retry = min(max(2*retry, time.Second), d.period)
			wait = retry
		} else {
			retry, wait = 0, d.period
		}
		lastPass = pass
	}
}

// checkAll checks one zone at a time, so only one zone's apps are held
// at once, against listings fetched since notBefore (the previous pass):
// every pass sees Cloudflare as it is now, not as the last pass did. The
// zones are those the operator holds listings of: every app it found in
// sync was observed through one. It tells whether a zone's check had to
// be postponed.
func (d *driftCheck) checkAll(ctx context.Context, notBefore time.Time) (postponed bool) {
	for _, zoneID := range d.r.zones.zoneIDs() {
		if ctx.Err() != nil {
			return false
		}
		for creds, apps := range d.inSyncApps(zoneID) {
			drifted, err := d.check(ctx, zoneID, creds, apps, notBefore)
			if err != nil {
				classified := spectrum.Classify(err)
				if classified.Class == failure.Retryable {
					// Cloudflare or the network is having a moment: the
					// apps stay as they were and a pass soon looks again.
					d.log.Info("Drift check of a zone postponed", "zone", zoneID, "reason", classified.Reason, "rayID", classified.RayID)
					postponed = true
					continue
				}
				// A person has to act (a revoked token, a lost
				// entitlement): each app's reconcile meets the same answer
				// and says so.
				drifted = apps
			}
			for _, app := range drifted {
				// Only the name goes out; the cache's object stays the cache's.
				key := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: app.GetNamespace(), Name: app.GetName()}}
				select {
				case d.drifted <- event.GenericEvent{Object: key}:
				case <-ctx.Done():
					return false
				}
			}
		}
	}
	return postponed
}

// inSyncApps groups by credentials the zone's apps whose last reconcile
// found them in sync with their spec. The others are reconciling already:
// a spec change, a retry, or a stall waiting for a person. The groups
// hold the cache's Records: a zone's apps read as typed apps all at once
// were 704 bytes each more of the manager's heap while the check ran.
func (d *driftCheck) inSyncApps(zoneID string) map[v1alpha1.SecretKey][]*appcache.Record {
	groups := map[v1alpha1.SecretKey][]*appcache.Record{}
	var app v1alpha1.SpectrumApp
	for _, record := range d.r.zoneApps.of(zoneID) {
		record.ViewInto(&app)
		if !inSync(&app) {
			continue
		}
		creds := app.CredentialsSecret(d.r.DefaultCredentials)
		groups[creds] = append(groups[creds], record)
	}
	return groups
}

func inSync(app *v1alpha1.SpectrumApp) bool {
	if !app.DeletionTimestamp.IsZero() || app.Status.ApplicationID == "" {
		return false
	}
	if observing(app) {
		return true
	}
	return app.ReadyAt(app.Generation)
}

// observing is true for an app whose last reconcile observed it under the
// observe policy: the check tells it when Cloudflare starts or stops
// matching the spec, whichever it was.
func observing(app *v1alpha1.SpectrumApp) bool {
	return app.Policy() == v1alpha1.ReconcilePolicyObserve &&
		app.Status.ReconcilePolicy == v1alpha1.ReconcilePolicyObserve && app.Status.ObservedGeneration == app.Generation
}

// check returns the apps whose application the zone's listing lacks or
// holds with another configuration, each asked through its seam.
func (d *driftCheck) check(ctx context.Context, zoneID string, creds v1alpha1.SecretKey, apps []*appcache.Record, notBefore time.Time) ([]*appcache.Record, error) {
	cf, err := d.r.clientOf(ctx, creds)
	if err != nil {
		return nil, err
	}
	var drifted []*appcache.Record
	for _, app := range apps {
		changed, err := d.r.seam(cf, zoneID, app.View()).Drifted(ctx, notBefore)
		var unreadable *spectrum.UnreadableAppError
		if errors.As(err, &unreadable) {
			// Its reconcile says so on the app; the zone's others go on.
			drifted = append(drifted, app)
			continue
		}
		if err != nil {
			return nil, err
		}
		if changed {
			drifted = append(drifted, app)
		}
	}
	return drifted, nil
}
