package controller

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// An app whose turn in its token's line came is reconciled before the apps
// queued before it: a burst of new apps, each waiting for its first
// reconcile, otherwise held it back while its slot of the budget waited,
// and with it the token's line (the bench's convergence sent 0 to 4
// requests a second for two or three seconds, at 50 per second).
func TestAnAppWhoseTurnCameGoesAheadOfTheQueue(t *testing.T) {
	queue := priorityqueue.New[reconcile.Request]("turn-came-test")
	defer queue.ShutDown()
	for i := range 50 {
		queue.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("new-%d", i)}})
	}
	woken := &v1alpha1.SpectrumApp{}
	woken.Namespace, woken.Name = "ns", "turn-came"
	enqueueTurnCame().Generic(context.Background(), event.GenericEvent{Object: woken}, queue)

	first, _ := queue.Get()
	defer queue.Done(first)
	if want := (types.NamespacedName{Namespace: "ns", Name: "turn-came"}); first.NamespacedName != want {
		t.Errorf("first reconciled %v, want %v, whose turn came, ahead of the 50 new apps", first.NamespacedName, want)
	}
}
