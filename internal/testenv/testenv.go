// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) with the operator's CRDs installed, for tests of behaviour the
// apiserver owns: schema and CEL validation, admission webhooks, the status
// subresource, finalizers and printer columns.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
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
