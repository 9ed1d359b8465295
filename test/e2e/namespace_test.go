package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

// TestDeletingANamespaceDeletesItsApplications deletes a namespace the way a
// cluster does it: the real namespace controller (kube-controller-manager)
// deletes everything in the namespace at once, SpectrumApps and their
// credentials Secret alike, in no order of ours, and finalizes the namespace
// when nothing is left.
//
// When Cloudflare answers at once, the manager usually deletes every
// application before the Secret is gone, finalizer or not. When it does not
// (a slow or failing API, a rate limit, a manager restarting), the second
// case, this is what went wrong before the credentials-in-use finalizer:
// the Secret was deleted within a second, every retry then failed with
// CredentialsSecretNotFound (a failure that waits for a person), the apps
// kept their finalizer and the namespace stayed Terminating for good, with
// the applications left at Cloudflare; and a Terminating namespace refuses
// the new Secret that could have unblocked it. With the finalizer the Secret
// stays, terminating, until the last app that needs it has deleted its
// application. With protectCredentials disabled the second case fails:
// kubectl delete times out, the apps stuck with CredentialsSecretNotFound.
func TestDeletingANamespaceDeletesItsApplications(t *testing.T) {
	startControllerManager(t)
	t.Run("Cloudflare answering", func(t *testing.T) {
		deleteNamespaceWithApps(t, "team-a", nil)
	})
	t.Run("Cloudflare unavailable until the Secret was deleted", func(t *testing.T) {
		deleteNamespaceWithApps(t, "team-a", func(t *testing.T, ns string) func() {
			// Every DELETE fails (HTTP 503, retried by the manager) until the
			// namespace controller has deleted the Secret: gone, or kept
			// terminating by the finalizer.
			firedBefore := simulatorState(t).Counters.FaultsFired
			addFault(t, `{"kind": "unavailable", "method": "DELETE", "pathPrefix": "/zones/`+zoneID+`/spectrum/apps"}`)
			return func() {
				eventually(t, 30*time.Second, func() string {
					out, err := kubectl(t, "", "-n", ns, "get", "secret", "cloudflare-credentials", "-o", "jsonpath={.metadata.deletionTimestamp}")
					if err != nil && strings.Contains(out, "NotFound") || err == nil && out != "" {
						return ""
					}
					return fmt.Sprintf("the namespace controller has not deleted the Secret yet (%v): %s", err, out)
				})
				// Without the finalizer the Secret is often gone before the
				// first DELETE is even sent.
				t.Logf("Cloudflare refused %d DELETEs before the Secret was deleted", simulatorState(t).Counters.FaultsFired-firedBefore)
				clearFaults(t)
			}
		})
	})
}

// deleteNamespaceWithApps creates ns with a credentials Secret and Ready
// SpectrumApps, then runs `kubectl delete namespace --wait` and checks that
// the namespace and every application at Cloudflare are gone. meanwhile,
// when set, runs before the deletion and returns what to do while it waits.
func deleteNamespaceWithApps(t *testing.T, ns string, meanwhile func(t *testing.T, ns string) func()) {
	const apps = 5
	mustKubectl(t, "", "create", "namespace", ns)
	mustKubectl(t, "", "-n", ns, "create", "secret", "generic", "cloudflare-credentials", "--from-literal=apiToken="+token)
	mustKubectl(t, "", "-n", ns, "label", "secret", "cloudflare-credentials", v1alpha1.CredentialsLabel+"=true")
	hostnames := map[string]bool{}
	for i := range apps {
		hostname := fmt.Sprintf("app-%d.%s.example.com", i, ns)
		hostnames[hostname] = true
		mustKubectl(t, appManifest(fmt.Sprintf("app-%d", i), hostname, "  deletionPolicy: Delete\n"), "-n", ns, "apply", "-f", "-")
	}
	mustKubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "spectrumapps", "--all", "--timeout=60s")
	ids := map[string]bool{}
	for _, a := range simulatorState(t).Apps {
		if hostnames[a.App.DNS.Name] {
			ids[a.App.ID] = true
		}
	}
	if len(ids) != apps {
		t.Fatalf("the simulator holds %d applications for %s, want %d", len(ids), ns, apps)
	}
	before := simulatorState(t).Counters
	var whileDeleting func()
	if meanwhile != nil {
		whileDeleting = meanwhile(t, ns)
	}

	// The bound: the namespace controller looks again at a namespace whose
	// content still has finalizers about every 8s; a few rounds fit.
	const bound = 90 * time.Second
	type result struct {
		out string
		err error
	}
	done, finished := make(chan result, 1), make(chan struct{})
	// kubectl is ours: a test that stops early kills it (the context) and
	// waits for it.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); <-finished })
	start := time.Now()
	go func() {
		defer close(finished)
		cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", kubeconfig, "delete", "namespace", ns, "--wait=true", fmt.Sprintf("--timeout=%s", bound))
		out, err := cmd.CombinedOutput()
		done <- result{string(out), err}
	}()
	if whileDeleting != nil {
		whileDeleting()
	}
	r := <-done
	took := time.Since(start)
	if r.err != nil {
		t.Errorf("kubectl delete namespace %s did not finish within %s: %v\n%s", ns, bound, r.err, r.out)
		explainStuckNamespace(t, ns)
		t.FailNow()
	}
	if out, err := kubectl(t, "", "get", "namespace", ns); err == nil || !strings.Contains(out, "NotFound") {
		t.Fatalf("namespace %s still exists after kubectl delete --wait: %s", ns, out)
	}
	t.Logf("namespace %s with %d SpectrumApps and their Secret deleted in %s", ns, apps, took.Round(time.Millisecond))

	// Every application was deleted at Cloudflare, by the operator, once;
	// none of the namespace's hostnames is left.
	state := simulatorState(t)
	for _, a := range state.Apps {
		if ids[a.App.ID] || hostnames[a.App.DNS.Name] {
			t.Errorf("application %s (%s) is still at Cloudflare after its namespace was deleted", a.App.ID, a.App.DNS.Name)
		}
	}
	// Faults here hit only DELETEs.
	if got := state.Counters.Calls["DELETE"] - before.Calls["DELETE"] - (state.Counters.FaultsFired - before.FaultsFired); got != apps {
		t.Errorf("%d DELETE requests were answered, want %d (one per application)", got, apps)
	}
}

func addFault(t *testing.T, fault string) {
	t.Helper()
	resp, err := http.Post(simulatorURL+"/_simulator/faults", "application/json", strings.NewReader(fault))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("adding fault %s: HTTP %d", fault, resp.StatusCode)
	}
	t.Cleanup(func() { clearFaults(t) })
}

func clearFaults(t *testing.T) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, simulatorURL+"/_simulator/faults", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// simulatorState is GET /_simulator/state, read with the simulator's own
// types.
func simulatorState(t *testing.T) spectrumtest.State {
	t.Helper()
	resp, err := http.Get(simulatorURL + "/_simulator/state")
	if err != nil {
		t.Fatalf("reading the simulator's state: %v", err)
	}
	defer resp.Body.Close()
	var state spectrumtest.State
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		t.Fatalf("decoding the simulator's state: %v", err)
	}
	return state
}

// explainStuckNamespace logs what holds a namespace in Terminating.
func explainStuckNamespace(t *testing.T, ns string) {
	t.Helper()
	for _, args := range [][]string{
		{"get", "namespace", ns, "-o", "jsonpath={range .status.conditions[*]}{.type}={.status}: {.message}{\"\\n\"}{end}"},
		{"-n", ns, "get", "spectrumapps", "-o", "custom-columns=NAME:.metadata.name,DELETING:.metadata.deletionTimestamp,FINALIZERS:.metadata.finalizers,REASON:.status.conditions[?(@.type==\"Ready\")].reason"},
		{"-n", ns, "get", "secrets", "-o", "custom-columns=NAME:.metadata.name,DELETING:.metadata.deletionTimestamp,FINALIZERS:.metadata.finalizers"},
	} {
		out, _ := kubectl(t, "", args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

// startControllerManager runs kube-controller-manager against the e2e
// control plane with only the controllers a namespace deletion needs, until
// the test ends. envtest's control plane has no controller manager, so
// without it a deleted namespace never goes.
//
// It needs no cloud provider (none is the default) and no service-account
// signing key (the token controllers are not enabled); it serves its health
// endpoint on a loopback port with a self-signed certificate written to a
// temporary directory, and authenticates to the apiserver with the e2e admin
// kubeconfig. The process is ours: it is killed by its PID at the end.
func startControllerManager(t *testing.T) {
	t.Helper()
	binary := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-controller-manager")
	if _, err := os.Stat(binary); err != nil {
		t.Fatalf("kube-controller-manager not found (%v): hack/envtest-binaries.sh builds it next to kube-apiserver", err)
	}
	port := freeLoopbackPort(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "kube-controller-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary,
		"--kubeconfig", kubeconfig,
		"--controllers", "namespace,garbagecollector",
		"--leader-elect=false",
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--use-service-account-credentials=false")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-controller-manager started (pid %d), log %s", cmd.Process.Pid, logPath)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = logFile.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logPath); err == nil {
				t.Logf("kube-controller-manager log (last 4 KiB):\n%s", tail(log, 4096))
			}
		}
	})

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // its own self-signed certificate, on loopback
	}}
	eventually(t, 60*time.Second, func() string {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logPath)
			t.Fatalf("kube-controller-manager exited: %v\n%s", err, tail(log, 4096))
		default:
		}
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
		if err != nil {
			return "kube-controller-manager is not serving /healthz: " + err.Error()
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("kube-controller-manager /healthz: HTTP %d", resp.StatusCode)
		}
		return ""
	})
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
