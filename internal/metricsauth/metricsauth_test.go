package metricsauth_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr/funcr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/cloudflare-operator/spectrum-operator/internal/metricsauth"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// The filter is tested against a real apiserver: its TokenReviews and
// SubjectAccessReviews are answered by real authentication and RBAC.

var (
	adminConfig *rest.Config
	admin       *kubernetes.Clientset
	// restricted is a user that may not create TokenReviews.
	restricted *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := testenv.New(testenv.Options{})
	if err != nil {
		println(err.Error())
		return 1
	}
	cfg, err := env.Start()
	if err != nil {
		println("starting envtest: " + err.Error())
		return 1
	}
	defer func() { _ = env.Stop() }()
	adminConfig = cfg
	if admin, err = kubernetes.NewForConfig(cfg); err != nil {
		println(err.Error())
		return 1
	}
	user, err := env.AddUser(envtest.User{Name: "nobody-in-particular"}, nil)
	if err != nil {
		println(err.Error())
		return 1
	}
	if restricted, err = kubernetes.NewForConfig(user.Config()); err != nil {
		println(err.Error())
		return 1
	}
	return m.Run()
}

// countingReviews counts the reviews that reach the apiserver, to see the
// caches at work.
type countingReviews struct {
	tokens, access atomic.Int32
	tokenClient    metricsauth.TokenReviewer
	accessClient   metricsauth.AccessReviewer
}

func (c *countingReviews) filter(t *testing.T, log *bytes.Buffer) http.Handler {
	t.Helper()
	f := metricsauth.NewFilter(tokenFunc(func(ctx context.Context, r *authenticationv1.TokenReview, o metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
		c.tokens.Add(1)
		return c.tokenClient.Create(ctx, r, o)
	}), accessFunc(func(ctx context.Context, r *authorizationv1.SubjectAccessReview, o metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error) {
		c.access.Add(1)
		return c.accessClient.Create(ctx, r, o)
	}))
	var mu sync.Mutex
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		log.WriteString(prefix + args + "\n")
	}, funcr.Options{Verbosity: 10})
	h, err := f(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "the token reached the metrics handler", http.StatusTeapot)
			return
		}
		_, _ = io.WriteString(w, "spectrum_apps 1\n")
	}))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type tokenFunc func(context.Context, *authenticationv1.TokenReview, metav1.CreateOptions) (*authenticationv1.TokenReview, error)

func (f tokenFunc) Create(ctx context.Context, r *authenticationv1.TokenReview, o metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	return f(ctx, r, o)
}

type accessFunc func(context.Context, *authorizationv1.SubjectAccessReview, metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error)

func (f accessFunc) Create(ctx context.Context, r *authorizationv1.SubjectAccessReview, o metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error) {
	return f(ctx, r, o)
}

// serviceAccountToken makes a ServiceAccount in a new namespace and returns
// a token for it, and the account's username.
func serviceAccountToken(t *testing.T, name string) (token, username string) {
	t.Helper()
	ctx := context.Background()
	ns, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "metricsauth-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token, "system:serviceaccount:" + ns.Name + ":" + name
}

// allowMetrics grants username get on /metrics, as the chart's
// metrics-reader ClusterRole does.
func allowMetrics(t *testing.T, username string) {
	t.Helper()
	ctx := context.Background()
	role, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "metrics-reader-"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "metrics-reader-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: username}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func scrape(h http.Handler, path, authorization string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestScrapesAreAuthenticatedAndAuthorized(t *testing.T) {
	readerToken, reader := serviceAccountToken(t, "prometheus")
	allowMetrics(t, reader)
	strangerToken, _ := serviceAccountToken(t, "stranger")

	reviews := &countingReviews{tokenClient: admin.AuthenticationV1().TokenReviews(), accessClient: admin.AuthorizationV1().SubjectAccessReviews()}
	var log bytes.Buffer
	h := reviews.filter(t, &log)

	for _, tc := range []struct {
		name          string
		path          string
		authorization string
		want          int
	}{
		{"no credentials", "/metrics", "", http.StatusUnauthorized},
		{"not a bearer token", "/metrics", "Basic cHJvbWV0aGV1czpzZWNyZXQ=", http.StatusUnauthorized},
		{"empty bearer token", "/metrics", "Bearer ", http.StatusUnauthorized},
		{"a token the apiserver does not know", "/metrics", "Bearer not-a-real-token-3c1f", http.StatusUnauthorized},
		{"a known account without the grant", "/metrics", "Bearer " + strangerToken, http.StatusForbidden},
		{"a granted account", "/metrics", "Bearer " + readerToken, http.StatusOK},
		{"the scheme's case does not matter", "/metrics", "bearer " + readerToken, http.StatusOK},
		{"a granted account, another path", "/debug/pprof/", "Bearer " + readerToken, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := scrape(h, tc.path, tc.authorization)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if tc.want == http.StatusOK && w.Body.String() != "spectrum_apps 1\n" {
				t.Fatalf("body %q", w.Body)
			}
		})
	}

	// Answers are cached: scraping again asks the apiserver nothing.
	tokens, access := reviews.tokens.Load(), reviews.access.Load()
	for range 5 {
		if w := scrape(h, "/metrics", "Bearer "+readerToken); w.Code != http.StatusOK {
			t.Fatalf("repeated scrape: %d %s", w.Code, w.Body)
		}
		if w := scrape(h, "/metrics", "Bearer "+strangerToken); w.Code != http.StatusForbidden {
			t.Fatalf("repeated denied scrape: %d %s", w.Code, w.Body)
		}
	}
	if got := reviews.tokens.Load() - tokens; got != 0 {
		t.Errorf("%d TokenReviews for cached tokens, want 0", got)
	}
	if got := reviews.access.Load() - access; got != 0 {
		t.Errorf("%d SubjectAccessReviews for cached decisions, want 0", got)
	}
	for _, secret := range []string{readerToken, strangerToken, "not-a-real-token-3c1f"} {
		if strings.Contains(log.String(), secret) {
			t.Fatalf("a token reached the log:\n%s", log.String())
		}
	}
}

func TestAReviewThatFailsIsAnErrorNotADenial(t *testing.T) {
	token, _ := serviceAccountToken(t, "prometheus")
	// The filter's own identity may not create TokenReviews: a misconfigured
	// deployment, which must say so instead of answering 401.
	reviews := &countingReviews{tokenClient: restricted.AuthenticationV1().TokenReviews(), accessClient: restricted.AuthorizationV1().SubjectAccessReviews()}
	var log bytes.Buffer
	h := reviews.filter(t, &log)
	w := scrape(h, "/metrics", "Bearer "+token)
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500: %s", w.Code, w.Body)
	}
	if !strings.Contains(log.String(), "TokenReview") || !strings.Contains(log.String(), "forbidden") {
		t.Errorf("the log does not tell why:\n%s", log.String())
	}
	if strings.Contains(log.String(), token) || strings.Contains(w.Body.String(), token) {
		t.Fatalf("the token reached the log or the answer:\n%s\n%s", log.String(), w.Body)
	}
	// A failure is not cached: once the apiserver answers, so does the filter.
	w = scrape(h, "/metrics", "Bearer "+token)
	if w.Code != http.StatusInternalServerError || reviews.tokens.Load() != 2 {
		t.Fatalf("second try: status %d after %d reviews, want 500 after 2", w.Code, reviews.tokens.Load())
	}
}

func TestFilterProviderTalksToTheAPIServer(t *testing.T) {
	token, username := serviceAccountToken(t, "prometheus")
	allowMetrics(t, username)
	httpClient, err := rest.HTTPClientFor(adminConfig)
	if err != nil {
		t.Fatal(err)
	}
	f, err := metricsauth.FilterProvider(adminConfig, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	h, err := f(funcr.New(func(string, string) {}, funcr.Options{}), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	if err != nil {
		t.Fatal(err)
	}
	if w := scrape(h, "/metrics", "Bearer "+token); w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if w := scrape(h, "/metrics", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("without a token: status %d", w.Code)
	}
}
