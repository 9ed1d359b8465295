package deploy_test

import (
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestChartScopesSecretsToWatchedNamespaces: the manager reads credentials
// Secrets and puts its in-use finalizer on them. Watching every namespace it
// needs that cluster-wide; watching some, it gets it in exactly those (and
// the release namespace when it holds the default credentials), and in no
// other.
func TestChartScopesSecretsToWatchedNamespaces(t *testing.T) {
	secretVerbs := []string{"get", "list", "patch", "watch"}
	for _, tc := range []struct {
		name, values string
		// roles: namespaces with a Secret Role; nil wants the cluster-wide rule.
		roles []string
	}{
		{name: "all namespaces", values: ""},
		{name: "all namespaces with default credentials", values: "credentials: {apiToken: " + apiToken + "}\n"},
		{name: "two namespaces", values: "watchNamespaces: [team-a, team-b]\n", roles: []string{"team-a", "team-b"}},
		{name: "one namespace and default credentials in the release namespace",
			values: "watchNamespaces: [team-a]\ncredentials: {existingSecret: cf}\n", roles: []string{"team-a", namespace}},
		{name: "release namespace listed and holding the credentials",
			values: "watchNamespaces: [" + namespace + ", team-a]\ncredentials: {apiToken: " + apiToken + "}\n", roles: []string{namespace, "team-a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := renderChart(t, release, namespace, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			sa := m.one(t, "ServiceAccount").GetName()
			boundToOperator := func(subjects []rbacv1.Subject) bool {
				return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
					return s.Kind == rbacv1.ServiceAccountKind && s.Name == sa && s.Namespace == namespace
				})
			}

			var clusterSecretRules []rbacv1.PolicyRule
			for _, u := range m.ofKind("ClusterRoleBinding") {
				b := typed[rbacv1.ClusterRoleBinding](t, u)
				if !boundToOperator(b.Subjects) {
					continue
				}
				_, secrets := splitSecretRules(typed[rbacv1.ClusterRole](t, m.named(t, "ClusterRole", b.RoleRef.Name)).Rules)
				clusterSecretRules = append(clusterSecretRules, secrets...)
			}
			if tc.roles == nil {
				if len(clusterSecretRules) != 1 || !slices.Equal(clusterSecretRules[0].Verbs, secretVerbs) {
					t.Errorf("cluster-wide Secret rules %+v, want one with verbs %v", clusterSecretRules, secretVerbs)
				}
			} else if len(clusterSecretRules) > 0 {
				t.Errorf("watching %v, the operator may still use Secrets cluster-wide: %+v", tc.roles, clusterSecretRules)
			}

			// namespace -> Secret rules bound to the operator there.
			namespaced := map[string][]rbacv1.PolicyRule{}
			bindings := map[string]int{}
			for _, u := range m.ofKind("RoleBinding") {
				b := typed[rbacv1.RoleBinding](t, u)
				if !boundToOperator(b.Subjects) {
					continue
				}
				for _, r := range m.ofKind("Role") {
					if r.GetName() != b.RoleRef.Name || r.GetNamespace() != b.Namespace {
						continue
					}
					if r.GetName() == release+"-webhook-cert" {
						continue // the webhook's own certificate Secret, by name (checkLeastPrivilege)
					}
					_, secrets := splitSecretRules(typed[rbacv1.Role](t, r).Rules)
					if len(secrets) > 0 {
						namespaced[b.Namespace] = append(namespaced[b.Namespace], secrets...)
						bindings[b.Namespace]++
					}
				}
			}
			var got []string
			for ns, rules := range namespaced {
				got = append(got, ns)
				if bindings[ns] != 1 || len(rules) != 1 || !slices.Equal(rules[0].Verbs, secretVerbs) ||
					!slices.Equal(rules[0].Resources, []string{"secrets"}) || len(rules[0].ResourceNames) > 0 {
					t.Errorf("namespace %s: %d bindings to Secret rules %+v, want one Role granting exactly %v on secrets", ns, bindings[ns], rules, secretVerbs)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.roles))
			if !slices.Equal(got, want) {
				t.Errorf("Secret Roles in namespaces [%s], want [%s]", strings.Join(got, " "), strings.Join(want, " "))
			}
		})
	}
}

// TestChartSecretGrantsAsTheAPIServerDecides installs the chart with
// watchNamespaces and asks the apiserver's RBAC authorizer (a
// SubjectAccessReview) what the operator's ServiceAccount may do.
func TestChartSecretGrantsAsTheAPIServerDecides(t *testing.T) {
	c, kubeconfig := cluster(t)
	ctx := t.Context()
	const rel, ops, watched, other = "rbac-test", "rbac-ops", "rbac-team-a", "rbac-elsewhere"
	for _, ns := range []string{ops, watched, other} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if _, err := helm(t, "install", rel, chartDir, "--kubeconfig", kubeconfig, "--namespace", ops, "--wait=false",
		"--set", "watchNamespaces={"+watched+"}", "--set", "credentials.apiToken="+apiToken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = helm(t, "uninstall", rel, "--kubeconfig", kubeconfig, "--namespace", ops, "--ignore-not-found")
		_ = c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ops, Name: rel + "-spectrum-operator-credentials"}})
	})
	sa := "system:serviceaccount:" + ops + ":" + rel + "-spectrum-operator"
	for _, tc := range []struct {
		namespace, verb, group, resource string
		allowed                          bool
	}{
		{watched, "get", "", "secrets", true},
		{watched, "watch", "", "secrets", true},
		{watched, "patch", "", "secrets", true},
		{watched, "delete", "", "secrets", false},
		{watched, "update", "", "secrets", false},
		{ops, "get", "", "secrets", true}, // the default credentials
		{ops, "update", "", "secrets", false},
		{other, "get", "", "secrets", false},
		{other, "list", "", "secrets", false},
		{"", "list", "", "secrets", false}, // cluster-wide
		{"", "watch", "", "secrets", false},
		{other, "list", "spectrum.cloudflare-operator.io", "spectrumapps", true}, // the rest stays cluster-wide
		{"", "watch", "spectrum.cloudflare-operator.io", "spectrumapps", true},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ops, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: tc.namespace, Verb: tc.verb, Group: tc.group, Resource: tc.resource,
			},
		}}
		if err := c.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		where := tc.namespace
		if where == "" {
			where = "all namespaces"
		}
		if sar.Status.Allowed != tc.allowed {
			t.Errorf("%s %s in %s: allowed = %t, want %t (%s)", tc.verb, tc.resource, where, sar.Status.Allowed, tc.allowed,
				sar.Status.Reason+sar.Status.EvaluationError)
		}
	}
}
