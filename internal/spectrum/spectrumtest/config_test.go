package spectrumtest

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDemoConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../../../config/simulator/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Accounts) != 2 || len(cfg.Zones) != 2 || len(cfg.Apps) != 1 || cfg.RateLimit.Window.Duration != 300*time.Second {
		t.Errorf("demo config read as %+v", cfg)
	}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
}

// The complete example in docs/simulator.md must stay a valid config.
func TestDocumentedConfigLoads(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/simulator.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, found := strings.Cut(string(doc), "```yaml\n")
	example, _, closed := strings.Cut(rest, "```")
	if !found || !closed {
		t.Fatal("docs/simulator.md has no yaml example")
	}
	cfg, err := ParseConfig([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Accounts) != 2 || len(cfg.Tokens) != 4 || !cfg.Tokens[3].WithoutAnalyticsPermission || len(cfg.Zones) != 2 || len(cfg.Faults) != 1 ||
		cfg.Traffic == nil || !reflect.DeepEqual(*cfg.Traffic, DefaultTraffic()) {
		t.Errorf("documented config read as %+v", cfg)
	}
}

func TestConfigRejectsMistakes(t *testing.T) {
	cases := map[string]struct {
		yaml string
		want string
	}{
		"unknown field": {`accounts: [{id: a, plan: enterprise, entitlement: {argo: true}}]`, "unknown field"},
		"bad plan":      {`accounts: [{id: a, plan: free}]`, `plan must be`},
		"bad zone id": {`
accounts: [{id: a, plan: enterprise}]
zones: [{id: example, name: example.com, account: a}]`, "32 lowercase hex"},
		"unknown account": {`
accounts: [{id: a, plan: enterprise}]
tokens: [{token: t, account: b}]`, `unknown account "b"`},
		"bad prefix":      {`accounts: [{id: a, plan: enterprise, byoipPrefixes: [203.0.113.0/33]}]`, "byoipPrefixes"},
		"bad vnet":        {`accounts: [{id: a, plan: enterprise, virtualNetworks: [{id: net}]}]`, "not a UUID"},
		"bad fault":       {`faults: [{kind: explode}]`, `unknown fault kind`},
		"latency no time": {`faults: [{kind: latency}]`, `positive latency`},
		"bad duration":    {`rateLimit: {window: soon}`, `duration`},
		"app in no zone":  {`apps: [{zone: 023e105f4ecef8ad9ca31a8372d0c353, app: {protocol: tcp/22}}]`, "unknown zone"},
		"bad headers":     {`rateLimit: {headers: newest}`, `headers must be`},
		"other client":    {`rateLimit: {otherClients: [{requestsPerSecond: 2}]}`, `otherClients[0]`},
		"denied origins":  {`deniedOrigins: [10.0.0.0/40]`, `deniedOrigins`},
		"traffic share":   {`traffic: {connectionsPerMinute: 1, originErrorShare: 1.5}`, `traffic: originErrorShare`},
		"traffic rate":    {`traffic: {connectionsPerMinute: -1}`, `traffic: rates`},
		"bad edge ports": {`
accounts: [{id: a, plan: enterprise}]
zones: [{id: 023e105f4ecef8ad9ca31a8372d0c353, name: example.com, account: a, edgePorts: {tcp: ["22-21"]}}]`, "edgePorts"},
	}
	for name, tc := range cases {
		_, err := ParseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
}

func TestConfigJSON(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"accounts":[{"id":"a","plan":"pay-as-you-go"}],"tokens":[{"token":"t","account":"a","user":"u"}],
		"rateLimit":{"limit":10,"window":1.5,"enforce":true,"headers":"both","otherClients":[{"user":"u","requestsPerSecond":0.5}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimit.Window.Duration != 1500*time.Millisecond || !cfg.RateLimit.Enforce || cfg.RateLimit.Headers != HeadersBoth ||
		len(cfg.RateLimit.OtherClients) != 1 || cfg.RateLimit.OtherClients[0].RequestsPerSecond != 0.5 || cfg.Tokens[0].User != "u" {
		t.Errorf("rate limit read as %+v", cfg.RateLimit)
	}
}

// Every code of the admission table appears in the table of checks in
// docs/simulator.md, so the two stay in step.
func TestDocumentedChecks(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/simulator.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range admissionTable {
		row := fmt.Sprintf("| %s | %d | %d |", c.stage, c.code, c.status)
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/simulator.md has no row starting %q", row)
		}
	}
}
