package spectrum_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

// The simulated world the client tests run against.
const (
	enterpriseAccount = "9a7806061c88ada191ed06f989cc3dac"
	paygAccount       = "5f2d4c7a1b0e4e8f9a6b3c2d1e0f9a8b"

	enterpriseZone = "023e105f4ecef8ad9ca31a8372d0c353" // example.com
	otherZone      = "1c3e5a7b9d0f2e4c6a8b0d2f4e6a8c0b" // other.example, same account
	quotaZone      = "9f8e7d6c5b4a39281706f5e4d3c2b1a0" // quota.example, IPv4 quota 1
	paygZone       = "7c5dae5552338874e5053f2534d2767a" // example.net

	enterpriseToken   = "test-enterprise-token-5f1c2e9d"
	noPrefixesToken   = "test-no-ip-prefixes-token-77a1"
	paygToken         = "test-payg-token-0b3c44"
	revokedToken      = "test-revoked-token-aa91"
	virtualNetworkID  = "0f4c5c3e-2a55-4f2e-9c1e-8e4a5b6c7d8e"
	staticEdgeIP      = "203.0.113.10"
	foreignHostname   = "ssh.example.org"
	foreignOriginName = "lb.other.example"
)

func testConfig() spectrumtest.Config {
	quota := 1
	return spectrumtest.Config{
		Accounts: []spectrumtest.AccountConfig{
			{ID: enterpriseAccount, Plan: spectrumtest.PlanEnterprise,
				Entitlements:    spectrumtest.Entitlements{BYOIP: true},
				BYOIPPrefixes:   []string{"203.0.113.0/24"},
				VirtualNetworks: []spectrumtest.VirtualNetworkConfig{{ID: virtualNetworkID, Routes: []string{"10.0.0.0/24"}}}},
			{ID: paygAccount, Plan: spectrumtest.PlanPayAsYouGo},
		},
		Tokens: []spectrumtest.TokenConfig{
			{Token: enterpriseToken, Account: enterpriseAccount, IPPrefixesPermission: true},
			{Token: noPrefixesToken, Account: enterpriseAccount},
			{Token: paygToken, Account: paygAccount},
			{Token: revokedToken, Account: enterpriseAccount, Revoked: true},
		},
		Zones: []spectrumtest.ZoneConfig{
			{ID: enterpriseZone, Name: "example.com", Account: enterpriseAccount},
			{ID: otherZone, Name: "other.example", Account: enterpriseAccount},
			{ID: quotaZone, Name: "quota.example", Account: enterpriseAccount, IPv4Quota: &quota},
			{ID: paygZone, Name: "example.net", Account: paygAccount,
				EdgePorts: &spectrumtest.EdgePortsConfig{TCP: []string{"22", "25565"}}},
		},
		HostnamesInOtherZones: []string{foreignHostname},
	}
}

func startSimulator(t *testing.T, cfg spectrumtest.Config) *spectrumtest.Server {
	t.Helper()
	sim := spectrumtest.NewServer(cfg)
	t.Cleanup(sim.Close)
	return sim
}

// newClient returns an unlimited client: the tests that need a budget make
// their own.
func newClient(sim *spectrumtest.Server, token string) *spectrum.APIClient {
	return spectrum.NewClient(spectrum.Options{BaseURL: sim.URL, Token: token, Timeout: 5 * time.Second})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sshApp(hostname string) spectrum.App {
	return spectrum.App{
		Protocol:     "tcp/22",
		DNS:          spectrum.DNS{Type: "CNAME", Name: hostname},
		OriginDirect: []string{"tcp://192.0.2.1:22"},
	}
}

// simSSHApp is sshApp in the simulator's own model, for apps put at
// Cloudflare behind the client's back.
func simSSHApp(hostname string) spectrumtest.App {
	return spectrumtest.App{
		Protocol:     "tcp/22",
		DNS:          spectrumtest.DNS{Type: "CNAME", Name: hostname},
		OriginDirect: []string{"tcp://192.0.2.1:22"},
	}
}
