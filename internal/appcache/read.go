package appcache

import (
	toolscache "k8s.io/client-go/tools/cache"

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
