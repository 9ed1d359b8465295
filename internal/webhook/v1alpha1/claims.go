package v1alpha1

import (
	"context"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	spectrumv1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
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
	// synced tells whether the informer has told of every app it listed
	// when it started; the registry is not read before.
	synced func() bool
}

var _ toolscache.ResourceEventHandler = (*claimRegistry)(nil)

func newClaimRegistry() *claimRegistry {
	return &claimRegistry{holders: map[string][]types.NamespacedName{}, synced: func() bool { return true }}
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
	if !r.synced() && !toolscache.WaitForCacheSync(ctx.Done(), r.synced) {
		return nil, ctx.Err()
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.holders[key]), nil
}

func (r *claimRegistry) OnAdd(obj any, _ bool) {
	if app, ok := obj.(*spectrumv1alpha1.SpectrumApp); ok {
		r.move(nil, app)
	}
}

func (r *claimRegistry) OnUpdate(oldObj, newObj any) {
	old, okOld := oldObj.(*spectrumv1alpha1.SpectrumApp)
	app, okNew := newObj.(*spectrumv1alpha1.SpectrumApp)
	if okOld && okNew {
		r.move(old, app)
	}
}

func (r *claimRegistry) OnDelete(obj any) {
	if tombstone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	if app, ok := obj.(*spectrumv1alpha1.SpectrumApp); ok {
		r.move(app, nil)
	}
}

// move takes the claims of from (nil: none) away and gives those of to
// (nil: none); both are versions of one app.
func (r *claimRegistry) move(from, to *spectrumv1alpha1.SpectrumApp) {
	var gone, taken []string
	var name types.NamespacedName
	if from != nil {
		gone = claimKeys(from)
		name = types.NamespacedName{Namespace: from.Namespace, Name: from.Name}
	}
	if to != nil {
		taken = claimKeys(to)
		name = types.NamespacedName{Namespace: to.Namespace, Name: to.Name}
	}
	if slices.Equal(gone, taken) {
		// Most events: status written, nothing claimed anew.
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
