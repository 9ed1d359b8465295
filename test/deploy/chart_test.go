package deploy_test

import (
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
)

const (
	release   = "spectrum-operator" // fullname is then the release name
	namespace = "spectrum-ops"
	apiToken  = "cf-test-token-3b9d1e77" // must never appear outside a Secret
)

// productionValues turns on everything off by default and changes every
// other value, so each one is seen to reach the manifest.
const productionValues = `
replicas: 2
image:
  repository: registry.example.com/spectrum-operator
  tag: dev-1234
  pullPolicy: Always
imagePullSecrets:
- name: registry-creds
credentials:
  existingSecret: cloudflare-token
  key: token
defaultAccountPlan: pay-as-you-go
cloudflare:
  apiURL: http://spectrum-simulator.sim.svc:8787/client/v4
rateLimit:
  requestsPerSecond: 2.5
  burst: 5
resyncPeriod: 90s
maxConcurrentReconciles: 6
watchNamespaces: [team-a, team-b]
logLevel: debug
logFormat: console
metrics:
  serviceMonitor:
    enabled: true
    labels:
      release: prometheus
webhook:
  certManager:
    enabled: true
podDisruptionBudget:
  enabled: true
podAnnotations:
  example.com/team: edge
podLabels:
  example.com/tier: control
nodeSelector:
  kubernetes.io/os: linux
tolerations:
- key: dedicated
  operator: Equal
  value: operators
  effect: NoSchedule
extraEnv:
- name: GOMEMLIMIT
  value: 200MiB
`

func TestHelmLint(t *testing.T) {
	valuesFile := writeTemp(t, productionValues)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default values", nil},
		{"strict, production values", []string{"--strict", "--values", valuesFile}},
		{"strict, api token", []string{"--strict", "--set", "credentials.apiToken=" + apiToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", chartDir}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint did not pass:\n%s", out)
			}
		})
	}
}

func TestChartRendersWorkingOperator(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values string
		check  func(t *testing.T, m manifest)
	}{{
		name:   "default values",
		values: "",
		check: func(t *testing.T, m manifest) {
			d := m.deployment(t)
			c := manager(t, d)
			f := flags(c.Args)
			wantFlags(t, f, map[string]string{
				"leader-elect":         "",
				"webhook-self-signed":  "",
				"metrics-bind-address": ":8443",
				"metrics-secure":       "true",
				// The chart's defaults are the manager's own.
				"default-account-plan":           string(v1alpha1.PlanEnterprise),
				"cloudflare-api-url":             spectrum.DefaultBaseURL,
				"cloudflare-requests-per-second": strconv.FormatFloat(budget.DefaultRequestsPerSecond, 'f', -1, 64),
				"cloudflare-burst":               strconv.Itoa(budget.DefaultBurst),
				"resync-period":                  "5m",
				"max-concurrent-reconciles":      "8",
				"analytics-budget-share":         strconv.FormatFloat(budget.DefaultAnalyticsShare, 'f', -1, 64),
				"traffic-interval":               "1m",
				"traffic-metrics-per-app":        "false",
				"zap-log-level":                  "info",
				"zap-encoder":                    "json",
			})
			noFlags(t, f, "default-credentials-secret", "watch-namespaces")
			// Every replica serves the webhook: one can go while the other
			// answers.
			if got := *d.Spec.Replicas; got != 2 {
				t.Errorf("replicas = %d, want 2", got)
			}
			pdb := typed[policyv1.PodDisruptionBudget](t, m.one(t, "PodDisruptionBudget"))
			if got := pdb.Spec.MinAvailable; got == nil || got.String() != "1" {
				t.Errorf("PDB minAvailable = %v, want 1", got)
			}
			spread := d.Spec.Template.Spec.TopologySpreadConstraints
			if len(spread) != 1 || spread[0].TopologyKey != "kubernetes.io/hostname" || spread[0].WhenUnsatisfiable != corev1.ScheduleAnyway {
				t.Errorf("topologySpreadConstraints %+v, want replicas spread across nodes (ScheduleAnyway)", spread)
			}
			var chart struct {
				AppVersion string `json:"appVersion"`
			}
			readYAML(t, "charts/spectrum-operator/Chart.yaml", &chart)
			if got, want := c.Image, "ghcr.io/cloudflare-operator/spectrum-operator:"+chart.AppVersion; got != want {
				t.Errorf("image = %q, want %q", got, want)
			}
			absent(t, m, "Secret", "Issuer", "Certificate", "ServiceMonitor")
			metricsSvc := m.named(t, "Service", release+"-metrics")
			svc := typed[corev1.Service](t, metricsSvc)
			if p := svc.Spec.Ports[0]; p.Port != 8443 || p.Name != "https" {
				t.Errorf("metrics Service port = %+v, want https 8443", p)
			}
			m.named(t, "ClusterRole", release+"-metrics-auth")
		},
	}, {
		name:   "production values",
		values: productionValues,
		check: func(t *testing.T, m manifest) {
			d := m.deployment(t)
			c := manager(t, d)
			f := flags(c.Args)
			wantFlags(t, f, map[string]string{
				"leader-elect":                   "",
				"default-credentials-secret":     namespace + "/cloudflare-token",
				"default-credentials-key":        "token",
				"default-account-plan":           "pay-as-you-go",
				"cloudflare-api-url":             "http://spectrum-simulator.sim.svc:8787/client/v4",
				"cloudflare-requests-per-second": "2.5",
				"cloudflare-burst":               "5",
				"resync-period":                  "90s",
				"max-concurrent-reconciles":      "6",
				// The release namespace is added: the manager reads the
				// default credentials Secret through its namespaced cache.
				"watch-namespaces": "team-a,team-b," + namespace,
				"zap-log-level":    "debug",
				"zap-encoder":      "console",
			})
			noFlags(t, f, "webhook-self-signed")
			if got := *d.Spec.Replicas; got != 2 {
				t.Errorf("replicas = %d, want 2", got)
			}
			if got, want := c.Image, "registry.example.com/spectrum-operator:dev-1234"; got != want || c.ImagePullPolicy != corev1.PullAlways {
				t.Errorf("image = %q (%s), want %q (Always)", got, c.ImagePullPolicy, want)
			}
			pod := d.Spec.Template
			if pod.Annotations["example.com/team"] != "edge" || pod.Labels["example.com/tier"] != "control" {
				t.Errorf("pod annotations %v / labels %v miss podAnnotations/podLabels", pod.Annotations, pod.Labels)
			}
			if env := c.Env; len(env) != 2 || env[0].Name != "POD_NAMESPACE" || env[1].Name != "GOMEMLIMIT" || env[1].Value != "200MiB" {
				t.Errorf("container env %v, want POD_NAMESPACE and extraEnv's GOMEMLIMIT=200MiB", env)
			}
			if ps := pod.Spec; len(ps.ImagePullSecrets) != 1 || ps.NodeSelector["kubernetes.io/os"] != "linux" || len(ps.Tolerations) != 1 {
				t.Errorf("imagePullSecrets %v, nodeSelector %v, tolerations %v not rendered", ps.ImagePullSecrets, ps.NodeSelector, ps.Tolerations)
			}
			cert := m.named(t, "Certificate", release+"-webhook")
			issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
			m.named(t, "Issuer", issuer)
			absent(t, m, "Secret")
			pdb := typed[policyv1.PodDisruptionBudget](t, m.one(t, "PodDisruptionBudget"))
			if got := pdb.Spec.MinAvailable; got == nil || got.String() != "1" {
				t.Errorf("PDB minAvailable = %v, want 1", got)
			}
			sm := m.one(t, "ServiceMonitor")
			if sm.GetLabels()["release"] != "prometheus" {
				t.Errorf("ServiceMonitor labels %v lack release=prometheus", sm.GetLabels())
			}
			smSelector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			metricsSvc := m.named(t, "Service", release+"-metrics")
			if !labels.SelectorFromSet(smSelector).Matches(labels.Set(metricsSvc.GetLabels())) {
				t.Errorf("ServiceMonitor selector %v does not select the metrics Service (labels %v)", smSelector, metricsSvc.GetLabels())
			}
			// cert-manager issues the metrics certificate too, and the
			// ServiceMonitor verifies it.
			endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			tlsConfig, _, _ := unstructured.NestedMap(endpoints[0].(map[string]any), "tlsConfig")
			caSecret, _, _ := unstructured.NestedString(tlsConfig, "ca", "secret", "name")
			if skip, _ := tlsConfig["insecureSkipVerify"].(bool); skip || caSecret == "" || tlsConfig["serverName"] != release+"-metrics."+namespace+".svc" {
				t.Errorf("ServiceMonitor tlsConfig %v, want the metrics certificate verified against cert-manager's CA", tlsConfig)
			}
			metricsCert := m.named(t, "Certificate", release+"-metrics")
			if name, _, _ := unstructured.NestedString(metricsCert.Object, "spec", "secretName"); name != caSecret {
				t.Errorf("ServiceMonitor trusts Secret %q, the metrics Certificate writes %q", caSecret, name)
			}
			metricsDir := f["metrics-cert-dir"]
			if !slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
				return vm.MountPath == metricsDir && slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
					return v.Name == vm.Name && v.Secret != nil && v.Secret.SecretName == caSecret
				})
			}) {
				t.Errorf("--metrics-cert-dir=%q is not where Secret %s is mounted", metricsDir, caSecret)
			}
			// Every replica serves cert-manager's certificate, so a rolling
			// update keeps the webhook up.
			if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
				t.Error("strategy Recreate with cert-manager; want rolling updates")
			}
		},
	}, {
		name:   "api token",
		values: "credentials:\n  apiToken: " + apiToken + "\n  grant:\n    namespaces: [team-a, 'platform-*']\n    zones: [example.com]\n    hostnames: ['*.example.com']\n",
		check: func(t *testing.T, m manifest) {
			secret := typed[corev1.Secret](t, m.one(t, "Secret"))
			if !v1alpha1.IsCredentialsSecret(secret) {
				t.Errorf("Secret %s is not marked as credentials (label %s)", secret.Name, v1alpha1.CredentialsLabel)
			}
			grant := v1alpha1.GrantOf(secret)
			if !slices.Equal(grant.Namespaces, []string{"team-a", "platform-*"}) || !slices.Equal(grant.Zones, []string{"example.com"}) ||
				!slices.Equal(grant.Hostnames, []string{"*.example.com"}) {
				t.Errorf("Secret %s grants %+v, want credentials.grant's", secret.Name, grant)
			}
			if got := string(secret.Data["apiToken"]); got != apiToken {
				t.Errorf("Secret %s data.apiToken = %q, want the token", secret.Name, got)
			}
			// SpectrumApps may still need it after an uninstall.
			if got := secret.Annotations["helm.sh/resource-policy"]; got != "keep" {
				t.Errorf("Secret %s helm.sh/resource-policy = %q, want keep", secret.Name, got)
			}
			f := flags(manager(t, m.deployment(t)).Args)
			wantFlags(t, f, map[string]string{
				"default-credentials-secret": namespace + "/" + secret.Name,
				"default-credentials-key":    "apiToken",
			})
			noFlags(t, f, "watch-namespaces")
		},
	}, {
		name:   "metrics off",
		values: "metrics:\n  enabled: false\n  serviceMonitor:\n    enabled: true\n",
		check: func(t *testing.T, m manifest) {
			c := manager(t, m.deployment(t))
			wantFlags(t, flags(c.Args), map[string]string{"metrics-bind-address": "0"})
			if slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" }) {
				t.Error("metrics port exposed with metrics off")
			}
			absent(t, m, "ServiceMonitor")
			for _, s := range m.ofKind("Service") {
				if s.GetName() == release+"-metrics" {
					t.Error("metrics Service rendered with metrics off")
				}
			}
			for _, r := range m.ofKind("ClusterRole") {
				if r.GetName() == release+"-metrics-auth" {
					t.Error("metrics-auth ClusterRole rendered with metrics off")
				}
			}
		},
	}, {
		name:   "network policy",
		values: "networkPolicy:\n  enabled: true\n  webhookFrom:\n  - ipBlock: {cidr: 10.0.0.0/24}\n",
		check: func(t *testing.T, m manifest) {
			np := typed[networkingv1.NetworkPolicy](t, m.one(t, "NetworkPolicy"))
			d := m.deployment(t)
			if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("NetworkPolicy selects %v, not the manager's pods", np.Spec.PodSelector)
			}
			c := manager(t, d)
			ports := map[string][]networkingv1.NetworkPolicyPeer{}
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port == nil || targetOf(c, *p.Port) == nil {
						t.Errorf("NetworkPolicy admits port %v, which the manager does not serve", p.Port)
						continue
					}
					ports[targetOf(c, *p.Port).Name] = rule.From
				}
			}
			if from, ok := ports["webhook-server"]; !ok || len(from) != 1 || from[0].IPBlock == nil || from[0].IPBlock.CIDR != "10.0.0.0/24" {
				t.Errorf("webhook port admitted from %+v (admitted: %t), want networkPolicy.webhookFrom", from, ok)
			}
			if from := ports["metrics"]; len(from) != 1 || from[0].NamespaceSelector == nil || from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
				t.Errorf("metrics port admitted from %+v, want the monitoring namespaces", from)
			}
			if len(ports) != 2 {
				t.Errorf("NetworkPolicy admits ports %v, want the webhook and metrics only", slices.Sorted(maps.Keys(ports)))
			}
		},
	}, {
		name:   "plain HTTP metrics",
		values: "metrics:\n  secure: false\n  port: 8080\n",
		check: func(t *testing.T, m manifest) {
			wantFlags(t, flags(manager(t, m.deployment(t)).Args), map[string]string{
				"metrics-bind-address": ":8080",
				"metrics-secure":       "false",
			})
			svc := typed[corev1.Service](t, m.named(t, "Service", release+"-metrics"))
			if p := svc.Spec.Ports[0]; p.Port != 8080 || p.Name != "http" {
				t.Errorf("metrics Service port = %+v, want http 8080", p)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := renderChart(t, release, namespace, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			checkInstall(t, m, namespace)
			checkNoTokenOutsideSecrets(t, m)
			tc.check(t, m)
		})
	}
}

func TestChartRejectsBrokenValues(t *testing.T) {
	expectRejectedValues(t, []rejectedValues{
		{"two credential sources", "credentials:\n  existingSecret: a\n  apiToken: b\n", "either credentials.existingSecret or credentials.apiToken"},
		{"unknown plan", "defaultAccountPlan: free\n", "/defaultAccountPlan"},
		{"unknown log format", "logFormat: text\n", "/logFormat"},
		{"unknown log level", "logLevel: verbose\n", "/logLevel"},
		{"unknown top-level key", "replicaCount: 2\n", "additional properties 'replicaCount' not allowed"},
		{"misspelled nested key", "metrics:\n  enable: false\n", "additional properties 'enable' not allowed"},
		{"duration without unit", "resyncPeriod: \"300\"\n", "/resyncPeriod"},
		{"numeric image tag", "image:\n  tag: 1.0\n", "/image/tag"},
		{"watch namespace not a DNS label", "watchNamespaces: [Team_A]\n", "/watchNamespaces/0"},
		{"environment variable without a name", "extraEnv:\n- value: \"100\"\n", "/extraEnv/0"},
	})
}

// checkInstall runs the checks every install must pass, the chart's with any
// values and config/default's.
func checkInstall(t *testing.T, m manifest, ns string) {
	t.Helper()
	checkSecureDefaults(t, m.deployment(t))
	checkWebhookMatchesGenerated(t, m, ns)
	checkWebhookTLS(t, m, ns)
	checkLeastPrivilege(t, m, ns)
	checkSelectors(t, m)
}

// checkSecureDefaults: the pod runs as non-root with nothing it does not need,
// whatever the values.
func checkSecureDefaults(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec.SecurityContext
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if pod == nil || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("container %s has no securityContext", c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("container %s: capabilities %+v, want drop [ALL] and nothing added", c.Name, sc.Capabilities)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("container %s is privileged", c.Name)
		}
	}
}

// checkWebhookMatchesGenerated: the chart's webhooks are controller-gen's
// (name, path, rules), fail closed, and point at the chart's webhook Service.
func checkWebhookMatchesGenerated(t *testing.T, m manifest, ns string) {
	t.Helper()
	var want admissionregistrationv1.ValidatingWebhookConfiguration
	readYAML(t, "config/webhook/manifests.yaml", &want)
	got := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, m.one(t, "ValidatingWebhookConfiguration"))
	if len(got.Webhooks) != len(want.Webhooks) {
		t.Fatalf("rendered %d webhooks, config/webhook/manifests.yaml has %d", len(got.Webhooks), len(want.Webhooks))
	}
	svc := webhookService(t, m)
	for i, w := range got.Webhooks {
		g := want.Webhooks[i]
		if w.Name != g.Name || !equality.Semantic.DeepEqual(w.Rules, g.Rules) ||
			!equality.Semantic.DeepEqual(w.SideEffects, g.SideEffects) ||
			!slices.Equal(w.AdmissionReviewVersions, g.AdmissionReviewVersions) {
			t.Errorf("webhook %d = %s %+v, generated %s %+v", i, w.Name, w.Rules, g.Name, g.Rules)
		}
		if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Fail {
			t.Errorf("webhook %s failurePolicy = %s, want Fail", w.Name, ptrString(w.FailurePolicy))
		}
		s := w.ClientConfig.Service
		if s == nil || s.Name != svc.Name || s.Namespace != ns || s.Path == nil || *s.Path != *g.ClientConfig.Service.Path ||
			(s.Port != nil && *s.Port != 443) {
			t.Errorf("webhook %s clientConfig.service = %+v, want %s/%s:443 path %s", w.Name, s, ns, svc.Name, *g.ClientConfig.Service.Path)
		}
	}
}

// checkWebhookTLS: the webhook server's certificate is one the apiserver
// trusts, and the webhook is asked only about what the rules read.
// Self-signed, every replica serves the certificate of the Secret the
// Deployment names (with the Service's DNS names) and keeps its CA in the
// VWC the Deployment names; with cert-manager, the Certificate's Secret is
// mounted and cainjector fills the caBundle.
func checkWebhookTLS(t *testing.T, m manifest, ns string) {
	t.Helper()
	d := m.deployment(t)
	c := manager(t, d)
	f := flags(c.Args)
	vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, m.one(t, "ValidatingWebhookConfiguration"))
	svc := webhookService(t, m)
	for _, w := range vwc.Webhooks {
		if len(w.MatchConditions) == 0 {
			t.Errorf("webhook %s has no matchConditions: finalizer updates of deleted apps would wait on it", w.Name)
		}
		if watched := splitNamespaces(f["watch-namespaces"]); len(watched) > 0 {
			sel := w.NamespaceSelector
			if sel == nil || len(sel.MatchExpressions) != 1 || sel.MatchExpressions[0].Key != "kubernetes.io/metadata.name" ||
				!slices.Equal(slices.Sorted(slices.Values(sel.MatchExpressions[0].Values)), slices.Sorted(slices.Values(watched))) {
				t.Errorf("webhook %s namespaceSelector %+v, want the watched namespaces %v", w.Name, sel, watched)
			}
		} else if w.NamespaceSelector != nil && (len(w.NamespaceSelector.MatchExpressions) > 0 || len(w.NamespaceSelector.MatchLabels) > 0) {
			t.Errorf("webhook %s namespaceSelector %+v, but every namespace is watched", w.Name, w.NamespaceSelector)
		}
	}
	if s := d.Spec.Strategy; s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
		s.RollingUpdate.MaxUnavailable == nil || s.RollingUpdate.MaxUnavailable.String() != "0" {
		t.Errorf("strategy %+v, want rolling updates that start a new pod before stopping an old one", s)
	}
	if _, selfSigned := f["webhook-self-signed"]; selfSigned {
		wantFlags(t, f, map[string]string{
			"webhook-config-name":  vwc.GetName(),
			"webhook-service-name": svc.Name,
		})
		noFlags(t, f, "webhook-cert-dir")
		if len(d.Spec.Template.Spec.Volumes) > 0 {
			t.Errorf("self-signed, the certificate is served from the Secret; volumes %+v would outlive a rotation", d.Spec.Template.Spec.Volumes)
		}
		secret := f["webhook-cert-secret"]
		if secret == "" || strings.Contains(secret, "/") {
			t.Errorf("--webhook-cert-secret=%q, want a Secret name in the pod's namespace", secret)
		}
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
		}) {
			t.Error("POD_NAMESPACE is not set from the pod's namespace; the certificate Secret and the certificate's DNS names need it")
		}
		if a := vwc.GetAnnotations()["cert-manager.io/inject-ca-from"]; a != "" {
			t.Errorf("self-signed, yet cainjector is asked to overwrite the caBundle from %s", a)
		}
		return
	}
	volume := certVolume(t, d)
	var cert *unstructured.Unstructured
	for _, u := range m.ofKind("Certificate") {
		if name, _, _ := unstructured.NestedString(u.Object, "spec", "secretName"); volume.Secret != nil && name == volume.Secret.SecretName {
			cert = u
		}
	}
	if cert == nil {
		t.Fatalf("no Certificate writes the Secret mounted at --webhook-cert-dir (%+v)", volume.VolumeSource)
	}
	if got, want := vwc.GetAnnotations()["cert-manager.io/inject-ca-from"], ns+"/"+cert.GetName(); got != want {
		t.Errorf("inject-ca-from = %q, want %q", got, want)
	}
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	if volume.Secret == nil || volume.Secret.SecretName != secretName {
		t.Errorf("webhook certificate volume = %+v, want Secret %q", volume.VolumeSource, secretName)
	}
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if want := svc.Name + "." + ns + ".svc"; !slices.Contains(dnsNames, want) {
		t.Errorf("certificate dnsNames %v lack %q", dnsNames, want)
	}
}

// webhookService is the Service whose port 443 leads to the manager's
// webhook-server port.
func webhookService(t *testing.T, m manifest) *corev1.Service {
	t.Helper()
	c := manager(t, m.deployment(t))
	for _, u := range m.ofKind("Service") {
		s := typed[corev1.Service](t, u)
		for _, p := range s.Spec.Ports {
			if cp := targetOf(c, p.TargetPort); p.Port == 443 && cp != nil && cp.Name == "webhook-server" {
				return s
			}
		}
	}
	t.Fatal("no Service forwards port 443 to the manager's webhook-server port")
	return nil
}

// targetOf is the container port a Service's targetPort picks, by name or
// number.
func targetOf(c corev1.Container, target intstr.IntOrString) *corev1.ContainerPort {
	for i, p := range c.Ports {
		if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
			return &c.Ports[i]
		}
	}
	return nil
}

// certVolume is the volume mounted at the manager's --webhook-cert-dir.
func certVolume(t *testing.T, d *appsv1.Deployment) corev1.Volume {
	t.Helper()
	c := manager(t, d)
	dir := flags(c.Args)["webhook-cert-dir"]
	for _, mount := range c.VolumeMounts {
		if mount.MountPath != dir {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == mount.Name {
				return v
			}
		}
	}
	t.Fatalf("nothing is mounted at --webhook-cert-dir=%q", dir)
	return corev1.Volume{}
}

// checkLeastPrivilege: everything bound to the operator's ServiceAccount is
// the generated role, the leader-election Role, and (for secure metrics) the
// TokenReview/SubjectAccessReview rules; nothing else. With --watch-namespaces
// the generated Secret rule is granted by a Role in each watched namespace
// instead of cluster-wide.
func checkLeastPrivilege(t *testing.T, m manifest, ns string) {
	t.Helper()
	sa := m.one(t, "ServiceAccount")
	if sa.GetNamespace() != ns {
		t.Errorf("ServiceAccount namespace = %q, want %q", sa.GetNamespace(), ns)
	}
	if d := m.deployment(t); d.Spec.Template.Spec.ServiceAccountName != sa.GetName() {
		t.Errorf("Deployment runs as %q, not the chart's ServiceAccount %q", d.Spec.Template.Spec.ServiceAccountName, sa.GetName())
	}
	bound := func(subjects []rbacv1.Subject) bool {
		for _, s := range subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == sa.GetName() && s.Namespace == ns {
				return true
			}
		}
		return false
	}

	f := flags(manager(t, m.deployment(t)).Args)
	watched := splitNamespaces(f["watch-namespaces"])
	vwcName := m.one(t, "ValidatingWebhookConfiguration").GetName()
	clusterRules, secretRules := named(generatedRole(t).Rules, "validatingwebhookconfigurations", vwcName), []rbacv1.PolicyRule(nil)
	if len(watched) > 0 {
		clusterRules, secretRules = splitSecretRules(clusterRules)
	}
	allowedCluster := grants(clusterRules)
	// Secure metrics (the manager's default) authenticate and authorize each
	// scrape.
	if addr := f["metrics-bind-address"]; addr != "" && addr != "0" && f["metrics-secure"] != "false" {
		maps.Copy(allowedCluster, grants([]rbacv1.PolicyRule{
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
		}))
	}
	// namespace -> what the ServiceAccount may do there, beyond cluster-wide.
	allowedNamespaced := map[string]map[string]bool{ns: grants([]rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	})}
	// Self-signed, the webhook certificate Secret: created once, then read
	// and renewed by name.
	if _, selfSigned := f["webhook-self-signed"]; selfSigned {
		maps.Copy(allowedNamespaced[ns], grants(named(generatedReleaseRole(t).Rules, "secrets", f["webhook-cert-secret"])))
	}
	for _, w := range watched {
		if allowedNamespaced[w] == nil {
			allowedNamespaced[w] = map[string]bool{}
		}
		maps.Copy(allowedNamespaced[w], grants(secretRules))
	}

	clusterGrants := map[string]bool{}
	managerRoleSeen := false
	for _, u := range m.ofKind("ClusterRoleBinding") {
		b := typed[rbacv1.ClusterRoleBinding](t, u)
		if !bound(b.Subjects) {
			continue
		}
		role := typed[rbacv1.ClusterRole](t, m.named(t, "ClusterRole", b.RoleRef.Name))
		if role.AggregationRule != nil {
			t.Errorf("ClusterRole %s aggregates other roles; its rules are not knowable from the chart", role.Name)
		}
		maps.Copy(clusterGrants, grants(role.Rules))
		// Rule for rule, so a reordered or hand-edited copy shows up even
		// when it grants no more.
		if equality.Semantic.DeepEqual(role.Rules, clusterRules) {
			managerRoleSeen = true
		}
	}
	if !managerRoleSeen {
		t.Errorf("no ClusterRole bound to the ServiceAccount has exactly config/rbac/role.yaml's rules (without Secrets when watching namespaces %v)", watched)
	}
	if extra := missingFrom(clusterGrants, allowedCluster); len(extra) > 0 {
		t.Errorf("the ServiceAccount is granted cluster-wide beyond config/rbac/role.yaml (and, for secure metrics, TokenReviews and SubjectAccessReviews): %v", extra)
	}
	if missing := missingFrom(allowedCluster, clusterGrants); len(missing) > 0 {
		t.Errorf("the ServiceAccount lacks cluster-wide grants it needs: %v", missing)
	}

	namespacedGrants := map[string]map[string]bool{}
	for _, u := range m.ofKind("RoleBinding") {
		b := typed[rbacv1.RoleBinding](t, u)
		if !bound(b.Subjects) {
			continue
		}
		if b.RoleRef.Kind != "Role" {
			t.Errorf("RoleBinding %s refers to %s %s; the operator's namespaced grants are Roles", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			continue
		}
		var role *rbacv1.Role
		for _, r := range m.ofKind("Role") {
			if r.GetName() == b.RoleRef.Name && r.GetNamespace() == b.Namespace {
				role = typed[rbacv1.Role](t, r)
			}
		}
		if role == nil {
			t.Errorf("RoleBinding %s/%s refers to Role %s, not rendered in its namespace", b.Namespace, b.Name, b.RoleRef.Name)
			continue
		}
		if namespacedGrants[b.Namespace] == nil {
			namespacedGrants[b.Namespace] = map[string]bool{}
		}
		maps.Copy(namespacedGrants[b.Namespace], grants(role.Rules))
	}
	for _, n := range slices.Sorted(maps.Keys(mergeKeys(namespacedGrants, allowedNamespaced))) {
		if !maps.Equal(namespacedGrants[n], allowedNamespaced[n]) {
			t.Errorf("grants in namespace %q = %v, want %v (leader election and the webhook certificate in the operator's namespace; Secrets in each watched one)",
				n, sortedKeys(namespacedGrants[n]), sortedKeys(allowedNamespaced[n]))
		}
	}
}

// splitSecretRules separates the generated rules on core Secrets from the
// others, as the chart does when it watches namespaces.
func splitSecretRules(rules []rbacv1.PolicyRule) (others, secrets []rbacv1.PolicyRule) {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "secrets") {
			secrets = append(secrets, r)
		} else {
			others = append(others, r)
		}
	}
	return others, secrets
}

func splitNamespaces(list string) []string {
	if list == "" {
		return nil
	}
	return strings.Split(list, ",")
}

func mergeKeys[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// grants flattens rules into "group/resource verb" strings ("url verb" for
// non-resource URLs), the unit in which one grant can exceed another.
func grants(rules []rbacv1.PolicyRule) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		for _, v := range r.Verbs {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					group := g
					if group == "" {
						group = "core"
					}
					key := fmt.Sprintf("%s/%s %s", group, res, v)
					if len(r.ResourceNames) > 0 {
						key += " names=" + strings.Join(r.ResourceNames, ",")
					}
					out[key] = true
				}
			}
			for _, u := range r.NonResourceURLs {
				out[u+" "+v] = true
			}
		}
	}
	return out
}

func missingFrom(have, allowed map[string]bool) []string {
	var out []string
	for k := range have {
		if !allowed[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

// checkSelectors: every Service and PodDisruptionBudget selects the manager's
// pods, and the Deployment's selector matches its own template.
func checkSelectors(t *testing.T, m manifest) {
	t.Helper()
	d := m.deployment(t)
	podLabels := labels.Set(d.Spec.Template.Labels)
	if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", d.Spec.Selector.MatchLabels, podLabels)
	}
	for _, u := range append(m.ofKind("Service"), m.ofKind("PodDisruptionBudget")...) {
		var selector map[string]string
		if u.GetKind() == "Service" {
			selector, _, _ = unstructured.NestedStringMap(u.Object, "spec", "selector")
		} else {
			selector, _, _ = unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
		}
		if len(selector) == 0 || !labels.SelectorFromSet(selector).Matches(podLabels) {
			t.Errorf("%s %s selector %v does not select the manager pods (%v)", u.GetKind(), u.GetName(), selector, podLabels)
		}
	}
	c := manager(t, d)
	for _, u := range m.ofKind("Service") {
		for _, p := range typed[corev1.Service](t, u).Spec.Ports {
			if targetOf(c, p.TargetPort) == nil {
				t.Errorf("Service %s targets port %s, which the manager container does not expose", u.GetName(), p.TargetPort.String())
			}
		}
	}
}

// checkNoTokenOutsideSecrets: the API token, plain or base64, only ever sits
// in a Secret's data.
func checkNoTokenOutsideSecrets(t *testing.T, m manifest) {
	t.Helper()
	encoded := base64.StdEncoding.EncodeToString([]byte(apiToken))
	for _, u := range m {
		if u.GetKind() == "Secret" {
			continue
		}
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		if s := string(data); strings.Contains(s, apiToken) || strings.Contains(s, encoded) {
			t.Errorf("%s %s contains the API token", u.GetKind(), u.GetName())
		}
	}
}

func ptrString[T ~string](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return string(*p)
}

func wantFlags(t *testing.T, got, want map[string]string) {
	t.Helper()
	for name, value := range want {
		if v, ok := got[name]; !ok || v != value {
			t.Errorf("--%s = %q (set: %t), want %q", name, v, ok, value)
		}
	}
}

func noFlags(t *testing.T, got map[string]string, names ...string) {
	t.Helper()
	for _, name := range names {
		if v, ok := got[name]; ok {
			t.Errorf("--%s=%s is set, want it absent", name, v)
		}
	}
}

func absent(t *testing.T, m manifest, kinds ...string) {
	t.Helper()
	for _, kind := range kinds {
		for _, u := range m.ofKind(kind) {
			t.Errorf("%s %s rendered, want none", kind, u.GetName())
		}
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// rejectedValues is a values file helm template must refuse, and a phrase
// its error must hold.
type rejectedValues struct {
	name, values, wantErr string
}

func expectRejectedValues(t *testing.T, cases []rejectedValues) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart(t, release, namespace, tc.values)
			if err == nil {
				t.Fatalf("helm template accepted %q", tc.values)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error does not mention %q:\n%v", tc.wantErr, err)
			}
		})
	}
}
