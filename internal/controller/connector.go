package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appcache"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// connect returns the seam to the app's Cloudflare application, through the
// client of the app's API token.
func (r *SpectrumAppReconciler) connect(ctx context.Context, app *v1alpha1.SpectrumApp) (external, error) {
	secret := app.CredentialsSecret(r.DefaultCredentials)
	if secret.Name == "" {
		return nil, &CredentialsError{
			Reason: v1alpha1.ReasonCredentialsNotConfigured,
			Detail: "spec.credentialsRef is not set and the operator has no default credentials",
		}
	}
	// A deletion is let through: it removes what the grant once allowed.
	if app.UsesDefaultCredentials() && app.DeletionTimestamp.IsZero() {
		if err := r.checkGrant(ctx, secret.NamespacedName, app); err != nil {
			return nil, err
		}
	}
	cf, err := r.clientOf(ctx, secret)
	if err != nil {
		return nil, err
	}
	zoneID, err := r.zoneID(ctx, cf, app)
	if err != nil {
		return nil, err
	}
	return r.seam(cf, zoneID, app), nil
}

// clientOf is the Cloudflare client of the token the Secret holds.
func (r *SpectrumAppReconciler) clientOf(ctx context.Context, credentials v1alpha1.SecretKey) (spectrum.Client, error) {
	token, err := r.token(ctx, credentials)
	if err != nil {
		return nil, err
	}
	return r.Connector.ForToken(token), nil
}

// seam is the app's seam to its application, through cf in zone zoneID.
func (r *SpectrumAppReconciler) seam(cf spectrum.Client, zoneID string, app *v1alpha1.SpectrumApp) *cloudflareApp {
	return &cloudflareApp{cf: cf, zoneID: zoneID, zones: r.zones, claims: r, app: app, requestTimeout: r.Connector.RequestTimeout()}
}

// zoneID is the app's zone: spec.zoneID, or the zone spec.zoneName names,
// looked up once per token and recorded in status.zoneID.
func (r *SpectrumAppReconciler) zoneID(ctx context.Context, cf spectrum.Client, app *v1alpha1.SpectrumApp) (string, error) {
	if app.Spec.ZoneID != "" {
		app.Status.ZoneID = app.Spec.ZoneID
		return app.Spec.ZoneID, nil
	}
	id, found, err := r.zones.zoneIDByName(ctx, cf, app.Spec.ZoneName)
	if err != nil {
		return "", err
	}
	if !found {
		return "", &ZoneNotFoundError{Name: app.Spec.ZoneName}
	}
	app.Status.ZoneID = id
	return id, nil
}

// ZoneNotFoundError says no zone of that name is visible to the API token.
type ZoneNotFoundError struct{ Name string }

func (e *ZoneNotFoundError) Error() string {
	return fmt.Sprintf("no zone named %s is visible to this API token: the name is wrong, or the token has no access to the zone (Cloudflare lists neither)", e.Name)
}

// Classification implements failure.Explained.
func (e *ZoneNotFoundError) Classification() failure.Classification {
	return failure.Explain(failure.NeedsHuman, v1alpha1.ReasonZoneNotFound,
		"Check spec.zoneName, or give the API token access to the zone (Zone > Spectrum > Edit on it).", e.Error())
}

// checkGrant refuses the default credentials to an app their Secret's grant
// annotations do not cover (v1alpha1.CredentialsGrant); admission refuses
// the same apps, by the same rule.
func (r *SpectrumAppReconciler) checkGrant(ctx context.Context, secret types.NamespacedName, app *v1alpha1.SpectrumApp) error {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Get(ctx, secret, meta); err != nil {
		return secretError(secret, err)
	}
	if refusal := v1alpha1.GrantOf(meta).Refusal(secret.String(), app); refusal != "" {
		return &CredentialsError{Reason: v1alpha1.ReasonCredentialsNotGranted, Detail: refusal}
	}
	return nil
}

// token reads the API token. The manager caches only Secrets' metadata; the
// data is read from the apiserver when the Secret's resourceVersion changes.
func (r *SpectrumAppReconciler) token(ctx context.Context, credentials v1alpha1.SecretKey) (string, error) {
	name, key := credentials.NamespacedName, credentials.Key
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Get(ctx, name, meta); err != nil {
		return "", secretError(name, err)
	}
	if !v1alpha1.IsCredentialsSecret(meta) {
		return "", &CredentialsError{
			Reason: v1alpha1.ReasonCredentialsSecretNotMarked,
			Detail: fmt.Sprintf("Secret %s is not marked as Cloudflare credentials (label %s=true), so the operator does not read it", name, v1alpha1.CredentialsLabel),
		}
	}
	if token, ok := r.secrets.get(name, meta.ResourceVersion, key); ok {
		return token, nil
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, name, secret); err != nil {
		return "", secretError(name, err)
	}
	// Whitespace around the token is how files end, not part of it.
	token := strings.TrimSpace(string(secret.Data[key]))
	if token == "" {
		return "", &CredentialsError{
			Reason: v1alpha1.ReasonCredentialsKeyMissing,
			Detail: fmt.Sprintf("Secret %s has no non-empty key %q", name, key),
		}
	}
	if !isTokenText(token) {
		// Sent, it would fail as a malformed header (Go refuses it before
		// it leaves), which reads as Cloudflare being unreachable.
		return "", &CredentialsError{
			Reason: v1alpha1.ReasonCredentialsTokenMalformed,
			Detail: fmt.Sprintf("Secret %s key %q does not hold an API token: it has spaces, line breaks or other characters a token never has", name, key),
		}
	}
	r.secrets.put(name, secret.ResourceVersion, key, token)
	return token, nil
}

// secretError explains a Secret that could not be read. Missing and
// forbidden need a person; anything else (a timeout, the apiserver
// restarting) passes by itself.
func secretError(name types.NamespacedName, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return &CredentialsError{
			Reason: v1alpha1.ReasonCredentialsSecretNotFound,
			Detail: fmt.Sprintf("Secret %s not found", name),
		}
	case apierrors.IsForbidden(err):
		return &CredentialsError{
			Reason: v1alpha1.ReasonCredentialsSecretForbidden,
			Detail: fmt.Sprintf("the operator may not read Secret %s (%s)", name, apierrors.ReasonForError(err)),
		}
	}
	return fmt.Errorf("reading Secret %s: %w", name, err)
}

// CredentialsError says the operator has no usable API token for an app,
// found before any request is sent. It never holds the token.
type CredentialsError struct {
	// Reason is a stable CamelCase word, one of the ReasonCredentials*.
	Reason string
	// Detail names the Secret and key concerned.
	Detail string
}

func (e *CredentialsError) Error() string { return e.Detail }

// isTokenText reports whether s can be an API token: printable ASCII without
// spaces. Cloudflare's tokens are letters, digits, '-' and '_'; legacy
// credentials are no wider.
func isTokenText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Classification implements failure.Explained: only a person can provide
// the token. The Secret is watched, so fixing it is enough.
func (e *CredentialsError) Classification() failure.Classification {
	resolution := "Create the Secret in the SpectrumApp's namespace with the API token under the key spec.credentialsRef.key (default apiToken); the operator retries as soon as it changes."
	switch e.Reason {
	case v1alpha1.ReasonCredentialsNotConfigured:
		resolution = "Set spec.credentialsRef to a Secret holding a Cloudflare API token, or start the operator with --default-credentials-secret."
	case v1alpha1.ReasonCredentialsSecretForbidden:
		resolution = "Let the operator's service account get Secrets in this namespace (the Helm chart's watchNamespaces grants it per namespace), then set the " +
			v1alpha1.ReconcileRequestedAtAnnotation + " annotation to retry."
	case v1alpha1.ReasonCredentialsNotGranted:
		resolution = "Set spec.credentialsRef to a credentials Secret of this namespace, or ask the platform team to grant the default credentials (the annotation named above); the operator retries as soon as that Secret changes."
	case v1alpha1.ReasonCredentialsSecretNotMarked:
		resolution = "If this Secret holds the Cloudflare API token meant for SpectrumApps, mark it: kubectl label secret NAME " + v1alpha1.CredentialsLabel + "=true; the operator retries as soon as it changes."
	case v1alpha1.ReasonCredentialsTokenMalformed:
		resolution = "Put only the API token under the key (kubectl create secret generic NAME --from-literal=apiToken=TOKEN); the operator retries as soon as the Secret changes."
	}
	return failure.Explain(failure.NeedsHuman, e.Reason, resolution, e.Detail)
}

// appsUsingSecret maps a Secret event to the SpectrumApps that use it:
// with the default credentials, that is every app. Secrets change seldom,
// so the cached apps are scanned rather than each paying for an index
// entry (docs/benchmarks.md): 20,000 apps take about a millisecond.
func (r *SpectrumAppReconciler) appsUsingSecret(_ context.Context, secret client.Object) []reconcile.Request {
	var requests []reconcile.Request
	r.zoneApps.each(func(app *appcache.Record) {
		if usesSecret(app, client.ObjectKeyFromObject(secret), r.DefaultCredentials) {
			requests = append(requests, reconcile.Request{NamespacedName: app.NamespacedName()})
		}
	})
	return requests
}

// usesSecret tells whether the app takes its token from the Secret, by
// credentialsRef or as the operator's default credentials.
func usesSecret(app *appcache.Record, secret types.NamespacedName, defaults v1alpha1.SecretKey) bool {
	if ref := app.CredentialsRef(); ref != nil {
		return app.GetNamespace() == secret.Namespace && ref.Name == secret.Name
	}
	return defaults.NamespacedName == secret
}

// tokenCache remembers the token of each Secret (and key) at its current
// resourceVersion only: a new version replaces the entry, and a deleted
// Secret's entry is dropped (forgetDeletedSecrets), so it holds at most one
// token per credentials Secret and key in use, however often they change.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[tokenCacheKey]string
}

type tokenCacheKey struct {
	secret          types.NamespacedName
	resourceVersion string
	key             string
}

func newTokenCache() *tokenCache { return &tokenCache{tokens: map[tokenCacheKey]string{}} }

func (c *tokenCache) get(secret types.NamespacedName, resourceVersion, key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	token, ok := c.tokens[tokenCacheKey{secret, resourceVersion, key}]
	return token, ok
}

func (c *tokenCache) put(secret types.NamespacedName, resourceVersion, key, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Older versions of this Secret's token are no longer wanted.
	for k := range c.tokens {
		if k.secret == secret && k.key == key {
			delete(c.tokens, k)
		}
	}
	c.tokens[tokenCacheKey{secret, resourceVersion, key}] = token
}

// forget drops the Secret's tokens, of every key.
func (c *tokenCache) forget(secret types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.tokens {
		if k.secret == secret {
			delete(c.tokens, k)
		}
	}
}

// len is how many tokens the cache holds.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tokens)
}

// forgetDeletedSecrets drops a deleted Secret's token from the cache, then
// hands the event on. A deletion missed while the watch was down comes as
// a delete event too, when the informer lists again.
type forgetDeletedSecrets struct {
	handler.EventHandler
	secrets *tokenCache
}

func (h forgetDeletedSecrets) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	h.secrets.forget(client.ObjectKeyFromObject(e.Object))
	h.EventHandler.Delete(ctx, e, q)
}
