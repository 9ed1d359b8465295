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

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

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
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(root, "config", "webhook")},
		}
	}
	return env, nil
}
