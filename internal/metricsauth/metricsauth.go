// Package metricsauth guards the metrics endpoint the way the apiserver
// guards its own: a scrape must carry a bearer token the apiserver accepts
// (a TokenReview) for a user allowed to get the path (a SubjectAccessReview
// for the non-resource URL, e.g. a ClusterRole with nonResourceURLs
// ["/metrics"] and verb get).
//
// It does what controller-runtime's metrics/filters does, with the same
// cache lifetimes, but on client-go alone: that package links in
// k8s.io/apiserver and, through it, gRPC, OpenTelemetry and CEL — 267
// packages, and memory the manager pays for in every pod (docs/benchmarks.md).
package metricsauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// The caches' lifetimes are controller-runtime's: a revoked token or role
// stops working within a minute (tokens) or five (grants); a new grant
// works within 30 seconds.
const (
	authenticatedTTL   = time.Minute
	unauthenticatedTTL = 10 * time.Second
	allowedTTL         = 5 * time.Minute
	deniedTTL          = 30 * time.Second
	reviewTimeout      = 10 * time.Second
	// maxCached bounds each cache: every distinct token sent is an entry,
	// and anyone who can reach the port can send them.
	maxCached = 4096
)

// TokenReviewer and AccessReviewer are the parts of client-go's typed
// clients the filter uses.
type (
	TokenReviewer interface {
		Create(context.Context, *authenticationv1.TokenReview, metav1.CreateOptions) (*authenticationv1.TokenReview, error)
	}
	AccessReviewer interface {
		Create(context.Context, *authorizationv1.SubjectAccessReview, metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error)
	}
)

// FilterProvider is a metricsserver.Options.FilterProvider that reviews
// each scrape with the apiserver of cfg.
func FilterProvider(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("metrics authentication client: %w", err)
	}
	authz, err := authorizationclient.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("metrics authorization client: %w", err)
	}
	return NewFilter(authn.TokenReviews(), authz.SubjectAccessReviews()), nil
}

// NewFilter returns a filter that asks tokens and access of these reviewers.
func NewFilter(tokens TokenReviewer, access AccessReviewer) metricsserver.Filter {
	g := &guard{
		tokens:         tokens,
		access:         access,
		authentication: newTTLCache[[sha256.Size]byte, authentication](),
		authorization:  newTTLCache[string, bool](),
	}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			g.serve(log, next, w, req)
		}), nil
	}
}

type guard struct {
	tokens TokenReviewer
	access AccessReviewer
	// authentication is keyed by the token's SHA-256, so no token is kept.
	authentication *ttlCache[[sha256.Size]byte, authentication]
	authorization  *ttlCache[string, bool]
}

type authentication struct {
	ok   bool
	user authenticationv1.UserInfo
}

func (g *guard) serve(log logr.Logger, next http.Handler, w http.ResponseWriter, req *http.Request) {
	token, ok := bearerToken(req)
	if !ok {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	who, err := g.authenticate(req.Context(), token)
	if err != nil {
		// err is the apiserver's answer; it never holds the token.
		log.Error(err, "Metrics authentication failed")
		http.Error(w, "Authentication failed", http.StatusInternalServerError)
		return
	}
	if !who.ok {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	verb := strings.ToLower(req.Method)
	allowed, err := g.authorize(req.Context(), who.user, verb, req.URL.Path)
	if err != nil {
		log.Error(err, "Metrics authorization failed", "user", who.user.Username)
		http.Error(w, "Authorization for user "+who.user.Username+" failed", http.StatusInternalServerError)
		return
	}
	if !allowed {
		log.V(4).Info("Metrics access denied", "user", who.user.Username, "verb", verb, "path", req.URL.Path)
		http.Error(w, "Authorization denied for user "+who.user.Username, http.StatusForbidden)
		return
	}
	// The token has done its job; nothing after this needs to see it.
	req.Header.Del("Authorization")
	next.ServeHTTP(w, req)
}

// bearerToken is the token of an "Authorization: Bearer TOKEN" header.
func bearerToken(req *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(req.Header.Get("Authorization")), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", false
	}
	return token, true
}

func (g *guard) authenticate(ctx context.Context, token string) (authentication, error) {
	key := sha256.Sum256([]byte(token))
	if cached, ok := g.authentication.get(key); ok {
		return cached, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	review, err := g.tokens.Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		return authentication{}, fmt.Errorf("TokenReview: %w", err)
	}
	result := authentication{ok: review.Status.Authenticated, user: review.Status.User}
	ttl := unauthenticatedTTL
	if result.ok {
		ttl = authenticatedTTL
	}
	g.authentication.put(key, result, ttl)
	return result, nil
}

func (g *guard) authorize(ctx context.Context, user authenticationv1.UserInfo, verb, path string) (bool, error) {
	key := accessKey(user, verb, path)
	if cached, ok := g.authorization.get(key); ok {
		return cached, nil
	}
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	review, err := g.access.Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:                  user.Username,
			UID:                   user.UID,
			Groups:                user.Groups,
			Extra:                 extra,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	allowed := review.Status.Allowed && !review.Status.Denied
	ttl := deniedTTL
	if allowed {
		ttl = allowedTTL
	}
	g.authorization.put(key, allowed, ttl)
	return allowed, nil
}

// accessKey identifies a question to the authorizer: who (every part of
// the identity it may decide on) does what to which path.
func accessKey(user authenticationv1.UserInfo, verb, path string) string {
	var b strings.Builder
	for _, s := range []string{user.Username, user.UID, verb, path} {
		fmt.Fprintf(&b, "%d:%s|", len(s), s)
	}
	groups := slices.Clone(user.Groups)
	slices.Sort(groups)
	for _, s := range groups {
		fmt.Fprintf(&b, "g%d:%s|", len(s), s)
	}
	keys := make([]string, 0, len(user.Extra))
	for k := range user.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "e%d:%s=", len(k), k)
		for _, v := range user.Extra[k] {
			fmt.Fprintf(&b, "%d:%s,", len(v), v)
		}
		b.WriteByte('|')
	}
	return b.String()
}

// ttlCache is a small map whose entries expire. When full it drops what
// has expired, and everything if that is not enough: a flood of new keys
// costs reviews, never unbounded memory.
type ttlCache[K comparable, V any] struct {
	mu      sync.Mutex
	entries map[K]ttlEntry[V]
	now     func() time.Time
}

type ttlEntry[V any] struct {
	value   V
	expires time.Time
}

func newTTLCache[K comparable, V any]() *ttlCache[K, V] {
	return &ttlCache[K, V]{entries: map[K]ttlEntry[V]{}, now: time.Now}
}

func (c *ttlCache[K, V]) get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

func (c *ttlCache[K, V]) put(key K, value V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= maxCached {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCached {
			clear(c.entries)
		}
	}
	c.entries[key] = ttlEntry[V]{value: value, expires: now.Add(ttl)}
}
