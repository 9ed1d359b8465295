package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cloudflare-operator/spectrum-operator/internal/controller"
	"github.com/cloudflare-operator/spectrum-operator/internal/events"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
)

// operatorCollectors are the collectors cmd/manager registers of its own,
// beside controller-runtime's, with every opt-in one on, for the checks of their labels and docs
// that need every metric before it has a series.
// TestOperatorCollectorsAreWhatTheManagerRegisters holds the list to what
// the manager binary serves; alerts and dashboards are checked against
// that (registeredMetrics), not against this list.
func operatorCollectors() []prometheus.Collector {
	return append(append(spectrum.NewMetrics().Collectors(), budget.NewMetrics().Collectors()...),
		controller.NewAppMetrics(),
		controller.UnreadableApplications,
		(&events.Recorder{}).DroppedCounter(),
		controller.NewTrafficMetrics(true))
}

// perAppMetrics are the opt-in metrics with a series per app
// (--traffic-metrics-per-app), the one exception to bounded labels.
func perAppMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, d := range controller.NewTrafficMetrics(true).PerAppDescs() {
		name := fqName.FindStringSubmatch(d.String())
		if name == nil {
			t.Fatalf("no name in %s", d)
		}
		names[name[1]] = true
	}
	return names
}

// foreignMetrics are the metrics alerts may name that the operator does not
// export, and who does.
var foreignMetrics = map[string]string{
	// Prometheus itself, for every target it scrapes: the operator is down
	// when its target is not up.
	"up": "Prometheus",
	// kube-apiserver: admission webhook calls that failed (error_type
	// calling_webhook_error), by webhook name. The operator cannot say that
	// it is unreachable.
	"apiserver_admission_webhook_rejection_count": "kube-apiserver",
}

var (
	fqName         = regexp.MustCompile(`fqName: "([^"]+)"`)
	variableLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

// exportedMetrics reads the operator's metric names and labels from its
// collectors' descriptions, which exist before any series does.
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	descs := make(chan *prometheus.Desc)
	go func() {
		for _, c := range operatorCollectors() {
			c.Describe(descs)
		}
		close(descs)
	}()
	metrics := map[string][]string{}
	for d := range descs {
		text := d.String()
		name := fqName.FindStringSubmatch(text)
		if name == nil {
			t.Fatalf("no name in %s", text)
		}
		var labels []string
		if l := variableLabels.FindStringSubmatch(text); l != nil && l[1] != "" {
			labels = strings.Split(l[1], ",")
		}
		metrics[name[1]] = labels
	}
	if len(metrics) < 10 {
		t.Fatalf("only %d metrics found: %v", len(metrics), metrics)
	}
	return metrics
}

// namedMetrics parses a PromQL expression with Prometheus's parser and
// returns the metric names it selects.
func namedMetrics(expr string) ([]*parser.VectorSelector, error) {
	parsed, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var selectors []*parser.VectorSelector
	parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			selectors = append(selectors, vs)
		}
		return nil
	})
	return selectors, nil
}

// checkQuery fails unless expr parses and every metric it names is one the
// manager serves (exported) or in foreignMetrics. It returns the operator's metrics it
// names.
func checkQuery(t *testing.T, where, expr string, exported map[string][]string) []string {
	t.Helper()
	ours, problems := queryProblems(expr, exported)
	for _, p := range problems {
		t.Errorf("%s: %s", where, p)
	}
	return ours
}

// queryProblems parses expr and names its metrics that are neither the
// operator's (a histogram's too, by its _bucket, _sum or _count series) nor
// in foreignMetrics.
func queryProblems(expr string, exported map[string][]string) (ours, problems []string) {
	selectors, err := namedMetrics(expr)
	if err != nil {
		return nil, []string{fmt.Sprintf("%q does not parse: %v", expr, err)}
	}
	if len(selectors) == 0 {
		problems = append(problems, fmt.Sprintf("%q selects no metric", expr))
	}
	for _, vs := range selectors {
		name := vs.Name
		if name == "" {
			problems = append(problems, fmt.Sprintf("%q selects a metric without naming it", expr))
			continue
		}
		if _, ok := foreignMetrics[name]; ok {
			continue
		}
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if trimmed, ok := strings.CutSuffix(name, suffix); ok {
				if _, hist := exported[trimmed]; hist {
					base = trimmed
				}
			}
		}
		if _, ok := exported[base]; !ok {
			problems = append(problems, fmt.Sprintf("%q names %s, which the operator does not export", expr, name))
			continue
		}
		ours = append(ours, base)
	}
	return ours, problems
}

// The checker itself: a query naming a metric nobody exports, or one that
// does not parse, is caught.
func TestQueryCheckCatchesUnknownMetricsAndSyntax(t *testing.T) {
	exported := exportedMetrics(t)
	for _, expr := range []string{
		`rate(spectrum_cloudflare_requests_total[5m])`,
		`sum(spectrum_apps{ready="True"}`,
		`spectrum_app_ready_duration_seconds_total`,
		`{__name__=~"spectrum_.+"}`,
	} {
		if _, problems := queryProblems(expr, exported); len(problems) == 0 {
			t.Errorf("%q passed the check", expr)
		}
	}
	got, problems := queryProblems(`histogram_quantile(0.9, sum by (le) (rate(spectrum_app_ready_duration_seconds_bucket[5m]))) > on() group_left absent(up{job="x"})`, exported)
	if len(problems) > 0 || !slices.Equal(got, []string{"spectrum_app_ready_duration_seconds"}) {
		t.Errorf("a histogram's buckets and up: names %v, problems %v", got, problems)
	}
}

// No label carries a secret or a value per app: only these names, and the
// app's namespace and name on the opt-in per-app metrics alone.
func TestMetricLabelsAreBoundedAndDocumented(t *testing.T) {
	allowed := map[string]bool{
		"method": true, "class": true, "result": true, "status": true, "code": true,
		"policy": true, "field": true, "ready": true, "reason": true, "direction": true,
	}
	perApp := perAppMetrics(t)
	if len(perApp) == 0 {
		t.Fatal("no per-app metrics found")
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, labels := range exportedMetrics(t) {
		for _, l := range labels {
			if !allowed[l] && !(perApp[name] && (l == "namespace" || l == "name")) {
				t.Errorf("%s has label %q, which is not one of the bounded labels", name, l)
			}
		}
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/metrics.md does not document %s", name)
		}
	}
}

const observabilityValues = `
prometheusRule:
  enabled: true
  labels:
    release: prometheus
  job: spectrum
  stalledForMinutes: 30
  budgetRemainingRatio: 0.05
  driftCorrectionsPerHour: 25
  runbookURL: https://runbooks.example.com/spectrum.md
grafanaDashboard:
  enabled: true
  labels:
    team: edge
  annotations:
    grafana_folder: Cloudflare
`

func TestObservabilityIsOptIn(t *testing.T) {
	m, err := renderChart(t, release, namespace, "")
	if err != nil {
		t.Fatal(err)
	}
	absent(t, m, "PrometheusRule")
	for _, cm := range m.ofKind("ConfigMap") {
		t.Errorf("ConfigMap %s rendered with default values", cm.GetName())
	}
}

func TestPrometheusRuleAlertsParseAndNameExportedMetrics(t *testing.T) {
	m, err := renderChart(t, release, namespace, observabilityValues)
	if err != nil {
		t.Fatal(err)
	}
	rule := m.one(t, "PrometheusRule")
	if rule.GetLabels()["release"] != "prometheus" {
		t.Errorf("labels %v lack release: prometheus", rule.GetLabels())
	}
	runbook, err := os.ReadFile(filepath.Join(root, "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	exported := registeredMetrics(t)
	webhookName := generatedWebhookName(t)

	alerts := map[string]map[string]any{}
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			r := r.(map[string]any)
			alerts[fmt.Sprint(r["alert"])] = r
		}
	}
	var names []string
	for name := range alerts {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"SpectrumAppOriginErrors", "SpectrumAppStalled", "SpectrumCloudflareBudgetLow", "SpectrumCloudflareRateLimited",
		"SpectrumDriftCorrectionsHigh", "SpectrumOperatorDown", "SpectrumWebhookUnreachable"}
	if !slices.Equal(names, want) {
		t.Fatalf("alerts %v, want %v", names, want)
	}

	for name, r := range alerts {
		expr := fmt.Sprint(r["expr"])
		checkQuery(t, name, expr, exported)
		annotations, _ := r["annotations"].(map[string]any)
		for _, key := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(fmt.Sprint(annotations[key])) == "" || annotations[key] == nil {
				t.Errorf("%s: no %s annotation", name, key)
			}
		}
		anchor := strings.ToLower(name)
		if got := fmt.Sprint(annotations["runbook_url"]); got != "https://runbooks.example.com/spectrum.md#"+anchor {
			t.Errorf("%s: runbook_url %s, want the runbook's #%s", name, got, anchor)
		}
		if !regexp.MustCompile(`(?m)^## ` + name + `$`).Match(runbook) {
			t.Errorf("docs/runbook.md has no section %q", "## "+name)
		}
	}

	// The values reach the rules.
	for name, want := range map[string]string{
		"SpectrumAppStalled":           "for=30m",
		"SpectrumCloudflareBudgetLow":  "< 0.05",
		"SpectrumDriftCorrectionsHigh": "> 25",
		"SpectrumOperatorDown":         `up{job="spectrum"}`,
	} {
		r := alerts[name]
		text := fmt.Sprint(r["expr"])
		if strings.HasPrefix(want, "for=") {
			text = "for=" + fmt.Sprint(r["for"])
		}
		if !strings.Contains(text, want) {
			t.Errorf("%s: %q lacks %q", name, text, want)
		}
	}
	// The webhook alert is about our webhook.
	selectors, _ := namedMetrics(fmt.Sprint(alerts["SpectrumWebhookUnreachable"]["expr"]))
	matched := false
	for _, vs := range selectors {
		for _, matcher := range vs.LabelMatchers {
			if matcher.Name == "name" && matcher.Matches(webhookName) && !matcher.Matches("other-webhook.example.com") {
				matched = true
			}
		}
	}
	if !matched {
		t.Errorf("SpectrumWebhookUnreachable does not select webhook %s", webhookName)
	}
}

func generatedWebhookName(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "config", "webhook", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range parseManifest(t, string(data)) {
		hooks, _, _ := unstructured.NestedSlice(obj.Object, "webhooks")
		for _, h := range hooks {
			return fmt.Sprint(h.(map[string]any)["name"])
		}
	}
	t.Fatal("no webhook in config/webhook/manifests.yaml")
	return ""
}

func TestGrafanaDashboardQueriesParseAndNameExportedMetrics(t *testing.T) {
	m, err := renderChart(t, release, namespace, observabilityValues)
	if err != nil {
		t.Fatal(err)
	}
	cm := m.named(t, "ConfigMap", release+"-dashboard")
	if got := cm.GetLabels(); got["grafana_dashboard"] != "1" || got["team"] != "edge" {
		t.Errorf("labels %v: want the sidecar's grafana_dashboard: \"1\" and team: edge", got)
	}
	if got := cm.GetAnnotations()["grafana_folder"]; got != "Cloudflare" {
		t.Errorf("annotation grafana_folder = %q", got)
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "spectrum-operator.json")
	var dashboard struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(data), &dashboard); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	exported := registeredMetrics(t)
	shown := map[string]bool{}
	for _, p := range dashboard.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			for _, name := range checkQuery(t, "panel "+p.Title, target.Expr, exported) {
				shown[name] = true
			}
		}
	}
	// Apps by condition, API rate and latency, budget left, 429s, drift
	// corrections, time to Ready, traffic.
	for _, name := range []string{
		"spectrum_apps", "spectrum_cloudflare_request_duration_seconds", "spectrum_cloudflare_ratelimit_remaining_ratio",
		"spectrum_cloudflare_rate_limited_total", "spectrum_drift_corrections_total", "spectrum_app_ready_duration_seconds",
		"spectrum_apps_origins", "spectrum_app_traffic_connections", "spectrum_app_traffic_origin_errors",
	} {
		if !shown[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
}

func TestChartRejectsBrokenObservabilityValues(t *testing.T) {
	expectRejectedValues(t, []rejectedValues{
		{"misspelled key", "prometheusRule:\n  enable: true\n", "additional properties 'enable' not allowed"},
		{"enabled not a boolean", "prometheusRule:\n  enabled: \"yes\"\n", "/prometheusRule/enabled"},
		{"zero minutes", "prometheusRule:\n  stalledForMinutes: 0\n", "/prometheusRule/stalledForMinutes"},
		{"a ratio above 1", "prometheusRule:\n  budgetRemainingRatio: 10\n", "/prometheusRule/budgetRemainingRatio"},
		{"runbook not a URL", "prometheusRule:\n  runbookURL: docs/runbook.md\n", "/prometheusRule/runbookURL"},
		{"dashboard label not a string", "grafanaDashboard:\n  labels:\n    grafana_dashboard: 1\n", "/grafanaDashboard/labels/grafana_dashboard"},
	})
}
