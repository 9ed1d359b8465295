// Package e2e drives the operator as a user does: the real manager, simulator
// and control-plane binaries started by hack/dev.sh, and the real kubectl.
package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// The e2e environment uses its own directory and ports, so it can run next
// to a developer's `make dev-up`.
var devEnv = []string{
	"DEV_DIR=bin/e2e",
	"SIM_ADDR=127.0.0.1:28787",
	"WEBHOOK_PORT=29443",
	"PROBE_ADDR=127.0.0.1:28081",
	"METRICS_ADDR=127.0.0.1:28080",
	// Plain HTTP, scraped by TestMetricsCountRequestsAndApps; the secure
	// endpoint has a test of its own.
	"METRICS_SECURE=false",
	"RESYNC_PERIOD=5s",
	"SIM_CONFIG=bin/e2e/simulator.yaml",
}

const (
	simulatorURL = "http://127.0.0.1:28787"
	zoneID       = "023e105f4ecef8ad9ca31a8372d0c353" // example.com in config/simulator/demo.yaml
	token        = "demo-enterprise-token"

	enterpriseAccount = "9a7806061c88ada191ed06f989cc3dac" // in config/simulator/demo.yaml
	exportZoneID      = "e4a0f1c2d3b4a5968778695a4b3c2d1e" // added by writeSimulatorConfig
	exportZoneName    = "export.example"
)

var (
	repoRoot   string
	kubeconfig string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	kubeconfig = filepath.Join(repoRoot, "bin", "e2e", "kubeconfig")
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the end-to-end tests with `make test`")
		os.Exit(1)
	}
	if err := writeSimulatorConfig(); err != nil {
		fmt.Fprintf(os.Stderr, "writing the simulator config: %v\n", err)
		os.Exit(1)
	}
	if out, err := devScript("up"); err != nil {
		fmt.Fprintf(os.Stderr, "hack/dev.sh up failed: %v\n%s", err, out)
		_, _ = devScript("down")
		os.Exit(1)
	}
	code := m.Run()
	// The manager ran as installed (config/default's ServiceAccount and
	// RBAC): anything refused to it is a grant the installation lacks.
	if log, err := os.ReadFile(filepath.Join(repoRoot, "bin", "e2e", "manager.log")); err != nil {
		fmt.Fprintf(os.Stderr, "reading the manager's log: %v\n", err)
		code = 1
	} else if i := bytes.Index(bytes.ToLower(log), []byte("forbidden")); i >= 0 {
		fmt.Fprintf(os.Stderr, "the manager was refused something under config/default's RBAC: %s\n", log[max(0, i-300):min(len(log), i+300)])
		code = 1
	}
	if out, err := devScript("down"); err != nil {
		fmt.Fprintf(os.Stderr, "hack/dev.sh down failed: %v\n%s", err, out)
		code = 1
	}
	os.Exit(code)
}

// writeSimulatorConfig writes the e2e world: the demo's
// (config/simulator/demo.yaml) plus exportZoneID, a zone of the same account
// that only the export test fills, so that exporting it finds exactly the
// apps that test put there.
func writeSimulatorConfig() error {
	demo, err := os.ReadFile(filepath.Join(repoRoot, "config", "simulator", "demo.yaml"))
	if err != nil {
		return err
	}
	const zones = "\nzones:\n"
	if !bytes.Contains(demo, []byte(zones)) {
		return fmt.Errorf("config/simulator/demo.yaml has no top-level zones list")
	}
	extra := fmt.Sprintf("%s  - id: %s\n    name: %s\n    account: %s\n", zones, exportZoneID, exportZoneName, enterpriseAccount)
	world := bytes.Replace(demo, []byte(zones), []byte(extra), 1)
	dir := filepath.Join(repoRoot, "bin", "e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "simulator.yaml"), world, 0o644)
}

// TestManagerRunsAsInstalled: the e2e manager's identity is the installed
// ServiceAccount, never an admin.
func TestManagerRunsAsInstalled(t *testing.T) {
	managerConfig := filepath.Join(repoRoot, "bin", "e2e", "manager.kubeconfig")
	who := mustKubectl(t, "", "--kubeconfig", managerConfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if want := "system:serviceaccount:spectrum-operator-system:spectrum-operator-controller-manager"; who != want {
		t.Errorf("the manager runs as %q, want %q", who, want)
	}
	for _, check := range [][]string{{"list", "spectrumapps", "--all-namespaces"}, {"delete", "namespaces"}, {"create", "clusterrolebindings"}} {
		out, _ := kubectl(t, "", append([]string{"--kubeconfig", managerConfig, "auth", "can-i"}, check...)...)
		want := "yes"
		if check[0] != "list" {
			want = "no"
		}
		// The answer is the last word; kubectl may warn before it.
		words := strings.Fields(out)
		if len(words) == 0 || words[len(words)-1] != want {
			t.Errorf("kubectl auth can-i %s as the manager: %q, want %q", strings.Join(check, " "), out, want)
		}
	}
}

func devScript(verb string) (string, error) {
	cmd := exec.Command("bash", "hack/dev.sh", verb)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), devEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kubectl runs kubectl against the e2e control plane; stdin may be empty.
func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustKubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectl(t, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// newNamespace creates a namespace with the credentials Secret the apps use.
func newNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := fmt.Sprintf("e2e-%s-%d", name, time.Now().UnixNano()%100000)
	mustKubectl(t, "", "create", "namespace", ns)
	mustKubectl(t, "", "-n", ns, "create", "secret", "generic", "cloudflare-credentials", "--from-literal=apiToken="+token)
	mustKubectl(t, "", "-n", ns, "label", "secret", "cloudflare-credentials", v1alpha1.CredentialsLabel+"=true")
	return ns
}

func appManifest(name, hostname, extra string) string {
	return fmt.Sprintf(`apiVersion: spectrum.cloudflare-operator.io/v1alpha1
kind: SpectrumApp
metadata:
  name: %s
spec:
  zoneID: %s
  credentialsRef: {name: cloudflare-credentials}
  protocol: tcp/22
  dns: {type: CNAME, name: %s}
  originDirect: ["tcp://192.0.2.10:22"]
%s`, name, zoneID, hostname, extra)
}

// simulatorApp is one app as the simulator's control API lists it, read
// with the simulator's own types.
type simulatorApp = spectrumtest.StoredApp

func simulatorApps(t *testing.T, hostname string) []simulatorApp {
	t.Helper()
	resp, err := http.Get(simulatorURL + "/_simulator/apps")
	if err != nil {
		t.Fatalf("reading the simulator's apps: %v", err)
	}
	defer resp.Body.Close()
	var all []simulatorApp
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatalf("decoding the simulator's apps: %v", err)
	}
	var out []simulatorApp
	for _, a := range all {
		if a.App.DNS.Name == hostname {
			out = append(out, a)
		}
	}
	return out
}

// eventually waits for cond; see testenv.Eventually.
var eventually = testenv.Eventually

func TestLifecycleWithKubectl(t *testing.T) {
	ns := newNamespace(t, "life")
	hostname := ns + ".example.com"
	mustKubectl(t, appManifest("ssh", hostname, ""), "-n", ns, "apply", "-f", "-")
	mustKubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "spectrumapp/ssh", "--timeout=60s")

	// kubectl get shows the printer columns.
	table := mustKubectl(t, "", "-n", ns, "get", "spectrumapps")
	header := strings.Fields(strings.SplitN(table, "\n", 2)[0])
	if got, want := strings.Join(header, " "), "NAME HOSTNAME ZONE PROTOCOL READY REASON POLICY AGE"; got != want {
		t.Errorf("kubectl get columns %q, want %q", got, want)
	}
	// (The Zone column is blank for an app that names its zone by ID.)
	if row := strings.Fields(strings.Split(table, "\n")[1]); len(row) < 6 ||
		strings.Join(row[:6], " ") != "ssh "+hostname+" tcp/22 True Synced manage" {
		t.Errorf("kubectl get row %q", row)
	}
	// The short name and the category work too.
	if out := mustKubectl(t, "", "-n", ns, "get", "sapp,cloudflare", "-o", "name"); !strings.Contains(out, "spectrumapp.spectrum.cloudflare-operator.io/ssh") {
		t.Errorf("kubectl get sapp,cloudflare: %q", out)
	}
	apps := simulatorApps(t, hostname)
	if len(apps) != 1 {
		t.Fatalf("simulator holds %d apps for %s, want 1", len(apps), hostname)
	}
	id := strings.TrimSpace(mustKubectl(t, "", "-n", ns, "get", "spectrumapp", "ssh", "-o", "jsonpath={.status.applicationID}"))
	if id != apps[0].App.ID {
		t.Errorf("status.applicationID %q, simulator has %q", id, apps[0].App.ID)
	}

	// Update.
	mustKubectl(t, "", "-n", ns, "patch", "spectrumapp", "ssh", "--type=merge",
		"-p", `{"spec":{"originDirect":["tcp://192.0.2.77:22"]}}`)
	eventually(t, 30*time.Second, func() string {
		apps := simulatorApps(t, hostname)
		if len(apps) != 1 || strings.Join(apps[0].App.OriginDirect, ",") != "tcp://192.0.2.77:22" {
			return fmt.Sprintf("simulator holds %+v, want the patched origin", apps)
		}
		return ""
	})
	mustKubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "spectrumapp/ssh", "--timeout=60s")

	// Delete waits for the finalizer, which deletes the Cloudflare app.
	mustKubectl(t, "", "-n", ns, "delete", "spectrumapp", "ssh", "--wait=true", "--timeout=60s")
	if apps := simulatorApps(t, hostname); len(apps) != 0 {
		t.Fatalf("simulator still holds %+v after kubectl delete", apps)
	}
}

func TestAdmissionRejectionNamesFieldAndCode(t *testing.T) {
	ns := newNamespace(t, "admission")
	bad := strings.Replace(appManifest("bad", ns+".example.com", ""), "tcp://192.0.2.10:22", "tcp://2001:db8::1:22", 1)
	out, err := kubectl(t, bad, "-n", ns, "apply", "-f", "-")
	if err == nil {
		t.Fatalf("kubectl apply accepted an unbracketed IPv6 origin:\n%s", out)
	}
	for _, want := range []string{
		`The SpectrumApp "bad" is invalid`,
		"spec.originDirect[0]",
		"IPv6 origin must be in brackets, e.g. tcp://[2001:db8::1]:22",
		"(Cloudflare error 11002)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rejection lacks %q:\n%s", want, out)
		}
	}
	if out, _ := kubectl(t, "", "-n", ns, "get", "spectrumapp", "bad"); !strings.Contains(out, "NotFound") {
		t.Errorf("the rejected app was stored: %s", out)
	}
}

func TestStalledAppDescribeShowsWhatToDo(t *testing.T) {
	ns := newNamespace(t, "stalled")
	mustKubectl(t, appManifest("argo", ns+".example.com", "  argoSmartRouting: true\n"), "-n", ns, "apply", "-f", "-")
	mustKubectl(t, "", "-n", ns, "wait", "--for=condition=Stalled", "spectrumapp/argo", "--timeout=60s")

	describe := mustKubectl(t, "", "-n", ns, "describe", "spectrumapp", "argo")
	for _, want := range []string{
		"ArgoNotEnabled",          // reason
		"error 11026",             // Cloudflare code
		"HTTP 403",                // status
		"Ray ID",                  // for support
		"account team",            // the documented resolution
		"Warning  ArgoNotEnabled", // the event
		"reconcile-requested-at",  // how to retry
	} {
		if !strings.Contains(describe, want) {
			t.Errorf("kubectl describe lacks %q:\n%s", want, describe)
		}
	}
	ready := mustKubectl(t, "", "-n", ns, "get", "spectrumapp", "argo", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	if ready != "False" {
		t.Errorf("Ready = %q, want False", ready)
	}
	mustKubectl(t, "", "-n", ns, "delete", "spectrumapp", "argo", "--wait=true", "--timeout=60s")
}

func TestExplainTeachesTheFields(t *testing.T) {
	out := mustKubectl(t, "", "explain", "spectrumapp.spec.originDirect")
	for _, want := range []string{"tcp://IP:PORT", "brackets", "origin_direct"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain lacks %q:\n%s", want, out)
		}
	}
}

func TestMetricsCountRequestsAndApps(t *testing.T) {
	ns := newNamespace(t, "metrics")
	mustKubectl(t, appManifest("ssh", ns+".example.com", ""), "-n", ns, "apply", "-f", "-")
	mustKubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "spectrumapp/ssh", "--timeout=60s")
	defer mustKubectl(t, "", "-n", ns, "delete", "spectrumapp", "ssh", "--wait=true", "--timeout=60s")

	resp, err := http.Get("http://127.0.0.1:28080/metrics")
	if err != nil {
		t.Fatalf("scraping the manager: %v", err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`spectrum_cloudflare_api_requests_total{method="POST",result="Success"}`,
		`spectrum_apps{ready="True",reason="Synced"}`,
		`spectrum_apps_by_policy{policy="manage"}`,
		`spectrum_cloudflare_request_duration_seconds_count{class="success",method="POST"}`,
		`spectrum_cloudflare_responses_total{code="none",status="200"}`,
		`spectrum_cloudflare_ratelimit_remaining_ratio{policy="default"}`,
		"spectrum_cloudflare_rate_limited_total 0",
		"spectrum_app_ready_duration_seconds_count",
		"spectrum_events_dropped_total 0",
		`controller_runtime_reconcile_total{controller="spectrumapp"`,
	} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body.String(), token) {
		t.Errorf("the API token appears in the metrics")
	}
}

// TestSecureMetricsNeedAnAuthorizedToken scrapes a manager serving metrics
// as the chart deploys it (HTTPS, --metrics-secure) the way Prometheus
// does: with a ServiceAccount token, which the manager checks with a
// TokenReview and a SubjectAccessReview. A second manager is started for
// this, watching a namespace with no apps so it does not reconcile beside
// the dev environment's.
func TestSecureMetricsNeedAnAuthorizedToken(t *testing.T) {
	ns := newNamespace(t, "secure-metrics")
	defer mustKubectl(t, "", "delete", "namespace", ns, "--wait=false")
	mustKubectl(t, "", "-n", ns, "create", "serviceaccount", "prometheus")
	mustKubectl(t, "", "-n", ns, "create", "serviceaccount", "stranger")
	role := ns + "-metrics-reader"
	mustKubectl(t, "", "create", "clusterrole", role, "--verb=get", "--non-resource-url=/metrics")
	defer mustKubectl(t, "", "delete", "clusterrole", role)
	mustKubectl(t, "", "create", "clusterrolebinding", role, "--clusterrole="+role, "--serviceaccount="+ns+":prometheus")
	defer mustKubectl(t, "", "delete", "clusterrolebinding", role)
	reader := strings.TrimSpace(mustKubectl(t, "", "-n", ns, "create", "token", "prometheus"))
	stranger := strings.TrimSpace(mustKubectl(t, "", "-n", ns, "create", "token", "stranger"))

	const metricsAddr = "127.0.0.1:28443"
	logFile, err := os.Create(filepath.Join(t.TempDir(), "manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(repoRoot, "bin", "manager"),
		"--kubeconfig", kubeconfig,
		"--cloudflare-api-url", simulatorURL+"/client/v4",
		"--enable-webhooks=false",
		"--watch-namespaces", ns,
		"--health-probe-bind-address", "127.0.0.1:28082",
		"--metrics-bind-address", metricsAddr, "--metrics-secure=true")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()

	// The manager's serving certificate is self-signed, as in a pod
	// without cert-manager; Prometheus is configured to skip verification
	// the same way.
	httpClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed on loopback
	}}
	scrape := func(token string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, err = body.ReadFrom(resp.Body)
		return resp.StatusCode, body.String(), err
	}
	testenv.Eventually(t, 60*time.Second, func() string {
		if _, _, err := scrape(""); err != nil {
			return "the secure metrics endpoint does not answer: " + err.Error()
		}
		return ""
	})
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a token the apiserver does not know", "not-a-token", http.StatusUnauthorized},
		{"a ServiceAccount without the grant", stranger, http.StatusForbidden},
		{"a ServiceAccount with get on /metrics", reader, http.StatusOK},
	} {
		code, body, err := scrape(tc.token)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if code != tc.want {
			t.Errorf("%s: HTTP %d, want %d: %.200s", tc.name, code, tc.want, body)
		}
		if code == http.StatusOK && !strings.Contains(body, "controller_runtime_") {
			t.Errorf("%s: no metrics in the answer: %.200s", tc.name, body)
		}
	}
	log, err := os.ReadFile(logFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{reader, stranger} {
		if strings.Contains(string(log), secret) {
			t.Fatalf("a ServiceAccount token reached the manager's log")
		}
	}
}
