package controller

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// credentialsIndex indexes SpectrumApps by the Secret they take their token
// from, so a Secret change wakes exactly the apps that use it.
const credentialsIndex = "spec.credentialsRef.name"

// usesDefaultCredentials is the index value of apps without credentialsRef.
const usesDefaultCredentials = "\x00default"

func indexCredentials(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.SpectrumApp{}, credentialsIndex, func(obj client.Object) []string {
		app := obj.(*v1alpha1.SpectrumApp)
		if app.Spec.CredentialsRef == nil {
			return []string{usesDefaultCredentials}
		}
		return []string{app.Spec.CredentialsRef.Name}
	})
}

// connect returns the Cloudflare client for the app's credentials.
func (r *SpectrumAppReconciler) connect(ctx context.Context, app *v1alpha1.SpectrumApp) (spectrum.Client, error) {
	secret, key := r.credentialsSecret(app)
	if secret.Name == "" {
		return nil, &spectrum.CredentialsError{
			Reason: spectrum.ReasonCredentialsNotConfigured,
			Detail: "spec.credentialsRef is not set and the operator has no default credentials",
		}
	}
	token, err := r.token(ctx, secret, key)
	if err != nil {
		return nil, err
	}
	return r.Connector.ForToken(token), nil
}

// credentialsSecret is the Secret and key the app's token comes from.
func (r *SpectrumAppReconciler) credentialsSecret(app *v1alpha1.SpectrumApp) (types.NamespacedName, string) {
	if ref := app.Spec.CredentialsRef; ref != nil {
		key := ref.Key
		if key == "" {
			key = v1alpha1.DefaultCredentialsKey
		}
		return types.NamespacedName{Namespace: app.Namespace, Name: ref.Name}, key
	}
	d := r.DefaultCredentials
	key := d.Key
	if key == "" {
		key = v1alpha1.DefaultCredentialsKey
	}
	return types.NamespacedName{Namespace: d.Namespace, Name: d.Name}, key
}

// token reads the API token. The manager caches only Secrets' metadata; the
// data is read from the apiserver when the Secret's resourceVersion changes.
func (r *SpectrumAppReconciler) token(ctx context.Context, name types.NamespacedName, key string) (string, error) {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Get(ctx, name, meta); err != nil {
		return "", secretError(name, err)
	}
	if token, ok := r.secrets.get(name, meta.ResourceVersion, key); ok {
		return token, nil
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, name, secret); err != nil {
		return "", secretError(name, err)
	}
	token := string(secret.Data[key])
	if token == "" {
		return "", &spectrum.CredentialsError{
			Reason: spectrum.ReasonCredentialsKeyMissing,
			Detail: fmt.Sprintf("Secret %s has no non-empty key %q", name, key),
		}
	}
	r.secrets.put(name, secret.ResourceVersion, key, token)
	return token, nil
}

func secretError(name types.NamespacedName, err error) error {
	if apierrors.IsNotFound(err) {
		return &spectrum.CredentialsError{
			Reason: spectrum.ReasonCredentialsSecretNotFound,
			Detail: fmt.Sprintf("Secret %s not found", name),
		}
	}
	return fmt.Errorf("reading Secret %s: %w", name, err)
}

// appsUsingSecret maps a Secret event to the SpectrumApps that use it.
func (r *SpectrumAppReconciler) appsUsingSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	var requests []reconcile.Request
	add := func(opts ...client.ListOption) {
		var apps v1alpha1.SpectrumAppList
		if err := r.List(ctx, &apps, opts...); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing SpectrumApps for a Secret change", "secret", client.ObjectKeyFromObject(secret))
			return
		}
		for _, app := range apps.Items {
			requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&app)})
		}
	}
	add(client.InNamespace(secret.GetNamespace()), client.MatchingFields{credentialsIndex: secret.GetName()})
	if d := r.DefaultCredentials; d.Name == secret.GetName() && d.Namespace == secret.GetNamespace() {
		add(client.MatchingFields{credentialsIndex: usesDefaultCredentials})
	}
	return requests
}

// tokenCache remembers tokens by Secret and resourceVersion.
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
