package v1alpha1

import (
	"context"
	"maps"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	spectrumv1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// claimRegistry knows which SpectrumApps stand for each Cloudflare
// application (claimKeys: zone, hostname and protocol), across namespaces,
// as the manager's cache holds them: the SpectrumApp informer tells it of
// every change.
//
// It replaces a field index of the cache. controller-runtime indexes a
// namespaced object under two keys (its namespace's and all namespaces'),
// each key with a set of its own, and a claim is one app's alone: ~750 bytes
// per app, as much as its Cloudflare application in the zone listings
// (docs/benchmarks.md). Here a key holds the names that claim it, about 150
// bytes per app.
type claimRegistry struct {
	mu      sync.RWMutex
	holders map[string][]types.NamespacedName
	// zones counts, for each zone an app names by zoneName (normalized),
	// the apps the controller resolved it for, by zone ID: admission learns
	// a zone's ID from them. (A zone deleted and added again has a new ID.)
	zones map[string]map[string]int
	// synced tells whether the informer has told of every app it listed
	// when it started; the registry is not read before.
	synced func() bool
}

var _ toolscache.ResourceEventHandler = (*claimRegistry)(nil)

func newClaimRegistry() *claimRegistry {
	return &claimRegistry{holders: map[string][]types.NamespacedName{}, zones: map[string]map[string]int{}, synced: func() bool { return true }}
}

// registerClaims feeds a new registry from the SpectrumApp informer.
func registerClaims(ctx context.Context, informers cache.Informers) (*claimRegistry, error) {
	informer, err := informers.GetInformer(ctx, &spectrumv1alpha1.SpectrumApp{})
	if err != nil {
		return nil, err
	}
	claims := newClaimRegistry()
	registration, err := informer.AddEventHandler(claims)
	if err != nil {
		return nil, err
	}
	claims.synced = registration.HasSynced
	return claims, nil
}

// holdersOf returns the apps that claim key, once the registry knows every
// app the cache does; it waits for that while the manager starts.
func (r *claimRegistry) holdersOf(ctx context.Context, key string) ([]types.NamespacedName, error) {
	if err := r.waitForSync(ctx); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.holders[key]), nil
}

// zoneIDNamed returns the ID the controller resolved the zone named
// zoneName (normalized) to for some app; "" when it resolved it for none.
// Of two IDs (the zone was deleted and added again), the lower.
func (r *claimRegistry) zoneIDNamed(ctx context.Context, zoneName string) (string, error) {
	if err := r.waitForSync(ctx); err != nil {
		return "", err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := slices.Sorted(maps.Keys(r.zones[zoneName]))
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}

func (r *claimRegistry) waitForSync(ctx context.Context) error {
	if !r.synced() && !toolscache.WaitForCacheSync(ctx.Done(), r.synced) {
		return ctx.Err()
	}
	return nil
}

func (r *claimRegistry) OnAdd(obj any, _ bool) {
	if app, ok := appcache.Of(obj); ok {
		r.move(nil, claimsOf(app))
	}
}

func (r *claimRegistry) OnUpdate(oldObj, newObj any) {
	old, okOld := appcache.Of(oldObj)
	app, okNew := appcache.Of(newObj)
	if okOld && okNew {
		r.move(claimsOf(old), claimsOf(app))
	}
}

func (r *claimRegistry) OnDelete(obj any) {
	if app, ok := appcache.Of(obj); ok {
		r.move(claimsOf(app), nil)
	}
}

// appClaims is what one app claims.
type appClaims struct {
	name types.NamespacedName
	keys []string
	// zoneName is the zone an app names by zoneName (normalized), and
	// zoneID the ID the controller resolved it to; both empty otherwise.
	zoneName, zoneID string
}

func claimsOf(app *appcache.Record) *appClaims {
	spec := spectrumv1alpha1.SpectrumAppSpec{ZoneID: app.ZoneID(), ZoneName: app.ZoneName(), Protocol: app.Protocol(),
		DNS: spectrumv1alpha1.DNS{Name: app.Hostname()}}
	claims := &appClaims{name: app.NamespacedName(), keys: claimKeys(&spec, app.StatusZoneID())}
	if spec.ZoneID == "" && spec.ZoneName != "" && app.StatusZoneID() != "" {
		claims.zoneName, claims.zoneID = spectrum.NormalizeHostname(spec.ZoneName), app.StatusZoneID()
	}
	return claims
}

// move takes the claims of from (nil: none) away and gives those of to
// (nil: none); both are versions of one app.
func (r *claimRegistry) move(from, to *appClaims) {
	var gone, taken []string
	var name types.NamespacedName
	if from != nil {
		gone, name = from.keys, from.name
	}
	if to != nil {
		taken, name = to.keys, to.name
	}
	if slices.Equal(gone, taken) {
		// Most events: status written, nothing claimed anew. (The keys
		// name the zone both by name and by resolved ID: the same keys,
		// the same zone resolved.)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, key := range gone {
		if !slices.Contains(taken, key) {
			r.release(key, name)
		}
	}
	for _, key := range taken {
		if !slices.Contains(gone, key) {
			r.claim(key, name)
		}
	}
	if from != nil {
		r.countZone(from, -1)
	}
	if to != nil {
		r.countZone(to, 1)
	}
}

// countZone counts the app's resolution of its zone's name in or out. The
// caller holds mu.
func (r *claimRegistry) countZone(app *appClaims, delta int) {
	if app.zoneName == "" {
		return
	}
	ids := r.zones[app.zoneName]
	if ids == nil {
		ids = map[string]int{}
		r.zones[app.zoneName] = ids
	}
	if ids[app.zoneID] += delta; ids[app.zoneID] <= 0 {
		delete(ids, app.zoneID)
	}
	if len(ids) == 0 {
		delete(r.zones, app.zoneName)
	}
}

// claim and release change one key's holders. The caller holds mu.
func (r *claimRegistry) claim(key string, name types.NamespacedName) {
	if holders := r.holders[key]; !slices.Contains(holders, name) {
		r.holders[key] = append(slices.Clip(holders), name)
	}
}

func (r *claimRegistry) release(key string, name types.NamespacedName) {
	holders := slices.DeleteFunc(slices.Clone(r.holders[key]), func(n types.NamespacedName) bool { return n == name })
	if len(holders) == 0 {
		delete(r.holders, key)
		return
	}
	r.holders[key] = holders
}
