package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
	"github.com/cloudflare-operator/spectrum-operator/test/harness"
)

// Every test shares one harness (control plane, simulator, manager process)
// and runs alone: the chaos test kills the manager and the restart tests
// stop the apiserver, which would disturb a test running beside them. Each
// test has its own namespace and its own zones.

const (
	chaosAccount   = "chaos-account"
	tenantAAccount = "tenant-a-account"
	tenantBAccount = "tenant-b-account"
	opsAccount     = "ops-account"

	// Tokens are distinctive, so finding one anywhere is a leak, never a
	// coincidence.
	chaosToken   = "tok-chaos-6c1f0e2a9d834b77a5"
	tenantAToken = "tok-tenant-a-0b7e4d19c2f5a866"
	tenantBToken = "tok-tenant-b-e93a5c07d1b4f228"
	opsToken     = "tok-ops-4d2b8f61a0c9e3755c"
	// unknownToken is not a token Cloudflare knows.
	unknownToken = "tok-unknown-7a3e91c5b0d2f648"

	tenantAZone = "a0000000000000000000000000000001"
	tenantBZone = "b0000000000000000000000000000002"
	opsZone     = "0e000000000000000000000000000003"

	secretName = "cloudflare"
)

// chaosZones are the chaos test's zones, and their names.
var chaosZones = []struct{ id, name string }{
	{chaosZonePrefix + "000", "c0.example"},
	{chaosZonePrefix + "001", "c1.example"},
	{chaosZonePrefix + "002", "c2.example"},
	{chaosZonePrefix + "003", "c3.example"},
}

// chaosZonePrefix starts every chaos zone's ID, so faults can aim at them
// alone.
const chaosZonePrefix = "c0000000000000000000000000000"

// allTokens are every token the tests hand the operator, for the leak check.
var allTokens = []string{chaosToken, tenantAToken, tenantBToken, opsToken, unknownToken}

var h *harness.Harness

func simulatorConfig() spectrumtest.Config {
	cfg := spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{
			{ID: chaosAccount, Plan: spectrumtest.PlanEnterprise},
			{ID: tenantAAccount, Plan: spectrumtest.PlanEnterprise},
			{ID: tenantBAccount, Plan: spectrumtest.PlanEnterprise},
			{ID: opsAccount, Plan: spectrumtest.PlanEnterprise},
		},
		Tokens: []spectrumtest.TokenConfig{
			{Token: chaosToken, Account: chaosAccount},
			{Token: tenantAToken, Account: tenantAAccount},
			{Token: tenantBToken, Account: tenantBAccount},
			{Token: opsToken, Account: opsAccount},
		},
		Zones: []spectrumtest.ZoneConfig{
			{ID: tenantAZone, Name: "tenant-a.example", Account: tenantAAccount},
			{ID: tenantBZone, Name: "tenant-b.example", Account: tenantBAccount},
			{ID: opsZone, Name: "ops.example", Account: opsAccount},
		},
		// The default reported budget (1200 per 300s) would make the
		// client pace itself near the real API's limit; these tests are
		// about faults, not about the budget.
		RateLimit: spectrumtest.RateLimitConfig{Limit: 10_000_000, Window: spectrumtest.Duration{Duration: 300 * time.Second}},
	}
	for _, z := range chaosZones {
		cfg.Zones = append(cfg.Zones, spectrumtest.ZoneConfig{ID: z.id, Name: z.name, Account: chaosAccount})
	}
	return cfg
}

func TestMain(m *testing.M) {
	code := run(m)
	harness.RemoveBuild()
	os.Exit(code)
}

func run(m *testing.M) int {
	flag.Parse()
	// The test clients' own logs (such as the apiserver's warning about a
	// pruned field) are not what these tests look at.
	ctrllog.SetLogger(logr.Discard())
	ctx := context.Background()
	logf := func(format string, args ...any) {
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		}
	}
	var err error
	h, err = harness.Start(ctx, harness.Options{
		Simulator: simulatorConfig(),
		Manager: harness.ManagerOptions{
			ResyncPeriod:            envDuration("CHAOS_RESYNC", 5*time.Second),
			RequestsPerSecond:       500,
			Burst:                   100,
			RequestTimeout:          3 * time.Second,
			MaxConcurrentReconciles: 8,
			// Debug logs put the most text through the leak check.
			LogLevel: "debug",
		},
		Logf: logf,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting the harness:", err)
		return 1
	}
	defer func() { _ = h.Stop() }()

	code := m.Run()
	if code != 0 && os.Getenv("CHAOS_KEEP_LOG") != "" {
		// Stop removes the harness directory; keep the manager's log.
		if data, err := h.Manager.Log(); err == nil {
			_ = os.WriteFile(os.Getenv("CHAOS_KEEP_LOG"), data, 0o600)
		}
	}
	// The token-leak check covers every test that ran: the manager's log
	// over all its runs, every Event and every SpectrumApp's status.
	found, err := h.FindSecrets(ctx, allTokens...)
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "FAIL: token-leak check:", err)
		return 1
	case len(found) > 0:
		fmt.Fprintf(os.Stderr, "FAIL: token-leak check: an API token appears in %d places:\n  %s\n", len(found), strings.Join(found, "\n  "))
		return 1
	}
	logf("token-leak check: %d tokens, 0 occurrences in the manager log, events and SpectrumApp statuses", len(allTokens))
	return code
}

// resyncPeriod is the manager's --resync-period.
func resyncPeriod() time.Duration { return h.Manager.Options().ResyncPeriod }

func envInt(name string, fallback int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return fallback
}

func envDuration(name string, fallback time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return fallback
}

// fixture is one test's namespace.
type fixture struct {
	t         *testing.T
	ctx       context.Context
	namespace string
	// hostnames are those the test gave its SpectrumApps, taken as it
	// wrote them: the apps themselves may be gone by the time deleteAll
	// looks (a test deletes one, then restarts the manager, which releases
	// it), and the orphan check must still look at their hostnames.
	hostnames []string
}

// remember keeps hostname for deleteAll's orphan check.
func (f *fixture) remember(hostname string) {
	if !slices.Contains(f.hostnames, hostname) {
		f.hostnames = append(f.hostnames, hostname)
	}
}

func newFixture(t *testing.T, prefix string) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns, err := h.Namespace(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	// A test that failed with the manager killed must not take the next
	// tests down with it.
	t.Cleanup(func() {
		if !h.Manager.Running() {
			startManager(t)
		}
	})
	return &fixture{t: t, ctx: ctx, namespace: ns}
}

// secret creates (or replaces the data of) a Secret with data.
func (f *fixture) secret(name string, data map[string]string) {
	f.t.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.namespace, Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}}}
	secret.StringData = data
	err := h.Client.Create(f.ctx, secret)
	if apierrors.IsAlreadyExists(err) {
		existing := &corev1.Secret{}
		if err = h.Client.Get(f.ctx, types.NamespacedName{Namespace: f.namespace, Name: name}, existing); err == nil {
			existing.Data = nil
			existing.StringData = data
			err = h.Client.Update(f.ctx, existing)
		}
	}
	if err != nil {
		f.t.Fatalf("writing Secret %s: %v", name, err)
	}
}

// app returns a valid TCP app in the zone with a hostname unique to the
// namespace.
func (f *fixture) app(name, zoneID, zoneName string) *v1alpha1.SpectrumApp {
	return &v1alpha1.SpectrumApp{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.namespace},
		Spec: v1alpha1.SpectrumAppSpec{
			ZoneID:         zoneID,
			CredentialsRef: &v1alpha1.SecretKeyReference{Name: secretName},
			Protocol:       "tcp/22",
			DNS:            v1alpha1.DNS{Type: "CNAME", Name: name + "." + f.namespace + "." + zoneName},
			OriginDirect:   []string{"tcp://192.0.2.10:22"},
		},
	}
}

func (f *fixture) create(app *v1alpha1.SpectrumApp) {
	f.t.Helper()
	f.remember(app.Spec.DNS.Name)
	if err := h.Client.Create(f.ctx, app); err != nil {
		f.t.Fatalf("creating SpectrumApp %s: %v", app.Name, err)
	}
}

func (f *fixture) get(name string) *v1alpha1.SpectrumApp {
	f.t.Helper()
	app := &v1alpha1.SpectrumApp{}
	if err := h.Client.Get(f.ctx, types.NamespacedName{Namespace: f.namespace, Name: name}, app); err != nil {
		f.t.Fatalf("getting SpectrumApp %s: %v", name, err)
	}
	return app
}

// update applies mutate to the latest version of the app, retrying on
// conflicts with the operator's own writes.
func (f *fixture) update(name string, mutate func(*v1alpha1.SpectrumApp)) {
	f.t.Helper()
	eventually(f.t, 10*time.Second, func() string {
		app := f.get(name)
		mutate(app)
		f.remember(app.Spec.DNS.Name)
		if err := h.Client.Update(f.ctx, app); err != nil {
			return fmt.Sprintf("updating %s: %v", name, err)
		}
		return ""
	})
}

// requestReconcile sets the reconcile-requested-at annotation to a new
// value, as a person asking for a retry would, and returns the value.
func (f *fixture) requestReconcile(name string) string {
	f.t.Helper()
	value := strconv.FormatInt(time.Now().UnixNano(), 10)
	f.update(name, func(app *v1alpha1.SpectrumApp) {
		if app.Annotations == nil {
			app.Annotations = map[string]string{}
		}
		app.Annotations[v1alpha1.ReconcileRequestedAtAnnotation] = value
	})
	return value
}

// eventually and consistently are testenv's, polling less often: the
// suite watches up to thousands of objects.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	testenv.Eventually(t, timeout, cond, testenv.Interval(200*time.Millisecond))
}

func consistently(t *testing.T, period time.Duration, cond func() string) {
	t.Helper()
	testenv.Consistently(t, period, cond, testenv.Interval(200*time.Millisecond))
}

// conditionProblem says how the app's condition differs from status and
// reason (any reason when empty), or "" when it matches the current
// generation.
func conditionProblem(app *v1alpha1.SpectrumApp, conditionType string, status metav1.ConditionStatus, reason string) string {
	c := meta.FindStatusCondition(app.Status.Conditions, conditionType)
	switch {
	case c == nil:
		return fmt.Sprintf("%s has no %s condition; conditions %v", app.Name, conditionType, app.Status.Conditions)
	case c.Status != status || (reason != "" && c.Reason != reason):
		return fmt.Sprintf("%s is %s=%s (%s: %s), want %s (%s)", app.Name, conditionType, c.Status, c.Reason, c.Message, status, reason)
	case c.ObservedGeneration != app.Generation:
		return fmt.Sprintf("%s condition describes generation %d, object is at %d", app.Name, c.ObservedGeneration, app.Generation)
	}
	return ""
}

// waitFor waits until the app's condition has status and reason.
func (f *fixture) waitFor(name, conditionType string, status metav1.ConditionStatus, reason string) *v1alpha1.SpectrumApp {
	f.t.Helper()
	var app *v1alpha1.SpectrumApp
	eventually(f.t, 30*time.Second, func() string {
		app = f.get(name)
		return conditionProblem(app, conditionType, status, reason)
	})
	return app
}

func (f *fixture) waitReady(name string) *v1alpha1.SpectrumApp {
	f.t.Helper()
	return f.waitFor(name, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
}

// simApps returns the simulator's apps in zone, optionally only those with
// hostname.
func simApps(zoneID, hostname string) []spectrumtest.StoredApp {
	var out []spectrumtest.StoredApp
	for _, a := range h.Sim.Apps() {
		if a.ZoneID == zoneID && (hostname == "" || strings.EqualFold(a.App.DNS.Name, hostname)) {
			out = append(out, a)
		}
	}
	return out
}

// appsWithHostname returns the simulator's apps with hostname, in any zone.
func appsWithHostname(hostname string) []spectrumtest.StoredApp {
	var out []spectrumtest.StoredApp
	for _, a := range h.Sim.Apps() {
		if strings.EqualFold(a.App.DNS.Name, hostname) {
			out = append(out, a)
		}
	}
	return out
}

// expectOneApp checks that exactly one simulator app has the app's
// hostname, in the app's zone, with the ID its status records.
func expectOneApp(t *testing.T, app *v1alpha1.SpectrumApp, accountID string) {
	t.Helper()
	stored := appsWithHostname(app.Spec.DNS.Name)
	if len(stored) != 1 {
		t.Fatalf("%s: the simulator holds %d apps named %s, want 1", app.Name, len(stored), app.Spec.DNS.Name)
	}
	got := stored[0]
	if got.ZoneID != app.Spec.ZoneID || got.AccountID != accountID || got.App.ID != app.Status.ApplicationID {
		t.Fatalf("%s: simulator app %s in zone %s of account %s; want status.applicationID %q in zone %s of account %s",
			app.Name, got.App.ID, got.ZoneID, got.AccountID, app.Status.ApplicationID, app.Spec.ZoneID, accountID)
	}
}

// stalledMessage returns the app's Stalled condition message.
func stalledMessage(app *v1alpha1.SpectrumApp) string {
	if c := meta.FindStatusCondition(app.Status.Conditions, v1alpha1.ConditionStalled); c != nil {
		return c.Message
	}
	return ""
}

// deleteAll deletes the namespace's SpectrumApps, waits until they are
// gone, and checks that no Cloudflare application is left with the
// hostname of any SpectrumApp the test made, including those already
// deleted and released before deleteAll was called.
func (f *fixture) deleteAll() {
	f.t.Helper()
	if len(f.hostnames) == 0 {
		f.t.Fatal("deleteAll: the test made no SpectrumApp through the fixture, so the orphan check would look at nothing")
	}
	if err := h.Client.DeleteAllOf(f.ctx, &v1alpha1.SpectrumApp{}, client.InNamespace(f.namespace)); err != nil {
		f.t.Fatal(err)
	}
	eventually(f.t, 60*time.Second, func() string {
		var left v1alpha1.SpectrumAppList
		if err := h.Client.List(f.ctx, &left, client.InNamespace(f.namespace)); err != nil {
			return err.Error()
		}
		if len(left.Items) > 0 {
			return fmt.Sprintf("%d SpectrumApps are not deleted yet", len(left.Items))
		}
		return ""
	})
	for _, hostname := range f.hostnames {
		if got := appsWithHostname(hostname); len(got) != 0 {
			f.t.Errorf("every SpectrumApp is deleted, but Cloudflare still holds %d apps named %s", len(got), hostname)
		}
	}
}
