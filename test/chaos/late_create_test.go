package chaos

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// lateCreate holds the first create of a hostname until the client gives up
// on it (or, with kill, kills the manager as it arrives), lets the zone be
// listed once more without it, and only then applies it: Cloudflare
// finishing a request after the client stopped waiting. A client that
// believes that listing creates a second application. (It is applied half
// a request timeout after the client gave up at the latest: the operator
// waits one create timeout, the request timeout capped at 10 s, for such
// creates, and cannot tell a create that lands later still from none.)
type lateCreate struct {
	zone, hostname string
	kill           bool

	mu       sync.Mutex
	held     bool
	gaveUp   time.Time
	listed   chan struct{}
	applied  chan struct{}
	listOnce sync.Once
}

func holdCreate(t *testing.T, zone, hostname string, kill bool) *lateCreate {
	l := &lateCreate{zone: zone, hostname: hostname, kill: kill, listed: make(chan struct{}), applied: make(chan struct{})}
	restore := h.WrapSimulator(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			path := "/zones/" + l.zone + "/spectrum/apps"
			switch {
			case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, path):
				body, _ := io.ReadAll(r.Body)
				if l.hold(body) {
					l.apply(next, w, r, body)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, path):
				started := time.Now()
				next.ServeHTTP(w, r)
				l.mu.Lock()
				after := !l.gaveUp.IsZero() && started.After(l.gaveUp)
				l.mu.Unlock()
				if after {
					l.listOnce.Do(func() { close(l.listed) })
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	t.Cleanup(restore)
	return l
}

// hold reports whether this is the create to hold.
func (l *lateCreate) hold(body []byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held || !bytes.Contains(body, []byte(`"`+l.hostname+`"`)) {
		return false
	}
	l.held = true
	return true
}

func (l *lateCreate) apply(next http.Handler, w http.ResponseWriter, r *http.Request, body []byte) {
	if l.kill {
		_ = h.Manager.Kill()
	}
	// The body is read, so the server notices when the client goes.
	<-r.Context().Done()
	l.mu.Lock()
	l.gaveUp = time.Now()
	l.mu.Unlock()
	// Applied after that listing, or after half the manager's request
	// timeout at the latest: within what the operator waits for (a create
	// landing later than that is beyond what it can tell from no create).
	select {
	case <-l.listed:
	case <-time.After(h.Manager.Options().RequestTimeout / 2):
	}
	late := r.Clone(context.Background())
	late.Body = io.NopCloser(bytes.NewReader(body))
	next.ServeHTTP(w, late)
	close(l.applied)
}

// A create Cloudflare applies after the client gave up on it, and after a
// listing that does not show it yet, is adopted, not duplicated: by the
// same manager, and by the next one when the first was killed meanwhile.
func TestCreateAppliedAfterTheClientGaveUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill bool
	}{{"same manager", false}, {"after a restart", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "late-create-")
			f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
			app := f.app("app", opsZone, "ops.example")
			late := holdCreate(t, opsZone, app.Spec.DNS.Name, tc.kill)
			f.create(app)
			if tc.kill {
				eventually(t, 30*time.Second, func() string {
					if h.Manager.Running() {
						return "the create has not arrived yet"
					}
					return ""
				})
				startManager(t)
			}
			select {
			case <-late.applied:
			case <-time.After(time.Minute):
				t.Fatal("the held create was never applied")
			}
			var ready *v1alpha1.SpectrumApp
			eventually(t, 30*time.Second, func() string {
				ready = f.get("app")
				if n := len(appsWithHostname(app.Spec.DNS.Name)); n != 1 {
					t.Fatalf("the simulator holds %d applications named %s, want 1", n, app.Spec.DNS.Name)
				}
				return conditionProblem(ready, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
			})
			expectOneApp(t, ready, opsAccount)
			f.deleteAll()
		})
	}
}
