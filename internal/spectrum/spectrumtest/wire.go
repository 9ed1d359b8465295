package spectrumtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The simulator's own model of a Spectrum app on the wire. It is written
// from the API notes (docs/simulator.md, "Sources") and shares no code with
// the operator's client or its rules: a stand-in that decoded bodies with the
// client's codec, or judged them with the webhook's rules, could only agree
// with the code under test.

// App is a Spectrum application as Cloudflare stores it (API notes, "The
// application object"): what the simulator holds, what its inspection API
// returns and what tests hand to PutApp and ModifyApp. Optional fields are
// nil or empty when absent, so that an app stored out of band comes back
// exactly as it was put; create and update fill in Cloudflare's defaults.
// In JSON it is the API's object in the current shape (MarshalJSON), and it
// reads any shape Cloudflare has used (UnmarshalJSON).
type App struct {
	ID         string
	CreatedOn  time.Time
	ModifiedOn time.Time

	// Protocol is "tcp/22", "udp/1000-2000" or a named protocol ("ssh").
	Protocol string
	DNS      DNS
	// OriginDirect are "tcp://IP:PORT" URIs, IPv6 in brackets.
	OriginDirect []string
	OriginDNS    *OriginDNS
	OriginPort   *PortRange
	IPFirewall   *bool
	// ProxyProtocol is "off", "v1", "v2" or "simple".
	ProxyProtocol string
	// TLS is "off", "flexible", "full" or "strict".
	TLS string
	// TrafficType is "direct", "http" or "https".
	TrafficType      string
	EdgeIPs          *EdgeIPs
	ArgoSmartRouting *bool
	VirtualNetworkID string
}

// DNS is the app's hostname: Type "CNAME" or "ADDRESS".
type DNS struct {
	Type, Name string
}

// OriginDNS is an origin reached by name: Type "", "A", "AAAA" or "SRV".
type OriginDNS struct {
	Name string
	// TTL is absent unless the client sent one.
	TTL  *int64
	Type string
}

// EdgeIPs is the edge address mode: Type "dynamic" with Connectivity
// ("all", "ipv4", "ipv6"), or "static" with IPs.
type EdgeIPs struct {
	Type, Connectivity string
	IPs                []string
}

// clone deep-copies an app.
func (a *App) clone() *App {
	c := *a
	c.OriginDirect = append([]string(nil), a.OriginDirect...)
	if a.OriginDNS != nil {
		o := *a.OriginDNS
		if o.TTL != nil {
			ttl := *o.TTL
			o.TTL = &ttl
		}
		c.OriginDNS = &o
	}
	if a.OriginPort != nil {
		p := *a.OriginPort
		c.OriginPort = &p
	}
	if a.IPFirewall != nil {
		v := *a.IPFirewall
		c.IPFirewall = &v
	}
	if a.ArgoSmartRouting != nil {
		v := *a.ArgoSmartRouting
		c.ArgoSmartRouting = &v
	}
	if a.EdgeIPs != nil {
		e := *a.EdgeIPs
		e.IPs = append([]string(nil), a.EdgeIPs.IPs...)
		c.EdgeIPs = &e
	}
	return &c
}

// withDefaults is the app as Cloudflare stores a create or a whole-config
// update: every optional field the body left out takes its default (API
// notes, update row: "treat an optional field the body leaves out as set to
// its default, never as kept"). origin_dns.ttl stays absent when not sent.
func (a *App) withDefaults() *App {
	c := a.clone()
	if c.ProxyProtocol == "" {
		c.ProxyProtocol = "off"
	}
	if c.TLS == "" {
		c.TLS = "off"
	}
	if c.TrafficType == "" {
		c.TrafficType = "direct"
	}
	if c.IPFirewall == nil {
		c.IPFirewall = new(bool)
	}
	if c.ArgoSmartRouting == nil {
		c.ArgoSmartRouting = new(bool)
	}
	if c.EdgeIPs == nil && strings.EqualFold(c.DNS.Type, "CNAME") {
		c.EdgeIPs = &EdgeIPs{Type: "dynamic", Connectivity: "all"}
	}
	if c.EdgeIPs != nil && c.EdgeIPs.Type == "dynamic" && c.EdgeIPs.Connectivity == "" {
		c.EdgeIPs.Connectivity = "all"
	}
	return c
}

// render is the app as the API answers it: the current shapes, or, for an
// app created years ago (legacy), the old ones seen in the official SDKs'
// fixtures: "ipv4": true, "spp", proxy_protocol as a boolean, no edge_ips,
// origin_port always a string, origin_dns without "type" when it is "".
func (a *App) render(legacy bool) map[string]any {
	fields := map[string]any{
		"protocol": a.Protocol,
		"dns":      map[string]any{"type": a.DNS.Type, "name": a.DNS.Name},
	}
	if a.ID != "" {
		fields["id"] = a.ID
	}
	if !a.CreatedOn.IsZero() {
		fields["created_on"] = a.CreatedOn.UTC().Format(time.RFC3339Nano)
	}
	if !a.ModifiedOn.IsZero() {
		fields["modified_on"] = a.ModifiedOn.UTC().Format(time.RFC3339Nano)
	}
	if len(a.OriginDirect) > 0 {
		fields["origin_direct"] = append([]string(nil), a.OriginDirect...)
	}
	if o := a.OriginDNS; o != nil {
		origin := map[string]any{"name": o.Name, "type": o.Type}
		if legacy && o.Type == "" {
			delete(origin, "type")
		}
		if o.TTL != nil {
			origin["ttl"] = *o.TTL
		}
		fields["origin_dns"] = origin
	}
	if p := a.OriginPort; p != nil {
		if legacy || p.isRange() {
			fields["origin_port"] = p.String()
		} else {
			fields["origin_port"] = p.First
		}
	}
	if a.IPFirewall != nil {
		fields["ip_firewall"] = *a.IPFirewall
	}
	if a.ProxyProtocol != "" {
		fields["proxy_protocol"] = a.ProxyProtocol
	}
	if a.TLS != "" {
		fields["tls"] = a.TLS
	}
	if a.TrafficType != "" {
		fields["traffic_type"] = a.TrafficType
	}
	if e := a.EdgeIPs; e != nil {
		edge := map[string]any{"type": e.Type}
		if e.Connectivity != "" {
			edge["connectivity"] = e.Connectivity
		}
		if len(e.IPs) > 0 {
			edge["ips"] = append([]string(nil), e.IPs...)
		}
		fields["edge_ips"] = edge
	}
	if a.ArgoSmartRouting != nil {
		fields["argo_smart_routing"] = *a.ArgoSmartRouting
	}
	if a.VirtualNetworkID != "" {
		fields["virtual_network_id"] = a.VirtualNetworkID
	}
	if legacy {
		fields["ipv4"] = true
		fields["spp"] = false
		switch a.ProxyProtocol {
		case "v1":
			fields["proxy_protocol"] = true
		case "", "off":
			fields["proxy_protocol"] = false
		}
		delete(fields, "edge_ips")
	}
	return fields
}

// MarshalJSON writes the app as the API answers it, in the current shape.
func (a App) MarshalJSON() ([]byte, error) {
	return json.Marshal(a.render(false))
}

// UnmarshalJSON reads an app in any shape the API has used, with the
// simulator's own decoder.
func (a *App) UnmarshalJSON(data []byte) error {
	app, _, err := decodeApp(data)
	if err != nil {
		return err
	}
	*a = *app
	return nil
}

// wellFormed reports what the API's decoder would refuse in app (a port out
// of range, say): apps put out of band skip admission, not the wire's types.
func (a *App) wellFormed() error {
	if p := a.OriginPort; p != nil && p.Last < p.First {
		return fmt.Errorf("origin_port %d-%d ends before it starts", p.First, p.Last)
	}
	data, err := json.Marshal(a.render(false))
	if err != nil {
		return err
	}
	_, _, err = decodeApp(data)
	return err
}

// bodyError is a body that is not an app: 10001.
type bodyError struct{ msg string }

func (e *bodyError) Error() string { return e.msg }

func malformed(format string, args ...any) error {
	return &bodyError{msg: fmt.Sprintf(format, args...)}
}

// decodeApp reads an app from API JSON, in any shape Cloudflare has used:
// origin_port as a number or a string, proxy_protocol as a string or the
// legacy boolean. Unknown fields are ignored (Enterprise accounts silently
// ignore them; the plan check looks at the keys itself). It only checks JSON
// types: what the values mean is the admission table's business. null is
// the same as leaving a field out.
func decodeApp(data []byte) (*App, map[string]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, malformed("Malformed request body: expected a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return nil, nil, malformed("Malformed request body: %v", err)
	}
	app := &App{}
	d := decoder{fields: fields}
	d.str("id", &app.ID)
	d.time("created_on", &app.CreatedOn)
	d.time("modified_on", &app.ModifiedOn)
	d.str("protocol", &app.Protocol)
	if dns, ok := d.object("dns"); ok {
		sub := decoder{fields: dns, prefix: "dns."}
		sub.str("type", &app.DNS.Type)
		sub.str("name", &app.DNS.Name)
		d.absorb(sub)
	}
	d.strs("origin_direct", &app.OriginDirect)
	if origin, ok := d.object("origin_dns"); ok {
		app.OriginDNS = &OriginDNS{}
		sub := decoder{fields: origin, prefix: "origin_dns."}
		sub.str("name", &app.OriginDNS.Name)
		sub.str("type", &app.OriginDNS.Type)
		if raw, ok := sub.present("ttl"); ok {
			ttl, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				sub.fail("ttl", "an integer number of seconds", raw)
			} else {
				app.OriginDNS.TTL = &ttl
			}
		}
		d.absorb(sub)
	}
	if raw, ok := d.present("origin_port"); ok {
		p, err := decodeOriginPort(raw)
		if err != nil {
			d.errs = append(d.errs, err.Error())
		} else {
			app.OriginPort = &p
		}
	}
	d.boolean("ip_firewall", &app.IPFirewall)
	if raw, ok := d.present("proxy_protocol"); ok {
		switch string(raw) {
		case "true":
			app.ProxyProtocol = "v1"
		case "false":
			app.ProxyProtocol = "off"
		default:
			d.str("proxy_protocol", &app.ProxyProtocol)
		}
	}
	d.str("tls", &app.TLS)
	d.str("traffic_type", &app.TrafficType)
	if edge, ok := d.object("edge_ips"); ok {
		app.EdgeIPs = &EdgeIPs{}
		sub := decoder{fields: edge, prefix: "edge_ips."}
		sub.str("type", &app.EdgeIPs.Type)
		sub.str("connectivity", &app.EdgeIPs.Connectivity)
		sub.strs("ips", &app.EdgeIPs.IPs)
		d.absorb(sub)
	}
	d.boolean("argo_smart_routing", &app.ArgoSmartRouting)
	d.str("virtual_network_id", &app.VirtualNetworkID)
	if len(d.errs) > 0 {
		return nil, nil, malformed("Malformed request body: %s", strings.Join(d.errs, "; "))
	}
	return app, fields, nil
}

// decoder reads typed fields out of a JSON object, collecting type errors.
type decoder struct {
	fields map[string]json.RawMessage
	prefix string
	errs   []string
}

// present returns a field's JSON unless it is absent or null.
func (d *decoder) present(name string) (json.RawMessage, bool) {
	raw, ok := d.fields[name]
	if !ok {
		return nil, false
	}
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

func (d *decoder) fail(name, want string, raw json.RawMessage) {
	d.errs = append(d.errs, fmt.Sprintf("%s%s must be %s, got %.40s", d.prefix, name, want, raw))
}

func (d *decoder) absorb(sub decoder) { d.errs = append(d.errs, sub.errs...) }

func (d *decoder) str(name string, into *string) {
	if raw, ok := d.present(name); ok && json.Unmarshal(raw, into) != nil {
		d.fail(name, "a string", raw)
	}
}

func (d *decoder) strs(name string, into *[]string) {
	if raw, ok := d.present(name); ok && json.Unmarshal(raw, into) != nil {
		d.fail(name, "a list of strings", raw)
	}
}

func (d *decoder) boolean(name string, into **bool) {
	raw, ok := d.present(name)
	if !ok {
		return
	}
	var v bool
	if json.Unmarshal(raw, &v) != nil {
		d.fail(name, "a boolean", raw)
		return
	}
	*into = &v
}

func (d *decoder) time(name string, into *time.Time) {
	var text string
	d.str(name, &text)
	if text == "" {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		d.errs = append(d.errs, fmt.Sprintf("%s%s must be an RFC 3339 time, got %q", d.prefix, name, text))
		return
	}
	*into = t
}

func (d *decoder) object(name string) (map[string]json.RawMessage, bool) {
	raw, ok := d.present(name)
	if !ok {
		return nil, false
	}
	var fields map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
		d.fail(name, "an object", raw)
		return nil, false
	}
	return fields, true
}

// decodeOriginPort reads origin_port: a number (22) or a string holding a
// port or a range ("22", "3000-4000"), the shapes the API notes list.
func decodeOriginPort(raw json.RawMessage) (PortRange, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return PortRange{}, fmt.Errorf("origin_port must be a number or a string, got %.40s", raw)
		}
		r, ok := parsePortRange(text)
		if !ok {
			return PortRange{}, fmt.Errorf("origin_port %q is not a port (1-65535) or a range START-END", text)
		}
		return r, nil
	}
	port, err := strconv.Atoi(string(raw))
	if err != nil || port < 1 || port > 65535 {
		return PortRange{}, fmt.Errorf("origin_port must be a port (1-65535) or a string range, got %.40s", raw)
	}
	return PortRange{First: port, Last: port}, nil
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct{ First, Last int }

// Port is a single origin port, for App.OriginPort.
func Port(port int) *PortRange { return &PortRange{First: port, Last: port} }

// Ports is an origin port range, for App.OriginPort.
func Ports(first, last int) *PortRange { return &PortRange{First: first, Last: last} }

func (r PortRange) contains(port int) bool { return r.First <= port && port <= r.Last }
func (r PortRange) isRange() bool          { return r.Last > r.First }
func (r PortRange) count() int             { return r.Last - r.First + 1 }

// String writes "22" or "3000-4000".
func (r PortRange) String() string {
	if r.isRange() {
		return fmt.Sprintf("%d-%d", r.First, r.Last)
	}
	return strconv.Itoa(r.First)
}

// parsePortRange reads "22" or "3000-4000" (ports 1-65535, START <= END).
func parsePortRange(text string) (PortRange, bool) {
	firstText, lastText, isRange := strings.Cut(strings.TrimSpace(text), "-")
	first, ok := parsePortNumber(firstText)
	if !ok {
		return PortRange{}, false
	}
	if !isRange {
		return PortRange{First: first, Last: first}, true
	}
	last, ok := parsePortNumber(lastText)
	if !ok || last < first {
		return PortRange{}, false
	}
	return PortRange{First: first, Last: last}, true
}

func parsePortNumber(text string) (int, bool) {
	if text == "" || len(text) > 5 || strings.Trim(text, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(text)
	return n, err == nil && n >= 1 && n <= 65535
}

// edgeProtocol is a parsed protocol: a transport and its edge ports.
type edgeProtocol struct {
	transport string
	ports     PortRange
}

// namedProtocols are the protocol names Cloudflare accepts besides
// tcp|udp/PORT and reads back unchanged (API notes, protocol row: its
// Terraform provider's acceptance tests create "ssh" and "rdp" apps against
// the live API; the plan pages name Minecraft beside them). For edge-port
// checks a name counts as its port.
var namedProtocols = map[string]edgeProtocol{
	"ssh":       {transport: "tcp", ports: PortRange{First: 22, Last: 22}},
	"rdp":       {transport: "tcp", ports: PortRange{First: 3389, Last: 3389}},
	"minecraft": {transport: "tcp", ports: PortRange{First: 25565, Last: 25565}},
}

// parseProtocol reads "tcp/22", "udp/1000-2000" or a named protocol.
func parseProtocol(text string) (edgeProtocol, bool) {
	lower := strings.ToLower(strings.TrimSpace(text))
	if named, ok := namedProtocols[lower]; ok {
		return named, true
	}
	transport, ports, ok := strings.Cut(lower, "/")
	if !ok || (transport != "tcp" && transport != "udp") {
		return edgeProtocol{}, false
	}
	r, ok := parsePortRange(ports)
	return edgeProtocol{transport: transport, ports: r}, ok
}

// originAddress is a parsed origin_direct entry.
type originAddress struct {
	scheme string
	ip     netip.Addr
	ports  PortRange
}

// parseOriginAddress reads "tcp://IP:PORT", "udp://IP:PORT" or
// "tcp://IP:START-END", with an IPv6 address in brackets (API notes,
// origin_direct row). The scheme need not match the protocol's: the notes
// do not say Cloudflare refuses that.
func parseOriginAddress(text string) (originAddress, string) {
	scheme, rest, ok := strings.Cut(text, "://")
	scheme = strings.ToLower(scheme)
	if !ok || (scheme != "tcp" && scheme != "udp") {
		return originAddress{}, "must be tcp://IP:PORT or udp://IP:PORT"
	}
	var host, ports string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 || !strings.HasPrefix(rest[end+1:], ":") {
			return originAddress{}, "must be " + scheme + "://[IPv6]:PORT"
		}
		host, ports = rest[1:end], rest[end+2:]
	} else {
		i := strings.LastIndex(rest, ":")
		if i < 0 {
			return originAddress{}, "needs a port: " + scheme + "://IP:PORT"
		}
		host, ports = rest[:i], rest[i+1:]
		if strings.Contains(host, ":") {
			return originAddress{}, "an IPv6 address must be in brackets: " + scheme + "://[IPv6]:PORT"
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return originAddress{}, fmt.Sprintf("%q is not an IP address", host)
	}
	if strings.HasPrefix(rest, "[") != ip.Is6() {
		return originAddress{}, fmt.Sprintf("%q is not an IP address in the right form", host)
	}
	r, ok := parsePortRange(ports)
	if !ok {
		return originAddress{}, fmt.Sprintf("%q is not a port (1-65535) or a range START-END", ports)
	}
	return originAddress{scheme: scheme, ip: ip, ports: r}, ""
}
