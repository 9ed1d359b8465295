package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
	return arm(t, method, false)
}

// armKillBeforeApply SIGKILLs the manager the moment a request of method
// arrives, and drops it unapplied and unanswered: for a create, the
// operator dies after recording that it is about to create the
// application and before Cloudflare saw the create.
func armKillBeforeApply(t *testing.T, method string) *killOnAnswer {
	t.Helper()
	return arm(t, method, true)
}

func arm(t *testing.T, method string, beforeApply bool) *killOnAnswer {
	t.Helper()
	k := &killOnAnswer{method: method, fired: make(chan struct{})}
	k.armed.Store(true)
	k.restore = h.WrapSimulator(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			matches := r.Method == k.method && strings.HasSuffix(r.URL.Path, "/spectrum/apps") == (k.method == http.MethodPost) &&
				strings.Contains(r.URL.Path, "/spectrum/apps")
			if matches && beforeApply && k.armed.CompareAndSwap(true, false) {
				k.path.Store(r.URL.Path)
				_ = h.Manager.Kill()
				k.once.Do(k.restore)
				close(k.fired)
				panic(http.ErrAbortHandler)
			}
			if matches && !beforeApply && k.armed.Load() {
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

// The manager dies after writing its create record and before Cloudflare
// answered the POST. The next one finds the record and waits until such a
// create would have landed before it believes the application missing.
//   - The POST never lands (dropped unapplied): it finds none, and creates
//     the application once.
//   - The POST lands after the successor's first listing was answered
//     without it: it adopts that application. A successor that ignored the
//     record would have created a second one on that listing.
func TestKillBetweenTheCreateRecordAndThePOST(t *testing.T) {
	t.Run("the POST never lands", func(t *testing.T) {
		f := newFixture(t, "kill-before-post-")
		f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
		kill := armKillBeforeApply(t, http.MethodPost)
		f.create(f.app("app", opsZone, "ops.example"))
		if !kill.wait(30 * time.Second) {
			t.Fatal("no create reached the simulator")
		}
		expectRecordWithoutID(t, f.get("app"))
		startManager(t)
		ready := waitReadyAfterRestart(t, f)
		expectOneApp(t, ready, opsAccount)
		if ready.UnsettledCreate() != nil || ready.Status.Adopted {
			t.Errorf("status %+v: want the application created, and the record cleared", ready.Status)
		}
		f.deleteAll()
	})
	t.Run("the POST lands after the successor looked", func(t *testing.T) {
		f := newFixture(t, "kill-post-lands-")
		f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
		app := f.app("app", opsZone, "ops.example")
		landing := killAndLandLater(t, opsZone, app.Spec.DNS.Name)
		f.create(app)
		select {
		case <-landing.killed:
		case <-time.After(30 * time.Second):
			t.Fatal("no create reached the simulator")
		}
		expectRecordWithoutID(t, f.get("app"))
		startManager(t)
		select {
		case <-landing.landed:
		case <-time.After(time.Minute):
			t.Fatal("the held create was never applied")
		}
		if !landing.afterLook.Load() {
			t.Fatalf("the successor did not list the zone within %s of the kill, so the create landed before it looked: "+
				"this run could not tell a successor that honours the record from one that ignores it", landing.landBy)
		}
		ready := waitReadyAfterRestart(t, f)
		expectOneApp(t, ready, opsAccount)
		if !ready.Status.Adopted || ready.UnsettledCreate() != nil {
			t.Errorf("status %+v: want the late application adopted, and the record cleared", ready.Status)
		}
		if n := landing.creates.Load(); n != 0 {
			t.Errorf("the successor sent %d creates for %s; the record should have made it wait for the one in flight", n, app.Spec.DNS.Name)
		}
		f.deleteAll()
	})
}

func expectRecordWithoutID(t *testing.T, app *v1alpha1.SpectrumApp) {
	t.Helper()
	if app.UnsettledCreate() == nil || app.Status.ApplicationID != "" {
		t.Fatalf("status %+v; the create record must be written before the POST is sent", app.Status)
	}
}

// waitReadyAfterRestart waits for the app to be Ready and Synced, allowing
// for the wait a create record imposes (send window, request, settle).
func waitReadyAfterRestart(t *testing.T, f *fixture) *v1alpha1.SpectrumApp {
	t.Helper()
	var ready *v1alpha1.SpectrumApp
	eventually(t, 30*time.Second+4*h.Manager.Options().RequestTimeout, func() string {
		ready = f.get("app")
		return conditionProblem(ready, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	})
	return ready
}

// lateLanding is a create that Cloudflare applies late: the manager is
// SIGKILLed the moment its first create of hostname arrives, and the create
// is held, then applied once the zone has been listed after the kill (by
// the successor) and that listing answered without it, or at landBy after
// the kill at the latest. landBy is two request timeouts: the create record
// promises a create lands within the send window, the request and a settle
// time (three request timeouts with the suite's 3 s) after it is recorded,
// so the late create stays within what the operator waits for.
type lateLanding struct {
	landBy time.Duration
	killed chan struct{}
	looked chan struct{}
	landed chan struct{}
	// afterLook reports whether the create was applied after a listing
	// that followed the kill.
	afterLook atomic.Bool
	// creates counts the creates of hostname after the held one.
	creates atomic.Int32

	held     atomic.Bool
	killedAt atomic.Int64
	lookOnce sync.Once
}

func killAndLandLater(t *testing.T, zone, hostname string) *lateLanding {
	t.Helper()
	l := &lateLanding{
		landBy: 2 * h.Manager.Options().RequestTimeout,
		killed: make(chan struct{}), looked: make(chan struct{}), landed: make(chan struct{}),
	}
	apps := "/zones/" + zone + "/spectrum/apps"
	restore := h.WrapSimulator(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, apps):
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				if !bytes.Contains(body, []byte(`"`+hostname+`"`)) {
					break
				}
				if l.held.CompareAndSwap(false, true) {
					l.land(next, r, body)
					return
				}
				l.creates.Add(1)
			case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, apps):
				started := time.Now().UnixNano()
				next.ServeHTTP(w, r)
				if killedAt := l.killedAt.Load(); killedAt != 0 && started > killedAt {
					l.lookOnce.Do(func() { close(l.looked) })
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	t.Cleanup(restore)
	return l
}

// land kills the manager, waits for the successor's look (or landBy), and
// applies the create; its answer goes to a client that is gone.
func (l *lateLanding) land(next http.Handler, r *http.Request, body []byte) {
	_ = h.Manager.Kill()
	l.killedAt.Store(time.Now().UnixNano())
	close(l.killed)
	select {
	case <-l.looked:
		l.afterLook.Store(true)
	case <-time.After(l.landBy):
	}
	late := r.Clone(context.Background())
	late.Body = io.NopCloser(bytes.NewReader(body))
	next.ServeHTTP(httptest.NewRecorder(), late)
	close(l.landed)
}

// The manager dies after Cloudflare applied the POST and before the ID was
// recorded: the record tells the next one to look, and it adopts the
// application instead of creating a second; deleting the SpectrumApp in
// that state deletes it too.
func TestKillBetweenThePOSTAndTheRecordedID(t *testing.T) {
	for _, deleteFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("delete before restart %v", deleteFirst), func(t *testing.T) {
			f := newFixture(t, "kill-after-post-")
			f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
			kill := armKill(t, http.MethodPost)
			app := f.app("app", opsZone, "ops.example")
			f.create(app)
			if !kill.wait(30 * time.Second) {
				t.Fatal("no create reached the simulator")
			}
			if got := f.get("app"); got.UnsettledCreate() == nil || got.Status.ApplicationID != "" {
				t.Fatalf("status %+v; want the create record and no ID", got.Status)
			}
			if n := len(appsWithHostname(app.Spec.DNS.Name)); n != 1 {
				t.Fatalf("the simulator holds %d applications, want the one created", n)
			}
			if deleteFirst {
				if err := h.Client.Delete(f.ctx, f.get("app")); err != nil {
					t.Fatal(err)
				}
				startManager(t)
				f.deleteAll()
				return
			}
			startManager(t)
			var ready *v1alpha1.SpectrumApp
			eventually(t, 30*time.Second, func() string {
				ready = f.get("app")
				return conditionProblem(ready, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
			})
			expectOneApp(t, ready, opsAccount)
			if !ready.Status.Adopted || ready.UnsettledCreate() != nil {
				t.Errorf("status %+v: want the application adopted and the record cleared", ready.Status)
			}
			f.deleteAll()
		})
	}
}
