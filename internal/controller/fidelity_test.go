package controller_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// These tests pin what Cloudflare really does where the operator's own
// beliefs once differed from it (see ../shared/spectrum-api.md).

// simApp returns the simulator's one app with hostname in zone.
func simApp(t *testing.T, zoneID, hostname string) spectrumtest.App {
	t.Helper()
	apps := simApps(zoneID, hostname)
	if len(apps) != 1 {
		t.Fatalf("the simulator holds %d apps named %s, want 1", len(apps), hostname)
	}
	return apps[0]
}

// untilTheNextSecond waits for the wall clock's next second. A SpectrumApp
// adopts what existed when it was created, as far as its creationTimestamp
// (whole seconds) tells: tests that make an application out of band and
// then the SpectrumApp put a second between them.
func untilTheNextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now))
}

func enableArgo(t *testing.T) {
	t.Helper()
	if err := sim.SetEntitlement(enterprise, spectrumtest.EntitlementArgo, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.SetEntitlement(enterprise, spectrumtest.EntitlementArgo, false) })
}

func addFault(t *testing.T, f spectrumtest.Fault) {
	t.Helper()
	if _, err := sim.AddFault(f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.ClearFaults)
}

// The spec is the whole configuration: removing an optional field brings the
// Cloudflare application back to Cloudflare's default (update is a
// whole-config PUT), instead of leaving Argo on, and billed, forever.
func TestRemovingAFieldBringsTheDefaultBack(t *testing.T) {
	enableArgo(t)
	f := newFixture(t, enterpriseToken)
	app := f.app("removed", zoneMain, "example.com")
	app.Spec.TLS = "strict"
	app.Spec.ArgoSmartRouting = ptr.To(true)
	app.Spec.IPFirewall = ptr.To(true)
	app.Spec.ProxyProtocol = "v1"
	app.Spec.EdgeIPs = &v1alpha1.EdgeIPs{Type: "dynamic", Connectivity: "ipv4"}
	f.create(app)
	f.waitForCondition("removed", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("removed")
	if got := simApp(t, zoneMain, app.Spec.DNS.Name); got.TLS != "strict" || !*got.ArgoSmartRouting || got.EdgeIPs.Connectivity != "ipv4" {
		t.Fatalf("the fields were not applied: %+v", got)
	}

	f.update("removed", func(a *v1alpha1.SpectrumApp) {
		a.Spec.TLS, a.Spec.ArgoSmartRouting, a.Spec.IPFirewall, a.Spec.ProxyProtocol = "", nil, nil, ""
		a.Spec.EdgeIPs = nil
	})
	f.waitForCondition("removed", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	got := simApp(t, zoneMain, app.Spec.DNS.Name)
	if got.TLS != "off" || *got.ArgoSmartRouting || *got.IPFirewall || got.ProxyProtocol != "off" ||
		got.EdgeIPs == nil || got.EdgeIPs.Connectivity != "all" {
		t.Errorf("after removing the fields Cloudflare holds tls=%s argo=%v ipFirewall=%v proxyProtocol=%s edgeIPs=%+v; want Cloudflare's defaults",
			got.TLS, *got.ArgoSmartRouting, *got.IPFirewall, got.ProxyProtocol, got.EdgeIPs)
	}
}

// The same for the fields of an app with a DNS origin and HTTPS traffic.
func TestRemovingOriginDNSSettingsBringsTheDefaultBack(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("dnsorigin", zoneMain, "example.com")
	app.Spec.OriginDirect = nil
	app.Spec.OriginDNS = &v1alpha1.OriginDNS{Name: "origin.example.com", TTL: ptr.To(int32(900)), Type: "A"}
	port := intstr.FromInt32(22)
	app.Spec.OriginPort = &port
	app.Spec.TrafficType = "https"
	f.create(app)
	f.waitForCondition("dnsorigin", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("dnsorigin")

	f.update("dnsorigin", func(a *v1alpha1.SpectrumApp) {
		a.Spec.OriginDNS.TTL, a.Spec.OriginDNS.Type, a.Spec.TrafficType = nil, "", ""
	})
	f.waitForCondition("dnsorigin", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	got := simApp(t, zoneMain, app.Spec.DNS.Name)
	if got.OriginDNS == nil || got.OriginDNS.TTL != nil || got.OriginDNS.Type != "" || got.TrafficType != "direct" {
		t.Errorf("Cloudflare holds origin_dns %+v, traffic_type %s; want no ttl, type \"\" and direct", got.OriginDNS, got.TrafficType)
	}
}

// A change made outside Kubernetes to a field the spec leaves unset is a
// change from the default, and the drift check undoes it.
func TestOutOfBandChangeToAnUnsetFieldIsUndone(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("unset", zoneMain, "example.com")
	f.create(app)
	ready := f.waitForCondition("unset", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("unset")

	if err := sim.ModifyApp(zoneMain, ready.Status.ApplicationID, func(a *spectrumtest.App) {
		a.TLS, a.TrafficType, a.IPFirewall = "full", "https", ptr.To(true)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*resyncPeriod+10*time.Second, func() string {
		got := simApp(t, zoneMain, app.Spec.DNS.Name)
		if got.TLS != "off" || got.TrafficType != "direct" || *got.IPFirewall {
			return fmt.Sprintf("Cloudflare still holds tls=%s traffic_type=%s ip_firewall=%v", got.TLS, got.TrafficType, *got.IPFirewall)
		}
		return ""
	})
	updated := f.waitForEvent("unset", corev1.EventTypeNormal, "Updated")
	for _, field := range []string{"tls", "traffic_type", "ip_firewall"} {
		if !strings.Contains(updated.Note, field) {
			t.Errorf("Updated event %q does not name %s", updated.Note, field)
		}
	}
}

// Adopting an existing application, when asked, brings it to the spec, and
// the Adopted event names the fields that changed.
func TestAdoptionBringsTheApplicationToTheSpec(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("adoptee", zoneMain, "example.com")
	existing, err := sim.PutApp(zoneMain, spectrumtest.App{
		Protocol:     "tcp/22",
		DNS:          spectrumtest.DNS{Type: "CNAME", Name: app.Spec.DNS.Name},
		OriginDirect: []string{"tcp://192.0.2.99:22"},
		TLS:          "full",
		IPFirewall:   ptr.To(true),
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	untilTheNextSecond()
	app.Annotations = map[string]string{v1alpha1.AdoptApplicationIDAnnotation: existing.App.ID}
	f.create(app)
	ready := f.waitForCondition("adoptee", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("adoptee")
	if ready.Status.ApplicationID != existing.App.ID || !ready.Status.Adopted {
		t.Fatalf("status %+v, want adopted %s", ready.Status, existing.App.ID)
	}
	got := simApp(t, zoneMain, app.Spec.DNS.Name)
	if got.OriginDirect[0] != "tcp://192.0.2.10:22" || got.TLS != "off" || *got.IPFirewall {
		t.Errorf("adopted application not brought to the spec: %+v", got)
	}
	adopted := f.waitForEvent("adoptee", corev1.EventTypeNormal, "Adopted")
	for _, field := range []string{"origin_direct", "tls", "ip_firewall"} {
		if !strings.Contains(adopted.Note, field) {
			t.Errorf("Adopted event %q does not name %s", adopted.Note, field)
		}
	}
}

// A create Cloudflare answered with its error envelope was refused, not
// lost: it is retried on the normal backoff, with no wait for it to land.
func TestAnsweredCreateErrorIsRetriedWithoutWaiting(t *testing.T) {
	// A create that got no answer is not looked for again before its
	// record's promise has passed: send window, request and settle, each
	// the suite's 2 s request timeout (pendingCreateLandedBy in
	// external.go), so 6 s from the record. The workqueue's backoff retries
	// an answered refusal after 1 s, then 2 s. A retry later than
	// answeredRetryWithin waited for something.
	const (
		refusals            = 2
		backoffBase         = time.Second
		answeredRetryWithin = 4 * time.Second
	)
	fault, err := sim.AddFault(spectrumtest.Fault{Kind: spectrumtest.FaultUnavailable, Method: "POST", PathPrefix: "/zones/" + zoneDrift, Count: refusals})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.ClearFaults)
	postsBefore := len(calls.sentAt("POST", zoneDrift, "list"))
	f := newFixture(t, enterpriseToken)
	app := f.app("answered", zoneDrift, "drift.example")
	f.create(app)
	ready := f.waitForCondition("answered", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("answered")

	// The fault fired: it is spent, and its refusals were answered to
	// creates, one more create made the application.
	for _, active := range sim.Faults() {
		if active.ID == fault.ID {
			t.Fatalf("the 503 fault is still active with %d of %d refusals left: the creates were never refused", active.Remaining, refusals)
		}
	}
	posts := calls.sentAt("POST", zoneDrift, "list")[postsBefore:]
	if len(posts) != refusals+1 {
		t.Fatalf("%d creates sent, want %d refused and 1 that made the application", len(posts), refusals)
	}
	for i := 1; i < len(posts); i++ {
		gap := posts[i].Sub(posts[i-1])
		if gap < backoffBase*9/10 || gap > answeredRetryWithin {
			t.Errorf("create %d was sent %s after the refused one before it; want the workqueue's backoff (from %s), under %s: a lost create is waited for 6 s",
				i+1, gap.Round(time.Millisecond), backoffBase, answeredRetryWithin)
		}
	}
	if ready.UnsettledCreate() != nil {
		t.Errorf("create record %v left unsettled after the create was answered", ready.UnsettledCreate())
	}
	for _, e := range f.events("answered") {
		if e.Reason == "CreateUnconfirmed" {
			t.Errorf("an answered 503 was treated as a lost create: %s", e.Note)
		}
	}
	simApp(t, zoneDrift, app.Spec.DNS.Name)
}

// Deleting a SpectrumApp that never created nor adopted anything deletes
// nothing at Cloudflare, even an application with its hostname and
// protocol (someone else's), and does not hang.
func TestDeletingAnAppThatNeverOwnedAnythingDeletesNothing(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		token        string
		mutate       func(*v1alpha1.SpectrumApp)
	}{
		{"stalled on an invalid spec", "InvalidSpec", enterpriseToken, func(a *v1alpha1.SpectrumApp) {
			a.Spec.OriginDirect = []string{"tcp://2001:db8::1:22"}
		}},
		{"stalled without credentials", v1alpha1.ReasonCredentialsSecretNotFound, "", func(*v1alpha1.SpectrumApp) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.token)
			app := f.app("bystander", zoneMain, "example.com")
			tc.mutate(app)
			theirs, err := sim.PutApp(zoneMain, spectrumtest.App{
				Protocol:     "tcp/22",
				DNS:          spectrumtest.DNS{Type: "CNAME", Name: app.Spec.DNS.Name},
				OriginDirect: []string{"tcp://192.0.2.77:22"},
			}, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sim.DeleteApp(zoneMain, theirs.App.ID) })
			f.create(app)
			f.waitForCondition("bystander", v1alpha1.ConditionStalled, metav1.ConditionTrue, tc.reason)

			f.deleteAndWait("bystander")
			if got := simApps(zoneMain, app.Spec.DNS.Name); len(got) != 1 || got[0].ID != theirs.App.ID {
				t.Fatalf("after deleting a SpectrumApp that owned nothing, Cloudflare holds %+v; want the pre-existing %s untouched", got, theirs.App.ID)
			}
		})
	}
}

// Named protocols are accepted and read back unchanged, and a name is the
// same as its port: no update loop, and adoption matches across spellings.
func TestNamedProtocol(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("named", zoneMain, "example.com")
	app.Spec.Protocol = "ssh"
	f.create(app)
	ready := f.waitForCondition("named", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("named")
	if got := simApp(t, zoneMain, app.Spec.DNS.Name); got.Protocol != "ssh" {
		t.Errorf("Cloudflare holds protocol %q, want ssh as written", got.Protocol)
	}
	puts := calls.count("PUT", zoneMain, "app")
	testenv.Consistently(t, 2*resyncPeriod+time.Second, func() string {
		if n := calls.count("PUT", zoneMain, "app") - puts; n > 0 {
			return fmt.Sprintf("%d updates of an app in sync", n)
		}
		return ""
	})
	// Positive control: the same count sees an out-of-band change undone.
	if err := sim.ModifyApp(zoneMain, ready.Status.ApplicationID, func(a *spectrumtest.App) { a.TLS = "full" }); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*resyncPeriod+10*time.Second, func() string {
		if calls.count("PUT", zoneMain, "app") == puts {
			return "the drift check did not update the changed app"
		}
		return ""
	})

	// An application made as tcp/22 is adopted by a spec that says ssh.
	other := f.app("spelled", zoneMain, "example.com")
	made, err := sim.PutApp(zoneMain, spectrumtest.App{Protocol: "tcp/22", DNS: spectrumtest.DNS{Type: "CNAME", Name: other.Spec.DNS.Name},
		OriginDirect: other.Spec.OriginDirect}, false)
	if err != nil {
		t.Fatal(err)
	}
	untilTheNextSecond()
	other.Spec.Protocol = "ssh"
	other.Annotations = map[string]string{v1alpha1.AdoptApplicationIDAnnotation: made.App.ID}
	f.create(other)
	adopted := f.waitForCondition("spelled", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("spelled")
	if !adopted.Status.Adopted || len(simApps(zoneMain, other.Spec.DNS.Name)) != 1 {
		t.Errorf("a tcp/22 application was not adopted by an ssh SpectrumApp: status %+v", adopted.Status)
	}
}

// originPort beside originDirect is accepted by Cloudflare (its Terraform
// provider's acceptance tests create exactly this), so it is sent.
func TestOriginPortBesideOriginDirectIsSent(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("portbeside", zoneMain, "example.com")
	app.Spec.OriginDirect = []string{"tcp://192.0.2.10:23"}
	port := intstr.FromInt32(22)
	app.Spec.OriginPort = &port
	f.create(app)
	f.waitForCondition("portbeside", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("portbeside")
	if got := simApp(t, zoneMain, app.Spec.DNS.Name); got.OriginPort == nil || got.OriginPort.String() != "22" {
		t.Errorf("Cloudflare holds origin_port %v, want 22", got.OriginPort)
	}
}

// One application of a zone listing that cannot be decoded does not fail
// the zone: the others sync, it is counted, and the SpectrumApp that would
// manage it says so instead of creating a second one.
func TestUnreadableApplicationDoesNotFailTheZone(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	weird := "weird." + f.namespace + ".example.com"
	calls.addToListings(t, zoneMain, json.RawMessage(fmt.Sprintf(
		`{"id":"unreadable0000000000000000000001","protocol":"tcp/22","dns":{"type":"CNAME","name":%q},"origin_port":{"from":22}}`, weird)))
	before := testutil.ToFloat64(controller.UnreadableApplications)
	untilTheNextSecond()

	for _, name := range []string{"neighbour-a", "neighbour-b"} {
		f.create(f.app(name, zoneMain, "example.com"))
	}
	for _, name := range []string{"neighbour-a", "neighbour-b"} {
		f.waitForCondition(name, v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
		defer f.deleteAndWait(name)
	}
	if testutil.ToFloat64(controller.UnreadableApplications) == before {
		t.Error("the skipped application was not counted")
	}

	app := f.app("weird", zoneMain, "example.com")
	app.Spec.DNS.Name = weird
	f.create(app)
	reconciling := f.waitForCondition("weird", v1alpha1.ConditionReconciling, metav1.ConditionTrue, "UnreadableApplication")
	defer f.deleteAndWait("weird")
	if c := meta.FindStatusCondition(reconciling.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "unreadable0000000000000000000001") {
		t.Errorf("message %q does not name the unreadable application", c.Message)
	}
	f.waitForEvent("weird", corev1.EventTypeWarning, "UnreadableApplication")
	if n := len(simApps(zoneMain, weird)); n != 0 {
		t.Errorf("%d applications created beside the unreadable one with the same hostname", n)
	}
}

// A zone by name is looked up once per token, recorded in status.zoneID,
// and N apps of the zone cost one lookup, not N.
func TestZoneByName(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	lookups := calls.zoneLookups()
	const n = 4
	for i := range n {
		app := f.app(fmt.Sprintf("byname-%d", i), "", "drift.example")
		app.Spec.ZoneName = "drift.example"
		f.create(app)
	}
	for i := range n {
		ready := f.waitForCondition(fmt.Sprintf("byname-%d", i), v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
		defer f.deleteAndWait(ready.Name)
		if ready.Status.ZoneID != zoneDrift {
			t.Errorf("%s: status.zoneID %q, want %s", ready.Name, ready.Status.ZoneID, zoneDrift)
		}
		if len(simApps(zoneDrift, ready.Spec.DNS.Name)) != 1 {
			t.Errorf("%s: not created in zone %s", ready.Name, zoneDrift)
		}
	}
	if got := calls.zoneLookups() - lookups; got > 1 {
		t.Errorf("%d zone lookups for %d apps of one zone and token; want at most 1", got, n)
	}

	// A zone the token cannot see (another account's) and one that does
	// not exist read the same at Cloudflare; both stall, saying so.
	for name, zone := range map[string]string{"invisible": "payg.example", "unknown": "nowhere.example"} {
		app := f.app(name, "", zone)
		app.Spec.ZoneName = zone
		f.create(app)
		stalled := f.waitForCondition(name, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonZoneNotFound)
		if c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled); !strings.Contains(c.Message, zone) {
			t.Errorf("%s: message %q does not name the zone", name, c.Message)
		}
		f.deleteAndWait(name)
	}
}

// An application made outside this SpectrumApp (the dashboard, Terraform,
// another cluster) with its hostname and protocol is not taken over unless
// asked: the SpectrumApp stalls naming the application's ID, writes
// nothing, and adopts it once annotated with that ID.
func TestExistingApplicationIsAdoptedOnlyWhenAsked(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("bystander", zoneMain, "example.com")
	existing, err := sim.PutApp(zoneMain, spectrumtest.App{
		Protocol:     "tcp/22",
		DNS:          spectrumtest.DNS{Type: "CNAME", Name: app.Spec.DNS.Name},
		OriginDirect: []string{"tcp://192.0.2.99:22"},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	untilTheNextSecond()
	writes := calls.writes(zoneMain)
	f.create(app)
	stalled := f.waitForCondition("bystander", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonApplicationExists)
	defer f.deleteAndWait("bystander")
	c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled)
	if !strings.Contains(c.Message, existing.App.ID) || !strings.Contains(c.Message, v1alpha1.AdoptApplicationIDAnnotation) {
		t.Errorf("message %q does not name the application and how to adopt it", c.Message)
	}
	if stalled.Status.ApplicationID != "" || calls.writes(zoneMain) != writes {
		t.Fatalf("status %+v and %d writes: the application was taken over unasked", stalled.Status, calls.writes(zoneMain)-writes)
	}
	if got := simApp(t, zoneMain, app.Spec.DNS.Name); got.OriginDirect[0] != "tcp://192.0.2.99:22" {
		t.Errorf("the bystander's application was changed: %+v", got)
	}

	f.update("bystander", func(a *v1alpha1.SpectrumApp) {
		a.Annotations = map[string]string{v1alpha1.AdoptApplicationIDAnnotation: existing.App.ID}
	})
	ready := f.waitForCondition("bystander", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	if ready.Status.ApplicationID != existing.App.ID || !ready.Status.Adopted {
		t.Errorf("status %+v, want application %s adopted", ready.Status, existing.App.ID)
	}
}
