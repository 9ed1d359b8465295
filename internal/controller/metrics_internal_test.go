package controller

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

func appAt(generation int64, created time.Time, ready metav1.ConditionStatus) *v1alpha1.SpectrumApp {
	app := &v1alpha1.SpectrumApp{ObjectMeta: metav1.ObjectMeta{Generation: generation, CreationTimestamp: metav1.NewTime(created)}}
	if ready != "" {
		app.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: ready, ObservedGeneration: generation}}
	}
	return app
}

// Time to Ready runs from creation for a new object and from the first
// reconcile of a new generation otherwise; what is kept per app is dropped
// when it is Ready or deleted.
func TestTimeToReadyKeepsNothingOnceReadyOrDeleted(t *testing.T) {
	m := NewAppMetrics()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	name := types.NamespacedName{Namespace: "ns", Name: "a"}
	created := now

	// Created, first reconcile fails; Ready 40 s after creation.
	now = created.Add(10 * time.Second)
	m.observe(name, appAt(1, created, ""), appAt(1, created, metav1.ConditionFalse), now)
	if len(m.pending) != 1 {
		t.Fatalf("pending %v, want the app's start", m.pending)
	}
	now = created.Add(40 * time.Second)
	m.observe(name, appAt(1, created, metav1.ConditionFalse), appAt(1, created, metav1.ConditionTrue), now)
	if len(m.pending) != 0 {
		t.Errorf("pending %v after Ready, want none", m.pending)
	}
	// A resync of a Ready app observes nothing.
	m.observe(name, appAt(1, created, metav1.ConditionTrue), appAt(1, created, metav1.ConditionTrue), now)

	// Generation 2 first reconciled at 100 s, Ready at 103 s.
	now = created.Add(100 * time.Second)
	started := now
	m.observe(name, appAt(1, created, metav1.ConditionTrue), appAt(2, created, metav1.ConditionFalse), started)
	now = created.Add(103 * time.Second)
	m.observe(name, appAt(2, created, metav1.ConditionFalse), appAt(2, created, metav1.ConditionTrue), now.Add(-time.Second))

	want := `
# HELP spectrum_app_ready_duration_seconds Time from a change of a SpectrumApp's spec (its creation, or the first reconcile of a new generation) until it is Ready at that generation.
# TYPE spectrum_app_ready_duration_seconds histogram
spectrum_app_ready_duration_seconds_bucket{le="0.5"} 0
spectrum_app_ready_duration_seconds_bucket{le="1"} 0
spectrum_app_ready_duration_seconds_bucket{le="2"} 0
spectrum_app_ready_duration_seconds_bucket{le="5"} 1
spectrum_app_ready_duration_seconds_bucket{le="10"} 1
spectrum_app_ready_duration_seconds_bucket{le="30"} 1
spectrum_app_ready_duration_seconds_bucket{le="60"} 2
spectrum_app_ready_duration_seconds_bucket{le="120"} 2
spectrum_app_ready_duration_seconds_bucket{le="300"} 2
spectrum_app_ready_duration_seconds_bucket{le="600"} 2
spectrum_app_ready_duration_seconds_bucket{le="1800"} 2
spectrum_app_ready_duration_seconds_bucket{le="3600"} 2
spectrum_app_ready_duration_seconds_bucket{le="+Inf"} 2
spectrum_app_ready_duration_seconds_sum 43
spectrum_app_ready_duration_seconds_count 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "spectrum_app_ready_duration_seconds"); err != nil {
		t.Error(err)
	}

	// Generation 3 never becomes Ready; deleting the app forgets it.
	m.observe(name, appAt(2, created, metav1.ConditionTrue), appAt(3, created, metav1.ConditionFalse), now)
	if len(m.pending) != 1 || len(m.states) != 1 {
		t.Fatalf("pending %v, states %v: want one of each", m.pending, m.states)
	}
	m.forget(name)
	if len(m.pending) != 0 || len(m.states) != 0 {
		t.Errorf("pending %v, states %v after delete: want none", m.pending, m.states)
	}
}

func TestStalledAppsAreCountedByReason(t *testing.T) {
	m := NewAppMetrics()
	for i, reason := range []string{"ArgoNotEnabled", "ArgoNotEnabled", ""} {
		app := appAt(1, time.Now(), metav1.ConditionFalse)
		if reason != "" {
			app.Status.Conditions = append(app.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason})
		}
		m.observe(types.NamespacedName{Name: string(rune('a' + i))}, app, app, time.Now())
	}
	want := `
# HELP spectrum_apps_stalled SpectrumApps whose Stalled condition is True (only a person can fix them), by its reason.
# TYPE spectrum_apps_stalled gauge
spectrum_apps_stalled{reason="ArgoNotEnabled"} 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "spectrum_apps_stalled"); err != nil {
		t.Error(err)
	}
}

func TestPolicyLabelIsBounded(t *testing.T) {
	for policy, want := range map[string]string{
		"": "manage", "manage": "manage", "observe": "observe", "skip": "skip", "whatever-" + "x": "unknown",
	} {
		if got := policyLabel(policy); got != want {
			t.Errorf("policyLabel(%q) = %q, want %q", policy, got, want)
		}
	}
}

// The gauges are kept as apps change state, not counted at each scrape:
// after any sequence of reconciles and deletions they must equal a count
// of the apps' last states, with no series left for a state no app is in.
func TestAppGaugesFollowEveryChange(t *testing.T) {
	m := NewAppMetrics()
	type step struct {
		app     string
		forget  bool
		ready   metav1.ConditionStatus
		reason  string
		stalled string
		policy  string
	}
	steps := []step{
		{app: "a", ready: metav1.ConditionFalse, reason: "Waiting"},
		{app: "b", ready: metav1.ConditionFalse, reason: "ArgoNotEnabled", stalled: "ArgoNotEnabled"},
		{app: "c", ready: metav1.ConditionTrue, reason: "Observed", policy: "observe"},
		{app: "a", ready: metav1.ConditionTrue, reason: "Synced"},
		{app: "b", ready: metav1.ConditionTrue, reason: "Synced"},
		{app: "c", forget: true},
		{app: "c", forget: true},
		{app: "d", ready: metav1.ConditionFalse, reason: "ArgoNotEnabled", stalled: "ArgoNotEnabled", policy: "manage"},
		{app: "a", forget: true},
	}
	for i, s := range steps {
		name := types.NamespacedName{Namespace: "ns", Name: s.app}
		if s.forget {
			m.forget(name)
		} else {
			app := appAt(1, time.Now(), s.ready)
			app.Status.Conditions[0].Reason = s.reason
			app.Status.ReconcilePolicy = s.policy
			if s.stalled != "" {
				app.Status.Conditions = append(app.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: s.stalled})
			}
			m.observe(name, app, app, time.Now())
		}
		ready, policies, stalled := map[appState]int{}, map[string]int{}, map[string]int{}
		for _, st := range m.states {
			ready[appState{ready: st.ready, reason: st.reason}]++
			policies[st.policy]++
			if st.stalled != "" {
				stalled[st.stalled]++
			}
		}
		if !maps.Equal(ready, m.byReady) || !maps.Equal(policies, m.byPolicy) || !maps.Equal(stalled, m.byStalled) {
			t.Fatalf("after step %d (%+v): gauges %v %v %v, a count of the states gives %v %v %v",
				i, s, m.byReady, m.byPolicy, m.byStalled, ready, policies, stalled)
		}
	}
	want := `
# HELP spectrum_apps SpectrumApps by the status and reason of their Ready condition.
# TYPE spectrum_apps gauge
spectrum_apps{ready="False",reason="ArgoNotEnabled"} 1
spectrum_apps{ready="True",reason="Synced"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "spectrum_apps"); err != nil {
		t.Error(err)
	}
}
