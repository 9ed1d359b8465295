package spectrumtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Cloudflare error codes the simulator answers with, as in the API notes.
const (
	codeInvalidToken          = 9109
	codeAuthentication        = 10000
	codeInternalError         = 10002
	codeAppNotFound           = 10006
	codeUnknownField          = 10012
	codeRateLimited           = 10100
	codeOriginChoice          = 11000
	codeOriginDNS             = 11001
	codeOriginAddress         = 11002
	codeDNSType               = 11004
	codeFTPNotEnabled         = 11014
	codeBYOIPNotEnabled       = 11018
	codeEdgeIPsNotAuthorized  = 11019
	codeArgoNotEnabled        = 11026
	codeEdgeIPInUse           = 11033
	codeOneAppPerProtocol     = 11034
	codeVirtualNetworkDNS     = 11041
	codeVirtualNetworkOrigins = 11042
	codeVirtualNetworkRange   = 11043
	codeNoVirtualNetworkRule  = 11044
	codeVirtualNetworkID      = 11045
	codeOriginInAnotherZone   = 11050
	codeIPv4QuotaExhausted    = 12005
	codeProtocolUnavailable   = 13002
	codeHostnameInOtherZone   = 16001

	// Not in the Spectrum notes: Cloudflare's general answers for a body
	// that is not an app, an unknown route and a wrong method.
	codeInvalidRequest   = 10001
	codeNoRoute          = 7000
	codeMethodNotAllowed = 7001
)

// errorDetail is one entry of the envelope's errors.
type errorDetail struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// failure is an error answer.
type failure struct {
	status int
	errors []errorDetail
}

func refuse(status, code int, format string, args ...any) *failure {
	return &failure{status: status, errors: []errorDetail{{Code: code, Message: fmt.Sprintf(format, args...)}}}
}

// admission is one create (old nil) or update being judged.
type admission struct {
	w    *world
	tok  *token
	acct *account
	zone *zone
	old  *storedApp

	body   []byte
	fields map[string]json.RawMessage
	app    *App
	// edge is the parsed protocol; edgeOK is false until the body stage
	// has checked it parses.
	edge   edgeProtocol
	edgeOK bool
}

// check is one row of the admission table: what Cloudflare refuses, the
// code and HTTP status it answers with, and where we know it from. run
// returns one message per refused item (nil when the request passes).
type check struct {
	stage  string
	code   int
	status int
	source string
	run    func(a *admission) []string
}

const (
	bad       = http.StatusBadRequest
	forbidden = http.StatusForbidden
)

// Where the rows come from.
const (
	srcPage      = "shared API page (/work/shared/spectrum-api.md)"
	srcTerraform = "Terraform provider acceptance tests (cloudflare/terraform-provider-cloudflare, internal/services/spectrum_application/testdata)"
)

// admissionTable is every check, in the order Cloudflare makes them: the
// body, the plan's fields, the validation codes, entitlements, edge IPs,
// hostnames, virtual network routes, edge ports, the Pay-as-you-go limit,
// and the IPv4 quota. The rows of one stage are all run and all refusals
// are answered together; the first stage that refuses answers. What the
// notes do not pin down is accepted: refusing what Cloudflare accepts would
// hide a too-strict rule in the operator.
var admissionTable = []check{
	// Body: a JSON object with the types of the app object; required
	// fields present; enum values among those the notes list.
	{"body", codeInvalidRequest, bad, srcPage + ", the application object (types)", checkDecodes},
	{"body", codeInvalidRequest, bad, srcPage + ", protocol row (required; tcp|udp/PORT[-END] or ssh, rdp, minecraft) and " + srcTerraform + ": spectrumapplicationconfigbasictypes.tf with \"ssh\" and \"rdp\" (TestAccCloudflareSpectrumApplication_BasicSSH, _BasicRDP)", checkProtocol},
	{"body", codeInvalidRequest, bad, srcPage + ", dns row (required; type CNAME or ADDRESS; a name)", checkDNS},
	{"body", codeInvalidRequest, bad, srcPage + ", proxy_protocol, tls, traffic_type and edge_ips rows (listed values)", checkEnums},

	{"plan", codeUnknownField, bad, srcPage + ", 10012 row and Pay-as-you-go paragraph", checkPlanFields},

	// Validation codes.
	// origin_port is not part of the choice: beside origin_direct it is
	// accepted and stored (spectrumapplicationconfigbasic.tf and
	// spectrumapplicationconfigbasicupdated.tf: tcp/22, origin_direct
	// tcp://128.66.0.1:23 then .2:23, origin_port 22).
	{"validation", codeOriginChoice, bad, srcPage + ", 11000 row (origin_port beside origin_direct accepted: " + srcTerraform + ", spectrumapplicationconfigbasic.tf)", checkOriginChoice},
	{"validation", codeOriginDNS, bad, srcPage + ", 11001 row (name, non-SRV type without origin_port, ttl) and origin_dns row (types)", checkOriginDNS},
	{"validation", codeOriginAddress, bad, srcPage + ", 11002 row and origin_direct row (unparseable, IPv6 without brackets, denied IP)", checkOriginAddresses},
	{"validation", codeOriginAddress, bad, srcPage + ", Port ranges paragraph (range sizes match; the notes give no code, 11002 is the bad-origin code)", checkPortCounts},
	{"validation", codeDNSType, bad, srcPage + ", 11004 row and edge_ips row (unset edge_ips is dynamic)", checkDNSTypeMatchesEdgeIPs},
	{"validation", codeDNSType, bad, srcPage + ", 11004 row (dns.type changed on update)", checkDNSTypeUnchanged},
	{"validation", codeVirtualNetworkDNS, bad, srcPage + ", 11041 row", checkVirtualNetworkOriginDNS},
	{"validation", codeVirtualNetworkOrigins, bad, srcPage + ", 11042 row", checkVirtualNetworkOneOrigin},
	{"validation", codeVirtualNetworkRange, bad, srcPage + ", 11043 row (a range in origin_port or origin_direct; a protocol range alone is accepted)", checkVirtualNetworkNoRange},
	{"validation", codeVirtualNetworkID, bad, srcPage + ", 11045 row", checkVirtualNetworkUUID},

	// Entitlements, all reported at once.
	{"entitlements", codeFTPNotEnabled, forbidden, srcPage + ", 11014 row (a named protocol counts as its port)", checkFTP},
	{"entitlements", codeBYOIPNotEnabled, forbidden, srcPage + ", 11018 row", checkBYOIP},
	{"entitlements", codeArgoNotEnabled, forbidden, srcPage + ", 11026 row", checkArgo},

	{"edge IP permission", codeEdgeIPsNotAuthorized, bad, srcPage + ", 11019 row", checkEdgeIPsAuthorized},
	{"edge IP in use", codeEdgeIPInUse, bad, srcPage + ", 11033 row", checkEdgeIPsFree},
	{"hostname", codeHostnameInOtherZone, bad, srcPage + ", 16001 row", checkHostname},
	{"origin hostname", codeOriginInAnotherZone, bad, srcPage + ", 11050 row", checkOriginHostname},
	{"virtual network route", codeNoVirtualNetworkRule, bad, srcPage + ", 11044 row", checkVirtualNetworkRoute},
	{"edge ports", codeProtocolUnavailable, bad, srcPage + ", 13002 row (a named protocol counts as its port)", checkEdgePorts},
	{"one app per protocol", codeOneAppPerProtocol, bad, srcPage + ", 11034 row and Pay-as-you-go paragraph", checkOneAppPerProtocol},
	{"IPv4 quota", codeIPv4QuotaExhausted, bad, srcPage + ", 12005 row", checkIPv4Quota},
}

// admit decides whether a create (old nil) or update of an app in z by tok
// goes through, running the admission table.
func (w *world) admit(tok *token, z *zone, body []byte, old *storedApp) (*App, *failure) {
	a := &admission{w: w, tok: tok, acct: w.accounts[z.account], zone: z, old: old, body: body}
	for start := 0; start < len(admissionTable); {
		end := start
		var f *failure
		for ; end < len(admissionTable) && admissionTable[end].stage == admissionTable[start].stage; end++ {
			c := admissionTable[end]
			for _, msg := range c.run(a) {
				if f == nil {
					f = &failure{status: c.status}
				}
				f.errors = append(f.errors, errorDetail{Code: c.code, Message: msg})
			}
		}
		if f != nil {
			return nil, f
		}
		start = end
	}
	return a.app, nil
}

func one(format string, args ...any) []string { return []string{fmt.Sprintf(format, args...)} }

// --- body ---

func checkDecodes(a *admission) []string {
	app, fields, err := decodeApp(a.body)
	if err != nil {
		return []string{err.Error()}
	}
	a.app, a.fields = app, fields
	return nil
}

// The other body rows stay quiet when the body did not decode: that row
// answers.

func checkProtocol(a *admission) []string {
	if a.app == nil {
		return nil
	}
	if a.app.Protocol == "" {
		return one("protocol is required, e.g. tcp/22")
	}
	edge, ok := parseProtocol(a.app.Protocol)
	if !ok {
		return one("protocol %q must be tcp/PORT, udp/PORT, tcp/START-END or a named protocol (ssh, rdp, minecraft)", a.app.Protocol)
	}
	a.edge, a.edgeOK = edge, true
	return nil
}

func checkDNS(a *admission) []string {
	if a.app == nil {
		return nil
	}
	var msgs []string
	if a.app.DNS.Type != "CNAME" && a.app.DNS.Type != "ADDRESS" {
		msgs = append(msgs, fmt.Sprintf("dns.type %q must be CNAME or ADDRESS", a.app.DNS.Type))
	}
	if strings.TrimSpace(a.app.DNS.Name) == "" {
		msgs = append(msgs, "dns.name is required")
	}
	return msgs
}

func checkEnums(a *admission) []string {
	app := a.app
	if app == nil {
		return nil
	}
	var msgs []string
	enum := func(name, value string, allowed ...string) {
		if value != "" && !slices.Contains(allowed, value) {
			msgs = append(msgs, fmt.Sprintf("%s %q must be one of %s", name, value, strings.Join(allowed, ", ")))
		}
	}
	enum("proxy_protocol", app.ProxyProtocol, "off", "v1", "v2", "simple")
	enum("tls", app.TLS, "off", "flexible", "full", "strict")
	enum("traffic_type", app.TrafficType, "direct", "http", "https")
	if app.EdgeIPs != nil {
		enum("edge_ips.type", app.EdgeIPs.Type, "dynamic", "static")
		if app.EdgeIPs.Type == "" {
			msgs = append(msgs, "edge_ips.type is required: dynamic or static")
		}
		enum("edge_ips.connectivity", app.EdgeIPs.Connectivity, "all", "ipv4", "ipv6")
	}
	return msgs
}

// --- plan ---

// payAsYouGoFields are the only fields a Pay-as-you-go account may send.
// The response-only fields are ignored rather than refused: the notes do
// not say Cloudflare refuses them.
var payAsYouGoFields = []string{"protocol", "dns", "origin_direct", "id", "created_on", "modified_on"}

// checkPlanFields mirrors 10012 on the wire: a field counts as sent when its
// key is in the body, whatever its value.
func checkPlanFields(a *admission) []string {
	if a.acct.plan != PlanPayAsYouGo {
		return nil
	}
	var msgs []string
	for _, name := range sortedKeys(a.fields) {
		if !slices.Contains(payAsYouGoFields, name) {
			msgs = append(msgs, fmt.Sprintf("Unknown field %q: Pay-as-you-go applications accept only protocol, dns and origin_direct", name))
		}
	}
	return msgs
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// --- validation ---

func checkOriginChoice(a *admission) []string {
	hasDirect, hasDNS := len(a.app.OriginDirect) > 0, a.app.OriginDNS != nil
	switch {
	case !hasDirect && !hasDNS:
		return one("Set exactly one of origin_direct and origin_dns: neither is set")
	case hasDirect && hasDNS:
		return one("Set exactly one of origin_direct and origin_dns: both are set")
	}
	return nil
}

// hostnamePattern is a DNS name of letters, digits, hyphens and
// underscores (SRV names have "_service._proto" labels), dot-separated, an
// optional trailing dot; deliberately loose.
var hostnamePattern = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$`)

func checkOriginDNS(a *admission) []string {
	o := a.app.OriginDNS
	if o == nil {
		return nil
	}
	var msgs []string
	if !hostnamePattern.MatchString(o.Name) || len(o.Name) > 253 {
		msgs = append(msgs, fmt.Sprintf("origin_dns.name %q is not a valid DNS name", o.Name))
	}
	switch o.Type {
	case "", "A", "AAAA", "SRV":
	default:
		msgs = append(msgs, fmt.Sprintf("origin_dns.type %q must be \"\", A, AAAA or SRV", o.Type))
	}
	if o.Type != "SRV" && a.app.OriginPort == nil {
		msgs = append(msgs, "origin_port is required with origin_dns unless origin_dns.type is SRV")
	}
	// The notes do not publish the ttl range: only what cannot be a
	// duration is refused.
	if o.TTL != nil && *o.TTL < 0 {
		msgs = append(msgs, fmt.Sprintf("origin_dns.ttl %d is out of range", *o.TTL))
	}
	return msgs
}

func checkOriginAddresses(a *admission) []string {
	var msgs []string
	for _, text := range a.app.OriginDirect {
		origin, problem := parseOriginAddress(text)
		switch {
		case problem != "":
			msgs = append(msgs, fmt.Sprintf("Invalid origin address %q: %s", text, problem))
		case slices.ContainsFunc(a.w.deniedOrigins, func(p netip.Prefix) bool { return p.Contains(origin.ip.Unmap()) }):
			msgs = append(msgs, fmt.Sprintf("Invalid origin address %q: the IP is not allowed as an origin", text))
		}
	}
	return msgs
}

// checkPortCounts: an origin range must hold as many ports as the edge
// range (edge port N+k goes to origin port M+k). A single origin port
// behind an edge range is accepted.
func checkPortCounts(a *admission) []string {
	if !a.edgeOK {
		return nil
	}
	var msgs []string
	mismatch := func(what string, r PortRange) {
		if r.isRange() && r.count() != a.edge.ports.count() {
			msgs = append(msgs, fmt.Sprintf("%s has %d ports but protocol %s has %d: the counts must match",
				what, r.count(), a.app.Protocol, a.edge.ports.count()))
		}
	}
	for _, text := range a.app.OriginDirect {
		if origin, problem := parseOriginAddress(text); problem == "" {
			mismatch(fmt.Sprintf("Origin %q", text), origin.ports)
		}
	}
	if a.app.OriginPort != nil {
		mismatch(fmt.Sprintf("origin_port %s", a.app.OriginPort), *a.app.OriginPort)
	}
	return msgs
}

// edgeIPsMode is "dynamic" when edge_ips is unset, Cloudflare's default.
func edgeIPsMode(app *App) string {
	if app.EdgeIPs == nil {
		return "dynamic"
	}
	return app.EdgeIPs.Type
}

func checkDNSTypeMatchesEdgeIPs(a *admission) []string {
	switch mode := edgeIPsMode(a.app); {
	case mode == "dynamic" && a.app.DNS.Type != "CNAME":
		return one("Dynamic edge IPs (the default) need dns.type CNAME, not %s", a.app.DNS.Type)
	case mode == "static" && a.app.DNS.Type != "ADDRESS":
		return one("Static edge IPs need dns.type ADDRESS, not %s", a.app.DNS.Type)
	}
	return nil
}

func checkDNSTypeUnchanged(a *admission) []string {
	if a.old == nil || a.old.app.DNS.Type == a.app.DNS.Type {
		return nil
	}
	return one("dns.type cannot change from %s to %s: recreate the application", a.old.app.DNS.Type, a.app.DNS.Type)
}

func checkVirtualNetworkOriginDNS(a *admission) []string {
	if a.app.VirtualNetworkID == "" || a.app.OriginDNS == nil {
		return nil
	}
	return one("virtual_network_id cannot be used with origin_dns: use origin_direct")
}

func checkVirtualNetworkOneOrigin(a *admission) []string {
	if a.app.VirtualNetworkID == "" || len(a.app.OriginDirect) <= 1 {
		return nil
	}
	return one("virtual_network_id needs exactly one origin address, got %d", len(a.app.OriginDirect))
}

func checkVirtualNetworkNoRange(a *admission) []string {
	if a.app.VirtualNetworkID == "" {
		return nil
	}
	var msgs []string
	for _, text := range a.app.OriginDirect {
		if origin, problem := parseOriginAddress(text); problem == "" && origin.ports.isRange() {
			msgs = append(msgs, fmt.Sprintf("virtual_network_id needs a single origin port, not the range in %q", text))
		}
	}
	if a.app.OriginPort != nil && a.app.OriginPort.isRange() {
		msgs = append(msgs, fmt.Sprintf("virtual_network_id needs a single origin port, not origin_port %s", a.app.OriginPort))
	}
	return msgs
}

var uuidText = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func checkVirtualNetworkUUID(a *admission) []string {
	if a.app.VirtualNetworkID == "" || uuidText.MatchString(a.app.VirtualNetworkID) {
		return nil
	}
	return one("virtual_network_id %q is not a UUID", a.app.VirtualNetworkID)
}

// --- entitlements ---

func checkFTP(a *admission) []string {
	if a.edge.transport == "tcp" && a.edge.ports.contains(21) && !a.acct.entitlements.FTP {
		return one("FTP is not enabled for this account")
	}
	return nil
}

func checkBYOIP(a *admission) []string {
	if edgeIPsMode(a.app) == "static" && !a.acct.entitlements.BYOIP {
		return one("Static edge IPs (BYOIP) are not enabled for this account")
	}
	return nil
}

func checkArgo(a *admission) []string {
	if a.app.ArgoSmartRouting != nil && *a.app.ArgoSmartRouting && !a.acct.entitlements.Argo {
		return one("Argo Smart Routing is not enabled for this account")
	}
	return nil
}

// --- conflicts, permissions and quotas ---

func checkEdgeIPsAuthorized(a *admission) []string {
	if edgeIPsMode(a.app) != "static" {
		return nil
	}
	if !a.tok.ipPrefixes {
		return one("Not authorized to use these edge IPs: the token lacks the Account > IP Prefixes permission")
	}
	for _, text := range a.app.EdgeIPs.IPs {
		ip, err := netip.ParseAddr(text)
		if err != nil || !slices.ContainsFunc(a.acct.prefixes, func(p netip.Prefix) bool { return p.Contains(ip.Unmap()) }) {
			return one("Not authorized to use edge IP %s: it is not in a prefix allocated to the account", text)
		}
	}
	return nil
}

func checkEdgeIPsFree(a *admission) []string {
	if edgeIPsMode(a.app) != "static" {
		return nil
	}
	for _, other := range a.w.apps {
		if other.zoneID == a.zone.id || other.app.EdgeIPs == nil {
			continue
		}
		for _, ip := range a.app.EdgeIPs.IPs {
			if slices.Contains(other.app.EdgeIPs.IPs, ip) {
				return one("Edge IP %s is in use by an application in another zone", ip)
			}
		}
	}
	return nil
}

func checkHostname(a *admission) []string {
	if a.w.inAnotherZone(a.zone, a.app.DNS.Name) {
		return one("The hostname %s already exists in a different zone", a.app.DNS.Name)
	}
	return nil
}

func checkOriginHostname(a *admission) []string {
	if a.app.OriginDNS != nil && a.w.inAnotherZone(a.zone, a.app.OriginDNS.Name) {
		return one("The origin DNS record %s belongs to a different zone", a.app.OriginDNS.Name)
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

func checkVirtualNetworkRoute(a *admission) []string {
	id := a.app.VirtualNetworkID
	if id == "" {
		return nil
	}
	routes, ok := a.acct.virtualNetworks[strings.ToLower(id)]
	if !ok {
		return one("Virtual network %s does not exist", id)
	}
	for _, text := range a.app.OriginDirect {
		origin, problem := parseOriginAddress(text)
		if problem != "" || !slices.ContainsFunc(routes, func(p netip.Prefix) bool { return p.Contains(origin.ip.Unmap()) }) {
			return one("No route for origin %s in virtual network %s", text, id)
		}
	}
	return nil
}

// checkEdgePorts mirrors 13002, listing the refused ports.
func checkEdgePorts(a *admission) []string {
	if a.zone.edgePorts == nil {
		return nil
	}
	allowed := a.zone.edgePorts.tcp
	if a.edge.transport == "udp" {
		allowed = a.zone.edgePorts.udp
	}
	var refused []int
	for port := a.edge.ports.First; port <= a.edge.ports.Last; port++ {
		if !slices.ContainsFunc(allowed, func(r PortRange) bool { return r.contains(port) }) {
			refused = append(refused, port)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return one("Protocol %s is not available for this zone: edge ports %s are not allowed on its plan", a.app.Protocol, describePorts(refused))
}

// checkOneAppPerProtocol mirrors 11034: a Pay-as-you-go account may have one
// application per protocol, across its zones; an update does not count the
// app it replaces.
func checkOneAppPerProtocol(a *admission) []string {
	if a.acct.plan != PlanPayAsYouGo {
		return nil
	}
	for _, other := range a.w.appsOf(func(s *storedApp) bool {
		z := a.w.zones[s.zoneID]
		return s != a.old && z != nil && z.account == a.acct.id
	}) {
		if strings.EqualFold(other.app.Protocol, a.app.Protocol) {
			return one("The account already has an application for protocol %s (%s): Pay-as-you-go allows one per protocol",
				a.app.Protocol, other.app.DNS.Name)
		}
	}
	return nil
}

// checkIPv4Quota mirrors 12005: each app with dynamic IPv4 edge addresses
// takes one of the zone's IPv4 addresses.
func checkIPv4Quota(a *admission) []string {
	z := a.zone
	if z.ipv4Quota == nil || !usesDynamicIPv4(a.app) || (a.old != nil && usesDynamicIPv4(a.old.app)) {
		return nil
	}
	used := len(a.w.appsOf(func(s *storedApp) bool { return s.zoneID == z.id && s != a.old && usesDynamicIPv4(s.app) }))
	if used < *z.ipv4Quota {
		return nil
	}
	return one("The zone has used its IPv4 quota: %d of %d applications with dynamic IPv4 edge addresses", used, *z.ipv4Quota)
}

func usesDynamicIPv4(app *App) bool {
	return edgeIPsMode(app) == "dynamic" && (app.EdgeIPs == nil || app.EdgeIPs.Connectivity != "ipv6")
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
