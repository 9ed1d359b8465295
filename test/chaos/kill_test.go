package chaos

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// killOnAnswer SIGKILLs the manager the moment the simulator has applied a
// request of method and is about to answer it with success: the operator
// dies between Cloudflare's change and its own record of it, the window
// that duplicates and orphans come from, hit on purpose rather than by
// luck.
type killOnAnswer struct {
	method  string
	armed   atomic.Bool
	fired   chan struct{}
	restore func()
	once    sync.Once
	// path is the request that was answered last.
	path atomic.Value
}

// armKill wraps the simulator until the kill fires or the test ends.
func armKill(t *testing.T, method string) *killOnAnswer {
	t.Helper()
	k := &killOnAnswer{method: method, fired: make(chan struct{})}
	k.armed.Store(true)
	k.restore = h.WrapSimulator(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == k.method && strings.Contains(r.URL.Path, "/spectrum/apps") && k.armed.Load() {
				w = &killBeforeAnswer{ResponseWriter: w, k: k, path: r.URL.Path}
			}
			next.ServeHTTP(w, r)
		})
	})
	t.Cleanup(k.disarm)
	return k
}

func (k *killOnAnswer) disarm() {
	k.armed.Store(false)
	k.once.Do(k.restore)
}

// wait reports whether the kill fired within timeout.
func (k *killOnAnswer) wait(timeout time.Duration) bool {
	select {
	case <-k.fired:
		return true
	case <-time.After(timeout):
		k.disarm()
		return false
	}
}

type killBeforeAnswer struct {
	http.ResponseWriter
	k    *killOnAnswer
	path string
}

func (w *killBeforeAnswer) WriteHeader(status int) {
	if status >= 200 && status <= 299 && w.k.armed.CompareAndSwap(true, false) {
		w.k.path.Store(w.path)
		_ = h.Manager.Kill()
		w.k.once.Do(w.k.restore)
		close(w.k.fired)
	}
	w.ResponseWriter.WriteHeader(status)
}

// Hijack lets the simulator's connection faults through.
func (w *killBeforeAnswer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

func startManager(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Manager.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// crashDuringRecreate makes a Ready app whose Cloudflare application is
// then deleted out of band, and kills the manager the moment its
// replacement is created: status still records the deleted application.
// It returns the fixture, the app and the deleted application's ID.
func crashDuringRecreate(t *testing.T, prefix string) (*fixture, *v1alpha1.SpectrumApp, string) {
	t.Helper()
	f := newFixture(t, prefix)
	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
	f.create(f.app("app", opsZone, "ops.example"))
	ready := f.waitReady("app")
	deleted := ready.Status.ApplicationID

	kill := armKill(t, http.MethodPost)
	if err := h.Sim.DeleteApp(opsZone, deleted); err != nil {
		t.Fatal(err)
	}
	// The next resync finds the app missing and creates it again.
	if !kill.wait(3*resyncPeriod() + 10*time.Second) {
		t.Fatal("the manager did not recreate the app deleted at Cloudflare")
	}
	app := f.get("app")
	if app.Status.ApplicationID != deleted {
		t.Fatalf("status records %q; the kill should have left the deleted %q", app.Status.ApplicationID, deleted)
	}
	if n := len(appsWithHostname(app.Spec.DNS.Name)); n != 1 {
		t.Fatalf("after the recreate the simulator holds %d apps, want 1", n)
	}
	return f, app, deleted
}

// Regression: a recreate whose new ID was never recorded was repeated on
// every later attempt, each making one more application, because the stale
// ID led straight to "not found, create".
func TestRecreateAfterCrashIsNotRepeated(t *testing.T) {
	f, _, deleted := crashDuringRecreate(t, "crash-recreate-")
	startManager(t)
	var ready *v1alpha1.SpectrumApp
	eventually(t, 30*time.Second, func() string {
		ready = f.get("app")
		if ready.Status.ApplicationID == deleted {
			return "status still records the deleted application"
		}
		return conditionProblem(ready, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	})
	expectOneApp(t, ready, opsAccount)
	if !ready.Status.Adopted {
		t.Errorf("the replacement was not adopted: %+v", ready.Status)
	}
	f.deleteAll()
}

// Regression: deleting such an app deleted only the stale ID (already
// gone) and released the finalizer, orphaning the replacement.
func TestDeleteAfterCrashedRecreateLeavesNoOrphan(t *testing.T) {
	f, app, _ := crashDuringRecreate(t, "crash-delete-")
	if err := h.Client.Delete(f.ctx, app); err != nil {
		t.Fatal(err)
	}
	startManager(t)
	f.deleteAll()
}
