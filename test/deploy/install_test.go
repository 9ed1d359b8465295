package deploy_test

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const crdName = "spectrumapps.spectrum.cloudflare-operator.io"

// TestHelmInstallAndUninstall installs the chart into a real apiserver, which
// validates every object (schemas, RBAC escalation checks, webhook
// configuration), then uninstalls it.
func TestHelmInstallAndUninstall(t *testing.T) {
	c, kubeconfig := cluster(t)
	ctx := t.Context()
	const rel, ns = "deploy-test", "helm-install"
	fullname := rel + "-spectrum-operator"

	// No kubelet runs the pod, so --wait=false: waiting would time out.
	out, err := helm(t, "install", rel, chartDir, "--kubeconfig", kubeconfig,
		"--namespace", ns, "--create-namespace", "--wait=false", "--timeout", "60s",
		"--set", "credentials.apiToken="+apiToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = helm(t, "uninstall", rel, "--kubeconfig", kubeconfig, "--namespace", ns, "--ignore-not-found")
	})
	if !strings.Contains(out, "NOTES:") || !strings.Contains(out, "kubectl get spectrumapps") {
		t.Errorf("helm install printed no usable NOTES:\n%s", out)
	}
	if strings.Contains(out, apiToken) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(apiToken))) {
		t.Error("helm install output (NOTES) shows the API token")
	}

	installed := []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fullname}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fullname}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fullname + "-webhook"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fullname + "-metrics"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fullname + "-credentials"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fullname + "-leader-election"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fullname + "-leader-election"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: fullname + "-manager"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: fullname + "-manager"}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: fullname + "-validating-webhook-configuration"}},
	}
	for _, obj := range installed {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Errorf("after helm install: %v", err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// What the apiserver stored is what the chart meant.
	role := installed[7].(*rbacv1.ClusterRole)
	if want := named(generatedRole(t).Rules, "validatingwebhookconfigurations", fullname+"-validating-webhook-configuration"); !equality.Semantic.DeepEqual(role.Rules, want) {
		t.Errorf("stored ClusterRole rules %+v, want config/rbac/role.yaml's %+v", role.Rules, want)
	}
	vwc := installed[9].(*admissionregistrationv1.ValidatingWebhookConfiguration)
	for _, w := range vwc.Webhooks {
		if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail {
			t.Errorf("stored webhook %s failurePolicy = %s, want Fail", w.Name, ptrString(w.FailurePolicy))
		}
	}
	secret := installed[4].(*corev1.Secret)
	if string(secret.Data["apiToken"]) != apiToken {
		t.Errorf("credentials Secret holds %q, want the token", secret.Data["apiToken"])
	}
	deploy := installed[0].(*appsv1.Deployment)
	if want := "--default-credentials-secret=" + ns + "/" + secret.Name; !slices.Contains(deploy.Spec.Template.Spec.Containers[0].Args, want) {
		t.Errorf("stored Deployment args %v lack %s", deploy.Spec.Template.Spec.Containers[0].Args, want)
	}
	crd := crdEstablished(ctx, t, c)

	// The webhook fails closed: with no manager serving it, the apiserver
	// refuses SpectrumApps rather than admitting them unvalidated.
	app := sampleApp(t, ns)
	err = c.Create(ctx, app)
	if err == nil {
		t.Error("a SpectrumApp was admitted although no webhook server runs; failurePolicy is not Fail")
	} else if !strings.Contains(err.Error(), vwc.Webhooks[0].Name) {
		t.Errorf("creating a SpectrumApp failed for another reason than the unreachable webhook: %v", err)
	}

	if _, err := helm(t, "uninstall", rel, "--kubeconfig", kubeconfig, "--namespace", ns, "--wait", "--timeout", "60s"); err != nil {
		t.Fatal(err)
	}
	for _, obj := range installed {
		if obj == secret {
			continue // kept, below
		}
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Errorf("%T %s still exists after helm uninstall", obj, client.ObjectKeyFromObject(obj))
		}
	}
	// The credentials Secret is kept (helm.sh/resource-policy): SpectrumApps
	// left behind may still need it, and may hold it with a finalizer.
	if err := c.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil || !secret.DeletionTimestamp.IsZero() {
		t.Errorf("the credentials Secret should be kept by helm uninstall (err %v, deletionTimestamp %v)", err, secret.DeletionTimestamp)
	} else if err := c.Delete(ctx, secret); err != nil {
		t.Error(err)
	}
	// Helm never deletes what crds/ installed: deleting the CRD would delete
	// every SpectrumApp, and with them the operator's record of the
	// Cloudflare applications.
	if err := c.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil {
		t.Errorf("the CRD is gone after helm uninstall: %v", err)
	}
}

// TestKustomizeServerDryRun sends `kubectl kustomize config/default` through
// the apiserver's full validation without persisting it.
func TestKustomizeServerDryRun(t *testing.T) {
	c, kubeconfig := cluster(t)
	ctx := t.Context()
	rendered, err := kubectl(t, nil, "kustomize", "config/default")
	if err != nil {
		t.Fatal(err)
	}
	m := parseManifest(t, rendered)
	if len(m) == 0 || m[0].GetKind() != "Namespace" {
		t.Fatalf("config/default must render its Namespace first, so `kubectl apply` creates it before what lives in it")
	}
	ns := m[0].GetName()
	for _, o := range m[1:] {
		if o.GetNamespace() != "" && o.GetNamespace() != ns {
			t.Errorf("%s %s is in namespace %q, not config/default's %q", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
		}
	}
	// A dry-run Namespace is not there for the dry-run objects in it, so the
	// Namespace is created for real.
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	out, err := kubectl(t, strings.NewReader(rendered), "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out, "(server dry run)"); got != len(m) {
		t.Errorf("the apiserver accepted %d of %d objects:\n%s", got, len(m), out)
	}
	// Dry run persisted nothing.
	d := m.deployment(t)
	if err := c.Get(ctx, client.ObjectKeyFromObject(d), &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment %s exists after a dry run (err %v)", client.ObjectKeyFromObject(d), err)
	}
}

// TestKustomizeMatchesChart: config/default and the chart with default values
// install the same operator; both pass the checks every install must pass.
func TestKustomizeMatchesChart(t *testing.T) {
	rendered, err := kubectl(t, nil, "kustomize", "config/default")
	if err != nil {
		t.Fatal(err)
	}
	kust := parseManifest(t, rendered)
	ns := kust.one(t, "Namespace").GetName()
	checkInstall(t, kust, ns)

	out, err := helm(t, "template", release, chartDir, "--namespace", ns, "--include-crds")
	if err != nil {
		t.Fatal(err)
	}
	chart := parseManifest(t, out)

	// The same objects, kind for kind (helm creates the namespace itself).
	if got, want := kinds(chart), kinds(kust[1:]); !slices.Equal(got, want) {
		t.Errorf("chart renders %v\nconfig/default %v", got, want)
	}
	kd, cd := kust.deployment(t), chart.deployment(t)
	kc, cc := manager(t, kd), manager(t, cd)
	if kc.Image != cc.Image {
		t.Errorf("image: config/default %s, chart %s", kc.Image, cc.Image)
	}
	kf, cf := flags(kc.Args), flags(cc.Args)
	for _, name := range []string{"leader-elect", "health-probe-bind-address", "metrics-bind-address", "webhook-cert-dir", "webhook-self-signed",
		"webhook-cert-secret", "webhook-config-name"} {
		kv, kok := kf[name]
		cv, cok := cf[name]
		if kv != cv || kok != cok {
			t.Errorf("--%s: config/default %q (set: %t), chart %q (set: %t)", name, kv, kok, cv, cok)
		}
	}
	if !equality.Semantic.DeepEqual(kc.Resources, cc.Resources) || !equality.Semantic.DeepEqual(kc.SecurityContext, cc.SecurityContext) {
		t.Errorf("resources or securityContext differ:\nconfig/default %+v %+v\nchart %+v %+v", kc.Resources, kc.SecurityContext, cc.Resources, cc.SecurityContext)
	}
	if !equality.Semantic.DeepEqual(kd.Spec.Template.Spec.SecurityContext, cd.Spec.Template.Spec.SecurityContext) {
		t.Errorf("pod securityContext: config/default %+v, chart %+v", kd.Spec.Template.Spec.SecurityContext, cd.Spec.Template.Spec.SecurityContext)
	}
	if !equality.Semantic.DeepEqual(kd.Spec.Strategy, cd.Spec.Strategy) || *kd.Spec.Replicas != *cd.Spec.Replicas {
		t.Errorf("strategy and replicas: config/default %+v %d, chart %+v %d", kd.Spec.Strategy, *kd.Spec.Replicas, cd.Spec.Strategy, *cd.Spec.Replicas)
	}
	// The same spread, each selecting its own pods (their labels differ).
	for _, d := range []*appsv1.Deployment{kd, cd} {
		spread := d.Spec.Template.Spec.TopologySpreadConstraints
		if len(spread) != 1 || spread[0].TopologyKey != "kubernetes.io/hostname" || spread[0].WhenUnsatisfiable != corev1.ScheduleAnyway || spread[0].MaxSkew != 1 {
			t.Errorf("%s topologySpreadConstraints %+v, want replicas spread across nodes", d.Name, spread)
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(spread[0].LabelSelector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s topologySpreadConstraints select %v, not its pods (%v)", d.Name, spread[0].LabelSelector, d.Spec.Template.Labels)
		}
	}
	kw := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, kust.one(t, "ValidatingWebhookConfiguration"))
	cw := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, chart.one(t, "ValidatingWebhookConfiguration"))
	for i := range kw.Webhooks {
		if !equality.Semantic.DeepEqual(kw.Webhooks[i].MatchConditions, cw.Webhooks[i].MatchConditions) || len(kw.Webhooks[i].MatchConditions) == 0 {
			t.Errorf("webhook %s matchConditions: config/default %+v, chart %+v", kw.Webhooks[i].Name, kw.Webhooks[i].MatchConditions, cw.Webhooks[i].MatchConditions)
		}
	}
}

func kinds(m manifest) []string {
	out := make([]string, len(m))
	for i, o := range m {
		out[i] = o.GetKind()
	}
	slices.Sort(out)
	return out
}

func crdEstablished(ctx context.Context, t *testing.T, c client.Client) *unstructured.Unstructured {
	t.Helper()
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetName(crdName)
	if err := c.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil {
		t.Fatalf("CRD %s: %v", crdName, err)
	}
	conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, cond := range conditions {
		if m, ok := cond.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return crd
		}
	}
	t.Fatalf("CRD %s is not Established: %v", crdName, conditions)
	return nil
}

// sampleApp is config/samples' TCP app, valid by the CRD's schema, so only
// the webhook can refuse it.
func sampleApp(t *testing.T, ns string) *unstructured.Unstructured {
	t.Helper()
	app := &unstructured.Unstructured{}
	readYAML(t, "config/samples/spectrum_v1alpha1_spectrumapp_tcp.yaml", &app.Object)
	app.SetNamespace(ns)
	return app
}
