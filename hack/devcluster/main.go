// Command devcluster runs a local Kubernetes control plane (the envtest
// kube-apiserver and etcd) for `make dev-up` and `make demo`: it installs the
// operator's CRD and ValidatingWebhookConfiguration (pointed at a manager on
// this machine), writes an admin kubeconfig, and runs until SIGTERM.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// Info is what devcluster tells the processes started next to it.
type Info struct {
	Kubeconfig     string `json:"kubeconfig"`
	WebhookHost    string `json:"webhookHost"`
	WebhookPort    int    `json:"webhookPort"`
	WebhookCertDir string `json:"webhookCertDir"`
}

func main() {
	dir := flag.String("dir", "bin/dev", "Directory for the kubeconfig, webhook certificates and devcluster.json.")
	webhookPort := flag.Int("webhook-port", 19443, "Port the manager's webhook server will listen on, on 127.0.0.1.")
	flag.Parse()
	if err := run(*dir, *webhookPort); err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

func run(dir string, webhookPort int) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	env, err := testenv.New(testenv.Options{WithWebhooks: true, Root: root})
	if err != nil {
		return err
	}
	env.WebhookInstallOptions.LocalServingHost = "127.0.0.1"
	env.WebhookInstallOptions.LocalServingPort = webhookPort
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()

	info, err := writeAccess(env, dir)
	if err != nil {
		return err
	}
	fmt.Printf("devcluster: control plane ready; kubeconfig %s\n", info.Kubeconfig)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	fmt.Println("devcluster: stopping the control plane")
	return nil
}

// writeAccess writes an admin kubeconfig, the webhook serving certificate
// (envtest generated it and trusts it in the webhook configuration) and
// devcluster.json.
func writeAccess(env *envtest.Environment, dir string) (Info, error) {
	certDir := filepath.Join(dir, "webhook-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return Info{}, err
	}
	user, err := env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return Info{}, fmt.Errorf("creating the admin user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return Info{}, err
	}
	info := Info{
		Kubeconfig:     filepath.Join(dir, "kubeconfig"),
		WebhookHost:    env.WebhookInstallOptions.LocalServingHost,
		WebhookPort:    env.WebhookInstallOptions.LocalServingPort,
		WebhookCertDir: certDir,
	}
	for _, name := range []string{"tls.crt", "tls.key"} {
		data, err := os.ReadFile(filepath.Join(env.WebhookInstallOptions.LocalServingCertDir, name))
		if err != nil {
			return Info{}, err
		}
		if err := os.WriteFile(filepath.Join(certDir, name), data, 0o600); err != nil {
			return Info{}, err
		}
	}
	if err := os.WriteFile(info.Kubeconfig, kubeconfig, 0o600); err != nil {
		return Info{}, err
	}
	encoded, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return Info{}, err
	}
	// Written last: its presence tells dev.sh everything above is ready.
	return info, os.WriteFile(filepath.Join(dir, "devcluster.json"), encoded, 0o600)
}
