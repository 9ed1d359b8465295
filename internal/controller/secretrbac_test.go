package controller_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// A credentials Secret the operator may not read needs a person, and says
// so; it is not retried forever as if it were a blip. The Forbidden is the
// apiserver's own: a manager runs as a ServiceAccount bound to the
// operator's ClusterRole (config/rbac/role.yaml, generated from the
// +kubebuilder:rbac markers) with get (and patch) taken off Secrets, so it
// still lists and watches their metadata but the read of the token is
// refused with 403. Given get back, the same app syncs: the positive
// control that the refusal, and nothing else, stalled it.
func TestSecretErrors(t *testing.T) {
	f := newFixture(t, enterpriseToken)
	operator := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: f.namespace, Name: "spectrum-operator"}
	role := operatorClusterRole(t, "spectrum-operator-secret-rbac-"+f.namespace)
	granted := secretsRule(t, role).Verbs
	setSecretVerbs(t, role, "list", "watch")
	bindClusterRole(t, role, operator)
	cloudflare := startManagerAs(t, operator)

	app := f.app("forbidden", zoneMain, "example.com")
	app.Labels = map[string]string{ownManagerLabel: "secret-rbac"}
	f.create(app)
	stalled := f.waitForCondition("forbidden", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonCredentialsSecretForbidden)
	message := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionStalled).Message
	if !strings.Contains(message, f.namespace+"/cloudflare") || !strings.Contains(message, "Forbidden") {
		t.Errorf("Stalled message %q does not name the Secret and the apiserver's Forbidden", message)
	}
	if reconciling := meta.FindStatusCondition(stalled.Status.Conditions, v1alpha1.ConditionReconciling); reconciling != nil && reconciling.Status == metav1.ConditionTrue {
		t.Errorf("Reconciling=True beside the stall: a refusal by RBAC is not retried as a blip")
	}
	if n := cloudflare.Load(); n != 0 {
		t.Errorf("%d requests reached Cloudflare without a readable token", n)
	}

	// Positive control: the operator's own verbs on Secrets, and a retry
	// asked for as the Stalled message says.
	setSecretVerbs(t, role, granted...)
	f.update("forbidden", func(a *v1alpha1.SpectrumApp) {
		if a.Annotations == nil {
			a.Annotations = map[string]string{}
		}
		a.Annotations[v1alpha1.ReconcileRequestedAtAnnotation] = time.Now().Format(time.RFC3339Nano)
	})
	f.waitForCondition("forbidden", v1alpha1.ConditionReady, metav1.ConditionTrue, "Synced")
	if cloudflare.Load() == 0 {
		t.Error("Ready without a request to Cloudflare: the control proves nothing")
	}
	f.deleteAndWait("forbidden")
}

// operatorClusterRole creates, until the test ends, a ClusterRole named
// name with the rules of the operator's generated ClusterRole.
func operatorClusterRole(t *testing.T, name string) *rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var generated rbacv1.ClusterRole
		if err := decoder.Decode(&generated); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("config/rbac/role.yaml: %v", err)
		}
		if generated.Kind != "ClusterRole" {
			continue
		}
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: generated.Rules}
		if err := k8sClient.Create(context.Background(), role); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), role) })
		return role
	}
	t.Fatal("config/rbac/role.yaml has no ClusterRole")
	return nil
}

// secretsRule is the role's rule on Secrets; the markers give Secrets a
// rule of their own (the chart relies on it too).
func secretsRule(t *testing.T, role *rbacv1.ClusterRole) *rbacv1.PolicyRule {
	t.Helper()
	for i, rule := range role.Rules {
		if slices.Equal(rule.APIGroups, []string{""}) && slices.Equal(rule.Resources, []string{"secrets"}) {
			return &role.Rules[i]
		}
	}
	t.Fatalf("ClusterRole %s has no rule of its own on Secrets: %+v", role.Name, role.Rules)
	return nil
}

// setSecretVerbs makes the role's rule on Secrets grant exactly verbs.
func setSecretVerbs(t *testing.T, role *rbacv1.ClusterRole, verbs ...string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(role), role); err != nil {
			return err
		}
		secretsRule(t, role).Verbs = slices.Clone(verbs)
		return k8sClient.Update(context.Background(), role)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func bindClusterRole(t *testing.T, role *rbacv1.ClusterRole, subject rbacv1.Subject) {
	t.Helper()
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{subject},
	}
	if err := k8sClient.Create(context.Background(), binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), binding) })
}

// startManagerAs runs, until the test ends, a manager of the SpectrumApps
// labelled ownManagerLabel that talks to the apiserver as the
// ServiceAccount subject, and to a simulator of its own. It returns the
// count of requests that reached that simulator.
func startManagerAs(t *testing.T, subject rbacv1.Subject) *atomic.Int32 {
	t.Helper()
	sim, err := spectrumtest.New(simulatorConfig())
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(server.Close)

	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + subject.Namespace + ":" + subject.Name}
	startOwnManager(t, cfg, "rbac", &controller.SpectrumAppReconciler{
		Connector: budget.NewConnector(budget.ConnectorOptions{
			BaseURL:           server.URL + spectrumtest.APIPrefix,
			RequestsPerSecond: 500,
			Burst:             100,
			Timeout:           2 * time.Second,
		}),
		ResyncPeriod:            resyncPeriod,
		MaxConcurrentReconciles: 2,
	})
	return &requests
}
