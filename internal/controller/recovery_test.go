package controller_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

// A create applied at Cloudflare whose answer was lost must not be repeated:
// the next attempt finds the app by hostname and protocol and adopts it.
func TestAdoptsAfterALostCreateResponse(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	addFault(t, spectrumtest.Fault{
		Kind: spectrumtest.FaultResponseLost, Method: "POST", PathPrefix: "/zones/" + zoneMain, Count: 1,
	})
	app := f.app("lost", zoneMain, "example.com")
	f.create(app)
	ready := f.waitForCondition("lost", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("lost")

	stored := simApps(zoneMain, app.Spec.DNS.Name)
	if len(stored) != 1 {
		t.Fatalf("simulator holds %d apps for the hostname, want exactly 1 (no duplicate)", len(stored))
	}
	if ready.Status.ApplicationID != stored[0].ID || !ready.Status.Adopted {
		t.Fatalf("status %+v, want adopted app %s", ready.Status, stored[0].ID)
	}
	f.waitForEvent("lost", corev1.EventTypeNormal, "Adopted")
}

// A pay-as-you-go account may have one app per protocol: the second one
// stalls with 11034 (no webhook here, so Cloudflare's answer is what stalls).
func TestPayAsYouGoOneAppPerProtocol(t *testing.T) {
	f := newFixture(t, paygToken)
	first := f.app("first", zonePAYG, "payg.example")
	f.create(first)
	f.waitForCondition("first", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("first")

	second := f.app("second", zonePAYG, "payg.example")
	f.create(second)
	stalled := f.waitForCondition("second", v1alpha1.ConditionStalled, metav1.ConditionTrue, "")
	defer f.deleteAndWait("second")
	if c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled); !strings.Contains(c.Message, "11034") {
		t.Fatalf("Stalled message %q lacks 11034", c.Message)
	}
}

// A stalled app is retried when the user asks with the annotation, and
// becomes Ready once the entitlement is granted.
func TestStalledAppRecoversAfterEntitlementAndRetryRequest(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("argo", zoneMain, "example.com")
	app.Spec.ArgoSmartRouting = ptr.To(true)
	f.create(app)
	f.waitForCondition("argo", v1alpha1.ConditionStalled, metav1.ConditionTrue, "")
	defer f.deleteAndWait("argo")

	if err := sim.SetEntitlement(enterprise, spectrumtest.EntitlementArgo, true); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sim.SetEntitlement(enterprise, spectrumtest.EntitlementArgo, false) }()
	requestedAt := time.Now().Format(time.RFC3339Nano)
	f.update("argo", func(app *v1alpha1.SpectrumApp) {
		if app.Annotations == nil {
			app.Annotations = map[string]string{}
		}
		app.Annotations[v1alpha1.ReconcileRequestedAtAnnotation] = requestedAt
	})
	ready := f.waitForCondition("argo", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	if ready.Status.LastHandledReconcileAt != requestedAt {
		t.Errorf("lastHandledReconcileAt %q, want %q", ready.Status.LastHandledReconcileAt, requestedAt)
	}
	if meta.FindStatusCondition(ready.Status.Conditions, v1alpha1.ConditionStalled) != nil {
		t.Errorf("Ready app still Stalled: %v", ready.Status.Conditions)
	}
}

// Missing credentials are a clear Stalled reason, fixed by creating the
// Secret (which the controller watches).
func TestMissingSecretStallsThenRecovers(t *testing.T) {
	f := newFixture(t, "")
	f.create(f.app("nosecret", zoneMain, "example.com"))
	stalled := f.waitForCondition("nosecret", v1alpha1.ConditionStalled, metav1.ConditionTrue, "CredentialsSecretNotFound")
	defer f.deleteAndWait("nosecret")
	if c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled); !strings.Contains(c.Message, "cloudflare") {
		t.Errorf("message %q does not name the Secret", c.Message)
	}

	f.createSecret("cloudflare", enterpriseToken)
	f.waitForCondition("nosecret", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
}

// When admission is bypassed, the controller still never sends an invalid
// app to Cloudflare.
func TestInvalidSpecIsNeverSent(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	app := f.app("invalid", zoneMain, "example.com")
	app.Spec.OriginDirect = []string{"tcp://2001:db8::1:22"}
	posts := calls.count("POST", zoneMain, "list")
	f.create(app)
	stalled := f.waitForCondition("invalid", v1alpha1.ConditionStalled, metav1.ConditionTrue, "InvalidSpec")
	defer f.deleteAndWait("invalid")
	c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled)
	if !strings.Contains(c.Message, "spec.originDirect[0]") || !strings.Contains(c.Message, "11002") {
		t.Errorf("message %q lacks the field path and code 11002", c.Message)
	}
	if got := calls.count("POST", zoneMain, "list") - posts; got != 0 {
		t.Errorf("%d creates sent for an invalid app; want 0", got)
	}
}

// The API token never appears in status or events, even when Cloudflare
// echoes it back: the simulator, like a careless API, repeats an invalid
// token in its 9109 message, which must be redacted on the way in.
func TestTokenNeverInStatusOrEvents(t *testing.T) {
	const unknownToken = "test-unknown-token-3f9a1c77e2"
	f := newFixture(t, unknownToken)
	app := f.app("secretive", zoneMain, "example.com")
	f.create(app)
	stalled := f.waitForCondition("secretive", v1alpha1.ConditionStalled, metav1.ConditionTrue, "AuthenticationFailed")
	defer f.deleteAndWait("secretive")
	c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled)
	if !strings.Contains(c.Message, "9109") || !strings.Contains(c.Message, "[REDACTED]") {
		t.Fatalf("message %q: want Cloudflare's 9109 answer, with the token it echoed redacted (else this test proves nothing)", c.Message)
	}
	text := fmt.Sprintf("%+v", stalled.Status)
	for _, e := range f.events("secretive") {
		text += e.Note + e.Reason
	}
	if strings.Contains(text, unknownToken) {
		t.Fatalf("the API token leaked into status or events: %s", text)
	}
}

// Two SpectrumApps with the same zone, hostname and protocol: the second
// must not adopt the first one's application (they would fight over it), and
// deleting the second must leave it in place.
func TestSecondAppForTheSameHostnameDoesNotAdopt(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	first := f.app("first", zoneMain, "example.com")
	f.create(first)
	owner := f.waitForCondition("first", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("first")

	second := f.app("second", zoneMain, "example.com")
	second.Spec.DNS.Name = first.Spec.DNS.Name
	f.create(second)
	stalled := f.waitForCondition("second", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonApplicationClaimed)
	c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled)
	if !strings.Contains(c.Message, "SpectrumApp first in this namespace") || stalled.Status.ApplicationID != "" {
		t.Errorf("second app: status %+v, message %q; want no applicationID and a message naming first", stalled.Status, c.Message)
	}

	f.deleteAndWait("second")
	stored := simApps(zoneMain, first.Spec.DNS.Name)
	if len(stored) != 1 || stored[0].ID != owner.Status.ApplicationID {
		t.Fatalf("after deleting the second app the simulator holds %+v, want the first app's %s", stored, owner.Status.ApplicationID)
	}
}

// A token saved with a trailing newline (`kubectl create secret
// --from-file` of a file an editor ended with one) works; a value that
// cannot be an API token stalls with a reason naming the Secret, without a
// request to Cloudflare and without the value.
func TestTokensAreTrimmedAndChecked(t *testing.T) {
	f := newFixture(t, "")
	f.createSecret("cloudflare", "  "+enterpriseToken+"\n")
	f.create(f.app("newline", zoneMain, "example.com"))
	f.waitForCondition("newline", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	f.deleteAndWait("newline")

	const malformed = "first-token\nsecond-token"
	g := newFixture(t, "")
	g.createSecret("cloudflare", malformed)
	requests := calls.total()
	g.create(g.app("malformed", zoneMain, "example.com"))
	stalled := g.waitForCondition("malformed", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonCredentialsTokenMalformed)
	defer g.deleteAndWait("malformed")
	c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled)
	if !strings.Contains(c.Message, "cloudflare") || strings.Contains(c.Message, "first-token") {
		t.Errorf("message %q: want the Secret named and no part of its value", c.Message)
	}
	if n := calls.total() - requests; n != 0 {
		t.Errorf("%d requests reached Cloudflare with a malformed token", n)
	}
}

// A claim by a SpectrumApp of another namespace is refused without naming
// it: one tenant's status and events never show another's objects.
func TestClaimInAnotherNamespaceIsNotNamed(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	first := f.app("owner-elsewhere", zoneMain, "example.com")
	f.create(first)
	f.waitForCondition("owner-elsewhere", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer f.deleteAndWait("owner-elsewhere")

	g := newFixture(t, enterpriseToken)
	second := g.app("taker", zoneMain, "example.com")
	second.Spec.DNS.Name = first.Spec.DNS.Name
	g.create(second)
	stalled := g.waitForCondition("taker", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonApplicationClaimed)
	defer g.deleteAndWait("taker")
	text := fmt.Sprintf("%+v", stalled.Status)
	for _, e := range g.events("taker") {
		text += e.Note
	}
	if strings.Contains(text, f.namespace) || strings.Contains(text, "owner-elsewhere") {
		t.Errorf("the other namespace's SpectrumApp is named to this one: %s", text)
	}
	if !strings.Contains(text, "another namespace") {
		t.Errorf("status %s does not say the application is managed elsewhere", text)
	}
}

// A Secret the platform put in the namespace for something else is never
// read or held: the app stalls with the command that marks the Secret, and
// marking it is all it takes.
func TestUnmarkedSecretIsNotUsed(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	secret := &corev1.Secret{}
	if err := k8sClient.Get(t.Context(), client.ObjectKey{Namespace: f.namespace, Name: "cloudflare"}, secret); err != nil {
		t.Fatal(err)
	}
	delete(secret.Labels, v1alpha1.CredentialsLabel)
	if err := k8sClient.Update(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	requests := calls.total()
	f.create(f.app("unmarked", zoneMain, "example.com"))
	stalled := f.waitForCondition("unmarked", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonCredentialsSecretNotMarked)
	defer f.deleteAndWait("unmarked")
	c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled)
	if !strings.Contains(c.Message, "kubectl label secret") || !strings.Contains(c.Message, v1alpha1.CredentialsLabel+"=true") {
		t.Errorf("message %q does not say how to mark the Secret", c.Message)
	}
	if n := calls.total() - requests; n != 0 {
		t.Errorf("%d requests reached Cloudflare with an unmarked Secret's data", n)
	}
	if err := k8sClient.Get(t.Context(), client.ObjectKeyFromObject(secret), secret); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(secret.Finalizers, controller.CredentialsInUseFinalizer) {
		t.Error("the operator holds an unmarked Secret with its finalizer")
	}

	secret.Labels = map[string]string{v1alpha1.CredentialsLabel: "true"}
	if err := k8sClient.Update(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	f.waitForCondition("unmarked", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
}

// The operator's default credentials serve only the namespaces, zones and
// hostnames their Secret's annotations grant; anything else stalls naming
// the annotation that lacks it, without a request to Cloudflare, and a
// widened grant wakes the app.
func TestDefaultCredentialsAreGranted(t *testing.T) {
	ctx := t.Context()
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: defaultCredentials.Namespace}}); err != nil {
		t.Fatal(err)
	}
	granted, other := newFixture(t, ""), newFixture(t, "")
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: defaultCredentials.Namespace, Name: defaultCredentials.Name,
			Labels: map[string]string{v1alpha1.CredentialsLabel: "true"},
			Annotations: map[string]string{
				v1alpha1.GrantedNamespacesAnnotation: granted.namespace,
				v1alpha1.GrantedZonesAnnotation:      "example.com, " + zoneMain,
				v1alpha1.GrantedHostnamesAnnotation:  "*." + granted.namespace + ".example.com",
			}},
		Data: map[string][]byte{v1alpha1.DefaultCredentialsKey: []byte(enterpriseToken)},
	}
	if err := k8sClient.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	onDefaults := func(f *fixture, name string) *v1alpha1.SpectrumApp {
		app := f.app(name, zoneMain, "example.com")
		app.Spec.CredentialsRef = nil
		return app
	}

	granted.create(onDefaults(granted, "granted"))
	granted.waitForCondition("granted", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	defer granted.deleteAndWait("granted")

	requests := calls.total()
	elsewhere := onDefaults(granted, "elsewhere")
	elsewhere.Spec.DNS.Name = "elsewhere.example.com"
	granted.create(elsewhere)
	stalled := granted.waitForCondition("elsewhere", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonCredentialsNotGranted)
	defer granted.deleteAndWait("elsewhere")
	if c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled); !strings.Contains(c.Message, v1alpha1.GrantedHostnamesAnnotation) {
		t.Errorf("message %q does not name the hostname grant", c.Message)
	}

	other.create(onDefaults(other, "tenant"))
	stalled = other.waitForCondition("tenant", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonCredentialsNotGranted)
	defer other.deleteAndWait("tenant")
	if c := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled); !strings.Contains(c.Message, v1alpha1.GrantedNamespacesAnnotation) ||
		strings.Contains(c.Message, granted.namespace) {
		t.Errorf("message %q: want the namespace grant named, and no other tenant", c.Message)
	}
	if n := calls.total() - requests; n != 0 {
		t.Errorf("%d requests reached Cloudflare for apps the grant does not cover", n)
	}

	// The platform widens the grant: the app is woken and made.
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
		t.Fatal(err)
	}
	secret.Annotations[v1alpha1.GrantedNamespacesAnnotation] += ", " + other.namespace
	secret.Annotations[v1alpha1.GrantedHostnamesAnnotation] = "*.example.com"
	if err := k8sClient.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	other.waitForCondition("tenant", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
}
