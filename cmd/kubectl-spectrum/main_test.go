package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

const (
	account      = "9a7806061c88ada191ed06f989cc3dac"
	zone         = "023e105f4ecef8ad9ca31a8372d0c353"
	foreignZone  = "7c5dae5552338874e5053f2534d2767a"
	goodToken    = "cli-test-token-3e8a1f"
	revokedToken = "cli-revoked-token-91bc0d"
)

func simulator(t *testing.T) *spectrumtest.Server {
	t.Helper()
	server := spectrumtest.NewServer(spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{{ID: account, Plan: spectrumtest.PlanEnterprise}},
		Tokens: []spectrumtest.TokenConfig{
			{Token: goodToken, Account: account},
			{Token: revokedToken, Account: account, Revoked: true},
		},
		Zones: []spectrumtest.ZoneConfig{{ID: zone, Name: "example.com", Account: account}},
	})
	t.Cleanup(server.Close)
	return server
}

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func exportCmd(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"export"}, args...), getenv, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestExportPrintsManifestsAndReadsOnly(t *testing.T) {
	server := simulator(t)
	for _, app := range []spectrumtest.App{
		{Protocol: "tcp/22", DNS: spectrumtest.DNS{Type: "CNAME", Name: "ssh.example.com"}, OriginDirect: []string{"tcp://192.0.2.1:22"}, ProxyProtocol: "v1"},
		{Protocol: "udp/22", DNS: spectrumtest.DNS{Type: "CNAME", Name: "ssh.example.com"}, OriginDNS: &spectrumtest.OriginDNS{Name: "origin.example.com"}, OriginPort: spectrumtest.Port(22)},
	} {
		if _, err := server.PutApp(zone, app, true); err != nil {
			t.Fatal(err)
		}
	}
	server.ResetCounters()

	code, stdout, stderr := exportCmd(t, env(map[string]string{tokenVariable: goodToken}),
		"--zone", zone, "--api-url", server.URL, "--reconcile-policy", "observe", "--namespace", "imported")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	docs := strings.Split(stdout, "---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2:\n%s", len(docs), stdout)
	}
	for i, want := range []string{"ssh-example-com-tcp-22", "ssh-example-com-udp-22"} {
		var obj v1alpha1.SpectrumApp
		if err := yaml.UnmarshalStrict([]byte(docs[i]), &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Name != want || obj.Namespace != "imported" || obj.Annotations[v1alpha1.ReconcilePolicyAnnotation] != "observe" {
			t.Errorf("document %d: %+v", i, obj.ObjectMeta)
		}
	}
	for method, n := range server.Calls() {
		if method != "GET" && n > 0 {
			t.Errorf("export sent %d %s requests: %v", n, method, server.Calls())
		}
	}
	if server.CallCount("GET") == 0 {
		t.Errorf("export sent no GET: it did not list the zone")
	}
}

func TestExportFailuresNeverShowTheToken(t *testing.T) {
	server := simulator(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + closed.Addr().String() + "/client/v4"
	closed.Close()

	for _, tc := range []struct {
		name, token, url, zone string
		want                   []string
	}{
		// The simulator echoes a revoked token in its message, as a careless
		// API might.
		{"revoked token", revokedToken, server.URL, zone, []string{"9109", "HTTP 403", "CLOUDFLARE_API_TOKEN"}},
		{"a zone of another account", goodToken, server.URL, foreignZone, []string{"10000", "HTTP 403", foreignZone}},
		{"nothing listening", goodToken, deadURL, zone, []string{"could not be reached", "--api-url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := exportCmd(t, env(map[string]string{tokenVariable: tc.token}), "--zone", tc.zone, "--api-url", tc.url)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("printed on a failure:\n%s", stdout)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("message lacks %q: %s", want, stderr)
				}
			}
			if strings.Contains(stderr, tc.token) {
				t.Errorf("the token appears in the message: %s", stderr)
			}
		})
	}
}

func TestExportUsage(t *testing.T) {
	withToken := env(map[string]string{tokenVariable: goodToken})
	for _, tc := range []struct {
		name   string
		getenv func(string) string
		args   []string
		code   int
		want   string
	}{
		{"the token is not a flag", withToken, []string{"--zone", zone, "--token", goodToken}, 2, "flag provided but not defined: -token"},
		{"no zone", withToken, nil, 2, "--zone"},
		{"not a zone ID", withToken, []string{"--zone", "example.com"}, 2, "not a zone ID"},
		{"unknown policy", withToken, []string{"--zone", zone, "--reconcile-policy", "watch"}, 2, "observe"},
		{"no token", env(nil), []string{"--zone", zone}, 1, "CLOUDFLARE_API_TOKEN is not set"},
		{"a stray argument", withToken, []string{"--zone", zone, "extra"}, 2, `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := exportCmd(t, tc.getenv, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit %d and %q", code, stderr, stdout, tc.code, tc.want)
			}
			if tc.name == "the token is not a flag" && strings.Contains(stderr, goodToken) {
				t.Errorf("the token was echoed: %s", stderr)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"import"}, withToken, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "unknown command") {
		t.Errorf("an unknown command: exit %d, %s", code, stderr.String())
	}
}
