package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
	"github.com/cloudflare-operator/spectrum-operator/test/harness"
)

// How long an installed manager must stay up: controller-runtime gives up on
// caches that never sync after 2 minutes, which in a pod is a crash loop.
const aliveFor = 3 * time.Minute

const (
	installedAccount = "a0000000000000000000000000000021"
	installedZone    = "c0000000000000000000000000000021"
	installedToken   = "cf-installed-token-7d21"
)

// TestAsInstalled runs the manager as each installation gives it: the
// chart's or config/default's RBAC, ServiceAccount and webhook
// configuration applied to a real apiserver, and the built manager run with
// the Deployment's own arguments under a token of that ServiceAccount. Only
// what a pod would supply is added: the kubeconfig (the pod's token), the
// listen addresses (the pod's IP), POD_NAMESPACE, and the simulator's URL
// where the installation has no value for it. The apiserver reaches the
// webhook through its Service, as in a cluster (an EndpointSlice plays the
// endpoints controller).
//
// Each case checks what a user needs: the CA injected (or, with
// cert-manager, used as injected), an invalid app refused by the webhook, an
// app Ready and then deleted at the simulator, no "forbidden" in the log, and
// the manager still running after aliveFor.
func TestAsInstalled(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		kustomize    bool
		certManager  bool
		watched      []string
	}{
		{name: "chart default values"},
		{name: "chart watchNamespaces", values: "watchNamespaces: [installed-team-a]\n", watched: []string{"installed-team-a"}},
		{name: "chart cert-manager", values: "webhook:\n  certManager:\n    enabled: true\n", certManager: true},
		{name: "kustomize config/default", kustomize: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := install(t, tc.name, tc.values, tc.kustomize, tc.certManager, tc.watched)
			started := time.Now()
			replicas := inst.startReplicas(t, 1)
			inst.checkUsable(t, tc.watched)
			inst.checkAlive(t, replicas, started)
		})
	}
}

// installation is an install applied to the apiserver, everything but its
// Deployment (which no kubelet would run here).
type installation struct {
	cp         *controlPlane
	name       string
	m          manifest
	ns         string
	deployment *appsv1.Deployment
	vwc        string
	service    *corev1.Service
	sim        *spectrumtest.Server
	// kubeconfig holds a token of the installation's ServiceAccount.
	kubeconfig string
	// mounts maps the Deployment's certificate mount paths to local
	// directories holding what cert-manager would issue; empty without it.
	mounts map[string]string
	port   string
	// clusterIPPort is where the apiserver calls the webhook Service.
	clusterIPPort string
}

func install(t *testing.T, name, values string, kustomize, certManager bool, watched []string) *installation {
	t.Helper()
	cp := privateCluster(t)
	c := cp.client
	ctx := t.Context()
	sim := spectrumtest.NewServer(spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{{ID: installedAccount, Plan: spectrumtest.PlanEnterprise}},
		Tokens:   []spectrumtest.TokenConfig{{Token: installedToken, Account: installedAccount}},
		Zones:    []spectrumtest.ZoneConfig{{ID: installedZone, Name: "installed.example", Account: installedAccount}},
	})
	t.Cleanup(sim.Close)

	inst := &installation{name: name, sim: sim, cp: cp}
	for _, ns := range watched {
		// The user creates watched namespaces first: the chart puts a Role
		// in each.
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if kustomize {
		rendered, err := kubectl(t, nil, "kustomize", "config/default")
		if err != nil {
			t.Fatal(err)
		}
		inst.m = parseManifest(t, rendered)
		inst.ns = inst.m.one(t, "Namespace").GetName()
	} else {
		// Not the default names, so the chart's own names must reach its
		// RBAC rules and flags.
		const rel = "platform"
		inst.ns = "platform-ops"
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: inst.ns}}); err != nil {
			t.Fatal(err)
		}
		out, err := helm(t, "template", rel, chartDir, "--namespace", inst.ns, "--include-crds",
			"--values", writeTemp(t, values), "--set", "cloudflare.apiURL="+sim.URL)
		if err != nil {
			t.Fatal(err)
		}
		inst.m = parseManifest(t, out)
	}
	inst.deployment = inst.m.deployment(t)
	inst.vwc = inst.m.one(t, "ValidatingWebhookConfiguration").GetName()
	inst.service = webhookService(t, inst.m)

	// Everything but the Deployment, and cert-manager's own objects (no
	// cert-manager runs here: the test plays it below).
	var apply bytes.Buffer
	for _, o := range inst.m {
		switch o.GetKind() {
		case "Deployment", "Certificate", "Issuer":
			continue
		}
		data, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		apply.Write(data)
		apply.WriteString("\n")
	}
	if out, err := kubectl(t, &apply, "--kubeconfig", cp.kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-"); err != nil {
		t.Fatalf("applying %s: %v\n%s", name, err, out)
	}
	testenv.Eventually(t, 30*time.Second, func() string {
		var list v1alpha1.SpectrumAppList
		if err := c.List(ctx, &list, client.InNamespace(inst.ns)); err != nil {
			return "the SpectrumApp API is not served yet: " + err.Error()
		}
		return ""
	})

	svc := &corev1.Service{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: inst.ns, Name: inst.service.Name}, svc); err != nil {
		t.Fatal(err)
	}
	inst.clusterIPPort = net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(svc.Spec.Ports[0].Port))

	inst.kubeconfig = inst.serviceAccountKubeconfig(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	inst.port = port
	if certManager {
		inst.mounts = inst.playCertManager(t)
	}
	return inst
}

// serviceAccountKubeconfig mints a token for the Deployment's ServiceAccount
// (`kubectl create token`) and writes a kubeconfig that uses only it.
func (inst *installation) serviceAccountKubeconfig(t *testing.T) string {
	t.Helper()
	admin := inst.cp.kubeconfig
	sa := inst.deployment.Spec.Template.Spec.ServiceAccountName
	token, err := kubectl(t, nil, "--kubeconfig", admin, "create", "token", sa, "--namespace", inst.ns, "--duration", "1h")
	if err != nil {
		t.Fatal(err)
	}
	adminConfig, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	var server *clientcmdapi.Cluster
	for _, c := range adminConfig.Clusters {
		server = c
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = server
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: strings.TrimSpace(token)}
	cfg.Contexts["installed"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: sa, Namespace: inst.ns}
	cfg.CurrentContext = "installed"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// playCertManager does what cert-manager and its CA injector would: for
// each Certificate, a certificate for its DNS names in its Secret, mounted
// where the Deployment mounts that Secret, and the webhook's CA in the
// caBundle. It returns the local directory for each mount path.
func (inst *installation) playCertManager(t *testing.T) map[string]string {
	t.Helper()
	c := inst.cp.client
	ctx := t.Context()
	mounts := map[string]string{}
	pod := inst.deployment.Spec.Template.Spec
	for _, u := range inst.m.ofKind("Certificate") {
		secretName, _, _ := unstructured.NestedString(u.Object, "spec", "secretName")
		dnsNames, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "dnsNames")
		caPEM, certPEM, keyPEM := harness.IssueCertificate(t, dnsNames[0])
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: inst.ns, Name: secretName},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{"ca.crt": caPEM, "tls.crt": certPEM, "tls.key": keyPEM},
		}
		if err := c.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for name, data := range secret.Data {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		mounted := false
		for _, v := range pod.Volumes {
			if v.Secret == nil || v.Secret.SecretName != secretName {
				continue
			}
			for _, m := range manager(t, inst.deployment).VolumeMounts {
				if m.Name == v.Name {
					mounts[m.MountPath] = dir
					mounted = true
				}
			}
		}
		if !mounted {
			t.Fatalf("the Deployment does not mount Certificate %s's Secret %s", u.GetName(), secretName)
		}
		if dnsNames[0] != inst.service.Name+"."+inst.ns+".svc" {
			continue
		}
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, types.NamespacedName{Name: inst.vwc}, vwc); err != nil {
			t.Fatal(err)
		}
		for i := range vwc.Webhooks {
			vwc.Webhooks[i].ClientConfig.CABundle = caPEM
		}
		if err := c.Update(ctx, vwc); err != nil {
			t.Fatal(err)
		}
	}
	return mounts
}

// replica is one manager process, as one pod of the Deployment.
type replica struct {
	*harness.Manager
	ip string
}

var podIPs struct {
	sync.Mutex
	next int
}

// newPodIP hands out loopback addresses, one per simulated pod, so replicas
// listen on the same port as pods do.
func newPodIP() string {
	podIPs.Lock()
	defer podIPs.Unlock()
	podIPs.next++
	return fmt.Sprintf("127.0.%d.%d", 10+podIPs.next/250, 1+podIPs.next%250)
}

// newReplica prepares a manager with the Deployment's arguments and what a
// pod supplies.
func (inst *installation) newReplica(t *testing.T) *replica {
	t.Helper()
	container := manager(t, inst.deployment)
	ip := newPodIP()
	probePort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	probe := net.JoinHostPort(ip, probePort)
	metricsPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	args := append(slices.Clone(container.Args),
		"--kubeconfig="+inst.kubeconfig,
		"--webhook-host="+ip,
		"--webhook-port="+inst.port,
		"--health-probe-bind-address="+probe,
		"--leader-election-namespace="+inst.ns,
	)
	if _, ok := flags(container.Args)["metrics-bind-address"]; ok {
		args = append(args, "--metrics-bind-address="+net.JoinHostPort(ip, metricsPort))
	}
	for i, a := range args {
		// A mounted certificate directory is where the test put it.
		name, value, _ := strings.Cut(a, "=")
		if dir, ok := inst.mounts[value]; ok {
			args[i] = name + "=" + dir
		}
	}
	if f := flags(container.Args)["cloudflare-api-url"]; f != inst.sim.URL {
		// config/default has no value for it; the chart was given the
		// simulator's.
		args = append(args, "--cloudflare-api-url="+inst.sim.URL)
	}
	env := []string{"POD_NAMESPACE=" + inst.ns}
	for _, e := range container.Env {
		if e.Value != "" {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	binary, err := harness.BuildManager(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m, err := harness.NewManager(t.Context(), t.TempDir(), "", "", harness.ManagerOptions{
		Binary: binary, CommandLine: args, ProbeAddress: probe, Env: env,
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Stop()
		if t.Failed() {
			log, _ := m.Log()
			t.Logf("manager log (%s):\n%s", ip, tail(string(log), 60))
		}
	})
	return &replica{Manager: m, ip: ip}
}

// startReplicas starts n replicas, each in the Service's endpoints once
// ready, as the endpoints controller would add a ready pod.
func (inst *installation) startReplicas(t *testing.T, n int) []*replica {
	t.Helper()
	var out []*replica
	for range n {
		r := inst.newReplica(t)
		if err := r.Start(t.Context()); err != nil {
			log, _ := r.Log()
			t.Fatalf("%v\n%s", err, tail(string(log), 40))
		}
		out = append(out, r)
		inst.setEndpoints(t, out, nil)
	}
	return out
}

// setEndpoints routes the webhook Service to every replica not listed in
// terminating, as kube-proxy does with a Service's ready endpoints.
func (inst *installation) setEndpoints(t *testing.T, replicas []*replica, terminating []*replica) {
	t.Helper()
	var ready []string
	for _, r := range replicas {
		if !slices.Contains(terminating, r) {
			ready = append(ready, net.JoinHostPort(r.ip, inst.port))
		}
	}
	inst.cp.proxy.setEndpoints(inst.clusterIPPort, ready)
}

// checkUsable: the webhook is trusted and refuses what it must, an app goes
// Ready and is deleted at the simulator.
func (inst *installation) checkUsable(t *testing.T, watched []string) {
	t.Helper()
	c := inst.cp.client
	ctx := t.Context()

	testenv.Eventually(t, 60*time.Second, func() string {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, types.NamespacedName{Name: inst.vwc}, vwc); err != nil {
			return err.Error()
		}
		for _, w := range vwc.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return "no CA in webhook " + w.Name + "'s caBundle"
			}
		}
		return ""
	})

	appNS := inst.ns + "-apps"
	if len(watched) > 0 {
		appNS = watched[0]
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "cloudflare-credentials", Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}},
		Data:       map[string][]byte{v1alpha1.DefaultCredentialsKey: []byte(installedToken)},
	}
	if err := c.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	// The webhook answers (over TLS the apiserver trusts) and refuses an
	// app the schema admits: an origin by DNS name without a port (11001).
	bad := inst.app(appNS, "refused")
	bad.Spec.OriginDirect = nil
	bad.Spec.OriginDNS = &v1alpha1.OriginDNS{Name: "origin.example.com"}
	testenv.Eventually(t, 30*time.Second, func() string {
		err := c.Create(ctx, bad, client.DryRunAll)
		switch {
		case err == nil:
			return "an invalid app was admitted"
		case !strings.Contains(err.Error(), "denied the request"):
			return "the webhook did not answer: " + err.Error()
		}
		return ""
	})

	app := inst.app(appNS, "web")
	testenv.Eventually(t, 30*time.Second, func() string {
		err := c.Create(ctx, app)
		switch {
		case err != nil && !apierrors.IsAlreadyExists(err):
			return "creating a valid app: " + err.Error()
		}
		return ""
	})
	testenv.Eventually(t, 90*time.Second, func() string {
		if err := c.Get(ctx, client.ObjectKeyFromObject(app), app); err != nil {
			return err.Error()
		}
		if !meta.IsStatusConditionTrue(app.Status.Conditions, v1alpha1.ConditionReady) {
			return fmt.Sprintf("app not Ready: %+v", app.Status.Conditions)
		}
		if n := len(inst.sim.Simulator.Apps()); n != 1 {
			return fmt.Sprintf("the simulator holds %d applications, want 1", n)
		}
		return ""
	})
	// The manager put the finalizer on with the create record, under the
	// install's RBAC: the deletion below needs it.
	if !controllerutil.ContainsFinalizer(app, v1alpha1.Finalizer) || app.CreateRecord() == nil {
		t.Errorf("the Ready app has finalizers %v and annotations %v; want the finalizer and the create record", app.Finalizers, app.Annotations)
	}
	if err := c.Delete(ctx, app); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, func() string {
		if err := c.Get(ctx, client.ObjectKeyFromObject(app), app); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("the SpectrumApp is still there (err %v, finalizers %v)", err, app.Finalizers)
		}
		if n := len(inst.sim.Simulator.Apps()); n != 0 {
			return fmt.Sprintf("the simulator still holds %d applications", n)
		}
		return ""
	})

	if len(watched) > 0 {
		// Outside the watched namespaces no manager acts on a SpectrumApp,
		// and the webhook is not asked either.
		other := inst.ns + "-unwatched"
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}); err != nil {
			t.Fatal(err)
		}
		unwatched := bad.DeepCopy()
		unwatched.Namespace = other
		if err := c.Create(ctx, unwatched, client.DryRunAll); err != nil {
			t.Errorf("the webhook was asked about namespace %s, which no manager watches: %v", other, err)
		}
	}
}

// checkAlive waits until aliveFor has passed since started and checks every
// replica still runs and never logged "forbidden".
func (inst *installation) checkAlive(t *testing.T, replicas []*replica, started time.Time) {
	t.Helper()
	for _, r := range replicas {
		select {
		case <-r.Exited():
			t.Fatalf("the manager (%s) exited", r.ip)
		case <-time.After(time.Until(started.Add(aliveFor))):
		}
	}
	for _, r := range replicas {
		if !r.Running() {
			t.Errorf("the manager (%s) is not running after %s", r.ip, aliveFor)
		}
		log, err := r.Log()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(strings.ToLower(line), "forbidden") {
				t.Errorf("the manager (%s) was refused something its RBAC should grant: %s", r.ip, line)
			}
		}
	}
}

func (inst *installation) app(ns, name string) *v1alpha1.SpectrumApp {
	return &v1alpha1.SpectrumApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.SpectrumAppSpec{
			ZoneID:         installedZone,
			CredentialsRef: &v1alpha1.SecretKeyReference{Name: "cloudflare-credentials"},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete,
			Protocol:       "tcp/22",
			DNS:            v1alpha1.DNS{Type: "CNAME", Name: name + "." + strings.ReplaceAll(inst.ns, ".", "-") + ".installed.example"},
			OriginDirect:   []string{"tcp://192.0.2.10:22"},
		},
	}
}

// freePort returns a TCP port free on every loopback address.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// endpointsLag is how long after a pod is told to stop it may still be
// picked for new connections: the EndpointSlice change still has to reach
// kube-proxy (about a second in a busy cluster).
const endpointsLag = time.Second

// concurrentAppliers is how many clients apply during the upgrade.
const concurrentAppliers = 4

// TestRollingUpgradeNeverRefusesAnApply: with the chart's two replicas, a
// rolling upgrade (each old pod replaced by a new one that is ready first)
// never refuses a create, while a stream of dry-run creates goes on. The
// restart is a Kubernetes one: the old pod runs its preStop hook (if any)
// and gets SIGTERM while it leaves the Service's endpoints, which the
// apiserver's connections, kept alive, outlast.
func TestRollingUpgradeNeverRefusesAnApply(t *testing.T) {
	t.Parallel()
	inst := install(t, "rolling", "", false, false, nil)
	c := inst.cp.client
	ctx := t.Context()
	if got := *inst.deployment.Spec.Replicas; got < 2 {
		t.Fatalf("the chart runs %d replica(s); a rolling upgrade would leave the webhook without one", got)
	}
	old := inst.startReplicas(t, int(*inst.deployment.Spec.Replicas))
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rolling-apps"}}); err != nil {
		t.Fatal(err)
	}
	app := inst.app("rolling-apps", "stream")
	testenv.Eventually(t, 60*time.Second, func() string {
		if err := c.Create(ctx, app.DeepCopy(), client.DryRunAll); err != nil {
			return "the webhook does not admit yet: " + err.Error()
		}
		return ""
	})

	var (
		mu       sync.Mutex
		admitted int
		refused  []string
	)
	stop := make(chan struct{})
	// Several clients apply at once (a GitOps tool, a few users), so the
	// apiserver holds several connections to each replica.
	var streams sync.WaitGroup
	for range concurrentAppliers {
		streams.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				err := c.Create(ctx, app.DeepCopy(), client.DryRunAll)
				mu.Lock()
				if err != nil {
					refused = append(refused, err.Error())
				} else {
					admitted++
				}
				mu.Unlock()
			}
		})
	}

	preStop := time.Duration(0)
	if h := manager(t, inst.deployment).Lifecycle; h != nil && h.PreStop != nil && h.PreStop.Sleep != nil {
		preStop = time.Duration(h.PreStop.Sleep.Seconds) * time.Second
	}
	running := slices.Clone(old)
	for _, pod := range old {
		// maxSurge 1, maxUnavailable 0: the new pod is ready (and in the
		// endpoints) before the old one goes.
		next := inst.newReplica(t)
		if err := next.Start(ctx); err != nil {
			t.Fatal(err)
		}
		running = append(running, next)
		inst.setEndpoints(t, running, nil)
		// The kubelet's order: with no preStop hook the pod is sent SIGTERM
		// as its deletion begins, while its removal from the endpoints
		// still has to reach every node's proxy, so it is still picked for
		// new connections for a moment after the signal.
		time.Sleep(preStop)
		stopped := make(chan error, 1)
		go func() { stopped <- pod.Stop() }()
		time.Sleep(endpointsLag)
		inst.setEndpoints(t, running, []*replica{pod})
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		running = slices.DeleteFunc(running, func(r *replica) bool { return r == pod })
		inst.setEndpoints(t, running, nil)
		time.Sleep(time.Second) // some creates between the two restarts
	}
	time.Sleep(2 * time.Second)
	close(stop)
	streams.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d dry-run creates admitted during the rolling upgrade, %d refused", admitted, len(refused))
	if admitted < 50*concurrentAppliers {
		t.Errorf("only %d creates admitted: the stream did not cover the upgrade", admitted)
	}
	for i, r := range refused {
		if i == 5 {
			t.Errorf("... and %d more", len(refused)-5)
			break
		}
		t.Errorf("refused during the rolling upgrade: %s", r)
	}
}

// TestDeletionsFinishWhileTheWebhookIsDown: the webhook's matchConditions
// keep objects being deleted and metadata-only updates away from it, so
// with no replica reachable (failurePolicy Fail) a SpectrumApp is still
// deleted, and its finalizer removed, while spec changes are refused.
func TestDeletionsFinishWhileTheWebhookIsDown(t *testing.T) {
	t.Parallel()
	inst := install(t, "webhook down", "", false, false, nil)
	c := inst.cp.client
	ctx := t.Context()
	replicas := inst.startReplicas(t, 1)
	const ns = "down-apps"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cloudflare-credentials", Labels: map[string]string{v1alpha1.CredentialsLabel: "true"}},
		Data:       map[string][]byte{v1alpha1.DefaultCredentialsKey: []byte(installedToken)},
	}); err != nil {
		t.Fatal(err)
	}
	app := inst.app(ns, "going")
	testenv.Eventually(t, 60*time.Second, func() string {
		if err := c.Create(ctx, app); err != nil && !apierrors.IsAlreadyExists(err) {
			return err.Error()
		}
		return ""
	})
	testenv.Eventually(t, 60*time.Second, func() string {
		if err := c.Get(ctx, client.ObjectKeyFromObject(app), app); err != nil {
			return err.Error()
		}
		if !meta.IsStatusConditionTrue(app.Status.Conditions, v1alpha1.ConditionReady) || len(inst.sim.Simulator.Apps()) != 1 {
			return "the app is not Ready at the simulator yet"
		}
		return ""
	})

	// No replica is reachable; the manager still runs.
	inst.setEndpoints(t, replicas, replicas)
	for _, r := range replicas {
		inst.cp.proxy.cut(net.JoinHostPort(r.ip, inst.port))
	}
	changed := app.DeepCopy()
	changed.Spec.OriginDirect = []string{"tcp://192.0.2.11:22"}
	if err := c.Update(ctx, changed); err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
		t.Fatalf("a spec change was not refused for the unreachable webhook (err %v); the checks below would prove nothing", err)
	}
	labelled := app.DeepCopy()
	labelled.Labels = map[string]string{"team": "edge"}
	if err := c.Update(ctx, labelled); err != nil {
		t.Errorf("a label change waited on the unreachable webhook: %v", err)
	}
	if err := c.Delete(ctx, app); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, func() string {
		if err := c.Get(ctx, client.ObjectKeyFromObject(app), app); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("the SpectrumApp is still there (err %v, finalizers %v)", err, app.Finalizers)
		}
		if n := len(inst.sim.Simulator.Apps()); n != 0 {
			return fmt.Sprintf("the simulator still holds %d applications", n)
		}
		return ""
	})
}
