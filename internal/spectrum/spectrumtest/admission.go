package spectrumtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/rules"
)

// Cloudflare error codes the simulator answers with, as in the API notes.
const (
	codeInvalidToken         = 9109
	codeAuthentication       = 10000
	codeInternalError        = 10002
	codeAppNotFound          = 10006
	codeRateLimited          = 10100
	codeFTPNotEnabled        = 11014
	codeBYOIPNotEnabled      = 11018
	codeEdgeIPsNotAuthorized = 11019
	codeArgoNotEnabled       = 11026
	codeEdgeIPInUse          = 11033
	codeNoVirtualNetworkRule = 11044
	codeOriginInAnotherZone  = 11050
	codeIPv4QuotaExhausted   = 12005
	codeProtocolUnavailable  = 13002
	codeHostnameInOtherZone  = 16001

	// Not in the Spectrum notes: Cloudflare's answers for a body that is
	// not an app, a rule of the shared rule set that mirrors no code, an
	// unknown route and a wrong method.
	codeInvalidRequest   = 10001
	codeNoRoute          = 7000
	codeMethodNotAllowed = 7001
)

// payAsYouGoFields are the only fields a Pay-as-you-go account may send.
var payAsYouGoFields = []string{"protocol", "dns", "origin_direct"}

// failure is an error answer.
type failure struct {
	status int
	errors []spectrum.ErrorDetail
}

func refuse(status, code int, format string, args ...any) *failure {
	return &failure{status: status, errors: []spectrum.ErrorDetail{{Code: code, Message: fmt.Sprintf(format, args...)}}}
}

// admit decides whether a create (old nil) or update of an app in z by tok
// goes through, in the order Cloudflare checks: the body, the plan's fields,
// the shared rule set, entitlements, then conflicts and quotas.
func (w *world) admit(tok *token, z *zone, body []byte, old *storedApp) (spectrum.App, *failure) {
	var app spectrum.App
	if err := json.Unmarshal(body, &app); err != nil {
		return app, refuse(http.StatusBadRequest, codeInvalidRequest, "Malformed request body: %v", err)
	}
	acct := w.accounts[z.account]
	checks := []func() *failure{
		func() *failure { return checkPlanFields(acct, body) },
		func() *failure { return checkRules(app, old) },
		func() *failure { return checkEntitlements(acct, app) },
		func() *failure { return w.checkEdgeIPs(tok, acct, z, app) },
		func() *failure { return w.checkHostnames(z, app) },
		func() *failure { return checkVirtualNetwork(acct, app) },
		func() *failure { return checkEdgePorts(z, app) },
		func() *failure { return w.checkOneAppPerProtocol(acct, app, old) },
		func() *failure { return w.checkIPv4Quota(z, app, old) },
	}
	for _, check := range checks {
		if f := check(); f != nil {
			return app, f
		}
	}
	return app, nil
}

// checkPlanFields mirrors 10012 on the wire: a field counts as sent when its
// key is in the body, whatever its value.
func checkPlanFields(acct *account, body []byte) *failure {
	if acct.plan != PlanPayAsYouGo {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return refuse(http.StatusBadRequest, codeInvalidRequest, "Malformed request body: %v", err)
	}
	var extra []string
	for name := range fields {
		if !slices.Contains(payAsYouGoFields, name) {
			extra = append(extra, name)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	slices.Sort(extra)
	f := &failure{status: http.StatusBadRequest}
	for _, name := range extra {
		f.errors = append(f.errors, spectrum.ErrorDetail{Code: rules.CodeUnknownField,
			Message: fmt.Sprintf("Unknown field %q: Pay-as-you-go applications accept only protocol, dns and origin_direct", name)})
	}
	return f
}

// checkRules answers every violation of the shared rule set, the one the
// admission webhook runs, with the code the rule mirrors.
func checkRules(app spectrum.App, old *storedApp) *failure {
	spec := spectrum.ToSpec(app)
	path := field.NewPath("app")
	var violations rules.Violations
	if old == nil {
		violations = rules.ValidateSpec(&spec, path)
	} else {
		oldSpec := spectrum.ToSpec(old.app)
		violations = rules.ValidateUpdate(&oldSpec, &spec, path)
	}
	return violationsFailure(violations)
}

func violationsFailure(violations rules.Violations) *failure {
	if len(violations) == 0 {
		return nil
	}
	f := &failure{status: http.StatusBadRequest}
	for _, v := range violations {
		code := v.Code
		if code == rules.CodeNone {
			code = codeInvalidRequest
		}
		f.errors = append(f.errors, spectrum.ErrorDetail{Code: code, Message: v.Err.Error()})
	}
	return f
}

func checkEntitlements(acct *account, app spectrum.App) *failure {
	f := &failure{status: http.StatusForbidden}
	refused := func(code int, message string) {
		f.errors = append(f.errors, spectrum.ErrorDetail{Code: code, Message: message})
	}
	if transport, ports, ok := parseProtocol(app.Protocol); ok && transport == "tcp" && ports.contains(21) && !acct.entitlements.FTP {
		refused(codeFTPNotEnabled, "FTP is not enabled for this account")
	}
	if app.EdgeIPs != nil && app.EdgeIPs.Type == "static" && !acct.entitlements.BYOIP {
		refused(codeBYOIPNotEnabled, "Static edge IPs (BYOIP) are not enabled for this account")
	}
	if app.ArgoSmartRouting != nil && *app.ArgoSmartRouting && !acct.entitlements.Argo {
		refused(codeArgoNotEnabled, "Argo Smart Routing is not enabled for this account")
	}
	if len(f.errors) == 0 {
		return nil
	}
	return f
}

func (w *world) checkEdgeIPs(tok *token, acct *account, z *zone, app spectrum.App) *failure {
	if app.EdgeIPs == nil || app.EdgeIPs.Type != "static" {
		return nil
	}
	if !tok.ipPrefixes {
		return refuse(http.StatusBadRequest, codeEdgeIPsNotAuthorized,
			"Not authorized to use these edge IPs: the token lacks the Account > IP Prefixes permission")
	}
	for _, text := range app.EdgeIPs.IPs {
		ip, err := netip.ParseAddr(text)
		if err != nil || !slices.ContainsFunc(acct.prefixes, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			return refuse(http.StatusBadRequest, codeEdgeIPsNotAuthorized,
				"Not authorized to use edge IP %s: it is not in a prefix allocated to the account", text)
		}
	}
	for _, other := range w.apps {
		if other.zoneID == z.id || other.app.EdgeIPs == nil {
			continue
		}
		for _, ip := range app.EdgeIPs.IPs {
			if slices.Contains(other.app.EdgeIPs.IPs, ip) {
				return refuse(http.StatusBadRequest, codeEdgeIPInUse, "Edge IP %s is in use by an application in another zone", ip)
			}
		}
	}
	return nil
}

// checkHostnames mirrors 16001 for dns.name and 11050 for origin_dns.name.
func (w *world) checkHostnames(z *zone, app spectrum.App) *failure {
	if w.inAnotherZone(z, app.DNS.Name) {
		return refuse(http.StatusBadRequest, codeHostnameInOtherZone, "The hostname %s already exists in a different zone", app.DNS.Name)
	}
	if app.OriginDNS != nil && w.inAnotherZone(z, app.OriginDNS.Name) {
		return refuse(http.StatusBadRequest, codeOriginInAnotherZone,
			"The origin DNS record %s belongs to a different zone", app.OriginDNS.Name)
	}
	return nil
}

// inAnotherZone reports whether name belongs to a zone other than z: a
// configured zone (the most specific one containing it) or a listed name.
func (w *world) inAnotherZone(z *zone, name string) bool {
	if slices.ContainsFunc(w.hostnamesInOtherZones, func(other string) bool {
		return strings.EqualFold(strings.TrimSuffix(other, "."), strings.TrimSuffix(name, "."))
	}) {
		return true
	}
	var owner *zone
	for _, candidate := range w.zones {
		if hostnameUnder(name, candidate.name) && (owner == nil || len(candidate.name) > len(owner.name)) {
			owner = candidate
		}
	}
	return owner != nil && owner.id != z.id
}

func checkVirtualNetwork(acct *account, app spectrum.App) *failure {
	if app.VirtualNetworkID == "" {
		return nil
	}
	routes, ok := acct.virtualNetworks[strings.ToLower(app.VirtualNetworkID)]
	if !ok {
		return refuse(http.StatusBadRequest, codeNoVirtualNetworkRule, "Virtual network %s does not exist", app.VirtualNetworkID)
	}
	for _, origin := range app.OriginDirect {
		ip, ok := originIP(origin)
		if !ok || !slices.ContainsFunc(routes, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			return refuse(http.StatusBadRequest, codeNoVirtualNetworkRule,
				"No route for origin %s in virtual network %s", origin, app.VirtualNetworkID)
		}
	}
	return nil
}

func originIP(origin string) (netip.Addr, bool) {
	u, err := url.Parse(origin)
	if err != nil {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(u.Hostname())
	return ip.Unmap(), err == nil
}

// checkEdgePorts mirrors 13002, listing the refused ports.
func checkEdgePorts(z *zone, app spectrum.App) *failure {
	if z.edgePorts == nil {
		return nil
	}
	transport, ports, ok := parseProtocol(app.Protocol)
	if !ok {
		return nil
	}
	allowed := z.edgePorts.TCP
	if transport == "udp" {
		allowed = z.edgePorts.UDP
	}
	var refused []int
	for port := ports.first; port <= ports.last; port++ {
		if !slices.ContainsFunc(allowed, func(r string) bool { return parsePortRange(r).contains(port) }) {
			refused = append(refused, port)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return refuse(http.StatusBadRequest, codeProtocolUnavailable,
		"Protocol %s is not available for this zone: edge ports %s are not allowed on its plan", app.Protocol, describePorts(refused))
}

// checkOneAppPerProtocol mirrors 11034 through the shared rule set's plan
// rules, with the account's other apps as siblings.
func (w *world) checkOneAppPerProtocol(acct *account, app spectrum.App, old *storedApp) *failure {
	if acct.plan != PlanPayAsYouGo {
		return nil
	}
	var siblings []v1alpha1.SpectrumAppSpec
	for _, other := range w.apps {
		if other != old && w.zones[other.zoneID] != nil && w.zones[other.zoneID].account == acct.id {
			siblings = append(siblings, spectrum.ToSpec(other.app))
		}
	}
	spec := spectrum.ToSpec(app)
	return violationsFailure(rules.ValidatePlan(v1alpha1.PlanPayAsYouGo, &spec, siblings, field.NewPath("app")))
}

// checkIPv4Quota mirrors 12005: each app with dynamic IPv4 edge addresses
// takes one of the zone's IPv4 addresses.
func (w *world) checkIPv4Quota(z *zone, app spectrum.App, old *storedApp) *failure {
	if z.ipv4Quota == nil || !usesDynamicIPv4(app) || (old != nil && usesDynamicIPv4(old.app)) {
		return nil
	}
	used := len(w.appsOf(func(a *storedApp) bool { return a.zoneID == z.id && a != old && usesDynamicIPv4(a.app) }))
	if used < *z.ipv4Quota {
		return nil
	}
	return refuse(http.StatusBadRequest, codeIPv4QuotaExhausted,
		"The zone has used its IPv4 quota: %d of %d applications with dynamic IPv4 edge addresses", used, *z.ipv4Quota)
}

func usesDynamicIPv4(app spectrum.App) bool {
	if app.EdgeIPs == nil {
		return true
	}
	return app.EdgeIPs.Type == "dynamic" && app.EdgeIPs.Connectivity != "ipv6"
}

// portRange is an inclusive range of ports.
type portRange struct{ first, last int }

func (r portRange) contains(port int) bool { return r.first <= port && port <= r.last }

func parsePortRange(text string) portRange {
	p, err := spectrum.ParseOriginPort(text)
	if err != nil {
		return portRange{first: 1, last: 0}
	}
	if p.IsRange() {
		return portRange{first: p.Start, last: p.End}
	}
	return portRange{first: p.Start, last: p.Start}
}

// parseProtocol splits "tcp/22" or "udp/1000-2000".
func parseProtocol(protocol string) (string, portRange, bool) {
	transport, ports, ok := strings.Cut(protocol, "/")
	if !ok || (transport != "tcp" && transport != "udp") {
		return "", portRange{}, false
	}
	r := parsePortRange(ports)
	return transport, r, r.first <= r.last
}

// describePorts writes ports as "21, 8000-8080".
func describePorts(ports []int) string {
	var parts []string
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(ports[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ports[i], ports[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
