package spectrumtest

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func admin(t *testing.T, s *Server, method, path, body string, wantStatus int, into any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.AdminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: HTTP %d %s, want %d", method, path, resp.StatusCode, raw, wantStatus)
	}
	if into != nil {
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, raw, err)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	s := testServer(t)
	apps := s.URL + "/zones/" + testZone + "/spectrum/apps"
	appID := "ea95132c15732412d22c1476fa83f27a"

	// Out-of-band app, served in the legacy shape.
	var stored StoredApp
	admin(t, s, "PUT", "/apps/"+testZone+"/"+appID+"?legacy=true",
		`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"ssh.example.com"},"origin_direct":["tcp://192.0.2.1:22"],"proxy_protocol":"v1"}`,
		http.StatusOK, &stored)
	if stored.App.ID != appID || !stored.Legacy || stored.AccountID != "acct" {
		t.Fatalf("PUT app = %+v", stored)
	}
	_, env := call(t, "GET", apps+"/"+appID, testToken, "")
	if !strings.Contains(string(env.Result), `"proxy_protocol":true`) {
		t.Errorf("legacy app served as %s", env.Result)
	}

	// Counters.
	var counters Counters
	admin(t, s, "GET", "/counters", "", http.StatusOK, &counters)
	if counters.Calls["GET"] != 1 {
		t.Errorf("counters = %+v", counters)
	}
	admin(t, s, "POST", "/reset-counters", "", http.StatusNoContent, nil)
	var afterReset Counters
	admin(t, s, "GET", "/counters", "", http.StatusOK, &afterReset)
	if len(afterReset.Calls) != 0 {
		t.Errorf("after reset: %+v", afterReset)
	}

	// Faults.
	var fault Fault
	admin(t, s, "POST", "/faults", `{"kind":"unavailable","method":"GET","count":1}`, http.StatusCreated, &fault)
	if fault.ID == 0 || fault.Remaining != 1 {
		t.Errorf("fault = %+v", fault)
	}
	admin(t, s, "POST", "/faults", `{"kind":"nonsense"}`, http.StatusBadRequest, nil)
	var faults []Fault
	admin(t, s, "GET", "/faults", "", http.StatusOK, &faults)
	if len(faults) != 1 {
		t.Errorf("faults = %+v", faults)
	}
	if resp, _ := call(t, "GET", apps, testToken, ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("with the fault: HTTP %d", resp.StatusCode)
	}
	admin(t, s, "POST", "/faults", `{"kind":"internal-error"}`, http.StatusCreated, nil)
	admin(t, s, "DELETE", "/faults", "", http.StatusNoContent, nil)
	if resp, _ := call(t, "GET", apps, testToken, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("after clearing faults: HTTP %d", resp.StatusCode)
	}

	// Entitlements.
	argo := `{"protocol":"tcp/2222","dns":{"type":"CNAME","name":"argo.example.com"},"origin_direct":["tcp://192.0.2.1:22"],"argo_smart_routing":true}`
	if _, env := call(t, "POST", apps, testToken, argo); len(env.Errors) != 1 || env.Errors[0].Code != codeArgoNotEnabled {
		t.Fatalf("argo before the grant: %+v", env.Errors)
	}
	admin(t, s, "POST", "/entitlements", `{"account":"acct","entitlement":"argo","enabled":true}`, http.StatusNoContent, nil)
	admin(t, s, "POST", "/entitlements", `{"account":"nobody","entitlement":"argo","enabled":true}`, http.StatusNotFound, nil)
	admin(t, s, "POST", "/entitlements", `{"account":"acct","entitlement":"teleport","enabled":true}`, http.StatusBadRequest, nil)
	if resp, env := call(t, "POST", apps, testToken, argo); resp.StatusCode != http.StatusOK {
		t.Fatalf("argo after the grant: %+v", env.Errors)
	}

	// Tokens.
	admin(t, s, "POST", "/tokens/revoke", `{"token":"`+testToken+`"}`, http.StatusNoContent, nil)
	if _, env := call(t, "GET", apps, testToken, ""); len(env.Errors) != 1 || env.Errors[0].Code != codeInvalidToken {
		t.Errorf("revoked token: %+v", env.Errors)
	}
	admin(t, s, "POST", "/tokens/restore", `{"token":"`+testToken+`"}`, http.StatusNoContent, nil)
	admin(t, s, "POST", "/tokens/revoke", `{"token":"unknown"}`, http.StatusNotFound, nil)

	// State never shows a token.
	var state State
	admin(t, s, "GET", "/state", "", http.StatusOK, &state)
	if len(state.Apps) != 2 || len(state.Tokens) != 1 || state.Tokens[0].Fingerprint == "" || !state.Accounts[0].Entitlements.Argo {
		t.Errorf("state = %+v", state)
	}
	var raw json.RawMessage
	admin(t, s, "GET", "/state", "", http.StatusOK, &raw)
	if strings.Contains(string(raw), testToken) {
		t.Error("GET /state shows a token")
	}

	// Out-of-band delete, then reset to the config.
	admin(t, s, "DELETE", "/apps/"+testZone+"/"+appID, "", http.StatusNoContent, nil)
	admin(t, s, "DELETE", "/apps/"+testZone+"/"+appID, "", http.StatusNotFound, nil)
	var listed []StoredApp
	admin(t, s, "GET", "/apps", "", http.StatusOK, &listed)
	if len(listed) != 1 {
		t.Errorf("apps = %+v", listed)
	}
	admin(t, s, "POST", "/reset", "", http.StatusNoContent, nil)
	admin(t, s, "GET", "/state", "", http.StatusOK, &state)
	if len(state.Apps) != 0 || state.Accounts[0].Entitlements.Argo {
		t.Errorf("after reset: %+v", state)
	}
}

func TestModifyAppOutOfBand(t *testing.T) {
	s := testServer(t)
	stored, err := s.PutApp(testZone, App{Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "ssh.example.com"}, OriginDirect: []string{"tcp://192.0.2.1:22"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	err = s.ModifyApp(testZone, stored.App.ID, func(app *App) { app.OriginDirect = []string{"tcp://192.0.2.99:22"} })
	if err != nil {
		t.Fatal(err)
	}
	got := s.Apps()[0].App
	if got.OriginDirect[0] != "tcp://192.0.2.99:22" || !got.CreatedOn.Equal(stored.App.CreatedOn) || !got.ModifiedOn.After(stored.App.ModifiedOn) {
		t.Errorf("after ModifyApp: %+v", got)
	}
	if err := s.ModifyApp(testZone, "missing", func(*App) {}); err == nil {
		t.Error("ModifyApp of a missing app succeeded")
	}
}

// A token added is accepted from then on, until Reset; one that exists, or
// of an unknown account, is refused.
func TestAddToken(t *testing.T) {
	s := testServer(t)
	apps := s.URL + "/zones/" + testZone + "/spectrum/apps"
	const added = "added-token-4c1d"
	if resp, _ := call(t, "GET", apps, added, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an unknown token: HTTP %d, want 403", resp.StatusCode)
	}
	if err := s.AddToken(TokenConfig{Token: added, Account: "acct"}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := call(t, "GET", apps, added, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("an added token: HTTP %d, want 200", resp.StatusCode)
	}
	if err := s.AddToken(TokenConfig{Token: added, Account: "acct"}); err == nil {
		t.Error("a token added twice was accepted")
	}
	if err := s.AddToken(TokenConfig{Token: "other-token-9e2f", Account: "nobody"}); err == nil {
		t.Error("a token of an unknown account was accepted")
	}
	s.Reset()
	if resp, _ := call(t, "GET", apps, added, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an added token after Reset: HTTP %d, want 403", resp.StatusCode)
	}
}

// The inspection API serves the simulator's own model: what GET /apps
// answers reads back, with the simulator's decoder, as exactly what Apps()
// holds, and an app in an old shape reads as the current model.
func TestInspectionUsesTheSimulatorsOwnTypes(t *testing.T) {
	s := testServer(t)
	if _, err := s.PutApp(testZone, App{Protocol: "tcp/2022-2023", DNS: DNS{Type: "CNAME", Name: "range.example.com"},
		OriginDNS: &OriginDNS{Name: "o.example.com", Type: "AAAA"}, OriginPort: Ports(2022, 2023), ProxyProtocol: "v2",
		IPFirewall: new(bool), EdgeIPs: &EdgeIPs{Type: "dynamic", Connectivity: "ipv6"}}, true); err != nil {
		t.Fatal(err)
	}
	var listed []StoredApp
	admin(t, s, "GET", "/apps", "", http.StatusOK, &listed)
	if held := s.Apps(); !reflect.DeepEqual(listed, held) {
		t.Errorf("GET /apps reads back as\n%+v\nApps() holds\n%+v", listed, held)
	}

	var legacy App
	if err := json.Unmarshal([]byte(`{"protocol":"tcp/22","dns":{"type":"CNAME","name":"x.example.com"},"origin_dns":{"name":"o.example.com"},"origin_port":"22","proxy_protocol":true,"ipv4":true,"spp":false}`), &legacy); err != nil {
		t.Fatal(err)
	}
	if legacy.ProxyProtocol != "v1" || legacy.OriginPort == nil || *legacy.OriginPort != *Port(22) || legacy.OriginDNS.Type != "" {
		t.Errorf("legacy JSON read as %+v", legacy)
	}

	// Out of band skips admission, not the wire's types.
	for name, app := range map[string]App{
		"origin port 0":          {Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "p.example.com"}, OriginDNS: &OriginDNS{Name: "o.example.com"}, OriginPort: Port(0)},
		"origin port 70000":      {Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "p.example.com"}, OriginDNS: &OriginDNS{Name: "o.example.com"}, OriginPort: Port(70000)},
		"range end before start": {Protocol: "tcp/22", DNS: DNS{Type: "CNAME", Name: "p.example.com"}, OriginDNS: &OriginDNS{Name: "o.example.com"}, OriginPort: Ports(30, 20)},
	} {
		if _, err := s.PutApp(testZone, app, false); err == nil {
			t.Errorf("%s: PutApp stored an app the API could not answer", name)
		}
	}
}
