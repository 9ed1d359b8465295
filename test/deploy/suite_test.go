// Package deploy_test checks the two ways to install the operator, the Helm
// chart and config/default, by rendering them with the real helm and kubectl
// and installing them into a real kube-apiserver (envtest). There is no
// kubelet, so nothing runs: these tests prove the manifests are what we mean
// and that the apiserver accepts them, not that the manager starts.
package deploy_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

var (
	root     = testenv.RepoRoot()
	chartDir = filepath.Join(root, "charts", "spectrum-operator")

	// scratch holds helm's cache, config and data directories and the
	// kubeconfig, so the tests never read or write the developer's own.
	scratch string
)

func TestMain(m *testing.M) {
	// TestAsInstalled's cases each wait minutes for an installed manager to
	// prove it stays up; they wait, they do not compute, so they all run at
	// once rather than GOMAXPROCS at a time.
	flag.Parse()
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == fmt.Sprint(goruntime.GOMAXPROCS(0)) {
		_ = flag.Set("test.parallel", "8")
	}
	var err error
	scratch, err = os.MkdirTemp("", "spectrum-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if shared != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	_ = os.RemoveAll(scratch)
	os.Exit(code)
}

// The control plane starts on first use, so tests that only render
// manifests do not wait for it.
var (
	clusterOnce sync.Once
	clusterErr  error
	shared      *controlPlane
)

// controlPlane is a running kube-apiserver and etcd, with a serviceProxy
// playing kube-proxy for it.
type controlPlane struct {
	env        *envtest.Environment
	client     client.Client
	kubeconfig string
	proxy      *serviceProxy
}

// cluster returns a client of the shared kube-apiserver and a kubeconfig
// file for helm and kubectl.
func cluster(t *testing.T) (client.Client, string) {
	t.Helper()
	clusterOnce.Do(func() { shared, clusterErr = startCluster(scratch) })
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return shared.client, shared.kubeconfig
}

// privateCluster starts a control plane of the test's own, stopped at its
// end: operators installed cluster-wide would otherwise all act on each
// other's SpectrumApps.
func privateCluster(t *testing.T) *controlPlane {
	t.Helper()
	cp, err := startCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.env.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	return cp
}

func startCluster(dir string) (*controlPlane, error) {
	e, err := testenv.New(testenv.Options{})
	if err != nil {
		return nil, err
	}
	// No CRD up front: installing it is part of what the chart and
	// config/default must do.
	e.CRDDirectoryPaths, e.ErrorIfCRDPathMissing = nil, false
	// The apiserver calls a webhook Service at its ClusterIP, which
	// kube-proxy routes to a ready pod. No kube-proxy runs here: the
	// apiserver's cluster traffic goes through a serviceProxy, which routes
	// a Service's ClusterIP to the managers the tests run.
	proxy, egress, err := startServiceProxy(dir)
	if err != nil {
		return nil, err
	}
	e.ControlPlane.GetAPIServer().Configure().Set("egress-selector-config-file", egress)
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	cp := &controlPlane{env: e, proxy: proxy}
	if cp.client, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return nil, err
	}
	// helm and kubectl need a kubeconfig; system:masters so they may create
	// the cluster-scoped RBAC and webhook objects.
	user, err := e.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding the envtest admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	return cp, os.WriteFile(cp.kubeconfig, data, 0o600)
}

// helmBinary is the helm built by hack/helm.sh. A missing binary is a failure,
// not a skip: a skipped chart test would let a broken chart pass `make test`.
func helmBinary(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		t.Fatal("HELM is not set: these tests run the helm binary; run them with `make test`, " +
			"or export HELM=\"$(bash hack/helm.sh)\"")
	}
	return h
}

func kubectlBinary(t *testing.T) string {
	t.Helper()
	k := os.Getenv("KUBECTL")
	if k == "" {
		k = "kubectl"
	}
	path, err := exec.LookPath(k)
	if err != nil {
		t.Fatalf("kubectl not found (%v): config/default is rendered with `kubectl kustomize`; install kubectl or set KUBECTL", err)
	}
	return path
}

// helm runs helm with its state in scratch and returns stdout; the error
// carries stderr.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(helmBinary(t), nil, []string{
		"HELM_CACHE_HOME=" + filepath.Join(scratch, "helm", "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(scratch, "helm", "config"),
		"HELM_DATA_HOME=" + filepath.Join(scratch, "helm", "data"),
	}, args...)
}

func kubectl(t *testing.T, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	return run(kubectlBinary(t), stdin, nil, args...)
}

func run(bin string, stdin io.Reader, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = root
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// renderChart runs `helm template` with values (YAML) and returns the objects.
func renderChart(t *testing.T, release, namespace, values string) (manifest, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := helm(t, "template", release, chartDir, "--namespace", namespace, "--values", file)
	if err != nil {
		return nil, err
	}
	return parseManifest(t, out), nil
}

// manifest is a rendered install, in rendering order.
type manifest []*unstructured.Unstructured

func parseManifest(t *testing.T, text string) manifest {
	t.Helper()
	var m manifest
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return m
		}
		if err != nil {
			t.Fatalf("parsing rendered YAML: %v", err)
		}
		if len(obj.Object) > 0 {
			m = append(m, obj)
		}
	}
}

func (m manifest) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of kind, failing the test when there is not
// exactly one.
func (m manifest) one(t *testing.T, kind string) *unstructured.Unstructured {
	t.Helper()
	objs := m.ofKind(kind)
	if len(objs) != 1 {
		t.Fatalf("want exactly one %s, rendered %d", kind, len(objs))
	}
	return objs[0]
}

func (m manifest) named(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range m.ofKind(kind) {
		if o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s named %q rendered", kind, name)
	return nil
}

// typed converts a rendered object into its Go type.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("converting %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func (m manifest) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	return typed[appsv1.Deployment](t, m.one(t, "Deployment"))
}

// manager is the manager container of the Deployment.
func manager(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no manager container", d.Name)
	return corev1.Container{}
}

// flags maps each --name=value argument to its value ("" for a bare
// --name).
func flags(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		out[name] = value
	}
	return out
}

// readYAML reads one YAML document of the repository into out.
func readYAML(t *testing.T, rel string, out any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, out); err != nil {
		t.Fatalf("parsing %s: %v", rel, err)
	}
}

// generatedRole is config/rbac/role.yaml's ClusterRole, what controller-gen
// derives from the +kubebuilder:rbac markers: all the manager may do
// cluster-wide.
func generatedRole(t *testing.T) rbacv1.ClusterRole {
	t.Helper()
	var role rbacv1.ClusterRole
	for _, doc := range generatedRoleDocs(t) {
		if doc.GetKind() == "ClusterRole" {
			role = *typed[rbacv1.ClusterRole](t, doc)
		}
	}
	if len(role.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no ClusterRole rules")
	}
	return role
}

// generatedReleaseRole is config/rbac/role.yaml's Role: what the manager may
// do in its own namespace (its webhook certificate Secret).
func generatedReleaseRole(t *testing.T) rbacv1.Role {
	t.Helper()
	var role rbacv1.Role
	for _, doc := range generatedRoleDocs(t) {
		if doc.GetKind() == "Role" {
			role = *typed[rbacv1.Role](t, doc)
		}
	}
	if len(role.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no Role rules")
	}
	return role
}

func generatedRoleDocs(t *testing.T) manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return parseManifest(t, string(data))
}

// named returns rules with every resourceNames list replaced by name, as the
// chart puts its own object names into the generated rules.
func named(rules []rbacv1.PolicyRule, resource, name string) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, len(rules))
	for i, r := range rules {
		out[i] = *r.DeepCopy()
		if len(r.ResourceNames) > 0 && slices.Contains(r.Resources, resource) {
			out[i].ResourceNames = []string{name}
		}
	}
	return out
}
