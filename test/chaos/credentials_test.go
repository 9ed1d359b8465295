package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// Each credentials problem stalls with the reason the classification table
// gives for it, says which Secret or key is at fault, and clears once
// fixed: a Secret change wakes the app by itself (the Secret is watched); a
// token fixed at Cloudflare needs the reconcile-requested-at annotation.

func TestMissingSecretStallsUntilCreated(t *testing.T) {
	f := newFixture(t, "creds-missing-")
	f.create(f.app("app", opsZone, "ops.example"))
	stalled := f.waitFor("app", v1alpha1.ConditionStalled, metav1.ConditionTrue, "CredentialsSecretNotFound")
	if msg := stalledMessage(stalled); !strings.Contains(msg, f.namespace+"/"+secretName) {
		t.Errorf("message %q does not name the Secret %s/%s", msg, f.namespace, secretName)
	}
	if got := appsWithHostname(stalled.Spec.DNS.Name); len(got) != 0 {
		t.Fatalf("an app without credentials reached Cloudflare: %+v", got)
	}

	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
	expectOneApp(t, f.waitReady("app"), opsAccount)
}

func TestWrongKeyStallsUntilSecretUpdated(t *testing.T) {
	f := newFixture(t, "creds-key-")
	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
	app := f.app("app", opsZone, "ops.example")
	app.Spec.CredentialsRef.Key = "token"
	f.create(app)
	stalled := f.waitFor("app", v1alpha1.ConditionStalled, metav1.ConditionTrue, "CredentialsKeyMissing")
	if msg := stalledMessage(stalled); !strings.Contains(msg, `"token"`) || !strings.Contains(msg, secretName) {
		t.Errorf("message %q does not name the Secret and the key", msg)
	}

	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken, "token": opsToken})
	expectOneApp(t, f.waitReady("app"), opsAccount)
}

// A token Cloudflare does not know (a typo, a deleted token) is 403 9109;
// putting the right token in the Secret is enough to recover.
func TestUnknownTokenStallsUntilSecretUpdated(t *testing.T) {
	f := newFixture(t, "creds-unknown-")
	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: unknownToken})
	f.create(f.app("app", opsZone, "ops.example"))
	stalled := f.waitFor("app", v1alpha1.ConditionStalled, metav1.ConditionTrue, "AuthenticationFailed")
	if msg := stalledMessage(stalled); !strings.Contains(msg, "9109") || !strings.Contains(msg, "HTTP 403") {
		t.Errorf("message %q lacks the code 9109 and HTTP 403", msg)
	}
	expectNoTokenInStatus(t, stalled)

	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
	expectOneApp(t, f.waitReady("app"), opsAccount)
}

// A token revoked while its app is Ready is noticed at the next resync and
// stalls the app; restoring the token at Cloudflare does not restart a
// stalled app by itself (nothing in Kubernetes changed), the annotation
// does.
func TestRevokedTokenStallsUntilRestoredAndRequested(t *testing.T) {
	f := newFixture(t, "creds-revoked-")
	f.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: opsToken})
	f.create(f.app("app", opsZone, "ops.example"))
	ready := f.waitReady("app")
	expectOneApp(t, ready, opsAccount)

	if err := h.Sim.SetTokenRevoked(opsToken, true); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			_ = h.Sim.SetTokenRevoked(opsToken, false)
		}
	}()
	var stalled *v1alpha1.SpectrumApp
	// The next resync (a zone listing older than the period) meets 9109.
	eventually(t, 3*resyncPeriod()+10*time.Second, func() string {
		stalled = f.get("app")
		return conditionProblem(stalled, v1alpha1.ConditionStalled, metav1.ConditionTrue, "AuthenticationFailed")
	})
	if msg := stalledMessage(stalled); !strings.Contains(msg, "9109") || !strings.Contains(msg, "revoked") {
		t.Errorf("message %q lacks the code 9109 and what it means", msg)
	}
	expectNoTokenInStatus(t, stalled)

	if err := h.Sim.SetTokenRevoked(opsToken, false); err != nil {
		t.Fatal(err)
	}
	restored = true
	// Stalled means not retried: well past a resync period it still is.
	consistently(t, resyncPeriod()+time.Second, func() string {
		return conditionProblem(f.get("app"), v1alpha1.ConditionStalled, metav1.ConditionTrue, "AuthenticationFailed")
	})

	requested := f.requestReconcile("app")
	ready = f.waitReady("app")
	if ready.Status.LastHandledReconcileAt != requested {
		t.Errorf("lastHandledReconcileAt %q, want %q", ready.Status.LastHandledReconcileAt, requested)
	}
	// The app survived the revocation: same application, not a new one.
	expectOneApp(t, ready, opsAccount)
}

// expectNoTokenInStatus checks the status right when it explains a
// credentials failure, the likeliest moment for a leak.
func expectNoTokenInStatus(t *testing.T, app *v1alpha1.SpectrumApp) {
	t.Helper()
	text := fmt.Sprintf("%+v", app.Status)
	for i, token := range allTokens {
		if strings.Contains(text, token) {
			t.Errorf("token #%d appears in the status of %s", i, app.Name)
		}
	}
}
