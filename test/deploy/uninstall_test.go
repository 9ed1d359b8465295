package deploy_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
	"github.com/cloudflare-operator/spectrum-operator/test/harness"
)

const (
	uninstallAccount = "a0000000000000000000000000000001"
	uninstallZone    = "c0000000000000000000000000000001"
	uninstallToken   = "cf-uninstall-token-51c2"
)

// TestHelmUninstallLeavesCloudflareApplications: `helm uninstall` while
// SpectrumApps exist finishes, and deletes nothing at Cloudflare. Helm never
// deletes what crds/ installed, so the CRD and every SpectrumApp stay, with
// their finalizers, and the manager (gone with its Deployment) is never asked
// to delete an application.
//
// No kubelet runs the chart's Deployment here, so the real manager binary
// runs beside the chart, out of cluster, against the simulator: it creates
// the applications, and it keeps running through the uninstall, as a pod in
// its termination grace period would. The apps are created before the chart
// is installed because the chart's webhook fails closed while no pod serves
// it.
func TestHelmUninstallLeavesCloudflareApplications(t *testing.T) {
	c, kubeconfig := cluster(t)
	ctx := t.Context()
	const rel, releaseNS, appNS = "uninstall-test", "uninstall-ops", "uninstall-team"

	sim := spectrumtest.NewServer(spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{{ID: uninstallAccount, Plan: spectrumtest.PlanEnterprise}},
		Tokens:   []spectrumtest.TokenConfig{{Token: uninstallToken, Account: uninstallAccount}},
		Zones:    []spectrumtest.ZoneConfig{{ID: uninstallZone, Name: "uninstall.example", Account: uninstallAccount}},
	})
	defer sim.Close()

	// The CRD as the chart's crds/ holds it; helm install finds it and
	// leaves it.
	if _, err := kubectl(t, nil, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", "charts/spectrum-operator/crds/"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() string {
		var list v1alpha1.SpectrumAppList
		if err := c.List(ctx, &list); err != nil {
			return "the SpectrumApp API is not served yet: " + err.Error()
		}
		return ""
	})
	for _, ns := range []string{releaseNS, appNS} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "cloudflare-credentials", Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}},
		Data:       map[string][]byte{v1alpha1.DefaultCredentialsKey: []byte(uninstallToken)},
	}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}

	mgr, err := harness.NewManager(ctx, t.TempDir(), kubeconfig, sim.URL, harness.ManagerOptions{}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mgr.Stop() }()

	newApp := func(ns, name, secretName string) *v1alpha1.SpectrumApp {
		return &v1alpha1.SpectrumApp{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.SpectrumAppSpec{
				ZoneID:         uninstallZone,
				CredentialsRef: &v1alpha1.SecretKeyReference{Name: secretName},
				DeletionPolicy: v1alpha1.DeletionPolicyDelete,
				Protocol:       "tcp/22",
				DNS:            v1alpha1.DNS{Type: "CNAME", Name: ns + "-" + name + ".uninstall.example"},
				OriginDirect:   []string{"tcp://192.0.2.10:22"},
			},
		}
	}
	var apps []client.ObjectKey
	for i := range 3 {
		app := newApp(appNS, fmt.Sprintf("app-%d", i), secret.Name)
		if err := c.Create(ctx, app); err != nil {
			t.Fatal(err)
		}
		apps = append(apps, client.ObjectKeyFromObject(app))
	}
	// One app in the release namespace uses the Secret the chart creates
	// (credentials.apiToken): it becomes Ready once helm install creates it,
	// and the manager then holds that Secret with its finalizer too.
	chartSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: rel + "-spectrum-operator-credentials"}}
	edge := newApp(releaseNS, "edge", chartSecret.Name)
	if err := c.Create(ctx, edge); err != nil {
		t.Fatal(err)
	}
	apps = append(apps, client.ObjectKeyFromObject(edge))
	install := func() {
		t.Helper()
		if _, err := helm(t, "install", rel, chartDir, "--kubeconfig", kubeconfig, "--namespace", releaseNS,
			"--wait=false", "--timeout", "60s", "--set", "cloudflare.apiURL="+sim.URL, "--set", "credentials.apiToken="+uninstallToken); err != nil {
			t.Fatal(err)
		}
	}
	install()
	testenv.Eventually(t, 60*time.Second, func() string {
		for _, key := range apps {
			app := &v1alpha1.SpectrumApp{}
			if err := c.Get(ctx, key, app); err != nil {
				return err.Error()
			}
			if !meta.IsStatusConditionTrue(app.Status.Conditions, v1alpha1.ConditionReady) {
				return key.String() + " is not Ready"
			}
		}
		if n := len(sim.Simulator.Apps()); n != len(apps) {
			return fmt.Sprintf("the simulator holds %d applications, want %d", n, len(apps))
		}
		for _, s := range []*corev1.Secret{secret, chartSecret} {
			if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
				return err.Error()
			}
			if !slices.Contains(s.Finalizers, controller.CredentialsInUseFinalizer) {
				return "the manager has not yet put its finalizer on Secret " + client.ObjectKeyFromObject(s).String()
			}
		}
		return ""
	})

	// Without the chart keeping its Secret, this timed out after 60s: the
	// Secret stayed Terminating, held by the finalizer.
	uninstall := func() {
		t.Helper()
		start := time.Now()
		_, err := helm(t, "uninstall", rel, "--kubeconfig", kubeconfig, "--namespace", releaseNS, "--wait", "--timeout", "60s")
		took := time.Since(start)
		if err != nil {
			t.Fatalf("helm uninstall --wait did not finish (%s): %v", took.Round(time.Millisecond), err)
		}
		t.Logf("helm uninstall --wait took %s with %d SpectrumApps in place", took.Round(time.Millisecond), len(apps))
	}
	uninstall()

	// What stays, and why nothing at Cloudflare can go: no SpectrumApp was
	// asked to be deleted.
	crdEstablished(ctx, t, c)
	for _, key := range apps {
		app := &v1alpha1.SpectrumApp{}
		if err := c.Get(ctx, key, app); err != nil {
			t.Errorf("SpectrumApp %s after helm uninstall: %v", key, err)
			continue
		}
		if !app.DeletionTimestamp.IsZero() {
			t.Errorf("SpectrumApp %s is being deleted after helm uninstall", key)
		}
		if !slices.Contains(app.Finalizers, v1alpha1.Finalizer) {
			t.Errorf("SpectrumApp %s lost its finalizer: %v", key, app.Finalizers)
		}
	}
	for _, s := range []*corev1.Secret{secret, chartSecret} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil || !s.DeletionTimestamp.IsZero() ||
			!slices.Contains(s.Finalizers, controller.CredentialsInUseFinalizer) {
			t.Errorf("Secret %s should remain, not deleting, with %s (err %v): %v",
				client.ObjectKeyFromObject(s), controller.CredentialsInUseFinalizer, err, s.Finalizers)
		}
	}
	// The manager goes with its Deployment.
	if err := mgr.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.Simulator.Apps()); n != len(apps) {
		t.Errorf("the simulator holds %d applications after helm uninstall, want all %d", n, len(apps))
	}
	if n := sim.Simulator.Calls()["DELETE"]; n != 0 {
		t.Errorf("%d DELETE requests reached Cloudflare", n)
	}

	// A reinstall adopts the kept Secret (and uninstalls again as cleanly).
	install()
	uninstall()

	// Abandoning, as the chart's README describes it: with the finalizers
	// removed the objects go and the applications stay at Cloudflare.
	for _, key := range apps {
		app := &v1alpha1.SpectrumApp{}
		if err := c.Get(ctx, key, app); err != nil {
			t.Fatal(err)
		}
		app.Finalizers = nil
		if err := c.Update(ctx, app); err != nil {
			t.Fatalf("removing %s's finalizer (the webhook configuration must be gone): %v", key, err)
		}
		if err := c.Delete(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*corev1.Secret{secret, chartSecret} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			t.Fatal(err)
		}
		s.Finalizers = nil
		if err := c.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() string {
		for _, key := range apps {
			if err := c.Get(ctx, key, &v1alpha1.SpectrumApp{}); !apierrors.IsNotFound(err) {
				return fmt.Sprintf("SpectrumApp %s remains after its finalizer was removed (%v)", key, err)
			}
		}
		return ""
	})
	if n := len(sim.Simulator.Apps()); n != len(apps) {
		t.Errorf("the simulator holds %d applications after abandoning, want all %d", n, len(apps))
	}
}
