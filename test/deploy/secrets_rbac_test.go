package deploy_test

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
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
