package main

import (
	"context"
	"fmt"
	"os"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/cloudflare-operator/spectrum-operator/internal/webhook/certs"
)

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;update;patch

// addSelfSignedCertificates makes the webhook work without cert-manager: it
// writes a serving certificate when none exists and, once the manager runs,
// puts its CA into the ValidatingWebhookConfiguration so the apiserver trusts
// it.
func addSelfSignedCertificates(mgr ctrl.Manager, cfg config) error {
	dir := cfg.webhookCertDir
	if dir == "" {
		dir = mgr.GetWebhookServer().(interface{ CertDir() string }).CertDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating webhook certificate directory: %w", err)
	}
	hosts := serviceHosts(cfg.webhookService, os.Getenv("POD_NAMESPACE"))
	hosts = append(hosts, splitList(cfg.webhookHosts)...)
	caBundle, err := certs.EnsureSelfSigned(dir, hosts)
	if err != nil {
		return fmt.Errorf("preparing the webhook certificate: %w", err)
	}
	// The APIReader and an uncached write: the manager caches no webhook
	// configurations, and this runs once per start.
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return injectCABundle(ctx, mgr.GetClient(), cfg.webhookConfigName, caBundle)
	}))
}

func serviceHosts(service, namespace string) []string {
	if service == "" || namespace == "" {
		return nil
	}
	return []string{
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
	}
}

func injectCABundle(ctx context.Context, c client.Client, name string, caBundle []byte) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, types.NamespacedName{Name: name}, vwc); err != nil {
			return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", name, err)
		}
		for i := range vwc.Webhooks {
			vwc.Webhooks[i].ClientConfig.CABundle = caBundle
		}
		return c.Update(ctx, vwc)
	})
}
