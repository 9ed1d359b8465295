package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/testenv"
)

// existingApps are applications made outside Kubernetes (the dashboard,
// Terraform), put into the export zone through the simulator's control API:
// legacy ones served in the old response shapes, and current ones with
// every field present.
var existingApps = []struct {
	id     string
	legacy bool
	json   string
}{
	{"e0000000000000000000000000000001", true, `{"protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.export.example"},
		"origin_direct":["tcp://192.0.2.1:22"],"proxy_protocol":"v1"}`},
	// The same hostname, another protocol: a second app, a second name.
	{"e0000000000000000000000000000002", true, `{"protocol":"udp/22","dns":{"type":"CNAME","name":"ssh.export.example"},
		"origin_direct":["udp://192.0.2.1:22"],"proxy_protocol":"off"}`},
	{"e0000000000000000000000000000003", true, `{"protocol":"tcp/3306","dns":{"type":"CNAME","name":"db.export.example"},
		"origin_dns":{"name":"db-origin.export.example"},"origin_port":3306}`},
	{"e0000000000000000000000000000004", true, `{"protocol":"tcp/2022-2023","dns":{"type":"CNAME","name":"range.export.example"},
		"origin_dns":{"name":"range-origin.export.example"},"origin_port":"2022-2023","proxy_protocol":"v1"}`},
	{"e0000000000000000000000000000005", false, `{"protocol":"tcp/443","dns":{"type":"CNAME","name":"full.export.example"},
		"origin_dns":{"name":"full-origin.export.example","ttl":1200,"type":"A"},"origin_port":8443,
		"ip_firewall":true,"proxy_protocol":"v2","tls":"strict","traffic_type":"direct",
		"edge_ips":{"type":"dynamic","connectivity":"ipv4"},"argo_smart_routing":true}`},
	{"e0000000000000000000000000000006", false, `{"protocol":"tcp/443","dns":{"type":"ADDRESS","name":"byoip.export.example"},
		"origin_direct":["tcp://192.0.2.8:443","tcp://[2001:db8::8]:443"],"ip_firewall":true,"proxy_protocol":"off",
		"tls":"full","traffic_type":"https","edge_ips":{"type":"static","ips":["198.51.100.10"]},"argo_smart_routing":false}`},
	{"e0000000000000000000000000000007", false, `{"protocol":"tcp/5432","dns":{"type":"CNAME","name":"pg.export.example"},
		"origin_direct":["tcp://10.0.12.7:5432"],"virtual_network_id":"0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e",
		"ip_firewall":false,"proxy_protocol":"off","tls":"off","traffic_type":"direct",
		"edge_ips":{"type":"dynamic","connectivity":"all"},"argo_smart_routing":false}`},
	{"e0000000000000000000000000000008", false, `{"protocol":"ssh","dns":{"type":"CNAME","name":"bastion.export.example"},
		"origin_direct":["tcp://192.0.2.11:23"],"origin_port":22}`},
	{"e0000000000000000000000000000009", false, `{"protocol":"udp/27015","dns":{"type":"CNAME","name":"game.export.example"},
		"origin_dns":{"name":"_game._udp.export.example","type":"SRV","ttl":600},"proxy_protocol":"simple",
		"edge_ips":{"type":"dynamic","connectivity":"ipv6"}}`},
}

func simulatorRequest(t *testing.T, method, path, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, simulatorURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, answer)
	}
	return answer
}

// simulatorWrites are the write requests the simulated API has answered
// since the counters were last reset, and the number of reads.
func simulatorWrites(t *testing.T) (writes map[string]int, reads int) {
	t.Helper()
	var counters struct {
		Calls map[string]int `json:"calls"`
	}
	if err := json.Unmarshal(simulatorRequest(t, http.MethodGet, "/_simulator/counters", ""), &counters); err != nil {
		t.Fatal(err)
	}
	writes = map[string]int{}
	for method, n := range counters.Calls {
		if method != http.MethodGet && n > 0 {
			writes[method] = n
		}
	}
	return writes, counters.Calls[http.MethodGet]
}

// TestExportApplyAdoptsWithoutWrites is the round trip a user makes to bring
// existing applications under management: export the zone with the real
// kubectl-spectrum binary, pipe it to kubectl apply, and the operator
// adopts every application, legacy shapes included, without one write at
// Cloudflare, because every exported spec matches its application exactly.
func TestExportApplyAdoptsWithoutWrites(t *testing.T) {
	ns := newNamespace(t, "export")
	for _, app := range existingApps {
		simulatorRequest(t, http.MethodPut, fmt.Sprintf("/_simulator/apps/%s/%s?legacy=%t", exportZoneID, app.id, app.legacy), app.json)
	}
	simulatorRequest(t, http.MethodPost, "/_simulator/reset-counters", "")

	export := exec.Command(filepath.Join(repoRoot, "bin", "kubectl-spectrum"), "export",
		"--zone", exportZoneID, "--namespace", ns, "--reconcile-policy", "observe",
		"--api-url", simulatorURL+"/client/v4")
	export.Env = append(os.Environ(), "CLOUDFLARE_API_TOKEN="+token)
	var manifests, warnings bytes.Buffer
	export.Stdout, export.Stderr = &manifests, &warnings
	if err := export.Run(); err != nil {
		t.Fatalf("kubectl-spectrum export: %v\n%s", err, warnings.String())
	}
	if warnings.Len() != 0 {
		t.Errorf("export warned: %s", warnings.String())
	}
	if strings.Contains(manifests.String()+warnings.String(), token) {
		t.Fatalf("the API token appears in the export's output")
	}
	t.Logf("exported:\n%s", manifests.String())

	mustKubectl(t, manifests.String(), "apply", "-f", "-")
	waited, waitErr := kubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "spectrumapps", "--all", "--timeout=90s")

	// Checked whether or not they all became Ready: an update the operator
	// sent (an export that lost a field) is the likeliest reason they did not.
	writes, reads := simulatorWrites(t)
	if len(writes) != 0 {
		t.Errorf("the simulator answered writes during the export, apply and adoption: %v", writes)
	}
	if waitErr != nil {
		t.Fatalf("not every SpectrumApp became Ready: %v\n%s\n%s", waitErr, waited,
			mustKubectl(t, "", "-n", ns, "get", "spectrumapps"))
	}
	if reads == 0 {
		t.Errorf("the simulator answered no reads: the counters did not count the export or the adoption")
	}

	var list v1alpha1.SpectrumAppList
	if err := json.Unmarshal([]byte(mustKubectl(t, "", "-n", ns, "get", "spectrumapps", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(existingApps) {
		t.Fatalf("%d SpectrumApps, want one per existing app (%d)", len(list.Items), len(existingApps))
	}
	var names, ids []string
	for _, sapp := range list.Items {
		names = append(names, sapp.Name)
		ids = append(ids, sapp.Status.ApplicationID)
		if !sapp.Status.Adopted {
			t.Errorf("%s: status.adopted is false", sapp.Name)
		}
		if got := sapp.Annotations[v1alpha1.ReconcilePolicyAnnotation]; got != v1alpha1.ReconcilePolicyObserve {
			t.Errorf("%s: reconcile-policy annotation %q", sapp.Name, got)
		}
	}
	for _, app := range existingApps {
		if !slices.Contains(ids, app.id) {
			t.Errorf("no SpectrumApp adopted application %s; adopted %v", app.id, ids)
		}
	}
	for _, want := range []string{"ssh-export-example-tcp-22", "ssh-export-example-udp-22", "bastion-export-example-ssh"} {
		if !slices.Contains(names, want) {
			t.Errorf("no SpectrumApp %s among %v", want, names)
		}
	}
	// Observed and matching: every app says so. Then the team switches to
	// manage, and an exact export still needs no write: each application
	// already is what its SpectrumApp says.
	for _, sapp := range list.Items {
		if c := meta.FindStatusCondition(sapp.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Reason != "Observed" {
			t.Errorf("%s: Ready %+v, want reason Observed under the observe policy", sapp.Name, c)
		}
	}
	mustKubectl(t, "", "-n", ns, "annotate", "spectrumapps", "--all", v1alpha1.ReconcilePolicyAnnotation+"=manage", "--overwrite")
	testenv.Eventually(t, 60*time.Second, func() string {
		var managed v1alpha1.SpectrumAppList
		if err := json.Unmarshal([]byte(mustKubectl(t, "", "-n", ns, "get", "spectrumapps", "-o", "json")), &managed); err != nil {
			return err.Error()
		}
		for _, sapp := range managed.Items {
			c := meta.FindStatusCondition(sapp.Status.Conditions, v1alpha1.ConditionReady)
			if sapp.Status.ReconcilePolicy != "manage" || c == nil || c.Reason != "Synced" || c.ObservedGeneration != sapp.Generation {
				return fmt.Sprintf("%s: policy %q, Ready %+v; want manage and Synced", sapp.Name, sapp.Status.ReconcilePolicy, c)
			}
		}
		return ""
	})
	if writes, _ := simulatorWrites(t); len(writes) != 0 {
		t.Errorf("switching the exported apps to manage sent writes: %v", writes)
	}
	t.Logf("%d applications exported, adopted under observe and managed; writes seen: %v; reads: %d", len(list.Items), writes, reads)
}
