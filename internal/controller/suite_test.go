package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appwatch"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/events"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// The suite runs the real reconciler in a manager against a real
// kube-apiserver and etcd, with the Spectrum API simulator standing in for
// Cloudflare. No admission webhook is installed here, which also lets tests
// send what admission would have rejected.

const (
	enterpriseToken = "test-enterprise-token-5f1c9a"
	paygToken       = "test-payg-token-7d2e4b"

	zoneMain   = "0123456789abcdef0123456789abcdef" // enterprise, example.com
	zoneDrift  = "1123456789abcdef0123456789abcdef" // enterprise, drift.example
	zonePAYG   = "2123456789abcdef0123456789abcdef" // pay-as-you-go, payg.example
	zoneRotate = "3123456789abcdef0123456789abcdef" // enterprise, rotate.example
	enterprise = "ent-account"
	payg       = "payg-account"

	resyncPeriod = 2 * time.Second
	// rateLimitWindow is the simulator's: short, so that the budget of a
	// token no longer used stops mattering soon (see idleTimeout).
	rateLimitWindow = 2 * time.Second
	// idleTimeout is how long the Connector keeps an unused token's client,
	// by the manager's rule: three resync periods.
	idleTimeout = 3 * resyncPeriod
)

var (
	// appMetrics are the reconciler's metrics, read by the metrics tests.
	appMetrics = controller.NewAppMetrics()
	k8sClient  client.Client
	sim        *spectrumtest.Simulator
	// restConfig reaches the suite's apiserver, for tests that run a
	// manager of their own (fairness_test.go).
	restConfig *rest.Config
	calls      = &callLog{counts: map[string]int{}}
	// reconciler and connector are the manager's, whose per-token state
	// the tests look at.
	reconciler *controller.SpectrumAppReconciler
	connector  *budget.Connector
)

// callLog counts API requests by method, zone and kind (list or one app),
// which the simulator's per-method counters do not tell apart. It can also
// add raw applications to a zone's listings, in shapes the simulator would
// never produce.
type callLog struct {
	mu     sync.Mutex
	counts map[string]int
	extras map[string][]json.RawMessage
	// lastAuthorization is the Authorization header of the last request to
	// each zone's applications.
	lastAuthorization map[string]string
	// sent holds when each request to a zone's applications arrived, by
	// the same key as counts, for tests that measure the waits between them.
	sent map[string][]time.Time
}

func (l *callLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == spectrumtest.APIPrefix+"/zones" {
			l.mu.Lock()
			l.counts["zone lookups"]++
			l.mu.Unlock()
		}
		zone, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, spectrumtest.APIPrefix+"/zones/"), "/spectrum/apps")
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		kind := "list"
		if rest != "" {
			kind = "app"
		}
		l.mu.Lock()
		key := r.Method + " " + zone + " " + kind
		l.counts[key]++
		if l.sent == nil {
			l.sent = map[string][]time.Time{}
		}
		l.sent[key] = append(l.sent[key], time.Now())
		if l.lastAuthorization == nil {
			l.lastAuthorization = map[string]string{}
		}
		l.lastAuthorization[zone] = r.Header.Get("Authorization")
		extras := l.extras[zone]
		l.mu.Unlock()
		if kind != "list" || r.Method != http.MethodGet || len(extras) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		recorded := httptest.NewRecorder()
		next.ServeHTTP(recorded, r)
		var envelope map[string]any
		if recorded.Code != http.StatusOK || json.Unmarshal(recorded.Body.Bytes(), &envelope) != nil {
			w.WriteHeader(recorded.Code)
			_, _ = w.Write(recorded.Body.Bytes())
			return
		}
		result, _ := envelope["result"].([]any)
		for _, extra := range extras {
			result = append(result, extra)
		}
		envelope["result"] = result
		if info, ok := envelope["result_info"].(map[string]any); ok {
			info["count"], info["total_count"], info["total_pages"] = len(result), len(result), 1
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(envelope)
	})
}

// addToListings makes every listing of zone hold raw as well, until the
// test ends.
func (l *callLog) addToListings(t *testing.T, zone string, raw json.RawMessage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.extras == nil {
		l.extras = map[string][]json.RawMessage{}
	}
	l.extras[zone] = append(l.extras[zone], raw)
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.extras, zone)
	})
}

// zoneLookups counts GET /zones requests.
// defaultCredentials is the Secret the suite's manager uses for apps
// without credentialsRef; the tests that use it create it.
var defaultCredentials = client.ObjectKey{Namespace: "spectrum-operator-system", Name: "cloudflare-default"}

// total is every request counted, of any method, zone and kind.
func (l *callLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.counts {
		n += c
	}
	return n
}

// lastToken is the API token of the last request to zone's applications.
func (l *callLog) lastToken(zone string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimPrefix(l.lastAuthorization[zone], "Bearer ")
}

func (l *callLog) zoneLookups() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts["zone lookups"]
}

// count returns the requests with method to zone of kind ("list" or "app").
func (l *callLog) count(method, zone, kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[method+" "+zone+" "+kind]
}

// sentAt returns when each request with method to zone of kind arrived,
// in order.
func (l *callLog) sentAt(method, zone, kind string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sent[method+" "+zone+" "+kind])
}

// writes returns the POST, PUT, PATCH and DELETE requests to zone.
func (l *callLog) writes(zone string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for key, c := range l.counts {
		method, rest, _ := strings.Cut(key, " ")
		if method != http.MethodGet && strings.HasPrefix(rest, zone+" ") {
			n += c
		}
	}
	return n
}

func simulatorConfig() spectrumtest.Config {
	return spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{
			{ID: enterprise, Plan: spectrumtest.PlanEnterprise,
				Entitlements:  spectrumtest.Entitlements{BYOIP: true},
				BYOIPPrefixes: []string{"198.51.100.0/24"}},
			{ID: payg, Plan: spectrumtest.PlanPayAsYouGo},
		},
		Tokens: []spectrumtest.TokenConfig{
			{Token: enterpriseToken, Account: enterprise, IPPrefixesPermission: true},
			{Token: paygToken, Account: payg},
		},
		Zones: []spectrumtest.ZoneConfig{
			{ID: zoneMain, Name: "example.com", Account: enterprise},
			{ID: zoneDrift, Name: "drift.example", Account: enterprise},
			{ID: zonePAYG, Name: "payg.example", Account: payg},
			{ID: zoneRotate, Name: "rotate.example", Account: enterprise},
		},
		RateLimit:             spectrumtest.RateLimitConfig{Window: spectrumtest.Duration{Duration: rateLimitWindow}},
		HostnamesInOtherZones: []string{"taken.example.com"},
	}
}

// ownManagerLabel marks the SpectrumApps of a test that runs a manager of
// its own; the suite's manager does not see them.
const ownManagerLabel = "spectrum-operator.test/own-manager"

var notOwnManagerApps = func() labels.Selector {
	s, err := labels.Parse("!" + ownManagerLabel)
	if err != nil {
		panic(err)
	}
	return s
}()

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))
	env, err := testenv.New(testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	sim, err = spectrumtest.New(simulatorConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	server := httptest.NewServer(calls.wrap(sim))
	defer server.Close()

	restConfig = cfg
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// SpectrumApps are watched as the manager watches them, in one pass.
	apps, err := appwatch.New(cfg, httpClient, testenv.Scheme(), notOwnManagerApps)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  testenv.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Apps labelled for a test's own manager are that manager's alone.
		Cache: cache.Options{DefaultTransform: controller.CacheTransform(), NewInformer: apps.NewInformer,
			ByObject: map[client.Object]cache.ByObject{
				&v1alpha1.SpectrumApp{}: {Label: notOwnManagerApps},
			}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	recorder := events.New(mgr.GetClient(), mgr.GetScheme(), "spectrum-operator", ctrl.Log.WithName("events"))
	if err := mgr.Add(recorder); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	connector = budget.NewConnector(budget.ConnectorOptions{
		BaseURL:           server.URL + spectrumtest.APIPrefix,
		RequestsPerSecond: 500,
		Burst:             100,
		Timeout:           2 * time.Second,
		IdleTimeout:       idleTimeout,
	})
	reconciler = &controller.SpectrumAppReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                recorder,
		Connector:               connector,
		ResyncPeriod:            resyncPeriod,
		MaxConcurrentReconciles: 4,
		Metrics:                 appMetrics,
		DefaultCredentials:      v1alpha1.SecretKey{NamespacedName: defaultCredentials},
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()

	// Tests read straight from the apiserver, not the manager's cache, so
	// they see their own writes at once.
	k8sClient, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}
	return m.Run()
}

func zapLevel() int8 {
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		return -2
	}
	return 10 // silent: errors are asserted through status and events.
}

// fixture is one test's namespace with its credentials Secret.
type fixture struct {
	t         *testing.T
	ctx       context.Context
	namespace string
}

func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ctrl-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	f := &fixture{t: t, ctx: ctx, namespace: ns.Name}
	if token != "" {
		f.createSecret("cloudflare", token)
	}
	return f
}

func (f *fixture) createSecret(name, token string) {
	f.t.Helper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}, Name: name, Namespace: f.namespace},
		Data:       map[string][]byte{v1alpha1.DefaultCredentialsKey: []byte(token)},
	}
	if err := k8sClient.Create(f.ctx, secret); err != nil {
		f.t.Fatalf("creating Secret: %v", err)
	}
}

// app returns a valid TCP app in zone with a unique hostname.
func (f *fixture) app(name, zoneID, zoneName string) *v1alpha1.SpectrumApp {
	return &v1alpha1.SpectrumApp{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.namespace},
		Spec: v1alpha1.SpectrumAppSpec{
			ZoneID:         zoneID,
			CredentialsRef: &v1alpha1.SecretKeyReference{Name: "cloudflare"},
			Protocol:       "tcp/22",
			DNS:            v1alpha1.DNS{Type: "CNAME", Name: name + "." + f.namespace + "." + zoneName},
			OriginDirect:   []string{"tcp://192.0.2.10:22"},
		},
	}
}

func (f *fixture) create(app *v1alpha1.SpectrumApp) {
	f.t.Helper()
	if err := k8sClient.Create(f.ctx, app); err != nil {
		f.t.Fatalf("creating SpectrumApp: %v", err)
	}
}

func (f *fixture) get(name string) *v1alpha1.SpectrumApp {
	f.t.Helper()
	app := &v1alpha1.SpectrumApp{}
	if err := k8sClient.Get(f.ctx, types.NamespacedName{Namespace: f.namespace, Name: name}, app); err != nil {
		f.t.Fatalf("getting SpectrumApp %s: %v", name, err)
	}
	return app
}

// update changes the named SpectrumApp as a user would, reading it again
// when the operator wrote it meanwhile.
func (f *fixture) update(name string, mutate func(*v1alpha1.SpectrumApp)) *v1alpha1.SpectrumApp {
	f.t.Helper()
	var app *v1alpha1.SpectrumApp
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		app = f.get(name)
		mutate(app)
		return k8sClient.Update(f.ctx, app)
	})
	if err != nil {
		f.t.Fatalf("updating %s: %v", name, err)
	}
	return app
}

// eventually waits for cond; see testenv.Eventually.
var eventually = testenv.Eventually

// waitForCondition waits until the app's condition has status and reason and
// describes the current generation.
func (f *fixture) waitForCondition(name, conditionType string, status metav1.ConditionStatus, reason string) *v1alpha1.SpectrumApp {
	f.t.Helper()
	var app *v1alpha1.SpectrumApp
	eventually(f.t, 20*time.Second, func() string {
		app = f.get(name)
		c := meta.FindStatusCondition(app.Status.Conditions, conditionType)
		switch {
		case c == nil:
			return fmt.Sprintf("%s has no %s condition; conditions %v", name, conditionType, app.Status.Conditions)
		case c.Status != status || (reason != "" && c.Reason != reason):
			return fmt.Sprintf("%s is %s=%s (%s: %s), want %s (%s)", name, conditionType, c.Status, c.Reason, c.Message, status, reason)
		case c.ObservedGeneration != app.Generation:
			return fmt.Sprintf("%s condition describes generation %d, object is at %d", name, c.ObservedGeneration, app.Generation)
		}
		return ""
	})
	return app
}

// events returns the events about the named object, oldest first.
func (f *fixture) events(name string) []eventsv1.Event {
	f.t.Helper()
	var list eventsv1.EventList
	if err := k8sClient.List(f.ctx, &list, client.InNamespace(f.namespace)); err != nil {
		f.t.Fatalf("listing events: %v", err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// waitForEvent waits for an event with type and reason (any when empty)
// about name.
func (f *fixture) waitForEvent(name, eventType, reason string) eventsv1.Event {
	f.t.Helper()
	var found eventsv1.Event
	eventually(f.t, 10*time.Second, func() string {
		var seen []string
		for _, e := range f.events(name) {
			if e.Type == eventType && (reason == "" || e.Reason == reason) {
				found = e
				return ""
			}
			seen = append(seen, e.Type+"/"+e.Reason)
		}
		return fmt.Sprintf("no %s event %s about %s; saw %v", eventType, reason, name, seen)
	})
	return found
}

// simApps returns the simulator's apps in zone with that hostname.
func simApps(zoneID, hostname string) []spectrumtest.App {
	var out []spectrumtest.App
	for _, stored := range sim.Apps() {
		if stored.ZoneID == zoneID && strings.EqualFold(stored.App.DNS.Name, hostname) {
			out = append(out, stored.App)
		}
	}
	return out
}

// waitForDeletion waits until the SpectrumApp is gone from the apiserver.
func (f *fixture) waitForDeletion(name string) {
	f.t.Helper()
	eventually(f.t, 20*time.Second, func() string {
		app := &v1alpha1.SpectrumApp{}
		err := k8sClient.Get(f.ctx, types.NamespacedName{Namespace: f.namespace, Name: name}, app)
		if apierrors.IsNotFound(err) {
			return ""
		}
		return fmt.Sprintf("%s still exists (finalizers %v, conditions %v)", name, app.Finalizers, app.Status.Conditions)
	})
}

// deleteAndWait deletes the SpectrumApp and waits until it is gone.
func (f *fixture) deleteAndWait(name string) {
	f.t.Helper()
	app := &v1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{Namespace: f.namespace, Name: name}}
	if err := k8sClient.Delete(f.ctx, app); err != nil && !apierrors.IsNotFound(err) {
		f.t.Fatalf("deleting %s: %v", name, err)
	}
	f.waitForDeletion(name)
}
