package chaos

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// Two namespaces, two accounts: each app lands in its own account's zone
// with its own namespace's token, and a namespace whose token cannot see a
// zone is told so (AuthenticationFailed) instead of borrowing the other
// namespace's credentials.
func TestTenantsStayApart(t *testing.T) {
	a := newFixture(t, "tenant-a-")
	b := newFixture(t, "tenant-b-")
	a.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: tenantAToken})
	b.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: tenantBToken})

	a.create(a.app("web", tenantAZone, "tenant-a.example"))
	b.create(b.app("web", tenantBZone, "tenant-b.example"))
	// Tenant B aims at tenant A's zone.
	intruder := b.app("intruder", tenantAZone, "tenant-a.example")
	b.create(intruder)

	expectOneApp(t, a.waitReady("web"), tenantAAccount)
	expectOneApp(t, b.waitReady("web"), tenantBAccount)

	stalled := b.waitFor("intruder", v1alpha1.ConditionStalled, metav1.ConditionTrue, "AuthenticationFailed")
	if msg := stalledMessage(stalled); !strings.Contains(msg, "10000") || !strings.Contains(msg, "HTTP 403") {
		t.Errorf("message %q lacks Cloudflare's 10000 / HTTP 403", msg)
	}
	if stalled.Status.ApplicationID != "" {
		t.Errorf("the intruder records application %s", stalled.Status.ApplicationID)
	}
	if got := appsWithHostname(intruder.Spec.DNS.Name); len(got) != 0 {
		t.Fatalf("tenant B's app reached tenant A's zone: %+v", got)
	}
	if n := len(simApps(tenantAZone, "")); n != 1 {
		t.Errorf("tenant A's zone holds %d apps, want 1", n)
	}
}

// credentialsRef has no namespace field: a namespace given anyway is pruned
// by the CRD's structural schema (or refused with strict field
// validation), so an app can only ever use a Secret of its own namespace.
func TestCredentialsRefHasNoNamespace(t *testing.T) {
	a := newFixture(t, "owner-")
	b := newFixture(t, "borrower-")
	// Only A has a Secret, holding a valid token.
	a.secret(secretName, map[string]string{v1alpha1.DefaultCredentialsKey: tenantAToken})

	borrower := b.app("borrower", tenantAZone, "tenant-a.example")
	object := toUnstructured(t, borrower)
	if err := unstructured.SetNestedField(object.Object, a.namespace, "spec", "credentialsRef", "namespace"); err != nil {
		t.Fatal(err)
	}

	strict := object.DeepCopy()
	err := h.Client.Create(b.ctx, strict, client.FieldValidation(metav1.FieldValidationStrict))
	if err == nil || !strings.Contains(err.Error(), "spec.credentialsRef.namespace") {
		t.Fatalf("strict create with credentialsRef.namespace: %v, want it refused naming the field", err)
	}

	if err := h.Client.Create(b.ctx, object); err != nil {
		t.Fatalf("create with the default field validation: %v", err)
	}
	stored := &unstructured.Unstructured{}
	stored.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("SpectrumApp"))
	if err := h.Client.Get(b.ctx, client.ObjectKeyFromObject(object), stored); err != nil {
		t.Fatal(err)
	}
	ref, _, _ := unstructured.NestedMap(stored.Object, "spec", "credentialsRef")
	if _, found := ref["namespace"]; found || ref["name"] != secretName {
		t.Fatalf("stored credentialsRef %v, want the namespace pruned and the name kept", ref)
	}

	// The app looks for the Secret in its own namespace, where there is
	// none, and says so.
	stalled := b.waitFor("borrower", v1alpha1.ConditionStalled, metav1.ConditionTrue, "CredentialsSecretNotFound")
	if msg := stalledMessage(stalled); !strings.Contains(msg, b.namespace+"/"+secretName) {
		t.Errorf("message %q does not name %s/%s", msg, b.namespace, secretName)
	}
	if got := appsWithHostname(borrower.Spec.DNS.Name); len(got) != 0 {
		t.Fatalf("the borrower reached Cloudflare with another namespace's token: %+v", got)
	}
}

func toUnstructured(t *testing.T, app *v1alpha1.SpectrumApp) *unstructured.Unstructured {
	t.Helper()
	app = app.DeepCopy()
	app.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("SpectrumApp"))
	object := &unstructured.Unstructured{}
	if err := h.Client.Scheme().Convert(app, object, nil); err != nil {
		t.Fatal(err)
	}
	return object
}
