package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultCheckInterval is how often a Rotator compares the Secret and the
// caBundle with what they should be: a caBundle cleared by someone else (a
// GitOps sync of the webhook configuration) is restored within it.
const DefaultCheckInterval = 30 * time.Second

// Rotator keeps the webhook's certificates when no certificate manager does.
// Every replica runs one:
//   - The CA and serving certificate live in one Secret. The first replica
//     to find it missing creates it; the others read it, so every replica
//     serves a certificate of the same CA.
//   - Once less than a third of a certificate's lifetime is left, whichever
//     replica notices first renews it (an update with the Secret's
//     resourceVersion, so two replicas never both win). A new CA is added to
//     the caBundle beside the old one, which stays trusted until it expires.
//   - Each replica serves the Secret's current certificate from memory
//     (GetCertificate), so nothing on disk outlives a rotation.
//   - Each replica puts the bundle into the ValidatingWebhookConfiguration's
//     caBundle whenever it differs, within one check interval.
//
// It reads through an uncached reader and needs no list or watch: get,
// create and update on the one Secret, get and update on the one webhook
// configuration.
type Rotator struct {
	// Secret holds the CA, its key and the serving certificate.
	Secret types.NamespacedName
	// WebhookConfigName is the ValidatingWebhookConfiguration whose caBundle
	// is kept; empty keeps none.
	WebhookConfigName string
	// Hosts are the names and IPs the serving certificate is valid for.
	Hosts []string
	// Reader reads without a cache (a manager's APIReader).
	Reader client.Reader
	// Writer creates and updates the Secret and the webhook configuration.
	Writer client.Writer
	// CAValidity and CertValidity are the lifetimes of new certificates;
	// DefaultCAValidity and DefaultCertValidity when zero.
	CAValidity, CertValidity time.Duration
	// CheckInterval is DefaultCheckInterval when zero.
	CheckInterval time.Duration
	// Now is time.Now when nil.
	Now func() time.Time
	Log logr.Logger

	serving atomic.Pointer[tls.Certificate]
}

// GetCertificate serves the current certificate; use it as the webhook
// server's tls.Config.GetCertificate.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.serving.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("the webhook's serving certificate is not loaded yet")
}

// Loaded reports whether a certificate is being served.
func (r *Rotator) Loaded() bool { return r.serving.Load() != nil }

// Start checks every CheckInterval until ctx ends. Failures are logged and
// retried at the next check: the certificate already served stays valid
// for months.
func (r *Rotator) Start(ctx context.Context) error {
	ticker := time.NewTicker(r.interval())
	defer ticker.Stop()
	for {
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error(err, "keeping the webhook certificates", "secret", r.Secret, "webhookConfiguration", r.WebhookConfigName)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// NeedLeaderElection is false: every replica serves the webhook.
func (r *Rotator) NeedLeaderElection() bool { return false }

// WaitLoaded syncs until a certificate is loaded, for up to timeout, so the
// webhook server never starts without one.
func (r *Rotator) WaitLoaded(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := r.Sync(ctx)
		if r.Loaded() {
			if err != nil {
				r.Log.Error(err, "the webhook certificate is loaded; the rest is retried", "webhookConfiguration", r.WebhookConfigName)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("loading the webhook certificate from Secret %s: %w", r.Secret, errors.Join(err, ctx.Err()))
		case <-time.After(time.Second):
		}
	}
}

// Sync makes one pass: the Secret current, its certificate served, the
// caBundle trusting it.
func (r *Rotator) Sync(ctx context.Context) error {
	b, err := r.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := r.serve(b); err != nil {
		return err
	}
	return r.injectCABundle(ctx, b.caBundle())
}

// ensureSecret reads the Secret and, when missing, unreadable or due,
// writes a renewed bundle. It returns what the Secret holds afterwards.
func (r *Rotator) ensureSecret(ctx context.Context) (*bundle, error) {
	secret := &corev1.Secret{}
	err := r.Reader.Get(ctx, r.Secret, secret)
	if apierrors.IsNotFound(err) {
		return r.create(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", r.Secret, err)
	}
	current, parseErr := parseBundle(secret.Data)
	next, reason, err := renewed(current, r.Hosts, r.now(), r.caValidity(), r.certValidity())
	if err != nil {
		return nil, err
	}
	if parseErr != nil {
		reason = "the Secret's content is not a valid bundle: " + parseErr.Error()
	}
	if reason == "" {
		return current, nil
	}
	secret.Data = next.data()
	secret.Type = corev1.SecretTypeTLS
	// The update carries the resourceVersion read above: when another replica
	// renewed first, this one loses with a conflict and reads the winner's
	// bundle at the next check.
	if err := r.Writer.Update(ctx, secret); err != nil {
		return nil, fmt.Errorf("renewing the webhook certificates in Secret %s (%s): %w", r.Secret, reason, err)
	}
	r.Log.Info("renewed the webhook certificates", "secret", r.Secret, "reason", reason, "servingCertificateExpires", next.cert.NotAfter.UTC())
	return next, nil
}

func (r *Rotator) create(ctx context.Context) (*bundle, error) {
	b, _, err := renewed(nil, r.Hosts, r.now(), r.caValidity(), r.certValidity())
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: r.Secret.Namespace,
			Name:      r.Secret.Name,
			Labels:    map[string]string{"app.kubernetes.io/name": "spectrum-operator", "app.kubernetes.io/component": "webhook-certificates"},
		},
		Type: corev1.SecretTypeTLS,
		Data: b.data(),
	}
	err = r.Writer.Create(ctx, secret)
	if apierrors.IsAlreadyExists(err) {
		// Another replica was first: serve its bundle.
		return r.ensureSecret(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("creating Secret %s for the webhook certificates: %w", r.Secret, err)
	}
	r.Log.Info("created the webhook certificates", "secret", r.Secret, "servingCertificateExpires", b.cert.NotAfter.UTC())
	return b, nil
}

func (r *Rotator) serve(b *bundle) error {
	if c := r.serving.Load(); c != nil && c.Leaf != nil && c.Leaf.Equal(b.cert) {
		return nil
	}
	pair, err := tls.X509KeyPair(b.certPEM, b.keyPEM)
	if err != nil {
		return fmt.Errorf("loading the serving certificate of Secret %s: %w", r.Secret, err)
	}
	r.serving.Store(&pair)
	return nil
}

// injectCABundle writes caBundle into every webhook of the configuration
// that lacks it.
func (r *Rotator) injectCABundle(ctx context.Context, caBundle []byte) error {
	if r.WebhookConfigName == "" {
		return nil
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := r.Reader.Get(ctx, types.NamespacedName{Name: r.WebhookConfigName}, vwc); err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", r.WebhookConfigName, err)
	}
	changed := false
	for i := range vwc.Webhooks {
		if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, caBundle) {
			vwc.Webhooks[i].ClientConfig.CABundle = caBundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	// A conflict (someone else changed it meanwhile) is retried at the next
	// check, from a fresh read.
	if err := r.Writer.Update(ctx, vwc); err != nil {
		return fmt.Errorf("writing the CA into ValidatingWebhookConfiguration %s: %w", r.WebhookConfigName, err)
	}
	r.Log.Info("wrote the CA into the webhook configuration", "webhookConfiguration", r.WebhookConfigName)
	return nil
}

func (r *Rotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Rotator) interval() time.Duration {
	if r.CheckInterval > 0 {
		return r.CheckInterval
	}
	return DefaultCheckInterval
}

func (r *Rotator) caValidity() time.Duration {
	if r.CAValidity > 0 {
		return r.CAValidity
	}
	return DefaultCAValidity
}

func (r *Rotator) certValidity() time.Duration {
	if r.CertValidity > 0 {
		return r.CertValidity
	}
	return DefaultCertValidity
}
