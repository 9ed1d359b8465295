package controller

import (
	"context"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

var specPath = field.NewPath("spec")

// observe finds the app's Cloudflare application: by the ID in status, or,
// before the first create, an existing app with the same hostname and
// protocol, which is adopted instead of duplicated.
func (r *SpectrumAppReconciler) observe(ctx context.Context, cf spectrum.Client, app *v1alpha1.SpectrumApp) (spectrum.App, bool, error) {
	if app.Status.ApplicationID == "" {
		return r.adopt(ctx, cf, app)
	}
	listed, found, err := r.zones.byID(ctx, cf, app.Spec.ZoneID, app.Status.ApplicationID, time.Time{})
	if err != nil || found {
		return listed, found, err
	}
	// Missing from the zone's listing: confirm with one get before
	// recreating, since the listing may predate an app made elsewhere.
	got, err := cf.GetApp(ctx, app.Spec.ZoneID, app.Status.ApplicationID)
	if spectrum.IsNotFound(err) {
		// The recorded application was deleted outside the operator. An
		// earlier attempt may have recreated it already without recording
		// the new ID (its status write failed, or the operator died right
		// after the create): look for it as for a lost create, so that
		// each retry does not make one more.
		return r.adopt(ctx, cf, app)
	}
	if err != nil {
		return spectrum.App{}, false, err
	}
	r.zones.put(cf, app.Spec.ZoneID, got)
	return got, true, nil
}

// adopt takes over the zone's application with the app's hostname and
// protocol, if there is one, and records its ID.
func (r *SpectrumAppReconciler) adopt(ctx context.Context, cf spectrum.Client, app *v1alpha1.SpectrumApp) (spectrum.App, bool, error) {
	existing, found, err := r.findAdoptable(ctx, cf, app)
	if err != nil || !found {
		return spectrum.App{}, false, err
	}
	app.Status.ApplicationID = existing.ID
	app.Status.Adopted = true
	r.creates.settled(keyOf(app))
	r.Recorder.Eventf(app, nil, "Normal", eventAdopted, "Adopt",
		"Adopted existing Cloudflare Spectrum application %s with the same hostname and protocol", existing.ID)
	return existing, true, nil
}

// findAdoptable looks in the zone for an application with the app's
// hostname and protocol. Once every create of the app that may be in
// flight has landed, it looks in a listing started after that, so that
// "not found" can be believed (see createTracker).
func (r *SpectrumAppReconciler) findAdoptable(ctx context.Context, cf spectrum.Client, app *v1alpha1.SpectrumApp) (spectrum.App, bool, error) {
	notBefore := r.creates.barrier(keyOf(app))
	if notBefore.After(time.Now()) {
		// Not yet: the caller waits if the app is not found.
		notBefore = time.Time{}
	}
	existing, found, err := r.zones.byName(ctx, cf, app.Spec.ZoneID, app.Spec.DNS.Name, app.Spec.Protocol, notBefore)
	if err != nil || !found {
		return existing, found, err
	}
	if owner, err := r.claimant(ctx, existing.ID, app); err != nil || owner != "" {
		if err == nil {
			err = &spectrum.ClaimedError{ApplicationID: existing.ID, Owner: owner}
		}
		return spectrum.App{}, false, err
	}
	return existing, true, nil
}

// claimant names another SpectrumApp whose status records applicationID;
// "" when there is none. Two SpectrumApps adopting one application would
// fight over it, and deleting either would delete it for both.
func (r *SpectrumAppReconciler) claimant(ctx context.Context, applicationID string, app *v1alpha1.SpectrumApp) (string, error) {
	// Only adoption asks, which is rare (a lost create, an app made outside
	// Kubernetes), so the zone's apps are scanned in the cache rather than
	// every app paying for an index entry of its own ID (docs/benchmarks.md).
	var zoneApps v1alpha1.SpectrumAppList
	if err := r.List(ctx, &zoneApps, client.MatchingFields{zoneIndex: app.Spec.ZoneID}, client.UnsafeDisableDeepCopy); err != nil {
		return "", err
	}
	for i := range zoneApps.Items {
		owner := &zoneApps.Items[i]
		if owner.Status.ApplicationID == applicationID && owner.UID != app.UID {
			return owner.Namespace + "/" + owner.Name, nil
		}
	}
	return "", nil
}

// zoneIndex indexes SpectrumApps by their Cloudflare zone.
const zoneIndex = "spec.zoneID"

func indexZones(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.SpectrumApp{}, zoneIndex, func(obj client.Object) []string {
		return []string{obj.(*v1alpha1.SpectrumApp).Spec.ZoneID}
	})
}

// unconfirmedCreate returns how long to wait before the app's absence from
// the zone can be believed; zero when it can be now.
func (r *SpectrumAppReconciler) unconfirmedCreate(app *v1alpha1.SpectrumApp) time.Duration {
	return max(time.Until(r.creates.barrier(keyOf(app))), 0)
}

func keyOf(app *v1alpha1.SpectrumApp) types.NamespacedName {
	return types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
}

// recordObserved copies what Cloudflare reports into status.
func recordObserved(app *v1alpha1.SpectrumApp, observed spectrum.App) {
	app.Status.ApplicationID = observed.ID
	app.Status.CreatedOn = metaTime(observed.CreatedOn)
	app.Status.ModifiedOn = metaTime(observed.ModifiedOn)
	app.Status.EdgeIPs = nil
	if observed.EdgeIPs != nil && len(observed.EdgeIPs.IPs) > 0 {
		app.Status.EdgeIPs = append([]string(nil), observed.EdgeIPs.IPs...)
	}
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	m := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &m
}

func joinFields(fields []string) string { return strings.Join(fields, ", ") }

// zoneCache holds one listing per zone and client (that is, per API token),
// shared by every reconcile: checking N apps of a zone for drift costs one
// list call per page per period, not N gets. The operator's own writes go
// into the listing as they succeed, so it never hides them.
type zoneCache struct {
	maxAge time.Duration

	mu    sync.Mutex
	zones map[zoneKey]*zoneListing
}

type zoneKey struct {
	client spectrum.Client
	zoneID string
}

type zoneListing struct {
	// fetching serializes the refresh: concurrent reconciles of one zone
	// wait for a single list call instead of each making their own.
	fetching sync.Mutex
	// fetchedAt is when the list request that made the listing was sent:
	// the listing shows every write applied before then.
	fetchedAt time.Time
	// invalidatedAt is when a write's outcome became unknown; a listing
	// fetched before it (even one in flight at the time) is stale.
	invalidatedAt time.Time
	apps          map[string]spectrum.App
	byName        map[nameKey]string
}

func newZoneCache(maxAge time.Duration) *zoneCache {
	if maxAge <= 0 {
		maxAge = time.Minute
	}
	return &zoneCache{maxAge: maxAge, zones: map[zoneKey]*zoneListing{}}
}

// zoneIDs are the zones the cache holds listings of, each once.
func (c *zoneCache) zoneIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool, len(c.zones))
	ids := make([]string, 0, len(c.zones))
	for key := range c.zones {
		if !seen[key.zoneID] {
			seen[key.zoneID] = true
			ids = append(ids, key.zoneID)
		}
	}
	return ids
}

func (c *zoneCache) listing(cf spectrum.Client, zoneID string) *zoneListing {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := zoneKey{cf, zoneID}
	l, ok := c.zones[key]
	if !ok {
		l = &zoneListing{}
		c.zones[key] = l
	}
	return l
}

// refresh lists the zone's applications again when the last listing is
// older than maxAge, was invalidated, or was fetched before notBefore.
func (c *zoneCache) refresh(ctx context.Context, cf spectrum.Client, zoneID string, notBefore time.Time) (*zoneListing, error) {
	l := c.listing(cf, zoneID)
	l.fetching.Lock()
	defer l.fetching.Unlock()
	c.mu.Lock()
	fresh := l.apps != nil && time.Since(l.fetchedAt) <= c.maxAge &&
		l.fetchedAt.After(l.invalidatedAt) && !l.fetchedAt.Before(notBefore)
	c.mu.Unlock()
	if fresh {
		return l, nil
	}
	sent := time.Now()
	apps, err := cf.ListApps(ctx, zoneID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l.apps = make(map[string]spectrum.App, len(apps))
	l.byName = make(map[nameKey]string, len(apps))
	for _, a := range apps {
		l.store(a)
	}
	// Dated by when it was asked for: a write whose outcome became unknown
	// while the list was in flight may be missing from it, and
	// invalidatedAt, being later, marks it stale.
	l.fetchedAt = sent
	return l, nil
}

// byID returns the zone's application with that ID, if the listing,
// fetched no earlier than notBefore, has it.
func (c *zoneCache) byID(ctx context.Context, cf spectrum.Client, zoneID, appID string, notBefore time.Time) (spectrum.App, bool, error) {
	l, err := c.refresh(ctx, cf, zoneID, notBefore)
	if err != nil {
		return spectrum.App{}, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	app, ok := l.apps[appID]
	return app, ok, nil
}

// byName returns the zone's application with that hostname and protocol,
// from a listing fetched no earlier than notBefore.
func (c *zoneCache) byName(ctx context.Context, cf spectrum.Client, zoneID, hostname, protocol string, notBefore time.Time) (spectrum.App, bool, error) {
	l, err := c.refresh(ctx, cf, zoneID, notBefore)
	if err != nil {
		return spectrum.App{}, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := l.byName[newNameKey(hostname, protocol)]
	if !ok {
		return spectrum.App{}, false, nil
	}
	return l.apps[id], true, nil
}

func (c *zoneCache) put(cf spectrum.Client, zoneID string, app spectrum.App) {
	l := c.listing(cf, zoneID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.apps != nil {
		l.store(app)
	}
}

func (c *zoneCache) remove(cf spectrum.Client, zoneID, appID string) {
	l := c.listing(cf, zoneID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if app, ok := l.apps[appID]; ok {
		delete(l.byName, newNameKey(app.DNS.Name, app.Protocol))
		delete(l.apps, appID)
	}
}

func (c *zoneCache) invalidate(cf spectrum.Client, zoneID string) {
	l := c.listing(cf, zoneID)
	c.mu.Lock()
	defer c.mu.Unlock()
	l.apps, l.byName = nil, nil
	l.invalidatedAt = time.Now()
}

func (l *zoneListing) store(app spectrum.App) {
	if old, ok := l.apps[app.ID]; ok {
		delete(l.byName, newNameKey(old.DNS.Name, old.Protocol))
	}
	l.apps[app.ID] = app
	l.byName[newNameKey(app.DNS.Name, app.Protocol)] = app.ID
}

// nameKey identifies an application by what adoption matches on.
type nameKey struct{ hostname, protocol string }

func newNameKey(hostname, protocol string) nameKey {
	return nameKey{strings.ToLower(strings.TrimSuffix(hostname, ".")), strings.ToLower(protocol)}
}
