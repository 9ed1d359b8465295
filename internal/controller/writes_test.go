package controller_test

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// Each write to a SpectrumApp is a write to etcd and an event to every
// watch of SpectrumApps, the manager's own included: at 10,000 apps, the
// manager's CPU to converge is mostly its writes and their events (issue
// 23). A new app takes two: the create record with the finalizer, before
// the create is sent, and the status that reports the answer. Its watch
// shows each of them.
func TestACreatedAppCostsTwoWrites(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	watcher, err := client.NewWithWatch(restConfig, client.Options{Scheme: k8sClient.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watcher.Watch(f.ctx, &v1alpha1.SpectrumAppList{}, client.InNamespace(f.namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	f.create(f.app("twowrites", zoneMain, "example.com"))
	defer f.deleteAndWait("twowrites")

	var writes []*v1alpha1.SpectrumApp
	settled := time.After(30 * time.Second)
	var quiet <-chan time.Time
	for done := false; !done; {
		select {
		case e := <-w.ResultChan():
			app, ok := e.Object.(*v1alpha1.SpectrumApp)
			if !ok || e.Type != watch.Modified {
				continue
			}
			writes = append(writes, app)
			if app.ReadyAt(app.Generation) {
				// Anything written after Ready comes within a moment.
				quiet = time.After(2 * time.Second)
			}
		case <-quiet:
			done = true
		case <-settled:
			t.Fatalf("not Ready within 30 s; %d writes seen", len(writes))
		}
	}
	if len(writes) != 2 {
		for i, app := range writes {
			t.Logf("write %d: finalizers %v, annotations %v, status %+v", i+1, app.Finalizers, app.Annotations, app.Status)
		}
		t.Fatalf("%d writes to the new SpectrumApp until Ready; want 2 (create record with finalizer, then status)", len(writes))
	}
	record := writes[0]
	if record.UnsettledCreate() == nil || !slices.Contains(record.Finalizers, v1alpha1.Finalizer) || record.Status.ApplicationID != "" {
		t.Errorf("first write: finalizers %v, annotations %v, applicationID %q; want the create record and the finalizer, before any ID",
			record.Finalizers, record.Annotations, record.Status.ApplicationID)
	}
	ready := writes[1]
	if ready.Status.ApplicationID == "" || ready.UnsettledCreate() != nil || !ready.ReadyAt(ready.Generation) {
		t.Errorf("second write: applicationID %q, unsettled create %v, conditions %v; want the ID, the record settled, Ready",
			ready.Status.ApplicationID, ready.UnsettledCreate(), ready.Status.Conditions)
	}
	if settledAt := ready.Status.CreateSettled; settledAt == nil || !settledAt.Equal(ready.CreateRecord()) {
		t.Errorf("status.createSettled %v, create record %v: want the record settled by its own time", ready.Status.CreateSettled, ready.CreateRecord())
	}
}
