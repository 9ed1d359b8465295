package controller

import (
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// secretChanges are the Secret events that can change what the apps using
// the Secret get:
//   - not the Secrets of the cache's initial list: every app is reconciled
//     at start anyway, by its own initial list, and waking the apps of the
//     default credentials listed all of them at once (at 20,000 apps, the
//     restarted manager's peak memory);
//   - not an update that only changed finalizers (the operator's own
//     credentials-in-use finalizer coming and going): the token did not
//     change, so the apps have nothing to retry.
func secretChanges() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !e.IsInInitialList },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return slices.Equal(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers())
		},
	}
}

// specOrRequestChanged lets through the updates that can change the outcome:
// a new generation (spec), new annotations (a retry request, a policy), or
// the start of deletion. The operator's own writes, status and the create
// record, do not wake the controller: the reconcile that wrote them goes on.
func specOrRequestChanged() predicate.Predicate {
	return predicate.Or(
		predicate.GenerationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return !annotationsEqualBesides(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations(), v1alpha1.CreatePendingAnnotation)
		}},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
		}},
	)
}

// annotationsEqualBesides tells whether a and b hold the same annotations,
// the one named ignored.
func annotationsEqualBesides(a, b map[string]string, ignored string) bool {
	for key, value := range a {
		if other, ok := b[key]; key != ignored && (!ok || other != value) {
			return false
		}
	}
	for key := range b {
		if _, ok := a[key]; key != ignored && !ok {
			return false
		}
	}
	return true
}
