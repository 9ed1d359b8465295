package chaos

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// The kube-apiserver goes away for a while (an upgrade, a crash) while the
// operator has work to do: the manager process survives it, and afterwards
// every app converges, drift that happened meanwhile included.
func TestManagerSurvivesAPIServerRestart(t *testing.T) {
	f := newFixture(t, "apiserver-restart-")
	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
	const before = 4
	for i := range before {
		f.create(f.app(fmt.Sprintf("app-%d", i), opsZone, "ops.example"))
	}
	for i := range before {
		f.waitReady(fmt.Sprintf("app-%d", i))
	}
	pid := h.Manager.PID()

	// Someone deletes an app at Cloudflare while the apiserver is down:
	// the operator must notice and recreate it once it can record that.
	gone := f.get("app-0")
	if err := h.Sim.DeleteApp(opsZone, gone.Status.ApplicationID); err != nil {
		t.Fatal(err)
	}
	if err := h.RestartAPIServer(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if h.Manager.PID() != pid {
		t.Fatalf("the manager process changed (pid %d, was %d): it did not survive the apiserver restart", h.Manager.PID(), pid)
	}

	// New work after the restart: a new app and a spec change.
	f.create(f.app("app-new", opsZone, "ops.example"))
	f.update("app-1", func(app *v1alpha1.SpectrumApp) {
		app.Spec.OriginDirect = []string{"tcp://192.0.2.99:22"}
	})

	var recreated *v1alpha1.SpectrumApp
	eventually(t, 3*resyncPeriod()+30*time.Second, func() string {
		recreated = f.get("app-0")
		if recreated.Status.ApplicationID == gone.Status.ApplicationID {
			return "app-0 still records the application deleted at Cloudflare"
		}
		return conditionProblem(recreated, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	})
	expectOneApp(t, recreated, opsAccount)
	updated := f.waitReady("app-1")
	expectOneApp(t, updated, opsAccount)
	if stored := appsWithHostname(updated.Spec.DNS.Name)[0]; len(stored.App.OriginDirect) != 1 || stored.App.OriginDirect[0] != "tcp://192.0.2.99:22" {
		t.Errorf("app-1 at Cloudflare has origin %v, want the updated one", stored.App.OriginDirect)
	}
	for _, name := range []string{"app-2", "app-3", "app-new"} {
		expectOneApp(t, f.waitReady(name), opsAccount)
	}
	if h.Manager.PID() != pid {
		t.Fatalf("the manager restarted (pid %d, was %d)", h.Manager.PID(), pid)
	}
	f.deleteAll()
}

// Cloudflare is unreachable for a while (connections reset, then refused)
// while apps are being created: they converge afterwards, once each.
func TestConvergesAfterSimulatorOutage(t *testing.T) {
	f := newFixture(t, "sim-outage-")
	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
	f.create(f.app("before", opsZone, "ops.example"))
	f.waitReady("before")

	outage := make(chan error, 1)
	go func() { outage <- h.SimulatorOutage(4 * time.Second) }()
	const during = 5
	for i := range during {
		f.create(f.app(fmt.Sprintf("during-%d", i), opsZone, "ops.example"))
	}
	if err := <-outage; err != nil {
		t.Fatal(err)
	}
	for i := range during {
		expectOneApp(t, f.waitReady(fmt.Sprintf("during-%d", i)), opsAccount)
	}
	expectOneApp(t, f.waitReady("before"), opsAccount)
	f.deleteAll()
}
