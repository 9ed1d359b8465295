package controller

import (
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// notOnlyFinalizers drops Secret updates that only changed finalizers (the
// operator's own credentials-in-use finalizer coming and going): the token
// did not change, so the apps that use it have nothing to retry.
func notOnlyFinalizers() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return slices.Equal(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers())
	}}
}

// specOrRequestChanged lets through the updates that can change the outcome:
// a new generation (spec), new annotations (a retry request), or the start of
// deletion. Status writes, including our own, do not wake the controller.
func specOrRequestChanged() predicate.Predicate {
	return predicate.Or(
		predicate.GenerationChangedPredicate{},
		predicate.AnnotationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
		}},
	)
}
