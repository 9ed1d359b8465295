package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

var k8sClient client.Client

func TestMain(m *testing.M) {
	os.Exit(runWithAPIServer(m))
}

// runWithAPIServer starts a real kube-apiserver for the Rotator's tests: the
// Secret's create and update conflicts and the webhook configuration are
// the apiserver's to decide.
func runWithAPIServer(m *testing.M) int {
	env, err := testenv.New(testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if k8sClient, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// newWebhookConfig creates a webhook configuration with two webhooks and no
// caBundle, as the chart installs it.
func newWebhookConfig(t *testing.T, name string) {
	t.Helper()
	none := admissionregistrationv1.SideEffectClassNone
	hook := func(n string) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:                    n,
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Namespace: "system", Name: "webhook-service", Path: ptr.To("/validate")},
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.test"}, APIVersions: []string{"v1"}, Resources: []string{n[:3]}},
			}},
		}
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{hook("one.example.test"), hook("two.example.test")},
	}
	if err := k8sClient.Create(t.Context(), vwc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), vwc) })
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "certs-"}}
	if err := k8sClient.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func replica(t *testing.T, ns, vwc string, now func() time.Time) *Rotator {
	return &Rotator{
		Secret:            types.NamespacedName{Namespace: ns, Name: "webhook-cert"},
		WebhookConfigName: vwc,
		Hosts:             []string{"webhook-service." + ns + ".svc"},
		Reader:            k8sClient,
		Writer:            k8sClient,
		CAValidity:        caValidity,
		CertValidity:      certValidity,
		CheckInterval:     100 * time.Millisecond,
		Now:               now,
		Log:               testr.New(t),
	}
}

// caBundles returns each webhook's caBundle.
func caBundles(t *testing.T, name string) [][]byte {
	t.Helper()
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := k8sClient.Get(t.Context(), types.NamespacedName{Name: name}, vwc); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, w := range vwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

func served(t *testing.T, r *Rotator) *x509.Certificate {
	t.Helper()
	c, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// TestReplicasShareOneCA: replicas starting together make one Secret, serve
// the same certificate, and the caBundle trusts it.
func TestReplicasShareOneCA(t *testing.T) {
	ns, vwc := newNamespace(t), "share-"+fmt.Sprint(time.Now().UnixNano())
	newWebhookConfig(t, vwc)
	replicas := []*Rotator{replica(t, ns, vwc, nil), replica(t, ns, vwc, nil), replica(t, ns, vwc, nil)}
	var wg sync.WaitGroup
	for _, r := range replicas {
		if r.Loaded() {
			t.Fatal("a certificate is served before the first sync")
		}
		wg.Go(func() {
			if err := r.WaitLoaded(t.Context(), 30*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	first := served(t, replicas[0])
	for i, r := range replicas[1:] {
		if !served(t, r).Equal(first) {
			t.Errorf("replica %d serves another certificate than replica 0", i+1)
		}
	}
	secret := &corev1.Secret{}
	if err := k8sClient.Get(t.Context(), replicas[0].Secret, secret); err != nil {
		t.Fatal(err)
	}
	if secret.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %q, want %q", secret.Type, corev1.SecretTypeTLS)
	}
	roots := x509.NewCertPool()
	for i, b := range caBundles(t, vwc) {
		if !bytes.Equal(b, secret.Data[CAKey]) {
			t.Errorf("webhook %d's caBundle is not the Secret's ca.crt", i)
		}
		roots.AppendCertsFromPEM(b)
	}
	if _, err := first.Verify(x509.VerifyOptions{DNSName: "webhook-service." + ns + ".svc", Roots: roots}); err != nil {
		t.Errorf("the served certificate is not trusted by the caBundle: %v", err)
	}
}

// TestClearedCABundleIsRestored: a GitOps sync that rewrites the webhook
// configuration without its caBundle is undone within one check interval.
func TestClearedCABundleIsRestored(t *testing.T) {
	ns, vwc := newNamespace(t), "restore-"+fmt.Sprint(time.Now().UnixNano())
	newWebhookConfig(t, vwc)
	r := replica(t, ns, vwc, nil)
	ctx, cancel := context.WithCancel(t.Context())
	if err := r.WaitLoaded(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	config := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: vwc}, config); err != nil {
		t.Fatal(err)
	}
	want := config.Webhooks[0].ClientConfig.CABundle
	for i := range config.Webhooks {
		config.Webhooks[i].ClientConfig.CABundle = nil
	}
	if err := k8sClient.Update(ctx, config); err != nil {
		t.Fatal(err)
	}
	if b := caBundles(t, vwc); len(b[0]) != 0 {
		t.Fatal("the caBundle was not cleared; the test would prove nothing")
	}
	// Started only now, so its first check cannot undo the clearing before
	// the test sees it.
	stopped := make(chan struct{})
	go func() { _ = r.Start(ctx); close(stopped) }()
	// It logs through t: it must be gone before the test ends.
	defer func() { cancel(); <-stopped }()
	testenv.Eventually(t, 5*time.Second, func() string {
		for i, b := range caBundles(t, vwc) {
			if !bytes.Equal(b, want) {
				return fmt.Sprintf("webhook %d's caBundle is not restored", i)
			}
		}
		return ""
	})
}

// TestRotationReachesEveryReplica: once a certificate is due, one replica
// renews it and every replica serves the new one; after a CA rotation the
// caBundle trusts the new and the old CA, so a replica that has not reloaded
// yet is still trusted.
func TestRotationReachesEveryReplica(t *testing.T) {
	ns, vwc := newNamespace(t), "rotate-"+fmt.Sprint(time.Now().UnixNano())
	newWebhookConfig(t, vwc)
	clk := &clock{now: time.Now()}
	a, b := replica(t, ns, vwc, clk.Now), replica(t, ns, vwc, clk.Now)
	for _, r := range []*Rotator{a, b} {
		if err := r.WaitLoaded(t.Context(), 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	before := served(t, a)

	// The serving certificate is due: a renews it, b picks it up.
	clk.Advance(certValidity*2/3 + 24*time.Hour)
	if err := a.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	renewedCert := served(t, a)
	if renewedCert.Equal(before) {
		t.Fatal("the due serving certificate was not renewed")
	}
	if served(t, b).Equal(renewedCert) {
		t.Fatal("b serves the new certificate before reading the Secret; the check below would prove nothing")
	}
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !served(t, b).Equal(renewedCert) {
		t.Error("b does not serve the renewed certificate after its next check")
	}
	if err := renewedCert.CheckSignatureFrom(a.mustCA(t)); err != nil || renewedCert.Issuer.String() != before.Issuer.String() {
		t.Errorf("a certificate renewal changed the CA (err %v)", err)
	}

	// Time passes, both replicas checking every 20 days, until a finds the
	// CA due and rotates it. Until b reloads, b's certificate (of the old CA)
	// is still trusted by the caBundle.
	caBefore := a.mustCA(t)
	var oldServing *x509.Certificate
	for step := 0; ; step++ {
		if step > 20 {
			t.Fatal("the CA was never rotated")
		}
		clk.Advance(20 * 24 * time.Hour)
		oldServing = served(t, b)
		if err := a.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !a.mustCA(t).Equal(caBefore) {
			break
		}
		if err := b.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if oldServing.CheckSignatureFrom(caBefore) != nil {
		t.Fatal("b's certificate is not of the old CA; the check below would prove nothing")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caBundles(t, vwc)[0])
	for name, c := range map[string]*x509.Certificate{"the new certificate": served(t, a), "b's certificate of the old CA": oldServing} {
		if _, err := c.Verify(x509.VerifyOptions{DNSName: "webhook-service." + ns + ".svc", Roots: roots, CurrentTime: clk.Now()}); err != nil {
			t.Errorf("%s is not trusted by the caBundle after a CA rotation: %v", name, err)
		}
	}
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !served(t, b).Equal(served(t, a)) {
		t.Error("b does not serve the new CA's certificate after its next check")
	}
}

// TestConcurrentRenewalHasOneWinner: two replicas renewing at once never
// both write; the loser serves the winner's certificate at its next check.
func TestConcurrentRenewalHasOneWinner(t *testing.T) {
	ns, vwc := newNamespace(t), "race-"+fmt.Sprint(time.Now().UnixNano())
	newWebhookConfig(t, vwc)
	clk := &clock{now: time.Now()}
	a, b := replica(t, ns, vwc, clk.Now), replica(t, ns, vwc, clk.Now)
	if err := a.WaitLoaded(t.Context(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitLoaded(t.Context(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(certValidity*2/3 + 24*time.Hour)
	// b read the Secret before a wrote: its update carries a stale
	// resourceVersion.
	stale := &corev1.Secret{}
	if err := k8sClient.Get(t.Context(), a.Secret, stale); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.Reader = staleReader{Client: k8sClient, secret: stale}
	if err := b.Sync(t.Context()); err == nil {
		t.Error("b's renewal from a stale read was accepted: two replicas could serve different CAs")
	}
	b.Reader = k8sClient
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !served(t, b).Equal(served(t, a)) {
		t.Error("after losing the race, b does not serve the winner's certificate")
	}
}

// staleReader answers the Secret with an old copy.
type staleReader struct {
	client.Client
	secret *corev1.Secret
}

func (s staleReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if out, ok := obj.(*corev1.Secret); ok && key == client.ObjectKeyFromObject(s.secret) {
		s.secret.DeepCopyInto(out)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

func (r *Rotator) mustCA(t *testing.T) *x509.Certificate {
	t.Helper()
	secret := &corev1.Secret{}
	if err := k8sClient.Get(t.Context(), r.Secret, secret); err != nil {
		t.Fatal(err)
	}
	b, err := parseBundle(secret.Data)
	if err != nil {
		t.Fatal(err)
	}
	return b.ca
}
