// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) with the operator's CRDs installed, for tests of behaviour the
// apiserver owns: schema and CEL validation, admission webhooks, the status
// subresource, finalizers and printer columns.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	spectrumv1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
)

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Scheme returns a scheme with the built-in types and the SpectrumApp API.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := spectrumv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Options choose what the control plane serves besides the CRDs.
type Options struct {
	// WithWebhooks installs config/webhook's ValidatingWebhookConfiguration,
	// pointed at a local serving host, port and certificate directory that
	// the returned Environment's WebhookInstallOptions describe.
	WithWebhooks bool
	// Root is the repository checkout to read config/ from; RepoRoot when
	// empty.
	Root string
}

// New returns an envtest.Environment for the operator, or an error telling the
// developer how to get the control-plane binaries. It does not start it.
func New(opts Options) (*envtest.Environment, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: these tests need real kube-apiserver and etcd binaries; " +
			"run them with `make test`, or export KUBEBUILDER_ASSETS=\"$(bash hack/envtest-binaries.sh)\"")
	}
	root := opts.Root
	if root == "" {
		root = RepoRoot()
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	if opts.WithWebhooks {
		vwc, err := InstalledWebhookConfiguration(root)
		if err != nil {
			return nil, err
		}
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{vwc},
		}
	}
	return env, nil
}

// InstalledWebhookConfiguration is the ValidatingWebhookConfiguration an
// installation has: controller-gen's (config/webhook/manifests.yaml) with the
// matchConditions config/default and the chart add
// (config/webhook/match_conditions_patch.yaml).
func InstalledWebhookConfiguration(root string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	generated, err := os.ReadFile(filepath.Join(root, "config", "webhook", "manifests.yaml"))
	if err != nil {
		return nil, err
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := yaml.Unmarshal(generated, vwc); err != nil {
		return nil, fmt.Errorf("config/webhook/manifests.yaml: %w", err)
	}
	patchFile, err := os.ReadFile(filepath.Join(root, "config", "webhook", "match_conditions_patch.yaml"))
	if err != nil {
		return nil, err
	}
	var patch []struct {
		Op    string                                   `json:"op"`
		Path  string                                   `json:"path"`
		Value []admissionregistrationv1.MatchCondition `json:"value"`
	}
	if err := yaml.Unmarshal(patchFile, &patch); err != nil {
		return nil, fmt.Errorf("config/webhook/match_conditions_patch.yaml: %w", err)
	}
	if len(patch) != 1 || patch[0].Op != "add" || patch[0].Path != "/webhooks/0/matchConditions" || len(vwc.Webhooks) != 1 {
		return nil, fmt.Errorf("config/webhook/match_conditions_patch.yaml must add matchConditions to the one generated webhook")
	}
	vwc.Webhooks[0].MatchConditions = patch[0].Value
	return vwc, nil
}

// InstallFinalizerPolicy creates config/policy's MutatingAdmissionPolicy
// and its binding, which set the finalizer of every new SpectrumApp, as an
// installation that opts in does (an overlay with config/policy, the
// chart's finalizerPolicy.enabled), and waits until the apiserver applies
// it.
func InstallFinalizerPolicy(ctx context.Context, cfg *rest.Config, root string) error {
	if root == "" {
		root = RepoRoot()
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	path := filepath.Join(root, "config", "policy", "finalizer_policy.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s from %s: %w", obj.GetKind(), obj.GetName(), path, err)
		}
	}
	return waitForFinalizerPolicy(ctx, c, root)
}

// waitForFinalizerPolicy waits until the apiserver applies the policy: for
// a few seconds after it is created, the apiserver refuses every new
// SpectrumApp as a kind it does not know yet (503 ServiceUnavailable,
// "There can be a delay between when CustomResourceDefinitions are created
// and when they are available"). An installation's manager takes longer than that to
// start; a test's would not. It asks with a dry-run create of a sample; any
// other answer (admitted, or refused by a webhook that is not served yet)
// means the policy is past that.
func waitForFinalizerPolicy(ctx context.Context, c client.Client, root string) error {
	sample, err := os.ReadFile(filepath.Join(root, "config", "samples", "spectrum_v1alpha1_spectrumapp_tcp.yaml"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		app := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(sample, &app.Object); err != nil {
			return err
		}
		app.SetNamespace(metav1.NamespaceDefault)
		err := c.Create(ctx, app, client.DryRunAll)
		switch {
		case !apierrors.IsServiceUnavailable(err):
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the finalizer's admission policy is not in force after a minute: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
