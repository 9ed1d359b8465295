// Command manager runs the spectrum-operator: the SpectrumApp controller and
// its validating admission webhook.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/appwatch"
	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/events"
	"github.com/cloudflare-operator/spectrum-operator/internal/metricsauth"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/webhook/certs"
	"github.com/cloudflare-operator/spectrum-operator/internal/webhook/drain"
	webhookv1alpha1 "github.com/cloudflare-operator/spectrum-operator/internal/webhook/v1alpha1"
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
}

// defaultWorkers is --max-concurrent-reconciles' default. Cloudflare calls
// are paced by the per-token budget, not by the workers; the workers spend
// most of a reconcile waiting on the apiserver (the finalizer update, the
// status patch), and under a burst of new apps 4 of them could not keep up
// with the budget (make bench, docs/benchmarks.md).
const defaultWorkers = 8

// config is everything the command line sets.
type config struct {
	metricsAddr, probeAddr string
	metricsCertDir         string
	pprofAddr              string
	secureMetrics          bool
	enableHTTP2            bool
	leaderElect            bool
	leaderElectionNS       string

	enableWebhooks    bool
	webhookHost       string
	webhookPort       int
	webhookCertDir    string
	webhookDrain      time.Duration
	webhookSelfSigned bool
	webhookConfigName string
	webhookService    string
	webhookHosts      string

	webhookCertSecret        string
	webhookCertValidity      time.Duration
	webhookCertCheckInterval time.Duration

	apiURL            string
	requestsPerSecond float64
	burst             int
	requestTimeout    time.Duration

	defaultCredentials    string
	defaultCredentialsKey string
	defaultPlan           string
	resyncPeriod          time.Duration
	workers               int
	watchNamespaces       string

	analyticsShare       float64
	trafficInterval      time.Duration
	trafficMetricsPerApp bool
}

func parseFlags() (config, zap.Options) {
	var c config
	flag.StringVar(&c.metricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint (:8443 for HTTPS, :8080 for HTTP); 0 disables it.")
	flag.BoolVar(&c.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	flag.StringVar(&c.metricsCertDir, "metrics-cert-dir", "", "Directory with the metrics server's tls.crt and tls.key (e.g. from cert-manager), so scrapers can verify it; empty serves a self-signed certificate made at start.")
	flag.StringVar(&c.pprofAddr, "pprof-bind-address", "0", "Address of Go's /debug/pprof endpoints, unauthenticated (e.g. 127.0.0.1:8082); 0 disables them.")
	flag.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&c.enableHTTP2, "enable-http2", false, "Serve the metrics and webhook servers over HTTP/2 (off: HTTP/2 Rapid Reset and Stream Cancellation CVEs).")
	flag.BoolVar(&c.leaderElect, "leader-elect", false, "Elect a leader, so only one replica reconciles at a time.")
	flag.StringVar(&c.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the pod's namespace).")

	flag.BoolVar(&c.enableWebhooks, "enable-webhooks", true, "Serve the validating admission webhook.")
	flag.StringVar(&c.webhookHost, "webhook-host", "", "Address the webhook server listens on (default: all).")
	flag.IntVar(&c.webhookPort, "webhook-port", 9443, "Port of the webhook server.")
	flag.DurationVar(&c.webhookDrain, "webhook-drain-period", 5*time.Second, "On SIGTERM, how long the webhook server keeps serving, closing each connection it answers and reporting not ready, before it stops: the pod's removal from the Service's endpoints takes a moment to reach every node, and the apiserver's kept-alive connections outlast it. Keep it below the pod's terminationGracePeriodSeconds.")
	flag.StringVar(&c.webhookCertDir, "webhook-cert-dir", "", "Directory with the webhook's tls.crt and tls.key (default: controller-runtime's).")
	flag.BoolVar(&c.webhookSelfSigned, "webhook-self-signed", false, "Keep the webhook's own CA and serving certificate in --webhook-cert-secret (shared by every replica, renewed before they expire), serve it, and keep the CA in --webhook-config-name's caBundle. --webhook-cert-dir is then not read.")
	flag.StringVar(&c.webhookCertSecret, "webhook-cert-secret", "spectrum-operator-webhook-cert", "Secret (NAME in POD_NAMESPACE, or NAMESPACE/NAME) holding the self-signed CA and serving certificate; created when missing.")
	flag.DurationVar(&c.webhookCertValidity, "webhook-cert-validity", certs.DefaultCertValidity, "Lifetime of a self-signed serving certificate; it is renewed when a third of it is left.")
	flag.DurationVar(&c.webhookCertCheckInterval, "webhook-cert-check-interval", certs.DefaultCheckInterval, "How often the self-signed certificate and the caBundle are checked; a cleared caBundle is restored within it.")
	flag.StringVar(&c.webhookConfigName, "webhook-config-name", "spectrum-operator-validating-webhook-configuration", "ValidatingWebhookConfiguration whose caBundle --webhook-self-signed keeps current.")
	flag.StringVar(&c.webhookService, "webhook-service-name", "spectrum-operator-webhook-service", "Service in front of the webhook, for the certificate's DNS names.")
	flag.StringVar(&c.webhookHosts, "webhook-cert-hosts", "", "Extra comma-separated DNS names or IPs for the self-signed certificate.")

	flag.StringVar(&c.apiURL, "cloudflare-api-url", spectrum.DefaultBaseURL, "Base URL of the Cloudflare API (point it at the simulator to test).")
	flag.Float64Var(&c.requestsPerSecond, "cloudflare-requests-per-second", budget.DefaultRequestsPerSecond, "Ceiling of the request rate per API token; below it the manager paces from Cloudflare's Ratelimit headers, which count what the dashboard and other tools of the same user spend too. Cloudflare allows 1,200 requests per 5 minutes per user: keep --cloudflare-burst + this × 300 within it.")
	flag.IntVar(&c.burst, "cloudflare-burst", budget.DefaultBurst, "Requests the per-token ceiling lets through at once; counted in Cloudflare's 5-minute budget with the rate (see --cloudflare-requests-per-second).")
	flag.DurationVar(&c.requestTimeout, "cloudflare-request-timeout", spectrum.DefaultTimeout, "Timeout of each Cloudflare API request.")

	flag.StringVar(&c.defaultCredentials, "default-credentials-secret", "", "NAMESPACE/NAME of the Secret whose token is used by SpectrumApps without credentialsRef.")
	flag.StringVar(&c.defaultCredentialsKey, "default-credentials-key", v1alpha1.DefaultCredentialsKey, "Key of the token in --default-credentials-secret.")
	flag.StringVar(&c.defaultPlan, "default-account-plan", string(v1alpha1.PlanEnterprise), "Cloudflare account plan assumed when a credentials Secret does not say: enterprise or pay-as-you-go.")
	flag.DurationVar(&c.resyncPeriod, "resync-period", 5*time.Minute, "How often Ready apps are compared with Cloudflare to undo changes made outside Kubernetes.")
	flag.IntVar(&c.workers, "max-concurrent-reconciles", defaultWorkers, "SpectrumApps reconciled in parallel.")
	flag.StringVar(&c.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch (default: all).")
	flag.Float64Var(&c.analyticsShare, "analytics-budget-share", budget.DefaultAnalyticsShare, "Share of each API token's request budget that reading traffic from Cloudflare's Spectrum analytics may use (status.traffic, the OriginsHealthy condition), on slots no configuration request waits for; 0 turns traffic off. The token needs Zone > Analytics > Read.")
	flag.DurationVar(&c.trafficInterval, "traffic-interval", controller.DefaultTrafficInterval, "Shortest time between two reads of a zone's traffic; it stretches as a token's zones multiply or its budget runs low.")
	flag.BoolVar(&c.trafficMetricsPerApp, "traffic-metrics-per-app", false, "Export each SpectrumApp's connections, bytes, connects and origin errors to Prometheus: one series per app and metric.")

	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	return c, opts
}

func main() {
	cfg, zapOpts := parseFlags()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	tuneMemory(setupLog)
	if err := run(cfg); err != nil {
		setupLog.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(cfg config) error {
	defaultCredentials, err := parseDefaultCredentials(cfg)
	if err != nil {
		return err
	}
	var rotator *certs.Rotator
	if cfg.enableWebhooks && cfg.webhookSelfSigned {
		if rotator, err = certificateRotator(cfg); err != nil {
			return err
		}
	}
	ctx := ctrl.SetupSignalHandler()
	restCfg := ctrl.GetConfigOrDie()
	// The apiserver gzips what it sends when asked, watch streams included:
	// decompressing every SpectrumApp event cost 2 % of the manager's CPU
	// to converge 10,000 apps (and the apiserver more to compress it), to
	// save bytes on the cluster's own network.
	restCfg.DisableCompression = true
	opts := managerOptions(cfg, rotator)
	if opts.Cache.DefaultNamespaces == nil {
		// Watching every namespace, SpectrumApps' watch events are read in
		// one pass (internal/appwatch). client-go shares one transport
		// among clients of the same configuration: the watch goes over
		// the manager's connection.
		httpClient, err := rest.HTTPClientFor(restCfg)
		if err != nil {
			return fmt.Errorf("creating the apiserver's HTTP client: %w", err)
		}
		apps, err := appwatch.New(restCfg, httpClient, scheme, nil)
		if err != nil {
			return err
		}
		opts.Cache.NewInformer = apps.NewInformer
	}
	mgr, err := ctrl.NewManager(restCfg, opts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	requestMetrics := spectrum.NewMetrics()
	budgetMetrics := budget.NewMetrics()
	appMetrics := controller.NewAppMetrics()
	metrics.Registry.MustRegister(requestMetrics.Collectors()...)
	metrics.Registry.MustRegister(budgetMetrics.Collectors()...)
	metrics.Registry.MustRegister(appMetrics, controller.UnreadableApplications)
	var traffic *controller.TrafficOptions
	if cfg.analyticsShare > 0 {
		trafficMetrics := controller.NewTrafficMetrics(cfg.trafficMetricsPerApp)
		metrics.Registry.MustRegister(trafficMetrics)
		traffic = &controller.TrafficOptions{MinInterval: cfg.trafficInterval, Metrics: trafficMetrics}
	}
	connector := budget.NewConnector(budget.ConnectorOptions{
		BaseURL:           cfg.apiURL,
		RequestsPerSecond: cfg.requestsPerSecond,
		Burst:             cfg.burst,
		Timeout:           cfg.requestTimeout,
		RequestMetrics:    requestMetrics,
		Metrics:           budgetMetrics,
		// The drift check uses each token in use once per resync period:
		// its client (and the zone listings made through it) must outlive
		// that, or every pass would start afresh.
		IdleTimeout:    max(budget.DefaultIdleTimeout, 3*cfg.resyncPeriod),
		AnalyticsShare: cfg.analyticsShare,
	})
	recorder := events.New(mgr.GetClient(), mgr.GetScheme(), "spectrum-operator", ctrl.Log.WithName("events"))
	if err := mgr.Add(recorder); err != nil {
		return err
	}
	metrics.Registry.MustRegister(recorder.DroppedCounter())
	reconciler := &controller.SpectrumAppReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                recorder,
		Connector:               connector,
		DefaultCredentials:      defaultCredentials,
		ResyncPeriod:            cfg.resyncPeriod,
		MaxConcurrentReconciles: cfg.workers,
		Metrics:                 appMetrics,
		Traffic:                 traffic,
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the controller: %w", err)
	}

	if cfg.enableWebhooks {
		if err := setupWebhook(ctx, mgr, cfg, rotator); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	readyCheck := healthz.Ping
	if cfg.enableWebhooks {
		readyCheck = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("readyz", readyCheck); err != nil {
		return err
	}

	setupLog.Info("starting manager", "cloudflareAPI", cfg.apiURL, "resyncPeriod", cfg.resyncPeriod, "webhooks", cfg.enableWebhooks)
	return mgr.Start(ctx)
}

func managerOptions(cfg config, rotator *certs.Rotator) ctrl.Options {
	var tlsOpts []func(*tls.Config)
	if !cfg.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	webhookTLSOpts := tlsOpts
	if rotator != nil {
		webhookTLSOpts = append(slices.Clone(tlsOpts), serveFrom(rotator))
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   cfg.metricsAddr,
		SecureServing: cfg.secureMetrics,
		CertDir:       cfg.metricsCertDir,
		TLSOpts:       tlsOpts,
	}
	if cfg.secureMetrics {
		metricsOpts.FilterProvider = metricsauth.FilterProvider
	}
	opts := ctrl.Options{
		Scheme: scheme,
		// managedFields are never read here, nor settled create records:
		// dropping them from the cache saves a large share of the memory
		// per SpectrumApp.
		Cache:                   cache.Options{DefaultTransform: controller.CacheTransform()},
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  cfg.probeAddr,
		PprofBindAddress:        cfg.pprofAddr,
		LeaderElection:          cfg.leaderElect,
		LeaderElectionID:        "spectrum-operator.cloudflare-operator.io",
		LeaderElectionNamespace: cfg.leaderElectionNS,
		// Reconciles end quickly; releasing the lease on exit lets a new
		// leader start at once instead of waiting for it to expire.
		LeaderElectionReleaseOnCancel: true,
		WebhookServer: drain.New(webhook.NewServer(webhook.Options{
			Host:    cfg.webhookHost,
			Port:    cfg.webhookPort,
			CertDir: cfg.webhookCertDir,
			TLSOpts: webhookTLSOpts,
		}), cfg.webhookDrain),
	}
	if namespaces := splitList(cfg.watchNamespaces); len(namespaces) > 0 {
		opts.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

func parseDefaultCredentials(cfg config) (v1alpha1.SecretKey, error) {
	if cfg.defaultCredentials == "" {
		return v1alpha1.SecretKey{}, nil
	}
	namespace, name, ok := strings.Cut(cfg.defaultCredentials, "/")
	if !ok || namespace == "" || name == "" {
		return v1alpha1.SecretKey{}, fmt.Errorf("--default-credentials-secret must be NAMESPACE/NAME, got %q", cfg.defaultCredentials)
	}
	return v1alpha1.SecretKey{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}, Key: cfg.defaultCredentialsKey}, nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func setupWebhook(ctx context.Context, mgr ctrl.Manager, cfg config, rotator *certs.Rotator) error {
	if rotator != nil {
		if err := startRotator(ctx, mgr, rotator); err != nil {
			return err
		}
	}
	defaults, err := parseDefaultCredentials(cfg)
	if err != nil {
		return err
	}
	return webhookv1alpha1.SetupSpectrumAppWebhookWithManager(mgr, webhookv1alpha1.Options{
		DefaultPlan:        v1alpha1.AccountPlan(cfg.defaultPlan),
		DefaultCredentials: defaults,
	})
}
