package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

// TestChaos creates CHAOS_APPS SpectrumApps across the chaos zones, spread
// over the fault window, while the simulator fails requests at random (500
// and 503 with 10002, 429 with Retry-After, HTML 502s, resets, latency
// spikes past the request timeout, and creates applied with their answer
// lost), specs change, applications are deleted behind the operator's back,
// and the manager is SIGKILLed and restarted CHAOS_RESTARTS times, the
// first time the moment the first create is applied. With the faults off,
// every app must become Ready with exactly one Cloudflare application, the
// one its status records, configured as its spec says; then all are
// deleted (under faults and a kill again) and none may be left.
//
// CHAOS_APPS (default 100), CHAOS_DURATION (how long faults last, default
// 30s), CHAOS_RESTARTS (default 4) and CHAOS_CONVERGE_TIMEOUT scale it;
// `make chaos` runs 1000 apps for longer.
func TestChaos(t *testing.T) {
	n := envInt("CHAOS_APPS", 100)
	faultsFor := envDuration("CHAOS_DURATION", 30*time.Second)
	restarts := envInt("CHAOS_RESTARTS", 4)
	converge := envDuration("CHAOS_CONVERGE_TIMEOUT", 60*time.Second+time.Duration(n)*300*time.Millisecond)

	f := newFixture(t, "chaos-")
	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: chaosToken})
	firedBefore := h.Sim.FaultsFired()
	startsBefore := h.Manager.Starts()
	t.Cleanup(h.Sim.ClearFaults)
	addFaults(t, createPhaseFaults())

	requests := startTrace(t)

	// Phase 1: creates, spec changes and out-of-band deletes under faults
	// and kills.
	began := time.Now()
	firstKill := armKill(t, http.MethodPost)
	load := startLoad(f, n, faultsFor)
	if !firstKill.wait(30 * time.Second) {
		t.Fatal("no create reached the simulator within 30s")
	}
	unrecorded := unrecordedCreates(t, f)
	if len(unrecorded) == 0 {
		t.Fatal("the manager was killed as a create was applied, yet every application is recorded")
	}
	t.Logf("kill 1: right after a create was applied (%s); %d applied creates not recorded in any status", firstKill.path.Load(), len(unrecorded))
	startManager(t)

	for i := 1; i < restarts; i++ {
		at := began.Add(time.Duration(i) * faultsFor / time.Duration(restarts))
		at = at.Add(time.Duration(rand.Int64N(int64(faultsFor/time.Duration(4*restarts)) + 1)))
		time.Sleep(time.Until(at))
		how := "at a random moment"
		// Three kills in four hit a chosen moment, if it comes soon: as a
		// create or an update is answered (Cloudflare applied it, status
		// does not record it), or as a create arrives (status records that
		// it is pending, Cloudflare never saw it).
		switch i % 4 {
		case 1, 3:
			method := map[int]string{1: http.MethodPost, 3: http.MethodPut}[i%4]
			if armKill(t, method).wait(3 * time.Second) {
				how = "right after a " + method + " was applied"
				break
			}
			fallthrough
		case 2:
			if i%4 == 2 && armKillBeforeApply(t, http.MethodPost).wait(3*time.Second) {
				how = "between a create's record and its POST"
				break
			}
			fallthrough
		default:
			if err := h.Manager.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("kill %d: %s, %s into the run", i+1, how, time.Since(began).Round(time.Millisecond))
		startManager(t)
	}
	if err := load.wait(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(began.Add(faultsFor)))
	h.Sim.ClearFaults()
	t.Logf("faults off after %s; %d faults fired; %d spec updates, %d applications deleted out of band",
		time.Since(began).Round(time.Millisecond), h.Sim.FaultsFired()-firedBefore, load.updates, load.deletes)

	// Phase 2: converge, then count. Ready says the last reconcile found
	// the app as specified; an out-of-band delete after that is found by
	// the drift check within two resync periods (a listing up to a period
	// old, checked every period), so the count waits that long after the
	// last one (the load stops with the faults), and a moment for repairs.
	convergeStart := time.Now()
	apps := waitAllReady(t, f, n, converge)
	t.Logf("all %d apps Ready %s after the faults stopped", n, time.Since(convergeStart).Round(time.Millisecond))
	time.Sleep(time.Until(convergeStart.Add(2*resyncPeriod() + 3*time.Second)))
	apps = waitAllReady(t, f, n, converge)
	c := count(apps)
	t.Logf("before deletion: %d Cloudflare applications, %d duplicates, %d lost, %d with a wrong status.applicationID, %d not as specified, %d strays, %d adopted",
		c.total, c.duplicates, c.lost, c.mismatched, c.stale, c.strays, c.adopted)
	if c.total != n || c.duplicates != 0 || c.lost != 0 || c.mismatched != 0 || c.stale != 0 || c.strays != 0 {
		t.Errorf("want exactly %d Cloudflare applications, one per SpectrumApp, each the one its status records and as its spec says; problems: %s",
			n, strings.Join(c.problems[:min(10, len(c.problems))], "; "))
		for _, hostname := range c.hostnames[:min(5, len(c.hostnames))] {
			t.Logf("write requests for %s:%s", hostname, requests.story(hostname))
		}
	}
	// Each create applied as the manager died was adopted, not repeated
	// (unless the churn deleted it at Cloudflare since).
	byKey := map[appKey]v1alpha1.SpectrumApp{}
	for _, app := range apps {
		byKey[keyOfApp(app)] = app
	}
	for _, stored := range unrecorded {
		app, ok := byKey[keyOfStored(stored)]
		if ok && load.deletedOutOfBand(app.Name) {
			continue
		}
		if !ok || app.Status.ApplicationID != stored.App.ID || !app.Status.Adopted {
			t.Errorf("application %s, created as the manager was killed, is not the adopted application of its SpectrumApp (%+v)", stored.App.ID, app.Status)
		}
	}

	// Phase 3: delete under faults and a kill, then nothing may be left.
	deleteStart := time.Now()
	addFaults(t, deletePhaseFaults())
	deleteKill := armKill(t, http.MethodDelete)
	if err := h.Client.DeleteAllOf(f.ctx, &v1alpha1.SpectrumApp{}, client.InNamespace(f.namespace)); err != nil {
		t.Fatal(err)
	}
	if deleteKill.wait(30 * time.Second) {
		t.Logf("kill %d: right after a delete was applied", restarts+1)
	} else if err := h.Manager.Kill(); err != nil {
		t.Fatal(err)
	}
	startManager(t)
	time.Sleep(time.Until(deleteStart.Add(max(faultsFor/4, 3*time.Second))))
	h.Sim.ClearFaults()
	waitAllGone(t, f, converge)
	orphans := len(chaosApps())
	t.Logf("all SpectrumApps deleted %s after deletion began; %d Cloudflare applications left", time.Since(deleteStart).Round(time.Millisecond), orphans)
	if orphans != 0 {
		t.Errorf("%d orphaned Cloudflare applications: %v", orphans, chaosApps())
	}

	restarted := h.Manager.Starts() - startsBefore
	fired := h.Sim.FaultsFired() - firedBefore
	t.Logf("chaos: %d apps, %d duplicates, %d orphans, %d lost, %d manager restarts, %d faults fired", n, c.duplicates, orphans, c.lost, restarted, fired)
	t.Logf("chaos: %s in all; simulator calls %v", time.Since(began).Round(time.Second), h.Sim.Calls())
}

// load creates the apps, spread over the first 60% of the fault window,
// and until the window ends changes specs and deletes applications at
// Cloudflare, n/5 times in all.
type load struct {
	f    *fixture
	done chan error

	mu               sync.Mutex
	created          []string
	updates, deletes int
	deleted          map[string]bool
}

func startLoad(f *fixture, n int, window time.Duration) *load {
	l := &load{f: f, done: make(chan error, 2), deleted: map[string]bool{}}
	go func() { l.done <- l.create(n, window*6/10) }()
	go func() { l.done <- l.churn(time.Now().Add(window), window/time.Duration(max(n/5, 1))) }()
	return l
}

// create creates n apps at an even pace over spread.
func (l *load) create(n int, spread time.Duration) error {
	start := time.Now()
	const workers = 8
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				zone := chaosZones[i%len(chaosZones)]
				app := l.f.app(fmt.Sprintf("app-%04d", i), zone.id, zone.name)
				if err := h.Client.Create(l.f.ctx, app); err != nil {
					errs <- fmt.Errorf("creating %s: %w", app.Name, err)
					return
				}
				l.mu.Lock()
				l.created = append(l.created, app.Name)
				l.mu.Unlock()
			}
		})
	}
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * spread / time.Duration(n))))
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

// churn, every interval until end, changes the origin of a random app or
// deletes a random app's application at Cloudflare.
func (l *load) churn(end time.Time, interval time.Duration) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for range ticker.C {
		if time.Now().After(end) {
			return nil
		}
		l.mu.Lock()
		var name string
		if len(l.created) > 0 {
			name = l.created[rand.IntN(len(l.created))]
		}
		l.mu.Unlock()
		if name == "" {
			continue
		}
		key := client.ObjectKey{Namespace: l.f.namespace, Name: name}
		app := &v1alpha1.SpectrumApp{}
		if err := h.Client.Get(l.f.ctx, key, app); err != nil {
			return err
		}
		if rand.IntN(2) == 0 {
			origin := []string{fmt.Sprintf("tcp://192.0.2.%d:22", 11+rand.IntN(200))}
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := h.Client.Get(l.f.ctx, key, app); err != nil {
					return err
				}
				app.Spec.OriginDirect = origin
				return h.Client.Update(l.f.ctx, app)
			})
			if err != nil {
				return fmt.Errorf("changing %s: %w", name, err)
			}
			l.mu.Lock()
			l.updates++
			l.mu.Unlock()
		} else if id := app.Status.ApplicationID; id != "" {
			if err := h.Sim.DeleteApp(app.Spec.ZoneID, id); err != nil {
				continue // already replaced
			}
			l.mu.Lock()
			l.deletes++
			l.deleted[name] = true
			l.mu.Unlock()
		}
	}
	return nil
}

func (l *load) wait() error {
	return errors.Join(<-l.done, <-l.done)
}

func (l *load) deletedOutOfBand(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deleted[name]
}

func createPhaseFaults() []spectrumtest.Fault {
	prefix := "/zones/" + chaosZonePrefix
	return []spectrumtest.Fault{
		{Kind: spectrumtest.FaultResponseLost, Method: http.MethodPost, PathPrefix: prefix, Probability: 0.25},
		{Kind: spectrumtest.FaultInternalError, PathPrefix: prefix, Probability: 0.05},
		{Kind: spectrumtest.FaultUnavailable, PathPrefix: prefix, Probability: 0.05},
		{Kind: spectrumtest.FaultRateLimited, PathPrefix: prefix, Probability: 0.01, RetryAfterSeconds: 1},
		{Kind: spectrumtest.FaultBadGateway, PathPrefix: prefix, Probability: 0.02},
		{Kind: spectrumtest.FaultConnectionReset, PathPrefix: prefix, Probability: 0.04},
		{Kind: spectrumtest.FaultLatency, PathPrefix: prefix, Probability: 0.10, Latency: spectrumtest.Duration{Duration: 300 * time.Millisecond}},
		// Longer than the manager's 3s request timeout.
		{Kind: spectrumtest.FaultLatency, PathPrefix: prefix, Probability: 0.01, Latency: spectrumtest.Duration{Duration: 4 * time.Second}},
	}
}

func deletePhaseFaults() []spectrumtest.Fault {
	prefix := "/zones/" + chaosZonePrefix
	return []spectrumtest.Fault{
		{Kind: spectrumtest.FaultResponseLost, Method: http.MethodDelete, PathPrefix: prefix, Probability: 0.2},
		{Kind: spectrumtest.FaultInternalError, PathPrefix: prefix, Probability: 0.05},
		{Kind: spectrumtest.FaultConnectionReset, PathPrefix: prefix, Probability: 0.05},
		{Kind: spectrumtest.FaultLatency, PathPrefix: prefix, Probability: 0.10, Latency: spectrumtest.Duration{Duration: 300 * time.Millisecond}},
	}
}

func addFaults(t *testing.T, faults []spectrumtest.Fault) {
	t.Helper()
	for _, fault := range faults {
		if _, err := h.Sim.AddFault(fault); err != nil {
			t.Fatal(err)
		}
	}
}

// listApps returns the namespace's SpectrumApps.
func listApps(t *testing.T, f *fixture) []v1alpha1.SpectrumApp {
	t.Helper()
	var list v1alpha1.SpectrumAppList
	if err := h.Client.List(f.ctx, &list, client.InNamespace(f.namespace)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// chaosApps returns the simulator's applications in the chaos zones.
func chaosApps() []spectrumtest.StoredApp {
	var out []spectrumtest.StoredApp
	for _, a := range h.Sim.Apps() {
		if strings.HasPrefix(a.ZoneID, chaosZonePrefix) {
			out = append(out, a)
		}
	}
	return out
}

// unrecordedCreates returns the applications that exist at Cloudflare but
// whose ID no SpectrumApp's status records.
func unrecordedCreates(t *testing.T, f *fixture) []spectrumtest.StoredApp {
	recorded := map[string]bool{}
	for _, app := range listApps(t, f) {
		recorded[app.Status.ApplicationID] = true
	}
	var out []spectrumtest.StoredApp
	for _, stored := range chaosApps() {
		if !recorded[stored.App.ID] {
			out = append(out, stored)
		}
	}
	return out
}

// waitAllReady waits until all n apps are Ready for their current
// generation with an application ID, logging progress.
func waitAllReady(t *testing.T, f *fixture, n int, timeout time.Duration) []v1alpha1.SpectrumApp {
	t.Helper()
	var apps []v1alpha1.SpectrumApp
	lastLog := time.Now()
	eventually(t, timeout, func() string {
		apps = listApps(t, f)
		var notReady []string
		for i := range apps {
			app := &apps[i]
			if problem := conditionProblem(app, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced"); problem != "" || app.Status.ApplicationID == "" {
				notReady = append(notReady, app.Name+": "+problem)
			}
		}
		if time.Since(lastLog) > 10*time.Second {
			t.Logf("%d/%d Ready; %d Cloudflare applications", len(apps)-len(notReady), n, len(chaosApps()))
			lastLog = time.Now()
		}
		if len(apps) != n || len(notReady) > 0 {
			sort.Strings(notReady)
			return fmt.Sprintf("%d of %d apps not Ready, e.g. %v", len(notReady)+n-len(apps), n, notReady[:min(3, len(notReady))])
		}
		return ""
	})
	return apps
}

// waitAllGone waits until the namespace has no SpectrumApps left.
func waitAllGone(t *testing.T, f *fixture, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() string {
		left := listApps(t, f)
		if len(left) == 0 {
			return ""
		}
		c := meta.FindStatusCondition(left[0].Status.Conditions, v1alpha1.ConditionReady)
		return fmt.Sprintf("%d SpectrumApps not deleted yet, e.g. %s (Ready: %+v)", len(left), left[0].Name, c)
	})
}

// appKey is what identifies an application for adoption: zone, hostname
// and protocol.
type appKey struct{ zone, hostname, protocol string }

func keyOfApp(app v1alpha1.SpectrumApp) appKey {
	return appKey{app.Spec.ZoneID, strings.ToLower(app.Spec.DNS.Name), strings.ToLower(app.Spec.Protocol)}
}

func keyOfStored(a spectrumtest.StoredApp) appKey {
	return appKey{a.ZoneID, strings.ToLower(a.App.DNS.Name), strings.ToLower(a.App.Protocol)}
}

type counts struct {
	total, duplicates, lost, mismatched, stale, strays, adopted int
	problems                                                    []string
	// hostnames are those of the apps with problems.
	hostnames []string
}

// count compares the SpectrumApps with the simulator's applications.
func count(apps []v1alpha1.SpectrumApp) counts {
	var c counts
	stored := map[appKey][]spectrumtest.StoredApp{}
	for _, a := range chaosApps() {
		stored[keyOfStored(a)] = append(stored[keyOfStored(a)], a)
		c.total++
	}
	wanted := map[appKey]bool{}
	for _, app := range apps {
		key := keyOfApp(app)
		wanted[key] = true
		if app.Status.Adopted {
			c.adopted++
		}
		switch got := stored[key]; {
		case len(got) == 0:
			c.lost++
			c.problems = append(c.problems, app.Name+" has no application")
		case len(got) == 1 && got[0].App.ID != app.Status.ApplicationID:
			c.mismatched++
			c.problems = append(c.problems, fmt.Sprintf("%s records %s, Cloudflare has %s", app.Name, app.Status.ApplicationID, got[0].App.ID))
		case len(got) == 1 && !slices.Equal(got[0].App.OriginDirect, app.Spec.OriginDirect):
			c.stale++
			c.problems = append(c.problems, fmt.Sprintf("%s wants origin %v, Cloudflare has %v", app.Name, app.Spec.OriginDirect, got[0].App.OriginDirect))
		}
	}
	for key, got := range stored {
		if len(got) > 1 || !wanted[key] {
			c.hostnames = append(c.hostnames, key.hostname)
		}
		if len(got) > 1 {
			c.duplicates += len(got) - 1
			c.problems = append(c.problems, fmt.Sprintf("%d applications for %s %s", len(got), key.hostname, key.protocol))
		}
		if !wanted[key] {
			c.strays += len(got)
			c.problems = append(c.problems, fmt.Sprintf("application for %s belongs to no SpectrumApp", key.hostname))
		}
	}
	sort.Strings(c.problems)
	return c
}
