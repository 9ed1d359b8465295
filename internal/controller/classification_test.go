package controller_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// A failure that needs a person stalls the app with the Cloudflare code,
// HTTP status, Ray ID and resolution, emits one Warning, and is not retried.
func TestNeedsAHumanStallsWithoutRetrying(t *testing.T) {
	cases := []struct {
		name       string
		mutate     func(*v1alpha1.SpectrumApp)
		reason     string
		wantInText []string
	}{
		{"argo not entitled", func(a *v1alpha1.SpectrumApp) { a.Spec.ArgoSmartRouting = ptr.To(true) },
			"ArgoNotEnabled", []string{"11026", "403"}},
		{"hostname in another zone", func(a *v1alpha1.SpectrumApp) { a.Spec.DNS.Name = "taken.example.com" },
			"HostnameInAnotherZone", []string{"16001", "400"}},
		{"ftp not entitled", func(a *v1alpha1.SpectrumApp) {
			a.Spec.Protocol = "tcp/21"
			a.Spec.OriginDirect = []string{"tcp://192.0.2.10:21"}
		}, "FTPNotEnabled", []string{"11014", "403"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, enterpriseToken)
			name := fmt.Sprintf("stalled-%d", i)
			app := f.app(name, zoneMain, "example.com")
			tc.mutate(app)
			f.create(app)

			stalled := f.waitForCondition(name, v1alpha1.ConditionStalled, metav1.ConditionTrue, tc.reason)
			defer f.deleteAndWait(name)
			ready := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionReady)
			if ready == nil || ready.Status != metav1.ConditionFalse {
				t.Fatalf("Ready = %+v, want False", ready)
			}
			if meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionReconciling) != nil {
				t.Errorf("a stalled app must not say Reconciling")
			}
			for _, want := range append(tc.wantInText, "ray") {
				if !strings.Contains(strings.ToLower(ready.Message), strings.ToLower(want)) {
					t.Errorf("Ready message %q lacks %q", ready.Message, want)
				}
			}
			warning := f.waitForEvent(name, corev1.EventTypeWarning, ready.Reason)
			if !strings.Contains(warning.Note, tc.wantInText[0]) {
				t.Errorf("warning event %q lacks code %s", warning.Note, tc.wantInText[0])
			}

			// Not requeued: no further create attempt while nothing changes,
			// for longer than the backoff's first steps and a resync. The
			// count starts once the fixture's own events have settled: the
			// Secret's create event may reach the manager after the app's,
			// and a Secret event retries the apps that use it, once.
			posts := settledCount(func() int { return calls.count("POST", zoneMain, "list") })
			testenv.Consistently(t, resyncPeriod+time.Second, func() string {
				if got := calls.count("POST", zoneMain, "list") - posts; got != 0 {
					return fmt.Sprintf("%d more create attempts for a stalled app; want 0", got)
				}
				return ""
			})
			if n := countEvents(f.events(name), corev1.EventTypeWarning); n != 1 {
				t.Errorf("%d warning events, want exactly 1", n)
			}
			// Positive control: asking for a retry does send the create again.
			requestRetry(t, f, name)
			eventually(t, 10*time.Second, func() string {
				if calls.count("POST", zoneMain, "list") == posts {
					return "the requested retry sent no create"
				}
				return ""
			})
		})
	}
}

func countEvents(events []eventsv1.Event, eventType string) int {
	n := 0
	for _, e := range events {
		if e.Type == eventType {
			n++
		}
	}
	return n
}

// Temporary failures say Reconciling, are retried with backoff, and end Ready.
func TestRetryableFailuresAreRetried(t *testing.T) {
	cases := []struct {
		name   string
		fault  spectrumtest.Fault
		reason string
	}{
		{"internal error 10002", spectrumtest.Fault{Kind: spectrumtest.FaultInternalError, Method: "POST", Count: 2}, "CloudflareInternalError"},
		{"unavailable 503", spectrumtest.Fault{Kind: spectrumtest.FaultUnavailable, Method: "POST", Count: 2}, "CloudflareInternalError"},
		{"rate limited 429", spectrumtest.Fault{Kind: spectrumtest.FaultRateLimited, Method: "POST", Count: 1, RetryAfterSeconds: 1}, "RateLimited"},
		{"connection reset", spectrumtest.Fault{Kind: spectrumtest.FaultConnectionReset, Method: "POST", Count: 2}, "NetworkError"},
		{"html 502", spectrumtest.Fault{Kind: spectrumtest.FaultBadGateway, Method: "POST", Count: 1}, "CloudflareUnavailable"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, enterpriseToken)
			name := fmt.Sprintf("retry-%d", i)
			tc.fault.PathPrefix = "/zones/" + zoneMain
			addFault(t, tc.fault)
			f.create(f.app(name, zoneMain, "example.com"))
			// The failure is told once, as retryable, before the app ends Ready.
			warning := f.waitForEvent(name, corev1.EventTypeWarning, tc.reason)
			if !strings.Contains(warning.Note, "retries with backoff") {
				t.Errorf("warning %s: %q does not say it will be retried", warning.Reason, warning.Note)
			}
			ready := f.waitForCondition(name, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
			defer f.deleteAndWait(name)
			if meta.FindStatusCondition(ready.Status.Conditions, v1alpha1.ConditionReconciling) != nil ||
				meta.FindStatusCondition(ready.Status.Conditions, v1alpha1.ConditionStalled) != nil {
				t.Errorf("a Ready app keeps Reconciling/Stalled: %v", ready.Status.Conditions)
			}
			if stored := simApps(zoneMain, ready.Spec.DNS.Name); len(stored) != 1 {
				t.Errorf("simulator holds %d apps for %s, want 1", len(stored), name)
			}
		})
	}
}

// requestRetry sets the reconcile-requested-at annotation, as a user does.
// settledCount returns count() once it has not moved for half a second
// (at most 5 s): a requeue loop's first steps (5 ms, doubling) move it
// sooner, and its later ones fall inside the caller's observation.
func settledCount(count func() int) int {
	last, stableSince := count(), time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n := count(); n != last {
			last, stableSince = n, time.Now()
		} else if time.Since(stableSince) >= 500*time.Millisecond {
			break
		}
	}
	return last
}

func requestRetry(t *testing.T, f *fixture, name string) {
	t.Helper()
	f.update(name, func(app *v1alpha1.SpectrumApp) {
		if app.Annotations == nil {
			app.Annotations = map[string]string{}
		}
		app.Annotations[v1alpha1.ReconcileRequestedAtAnnotation] = time.Now().Format(time.RFC3339Nano)
	})
}
