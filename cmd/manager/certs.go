package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/cloudflare-operator/spectrum-operator/internal/webhook/certs"
)

// The manager reads and writes its webhook configuration and certificate
// Secret by name, without a cache: no list or watch, and no other object.
// The names are config/default's; the chart grants its own names.
//
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;update,resourceNames=spectrum-operator-validating-webhook-configuration
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=create
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;update,resourceNames=spectrum-operator-webhook-cert

// certificateLoadTimeout bounds the wait for the certificate Secret at start:
// a manager that cannot read or create it exits, and says why.
const certificateLoadTimeout = time.Minute

// certificateRotator makes the webhook work without cert-manager: it keeps a
// CA and serving certificate in a Secret every replica shares, serves the
// certificate from memory and keeps the CA in the webhook configuration's
// caBundle (see certs.Rotator). startRotator connects it to the manager.
func certificateRotator(cfg config) (*certs.Rotator, error) {
	secret, err := certificateSecret(cfg.webhookCertSecret, os.Getenv("POD_NAMESPACE"))
	if err != nil {
		return nil, err
	}
	hosts := serviceHosts(cfg.webhookService, secret.Namespace)
	hosts = append(hosts, splitList(cfg.webhookHosts)...)
	return &certs.Rotator{
		Secret:            secret,
		WebhookConfigName: cfg.webhookConfigName,
		Hosts:             hosts,
		CertValidity:      cfg.webhookCertValidity,
		CheckInterval:     cfg.webhookCertCheckInterval,
		Log:               ctrl.Log.WithName("webhook-certificates"),
	}, nil
}

// startRotator loads the certificate before the webhook server starts, and
// keeps it current while the manager runs.
func startRotator(ctx context.Context, mgr ctrl.Manager, rotator *certs.Rotator) error {
	rotator.Reader, rotator.Writer = mgr.GetAPIReader(), mgr.GetClient()
	if err := rotator.WaitLoaded(ctx, certificateLoadTimeout); err != nil {
		return err
	}
	return mgr.Add(rotator)
}

// certificateSecret parses --webhook-cert-secret: NAMESPACE/NAME, or NAME in
// the pod's namespace.
func certificateSecret(flagValue, podNamespace string) (types.NamespacedName, error) {
	if namespace, name, ok := strings.Cut(flagValue, "/"); ok {
		if namespace == "" || name == "" {
			return types.NamespacedName{}, fmt.Errorf("--webhook-cert-secret must be NAME or NAMESPACE/NAME, got %q", flagValue)
		}
		return types.NamespacedName{Namespace: namespace, Name: name}, nil
	}
	if flagValue == "" {
		return types.NamespacedName{}, fmt.Errorf("--webhook-self-signed needs --webhook-cert-secret")
	}
	if podNamespace == "" {
		return types.NamespacedName{}, fmt.Errorf("--webhook-cert-secret=%s names no namespace and POD_NAMESPACE is not set; use NAMESPACE/NAME", flagValue)
	}
	return types.NamespacedName{Namespace: podNamespace, Name: flagValue}, nil
}

// serveFrom makes the webhook server present the rotator's certificate.
func serveFrom(r *certs.Rotator) func(*tls.Config) {
	return func(c *tls.Config) { c.GetCertificate = r.GetCertificate }
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
