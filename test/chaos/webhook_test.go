package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// With the validating webhook registered (config/webhook, failurePolicy
// Fail) but no webhook server answering, the apiserver refuses to create or
// change a SpectrumApp, valid or not: admission fails closed, so nothing
// unvalidated is stored while the webhook is down. Other resources are
// unaffected. (That the controller never sends an invalid app when
// admission is bypassed altogether is internal/controller's
// TestInvalidSpecIsNeverSent.)
func TestWebhookDownFailsClosed(t *testing.T) {
	env, err := testenv.New(testenv.Options{WithWebhooks: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var webhooks admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := c.List(ctx, &webhooks); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, config := range webhooks.Items {
		for _, w := range config.Webhooks {
			if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail {
				t.Errorf("webhook %s has failurePolicy %v, want Fail", w.Name, w.FailurePolicy)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no validating webhook is installed")
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-down-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	app := &v1alpha1.SpectrumApp{
		ObjectMeta: metav1.ObjectMeta{Name: "valid", Namespace: ns.Name},
		Spec: v1alpha1.SpectrumAppSpec{
			ZoneID:         opsZone,
			CredentialsRef: &v1alpha1.SecretKeyReference{Name: secretName},
			Protocol:       "tcp/22",
			DNS:            v1alpha1.DNS{Type: "CNAME", Name: "ssh.ops.example"},
			OriginDirect:   []string{"tcp://192.0.2.10:22"},
		},
	}
	err = c.Create(ctx, app)
	if err == nil {
		t.Fatal("a SpectrumApp was admitted with the webhook down")
	}
	if !strings.Contains(err.Error(), "failed calling webhook") {
		t.Errorf("refused with %q, want the apiserver's failed-webhook error", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(app), &v1alpha1.SpectrumApp{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after the refusal, get: %v, want NotFound", err)
	}

	// Other resources are still admitted.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: ns.Name, Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}}, StringData: map[string]string{"apiToken": "x"}}
	if err := c.Create(ctx, secret); err != nil {
		t.Errorf("a Secret was refused too: %v", err)
	}

	// An app that exists from before the outage (made here with the
	// webhook configuration briefly removed): its spec cannot change, but
	// the webhook's matchConditions keep metadata-only updates and objects
	// being deleted away from it, so a label, and the finalizer's removal
	// once it is deleted, still go through; status writes, a subresource,
	// still work.
	existing := app.DeepCopy()
	existing.Name = "existing"
	existing.Finalizers = []string{v1alpha1.Finalizer}
	withoutWebhook(t, c, ns.Name, func() error { return c.Create(ctx, existing) })

	changed := existing.DeepCopy()
	changed.Spec.OriginDirect = []string{"tcp://192.0.2.11:22"}
	if err := c.Update(ctx, changed); err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
		t.Errorf("spec update with the webhook down: %v, want it refused", err)
	}
	labelled := existing.DeepCopy()
	labelled.Labels = map[string]string{"team": "edge"}
	if err := c.Update(ctx, labelled); err != nil {
		t.Errorf("label update with the webhook down: %v, want it admitted (matchConditions)", err)
	}
	status := labelled.DeepCopy()
	status.Status.ApplicationID = "0123456789abcdef0123456789abcdef"
	if err := c.Status().Update(ctx, status); err != nil {
		t.Errorf("status update with the webhook down: %v, want it admitted", err)
	}
	if err := c.Delete(ctx, existing); err != nil {
		t.Fatalf("delete with the webhook down: %v", err)
	}
	deleting := &v1alpha1.SpectrumApp{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(existing), deleting); err != nil || deleting.DeletionTimestamp == nil {
		t.Fatalf("after delete: %v, deletionTimestamp %v", err, deleting.DeletionTimestamp)
	}
	deleting.Finalizers = nil
	if err := c.Update(ctx, deleting); err != nil {
		t.Errorf("finalizer removal with the webhook down: %v, want it admitted (matchConditions)", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(existing), deleting); !apierrors.IsNotFound(err) {
		t.Errorf("after its finalizer was removed with the webhook down, the app is still there (err %v)", err)
	}
}

// withoutWebhook removes the validating webhook configurations, runs do
// until it succeeds, and puts them back, waiting until the apiserver
// enforces them again.
func withoutWebhook(t *testing.T, c client.Client, namespace string, do func() error) {
	t.Helper()
	ctx := context.Background()
	var list admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := c.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if err := c.Delete(ctx, &list.Items[i]); err != nil {
			t.Fatal(err)
		}
	}
	// The apiserver notices configuration changes a moment later.
	eventually(t, 10*time.Second, func() string {
		if err := do(); err != nil {
			return err.Error()
		}
		return ""
	})
	for _, config := range list.Items {
		config.ResourceVersion = ""
		if err := c.Create(ctx, &config); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() string {
		probe := &v1alpha1.SpectrumApp{}
		probe.Name, probe.Namespace = "probe", namespace
		probe.Spec = v1alpha1.SpectrumAppSpec{ZoneID: opsZone, Protocol: "tcp/22",
			DNS: v1alpha1.DNS{Type: "CNAME", Name: "probe.ops.example"}, OriginDirect: []string{"tcp://192.0.2.10:22"}}
		err := c.Create(ctx, probe)
		switch {
		case err == nil:
			_ = c.Delete(ctx, probe)
			return "the webhook is not enforced again yet"
		case !strings.Contains(err.Error(), "failed calling webhook"):
			return err.Error()
		}
		return ""
	})
}
