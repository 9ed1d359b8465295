package appcache

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// Of returns the Record of what the SpectrumApp informer hands a handler:
// a Record, a deleted one's last state, or a typed SpectrumApp from a cache
// without the manager's transform (made into a Record of its own). ok is
// false for anything else.
func Of(obj any) (record *Record, ok bool) {
	switch o := obj.(type) {
	case *Record:
		return o, true
	case *v1alpha1.SpectrumApp:
		return newRecorder().record(o.DeepCopy()), true
	case toolscache.DeletedFinalStateUnknown:
		return Of(o.Obj)
	}
	return nil, false
}

// Index finds the cached apps by keys of its owner's choosing, as they are
// in the cache: Records, to be read only. It replaces a field index of
// controller-runtime's, whose lists cannot hold Records, and which indexes
// each namespaced app twice (under its namespace and under all).
type Index struct {
	name    string
	indexer toolscache.Indexer
}

// AddIndex indexes the SpectrumApps of the informers' cache by keysOf.
func AddIndex(ctx context.Context, informers cache.Informers, name string, keysOf func(*Record) []string) (*Index, error) {
	informer, err := informers.GetInformer(ctx, &v1alpha1.SpectrumApp{})
	if err != nil {
		return nil, err
	}
	withIndexer, ok := informer.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return nil, fmt.Errorf("the SpectrumApp informer (%T) has no indexer to read", informer)
	}
	err = informer.AddIndexers(toolscache.Indexers{name: func(obj any) ([]string, error) {
		if record, ok := Of(obj); ok {
			return keysOf(record), nil
		}
		return nil, nil
	}})
	if err != nil {
		return nil, err
	}
	return &Index{name: name, indexer: withIndexer.GetIndexer()}, nil
}

// Get returns the cached apps under key.
func (i *Index) Get(key string) ([]*Record, error) {
	objs, err := i.indexer.ByIndex(i.name, key)
	if err != nil {
		return nil, err
	}
	records := make([]*Record, 0, len(objs))
	for _, obj := range objs {
		if record, ok := Of(obj); ok {
			records = append(records, record)
		}
	}
	return records, nil
}
