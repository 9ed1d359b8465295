package spectrum_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

func TestClientLifecycle(t *testing.T) {
	sim := startSimulator(t, testConfig())
	client := newClient(sim, enterpriseToken)
	ctx := testContext(t)

	desired := sshApp("ssh.example.com")
	created, err := client.CreateApp(ctx, enterpriseZone, desired)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.CreatedOn == nil || spectrum.Differs(desired, created) {
		t.Fatalf("created %+v differs from %+v", created, desired)
	}
	got, err := client.GetApp(ctx, enterpriseZone, created.ID)
	if err != nil || got.ID != created.ID || spectrum.Differs(desired, got) {
		t.Fatalf("GetApp = %+v, %v", got, err)
	}

	desired.OriginDirect = []string{"tcp://192.0.2.9:2222"}
	desired.ProxyProtocol = "v2"
	updated, err := client.UpdateApp(ctx, enterpriseZone, created.ID, desired)
	if err != nil {
		t.Fatal(err)
	}
	if updated.ID != created.ID || spectrum.Differs(desired, updated) || !updated.CreatedOn.Equal(*created.CreatedOn) {
		t.Fatalf("updated %+v", updated)
	}
	listing, err := client.ListApps(ctx, enterpriseZone)
	apps := listing.Apps
	if err != nil || len(apps) != 1 || apps[0].ProxyProtocol != "v2" {
		t.Fatalf("ListApps = %+v, %v", apps, err)
	}

	if err := client.DeleteApp(ctx, enterpriseZone, created.ID); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetApp(ctx, enterpriseZone, created.ID)
	if !spectrum.IsNotFound(err) {
		t.Fatalf("GetApp after delete = %v, want not found", err)
	}
	if c := spectrum.Classify(err); c.Reason != "AppNotFound" || c.HTTPStatus != 404 || c.RayID == "" {
		t.Errorf("not found classified as %+v", c)
	}
	if err := client.DeleteApp(ctx, enterpriseZone, created.ID); !spectrum.IsNotFound(err) {
		t.Errorf("second delete = %v, want not found", err)
	}
	want := map[string]int{"POST": 1, "GET": 3, "PUT": 1, "DELETE": 2}
	for method, n := range want {
		if got := sim.CallCount(method); got != n {
			t.Errorf("%s calls = %d, want %d", method, got, n)
		}
	}
}

func TestClientListFollowsAllPages(t *testing.T) {
	sim := startSimulator(t, testConfig())
	const total = 230
	for i := range total {
		if _, err := sim.PutApp(enterpriseZone, simSSHApp(fmt.Sprintf("app%d.example.com", i)), false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sim.PutApp(otherZone, simSSHApp("ssh.other.example"), false); err != nil {
		t.Fatal(err)
	}
	listing, err := newClient(sim, enterpriseToken).ListApps(testContext(t), enterpriseZone)
	apps := listing.Apps
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != total {
		t.Fatalf("ListApps returned %d apps, want %d", len(apps), total)
	}
	seen := map[string]bool{}
	for i, a := range apps {
		if seen[a.ID] {
			t.Fatalf("app %s listed twice", a.ID)
		}
		seen[a.ID] = true
		if want := fmt.Sprintf("app%d.example.com", i); a.DNS.Name != want {
			t.Fatalf("apps[%d] = %s, want %s (creation order)", i, a.DNS.Name, want)
		}
	}
	if got := sim.CallCount("GET"); got != 3 {
		t.Errorf("GET calls = %d, want 3 pages of 100", got)
	}
}

// A client remembers a zone's decoded applications from one listing to the
// next; what changed, went or came in between must show all the same.
func TestListingsFollowChangesBetweenThem(t *testing.T) {
	sim := startSimulator(t, testConfig())
	ids := putApps(t, sim, 4)
	client := newClient(sim, enterpriseToken)
	ctx := testContext(t)
	byHostname := func() map[string]spectrum.App {
		t.Helper()
		listing, err := client.ListApps(ctx, enterpriseZone)
		if err != nil {
			t.Fatal(err)
		}
		apps := map[string]spectrum.App{}
		for _, app := range listing.Apps {
			apps[app.DNS.Name] = *app
		}
		return apps
	}
	first := byHostname()

	if err := sim.ModifyApp(enterpriseZone, ids[1], func(app *spectrumtest.App) { app.ProxyProtocol = "v2" }); err != nil {
		t.Fatal(err)
	}
	if err := sim.DeleteApp(enterpriseZone, ids[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.PutApp(enterpriseZone, simSSHApp("app9.example.com"), false); err != nil {
		t.Fatal(err)
	}
	second := byHostname()

	if len(second) != 4 {
		t.Errorf("second listing has %d apps, want 4: %v", len(second), second)
	}
	if spectrum.Differs(first["app0.example.com"], second["app0.example.com"]) || second["app0.example.com"].ID != ids[0] {
		t.Errorf("the unchanged app reads %+v, was %+v", second["app0.example.com"], first["app0.example.com"])
	}
	if got := second["app1.example.com"].ProxyProtocol; got != "v2" {
		t.Errorf("the changed app reads proxy protocol %q, want v2", got)
	}
	if _, ok := second["app2.example.com"]; ok {
		t.Errorf("the deleted app is still listed")
	}
	if _, ok := second["app9.example.com"]; !ok {
		t.Errorf("the new app is not listed")
	}
}

// A listing reuses the pages the last listing of the zone decoded; pages
// changed, shifted by a deletion or added must read as a client that never
// listed the zone reads them.
func TestPagedListingsFollowChangesBetweenThem(t *testing.T) {
	sim := startSimulator(t, testConfig())
	ids := putApps(t, sim, 250)
	reusing := newClient(sim, enterpriseToken)
	ctx := testContext(t)
	check := func(step string) {
		t.Helper()
		got, err := reusing.ListApps(ctx, enterpriseZone)
		if err != nil {
			t.Fatal(err)
		}
		want, err := newClient(sim, enterpriseToken).ListApps(ctx, enterpriseZone)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Apps) != len(want.Apps) {
			t.Fatalf("%s: %d apps listed, a fresh client lists %d", step, len(got.Apps), len(want.Apps))
		}
		for i := range want.Apps {
			if got.Apps[i].ID != want.Apps[i].ID || spectrum.Differs(*want.Apps[i], *got.Apps[i]) {
				t.Fatalf("%s: apps[%d] = %+v, a fresh client reads %+v", step, i, got.Apps[i], want.Apps[i])
			}
		}
	}
	check("first listing")
	check("nothing changed")
	if err := sim.ModifyApp(enterpriseZone, ids[150], func(app *spectrumtest.App) { app.ProxyProtocol = "v2" }); err != nil {
		t.Fatal(err)
	}
	check("an app of page 2 changed")
	if err := sim.DeleteApp(enterpriseZone, ids[10]); err != nil {
		t.Fatal(err)
	}
	check("an app of page 1 deleted, every later page shifted")
	if _, err := sim.PutApp(enterpriseZone, simSSHApp("late.example.com"), false); err != nil {
		t.Fatal(err)
	}
	check("an app added on the last page")
}

// A listing decodes only the applications that changed since the last one:
// those of pages shifted by a deletion are the very applications the last
// listing decoded.
func TestListingsDecodeOnlyWhatChanged(t *testing.T) {
	sim := startSimulator(t, testConfig())
	ids := putApps(t, sim, 250)
	client := newClient(sim, enterpriseToken)
	ctx := testContext(t)
	list := func() map[string]*spectrum.App {
		t.Helper()
		listing, err := client.ListApps(ctx, enterpriseZone)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]*spectrum.App{}
		for _, app := range listing.Apps {
			byID[app.ID] = app
		}
		return byID
	}
	before := list()
	if err := sim.DeleteApp(enterpriseZone, ids[10]); err != nil {
		t.Fatal(err)
	}
	if err := sim.ModifyApp(enterpriseZone, ids[150], func(app *spectrumtest.App) { app.ProxyProtocol = "v2" }); err != nil {
		t.Fatal(err)
	}
	after := list()
	for _, id := range ids {
		switch {
		case id == ids[10]:
			if _, ok := after[id]; ok {
				t.Errorf("the deleted application %s is listed", id)
			}
		case id == ids[150]:
			if after[id] == before[id] {
				t.Errorf("the changed application %s was not read again", id)
			}
		case after[id] != before[id]:
			t.Errorf("the unchanged application %s was decoded again", id)
		}
	}
}

func TestClientListEmptyZone(t *testing.T) {
	sim := startSimulator(t, testConfig())
	listing, err := newClient(sim, enterpriseToken).ListApps(testContext(t), otherZone)
	if err != nil || len(listing.Apps) != 0 || len(listing.Unreadable) != 0 {
		t.Fatalf("ListApps = %v, %v", listing, err)
	}
}

func TestClientReadsLegacyApps(t *testing.T) {
	sim := startSimulator(t, testConfig())
	legacy := spectrum.App{
		Protocol:      "tcp/2022-2023",
		DNS:           spectrum.DNS{Type: "CNAME", Name: "old.example.com"},
		OriginDNS:     &spectrum.OriginDNS{Name: "origin.example.com"},
		OriginPort:    &spectrum.OriginPort{Start: 2022, End: 2023},
		ProxyProtocol: "v1",
		EdgeIPs:       &spectrum.EdgeIPs{Type: "dynamic", Connectivity: "all"},
	}
	stored, err := sim.PutApp(enterpriseZone, spectrumtest.App{
		Protocol:      "tcp/2022-2023",
		DNS:           spectrumtest.DNS{Type: "CNAME", Name: "old.example.com"},
		OriginDNS:     &spectrumtest.OriginDNS{Name: "origin.example.com"},
		OriginPort:    spectrumtest.Ports(2022, 2023),
		ProxyProtocol: "v1",
		EdgeIPs:       &spectrumtest.EdgeIPs{Type: "dynamic", Connectivity: "all"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	single := simSSHApp("old-ssh.example.com")
	single.OriginDirect = nil
	single.OriginDNS = &spectrumtest.OriginDNS{Name: "origin.example.com"}
	single.OriginPort = spectrumtest.Port(22)
	if _, err := sim.PutApp(enterpriseZone, single, true); err != nil {
		t.Fatal(err)
	}

	client := newClient(sim, enterpriseToken)
	got, err := client.GetApp(testContext(t), enterpriseZone, stored.App.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ProxyProtocol != "v1" || got.EdgeIPs != nil || got.OriginPort == nil || *got.OriginPort != *legacy.OriginPort {
		t.Errorf("legacy app decoded as %+v", got)
	}
	if spectrum.Differs(legacy, got) {
		t.Errorf("legacy app differs from its desired state: %v", spectrum.Differences(legacy, got))
	}
	listing, err := client.ListApps(testContext(t), enterpriseZone)
	apps := listing.Apps
	if err != nil || len(apps) != 2 || apps[1].OriginPort == nil || apps[1].OriginPort.Start != 22 {
		t.Fatalf("ListApps of legacy apps = %+v, %v", apps, err)
	}
}

// TestClientDocumentedCodes produces every documented code in the situation
// that causes it and checks how the client reports and classifies it.
func TestClientDocumentedCodes(t *testing.T) {
	withApp := func(change func(*spectrum.App)) spectrum.App {
		app := sshApp("ssh.example.com")
		change(&app)
		return app
	}
	static := func(a *spectrum.App) {
		a.DNS.Type = "ADDRESS"
		a.EdgeIPs = &spectrum.EdgeIPs{Type: "static", IPs: []string{staticEdgeIP}}
	}
	viaVirtualNetwork := func(origins ...string) func(*spectrum.App) {
		return func(a *spectrum.App) { a.VirtualNetworkID, a.OriginDirect = virtualNetworkID, origins }
	}
	originDNS := func(name string) func(*spectrum.App) {
		return func(a *spectrum.App) {
			a.OriginDirect = nil
			a.OriginDNS = &spectrum.OriginDNS{Name: name}
			a.OriginPort = &spectrum.OriginPort{Start: 22}
		}
	}
	cases := []struct {
		name   string
		token  string
		zone   string
		setup  func(t *testing.T, sim *spectrumtest.Server) string // returns an app id to update, or ""
		app    spectrum.App
		status int
		code   int
		class  failure.Class
		reason string
	}{
		{name: "no token", token: "", zone: enterpriseZone, app: sshApp("ssh.example.com"),
			status: 401, code: 10000, class: failure.NeedsHuman, reason: "AuthenticationFailed"},
		{name: "unknown token", token: "no-such-token", zone: enterpriseZone, app: sshApp("ssh.example.com"),
			status: 403, code: 9109, class: failure.NeedsHuman, reason: "AuthenticationFailed"},
		{name: "revoked token", token: revokedToken, zone: enterpriseZone, app: sshApp("ssh.example.com"),
			status: 403, code: 9109, class: failure.NeedsHuman, reason: "AuthenticationFailed"},
		{name: "zone of another account", token: enterpriseToken, zone: paygZone, app: sshApp("ssh.example.net"),
			status: 403, code: 10000, class: failure.NeedsHuman, reason: "AuthenticationFailed"},
		{name: "pay-as-you-go extra field", token: paygToken, zone: paygZone,
			app:    withApp(func(a *spectrum.App) { a.DNS.Name, a.TLS = "ssh.example.net", "full" }),
			status: 400, code: 10012, class: failure.NeedsHuman, reason: "PlanFieldNotAllowed"},
		{name: "pay-as-you-go second app of a protocol", token: paygToken, zone: paygZone,
			setup: func(t *testing.T, sim *spectrumtest.Server) string {
				mustCreate(t, sim, paygToken, paygZone, sshApp("first.example.net"))
				return ""
			},
			app:    sshApp("second.example.net"),
			status: 400, code: 11034, class: failure.NeedsHuman, reason: "PlanAppLimitReached"},
		{name: "both origins", token: enterpriseToken, zone: enterpriseZone,
			app: withApp(func(a *spectrum.App) {
				a.OriginDNS = &spectrum.OriginDNS{Name: "o.example.com"}
				a.OriginPort = &spectrum.OriginPort{Start: 22}
			}),
			status: 400, code: 11000, class: failure.InvalidSpec, reason: "InvalidOriginConfig"},
		{name: "origin dns without port", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(func(a *spectrum.App) { a.OriginDirect, a.OriginDNS = nil, &spectrum.OriginDNS{Name: "o.example.com"} }),
			status: 400, code: 11001, class: failure.InvalidSpec, reason: "InvalidOriginDNS"},
		{name: "IPv6 origin without brackets", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(func(a *spectrum.App) { a.OriginDirect = []string{"tcp://2001:db8::1:22"} }),
			status: 400, code: 11002, class: failure.InvalidSpec, reason: "InvalidOriginAddress"},
		{name: "ADDRESS with dynamic edge IPs", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(func(a *spectrum.App) { a.DNS.Type = "ADDRESS" }),
			status: 400, code: 11004, class: failure.InvalidSpec, reason: "DNSTypeMismatch"},
		{name: "dns type changed on update", token: enterpriseToken, zone: enterpriseZone,
			setup: func(t *testing.T, sim *spectrumtest.Server) string {
				return mustCreate(t, sim, enterpriseToken, enterpriseZone, sshApp("ssh.example.com")).ID
			},
			app:    withApp(static),
			status: 400, code: 11004, class: failure.InvalidSpec, reason: "DNSTypeMismatch"},
		{name: "FTP without entitlement", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(func(a *spectrum.App) { a.Protocol, a.OriginDirect = "tcp/21", []string{"tcp://192.0.2.1:21"} }),
			status: 403, code: 11014, class: failure.NeedsHuman, reason: "FTPNotEnabled"},
		{name: "BYOIP without entitlement", token: enterpriseToken, zone: enterpriseZone,
			setup: func(t *testing.T, sim *spectrumtest.Server) string {
				if err := sim.SetEntitlement(enterpriseAccount, spectrumtest.EntitlementBYOIP, false); err != nil {
					t.Fatal(err)
				}
				return ""
			},
			app:    withApp(static),
			status: 403, code: 11018, class: failure.NeedsHuman, reason: "BYOIPNotEnabled"},
		{name: "edge IPs without IP Prefixes permission", token: noPrefixesToken, zone: enterpriseZone,
			app:    withApp(static),
			status: 400, code: 11019, class: failure.NeedsHuman, reason: "EdgeIPsNotAuthorized"},
		{name: "edge IP outside the account's prefixes", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(func(a *spectrum.App) { static(a); a.EdgeIPs.IPs = []string{"198.51.100.7"} }),
			status: 400, code: 11019, class: failure.NeedsHuman, reason: "EdgeIPsNotAuthorized"},
		{name: "Argo without entitlement", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(func(a *spectrum.App) { a.ArgoSmartRouting = ptr(true) }),
			status: 403, code: 11026, class: failure.NeedsHuman, reason: "ArgoNotEnabled"},
		{name: "edge IP used in another zone", token: enterpriseToken, zone: enterpriseZone,
			setup: func(t *testing.T, sim *spectrumtest.Server) string {
				mustCreate(t, sim, enterpriseToken, otherZone, spectrum.App{Protocol: "tcp/22",
					DNS:          spectrum.DNS{Type: "ADDRESS", Name: "ssh.other.example"},
					OriginDirect: []string{"tcp://192.0.2.1:22"},
					EdgeIPs:      &spectrum.EdgeIPs{Type: "static", IPs: []string{staticEdgeIP}}})
				return ""
			},
			app:    withApp(static),
			status: 400, code: 11033, class: failure.NeedsHuman, reason: "EdgeIPInUse"},
		{name: "virtual network with origin dns", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(func(a *spectrum.App) { originDNS("o.example.com")(a); a.VirtualNetworkID = virtualNetworkID }),
			status: 400, code: 11041, class: failure.InvalidSpec, reason: "VirtualNetworkWithOriginDNS"},
		{name: "virtual network with two origins", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(viaVirtualNetwork("tcp://10.0.0.5:22", "tcp://10.0.0.6:22")),
			status: 400, code: 11042, class: failure.InvalidSpec, reason: "VirtualNetworkMultipleOrigins"},
		{name: "virtual network with a port range", token: enterpriseToken, zone: enterpriseZone,
			app: withApp(func(a *spectrum.App) {
				viaVirtualNetwork("tcp://10.0.0.5:2000-2001")(a)
				a.Protocol = "tcp/2000-2001"
			}),
			status: 400, code: 11043, class: failure.InvalidSpec, reason: "VirtualNetworkPortRange"},
		{name: "virtual network without a route", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(viaVirtualNetwork("tcp://10.9.9.9:22")),
			status: 400, code: 11044, class: failure.NeedsHuman, reason: "VirtualNetworkRouteMissing"},
		{name: "virtual network that does not exist", token: enterpriseToken, zone: enterpriseZone,
			app: withApp(func(a *spectrum.App) {
				viaVirtualNetwork("tcp://10.0.0.5:22")(a)
				a.VirtualNetworkID = "11111111-2222-4333-8444-555555555555"
			}),
			status: 400, code: 11044, class: failure.NeedsHuman, reason: "VirtualNetworkRouteMissing"},
		{name: "virtual network id not a UUID", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(func(a *spectrum.App) { viaVirtualNetwork("tcp://10.0.0.5:22")(a); a.VirtualNetworkID = "private-net" }),
			status: 400, code: 11045, class: failure.InvalidSpec, reason: "InvalidVirtualNetworkID"},
		{name: "origin dns in another zone", token: enterpriseToken, zone: enterpriseZone,
			app:    withApp(originDNS(foreignOriginName)),
			status: 400, code: 11050, class: failure.NeedsHuman, reason: "OriginDNSInAnotherZone"},
		{name: "IPv4 quota used up", token: enterpriseToken, zone: quotaZone,
			setup: func(t *testing.T, sim *spectrumtest.Server) string {
				mustCreate(t, sim, enterpriseToken, quotaZone, sshApp("one.quota.example"))
				return ""
			},
			app:    sshApp("two.quota.example"),
			status: 400, code: 12005, class: failure.NeedsHuman, reason: "IPv4QuotaExhausted"},
		{name: "protocol not available", token: paygToken, zone: paygZone,
			app:    withApp(func(a *spectrum.App) { a.DNS.Name, a.Protocol = "web.example.net", "tcp/8080" }),
			status: 400, code: 13002, class: failure.NeedsHuman, reason: "ProtocolNotAvailable"},
		{name: "hostname of another configured zone", token: enterpriseToken, zone: enterpriseZone,
			app:    sshApp("ssh.other.example"),
			status: 400, code: 16001, class: failure.NeedsHuman, reason: "HostnameInAnotherZone"},
		{name: "hostname of a zone elsewhere", token: enterpriseToken, zone: enterpriseZone,
			app:    sshApp(foreignHostname),
			status: 400, code: 16001, class: failure.NeedsHuman, reason: "HostnameInAnotherZone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim := startSimulator(t, testConfig())
			appID := ""
			if tc.setup != nil {
				appID = tc.setup(t, sim)
			}
			before := len(sim.Apps())
			client := newClient(sim, tc.token)
			var err error
			if appID == "" {
				_, err = client.CreateApp(testContext(t), tc.zone, tc.app)
			} else {
				_, err = client.UpdateApp(testContext(t), tc.zone, appID, tc.app)
			}
			var apiErr *spectrum.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T), want an *APIError", err, err)
			}
			if apiErr.HTTPStatus != tc.status || !apiErr.HasCode(tc.code) || apiErr.RayID == "" {
				t.Fatalf("got HTTP %d codes %v ray %q, want HTTP %d code %d: %v",
					apiErr.HTTPStatus, apiErr.Codes(), apiErr.RayID, tc.status, tc.code, err)
			}
			c := spectrum.Classify(err)
			if c.Class != tc.class || c.Reason != tc.reason {
				t.Errorf("classified %v %s, want %v %s (%s)", c.Class, c.Reason, tc.class, tc.reason, c.Message)
			}
			if !strings.Contains(c.Message, fmt.Sprint(tc.code)) || !strings.Contains(c.Message, apiErr.RayID) {
				t.Errorf("message %q lacks the code or Ray ID", c.Message)
			}
			if after := len(sim.Apps()); after != before {
				t.Errorf("a refused request changed the apps: %d → %d", before, after)
			}
		})
	}
}

func mustCreate(t *testing.T, sim *spectrumtest.Server, token, zone string, app spectrum.App) spectrum.App {
	t.Helper()
	created, err := newClient(sim, token).CreateApp(testContext(t), zone, app)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	return created
}

func TestPayAsYouGoMayUseItsFields(t *testing.T) {
	sim := startSimulator(t, testConfig())
	created := mustCreate(t, sim, paygToken, paygZone, sshApp("ssh.example.net"))
	app := sshApp("ssh.example.net")
	app.OriginDirect = []string{"tcp://192.0.2.3:22"}
	if _, err := newClient(sim, paygToken).UpdateApp(testContext(t), paygZone, created.ID, app); err != nil {
		t.Fatalf("updating its own app hit the one-per-protocol rule: %v", err)
	}
}

func TestEntitlementGrantedLater(t *testing.T) {
	sim := startSimulator(t, testConfig())
	client := newClient(sim, enterpriseToken)
	app := sshApp("ssh.example.com")
	app.ArgoSmartRouting = ptr(true)
	if _, err := client.CreateApp(testContext(t), enterpriseZone, app); spectrum.Classify(err).Reason != "ArgoNotEnabled" {
		t.Fatalf("before the grant: %v", err)
	}
	if err := sim.SetEntitlement(enterpriseAccount, spectrumtest.EntitlementArgo, true); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateApp(testContext(t), enterpriseZone, app); err != nil {
		t.Fatalf("after the grant: %v", err)
	}
}

// The token must not appear in any error, classification or message, even
// when the server echoes it back.
func TestTokenNeverInErrors(t *testing.T) {
	const token = "super-secret-token-4f9a1c"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		switch r.URL.Query().Get("page") {
		case "":
			w.Header().Set("cf-ray", auth)
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"success":false,"errors":[{"code":9109,"message":"Invalid access token %s"}]}`, auth)
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "<html>%s</html>", auth)
		}
	}))
	defer echo.Close()
	sim := startSimulator(t, testConfig())
	if err := sim.SetTokenRevoked(enterpriseToken, true); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.AddFault(spectrumtest.Fault{Kind: spectrumtest.FaultConnectionReset, Method: "DELETE"}); err != nil {
		t.Fatal(err)
	}

	echoClient := spectrum.NewClient(spectrum.Options{BaseURL: echo.URL, Token: token})
	simClient := newClient(sim, enterpriseToken)
	ctx := testContext(t)
	var errs []error
	_, err := echoClient.GetApp(ctx, enterpriseZone, "a")
	errs = append(errs, err)
	_, err = echoClient.ListApps(ctx, enterpriseZone)
	errs = append(errs, err)
	_, err = spectrum.NewClient(spectrum.Options{BaseURL: "http://127.0.0.1:1", Token: token}).GetApp(ctx, enterpriseZone, "a")
	errs = append(errs, err)
	_, err = simClient.GetApp(ctx, enterpriseZone, "a")
	errs = append(errs, err)
	errs = append(errs, simClient.DeleteApp(ctx, enterpriseZone, "a"))

	for i, err := range errs {
		if err == nil {
			t.Fatalf("request %d succeeded", i)
		}
		c := spectrum.Classify(err)
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), c.Message, c.RayID} {
			if strings.Contains(text, token) || strings.Contains(text, enterpriseToken) {
				t.Errorf("request %d: the token leaked: %s", i, text)
			}
		}
	}
}

func TestRequestsCounter(t *testing.T) {
	sim := startSimulator(t, testConfig())
	counter := spectrum.NewRequestsCounter()
	var observed []string
	connector := budget.NewConnector(budget.ConnectorOptions{
		BaseURL: sim.URL, RequestsPerSecond: 1000, Requests: counter,
		Observer: func(method string, status, code int) { observed = append(observed, fmt.Sprint(method, status, code)) },
	})
	client := connector.ForToken(enterpriseToken)
	ctx := testContext(t)
	if _, err := client.ListApps(ctx, enterpriseZone); err != nil {
		t.Fatal(err)
	}
	app := sshApp("ssh.example.com")
	app.ArgoSmartRouting = ptr(true)
	if _, err := client.CreateApp(ctx, enterpriseZone, app); err == nil {
		t.Fatal("create with Argo succeeded")
	}
	for _, want := range []struct {
		method, result string
	}{{"GET", "Success"}, {"POST", "ArgoNotEnabled"}} {
		var m dto.Metric
		if err := counter.WithLabelValues(want.method, want.result).Write(&m); err != nil {
			t.Fatal(err)
		}
		if m.GetCounter().GetValue() != 1 {
			t.Errorf("%s %s = %v, want 1", want.method, want.result, m.GetCounter().GetValue())
		}
	}
	if strings.Join(observed, ",") != "GET200 0,POST403 11026" {
		t.Errorf("observer saw %v", observed)
	}
}

// Reconciles run in parallel and share one client per token.
func TestConcurrentCallersShareOneClient(t *testing.T) {
	sim := startSimulator(t, testConfig())
	client := budget.NewConnector(budget.ConnectorOptions{BaseURL: sim.URL, RequestsPerSecond: 1000, Burst: 50}).ForToken(enterpriseToken)
	ctx := testContext(t)
	const workers, each = 8, 5
	errs := make(chan error, workers*each*2)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := client.CreateApp(ctx, enterpriseZone, sshApp(fmt.Sprintf("w%d-%d.example.com", w, i))); err != nil {
					errs <- err
				}
				if _, err := client.ListApps(ctx, enterpriseZone); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(sim.Apps()); got != workers*each {
		t.Errorf("%d apps, want %d", got, workers*each)
	}
}

// A request whose budget wait would outlast its send deadline is not sent
// (ErrNotSent, so a create's record can be cleared), even when the
// request's own deadline is far: the record of a create promises when it
// was sent at the latest.
func TestSendDeadlineBoundsTheWaitForTheBudget(t *testing.T) {
	sim := startSimulator(t, testConfig())
	// One request per 2 s, no burst beyond the first.
	client := budget.NewConnector(budget.ConnectorOptions{BaseURL: sim.URL, RequestsPerSecond: 0.5, Burst: 1}).ForToken(enterpriseToken)
	ctx, cancel := context.WithTimeout(testContext(t), time.Minute)
	defer cancel()
	if _, err := client.CreateApp(ctx, enterpriseZone, sshApp("first.example.com")); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	_, err := client.CreateApp(budget.WithSendDeadline(ctx, time.Now().Add(200*time.Millisecond)), enterpriseZone, sshApp("held.example.com"))
	if !errors.Is(err, spectrum.ErrNotSent) || spectrum.MayHaveBeenApplied(err) {
		t.Fatalf("create held by the budget past its send deadline: %v, want ErrNotSent and not 'may have been applied'", err)
	}
	if waited := time.Since(started); waited > time.Second {
		t.Errorf("failed after %s, want at once (the budget's next slot is beyond the send deadline)", waited)
	}
	if got := len(sim.Apps()); got != 1 {
		t.Errorf("%d apps at the simulator, want 1: the held create must not be sent", got)
	}
	if _, err := client.CreateApp(budget.WithSendDeadline(ctx, time.Now().Add(5*time.Second)), enterpriseZone, sshApp("sent.example.com")); err != nil {
		t.Fatalf("create whose budget slot is within the send deadline: %v", err)
	}
}
func TestClientDoesNotPrintToken(t *testing.T) {
	client := spectrum.NewClient(spectrum.Options{Token: "very-secret-token-value"})
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if strings.Contains(fmt.Sprintf(format, client), "very-secret-token-value") {
			t.Errorf("%s of the client prints the token", format)
		}
	}
}

// Callers at once keep their connections: the operator's reconciles and
// its drift check send side by side, and over HTTP/1.1 (a proxy, the
// simulator) each connection past the transport's idle limit was closed
// after its answer and dialled again for the next request.
func TestConcurrentCallersKeepTheirConnections(t *testing.T) {
	var dialled sync.Map
	var connections atomic.Int64
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // the callers overlap
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"success":true,"errors":[],"messages":[],"result":{"id":"a1","protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.example.com"},"origin_direct":["tcp://192.0.2.1:22"]}}`)
	}))
	server.Config.ConnState = func(conn net.Conn, state http.ConnState) {
		if state == http.StateNew {
			if _, seen := dialled.LoadOrStore(conn, true); !seen {
				connections.Add(1)
			}
		}
	}
	server.Start()
	t.Cleanup(server.Close)
	client := spectrum.NewClient(spectrum.Options{BaseURL: server.URL, Token: "test-token"})
	ctx := testContext(t)
	const callers, rounds = 8, 5
	for range rounds {
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				if _, err := client.GetApp(ctx, "zone", "a1"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if got := connections.Load(); got > callers {
		t.Errorf("%d connections dialled for %d rounds of %d callers at once, want at most %d", got, rounds, callers, callers)
	}
}

// A client's memory of a zone's last listing is its applications and
// little besides: per application a pointer and the SHA-256 of its JSON,
// which the next listing needs to reuse it. (A map of the zone's
// applications by sum beside the pages took ~150 bytes per application.)
func TestListingMemoryIsItsApplications(t *testing.T) {
	const apps = 5000
	sim := startSimulator(t, testConfig())
	putApps(t, sim, apps)
	ctx := testContext(t)
	// The applications themselves, as a listing decodes them.
	listing, err := newClient(sim, enterpriseToken).ListApps(ctx, enterpriseZone)
	if err != nil {
		t.Fatal(err)
	}
	heldApart := heapAlloc()
	runtime.KeepAlive(listing)
	appBytes := float64(heldApart-heapAlloc()) / apps

	client := newClient(sim, enterpriseToken)
	if _, err := client.ListApps(ctx, enterpriseZone); err != nil {
		t.Fatal(err)
	}
	remembering := heapAlloc()
	runtime.KeepAlive(client)
	remembered := float64(remembering-heapAlloc()) / apps
	if besides := remembered - appBytes; besides > 80 {
		t.Errorf("the client remembers %.0f bytes per application, %.0f besides the %.0f of the application", remembered, besides, appBytes)
	}
}

// heapAlloc is the heap in use after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return stats.HeapAlloc
}

// putApps puts n SSH apps, app0.example.com and on, into the enterprise
// zone, and returns their IDs in creation order.
func putApps(t *testing.T, sim *spectrumtest.Server, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		stored, err := sim.PutApp(enterpriseZone, simSSHApp(fmt.Sprintf("app%d.example.com", i)), false)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, stored.App.ID)
	}
	return ids
}
