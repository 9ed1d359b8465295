package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
)

// zoneApps indexes the cached SpectrumApps by zone (CloudflareZoneID),
// holding the cache's own Records, which its readers only read. The drift
// check reads every zone's apps each period, adoption's claim check a
// zone's apps, and a Secret's change all of them (each): through the
// cache's List, each read copied every app into a new list, 8 % of what
// the manager allocated to converge 10,000 apps, for objects only looked
// at. It is fed by the SpectrumApp informer's events, so it follows the
// cache a moment behind, as every reader of the cache does.
type zoneApps struct {
	mu    sync.RWMutex
	zones map[string]map[types.NamespacedName]*appcache.Record
}

var _ toolscache.ResourceEventHandler = (*zoneApps)(nil)

func newZoneApps() *zoneApps {
	return &zoneApps{zones: map[string]map[types.NamespacedName]*appcache.Record{}}
}

// of returns the zone's apps; the objects are the cache's, not to be
// modified.
func (z *zoneApps) of(zoneID string) []*appcache.Record {
	z.mu.RLock()
	defer z.mu.RUnlock()
	apps := make([]*appcache.Record, 0, len(z.zones[zoneID]))
	for _, app := range z.zones[zoneID] {
		apps = append(apps, app)
	}
	return apps
}

// each calls fn with every cached app, the cache's own, not to be modified;
// fn must not call back into z.
func (z *zoneApps) each(fn func(*appcache.Record)) {
	z.mu.RLock()
	defer z.mu.RUnlock()
	for _, apps := range z.zones {
		for _, app := range apps {
			fn(app)
		}
	}
}

// OnAdd implements toolscache.ResourceEventHandler.
func (z *zoneApps) OnAdd(obj any, _ bool) {
	if app, ok := appcache.Of(obj); ok {
		z.put(app)
	}
}

// OnUpdate implements toolscache.ResourceEventHandler: an app whose zone
// changed (its zoneName resolved) moves.
func (z *zoneApps) OnUpdate(oldObj, newObj any) {
	old, okOld := appcache.Of(oldObj)
	app, ok := appcache.Of(newObj)
	if !ok {
		return
	}
	if okOld && old.CloudflareZoneID() != app.CloudflareZoneID() {
		z.remove(old)
	}
	z.put(app)
}

// OnDelete implements toolscache.ResourceEventHandler, for a deletion
// seen or missed while the watch was down.
func (z *zoneApps) OnDelete(obj any) {
	if app, ok := appcache.Of(obj); ok {
		z.remove(app)
	}
}

func (z *zoneApps) put(app *appcache.Record) {
	z.mu.Lock()
	defer z.mu.Unlock()
	zone := app.CloudflareZoneID()
	apps, ok := z.zones[zone]
	if !ok {
		apps = map[types.NamespacedName]*appcache.Record{}
		z.zones[zone] = apps
	}
	apps[app.NamespacedName()] = app
}

func (z *zoneApps) remove(app *appcache.Record) {
	z.mu.Lock()
	defer z.mu.Unlock()
	zone := app.CloudflareZoneID()
	delete(z.zones[zone], app.NamespacedName())
	if len(z.zones[zone]) == 0 {
		delete(z.zones, zone)
	}
}
