package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

const (
	schemeTCP = "tcp"
	schemeUDP = "udp"
)

// portRange is a single port (First == Last) or an inclusive range.
type portRange struct {
	First, Last int
}

// Count is how many ports the range holds.
func (r portRange) Count() int { return r.Last - r.First + 1 }

// IsRange is true for more than one port. "22-22" is a single port: it maps
// one edge port to one origin port like "22" does.
func (r portRange) IsRange() bool { return r.Last != r.First }

func (r portRange) String() string {
	if r.IsRange() {
		return fmt.Sprintf("%d-%d", r.First, r.Last)
	}
	return fmt.Sprintf("%d", r.First)
}

// parsePort parses a decimal port 1-65535. strconv.Atoi is not used on its
// own because it accepts signs ("+22"), which Cloudflare's parser does not.
func parsePort(s string) (int, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n >= 1 && n <= 65535
}

// parsePortRange parses "PORT" or "START-END". The error string is a
// sentence fragment for a field error's Detail.
func parsePortRange(s string) (portRange, string) {
	first, last, isRange := strings.Cut(s, "-")
	a, ok := parsePort(first)
	if !ok {
		return portRange{}, fmt.Sprintf("port %q must be a number from 1 to 65535", first)
	}
	if !isRange {
		return portRange{First: a, Last: a}, ""
	}
	b, ok := parsePort(last)
	if !ok {
		return portRange{}, fmt.Sprintf("port %q must be a number from 1 to 65535", last)
	}
	if a > b {
		return portRange{}, fmt.Sprintf("port range start %d is greater than its end %d", a, b)
	}
	return portRange{First: a, Last: b}, ""
}

// ParsePortRange parses "PORT" or "START-END" (ports 1-65535, START no
// greater than END). It is the operator's one port parser: the rules use it
// on specs and the client on what Cloudflare returns. (The simulator keeps
// a parser of its own: it must not share the operator's beliefs.)
func ParsePortRange(s string) (first, last int, err error) {
	r, msg := parsePortRange(strings.TrimSpace(s))
	if msg != "" {
		return 0, 0, errors.New(msg)
	}
	return r.First, r.Last, nil
}

// protocol is a parsed spec.protocol: "tcp/22", "udp/1000-2000", or a named
// protocol such as "ssh", which stands for its port.
type protocol struct {
	Scheme string
	Ports  portRange
	// Name is the protocol's name when it was given by name ("ssh").
	Name string
}

// namedProtocols are the protocols Cloudflare takes by name and reads back
// unchanged. Source: Cloudflare's Terraform provider acceptance tests (run
// against the live API) create apps with protocol "ssh" (origin port 22)
// and "rdp" (3389); Spectrum's settings-by-plan page names Minecraft
// (25565) beside them. For adoption and for every rule about ports, a name
// is the same as its port.
var namedProtocols = map[string]protocol{
	"ssh":       {Scheme: schemeTCP, Ports: portRange{First: 22, Last: 22}, Name: "ssh"},
	"rdp":       {Scheme: schemeTCP, Ports: portRange{First: 3389, Last: 3389}, Name: "rdp"},
	"minecraft": {Scheme: schemeTCP, Ports: portRange{First: 25565, Last: 25565}, Name: "minecraft"},
}

// isProtocolName is what a protocol name may look like; names outside
// namedProtocols are let through with a warning (see validateProtocol).
func isProtocolName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z') && !(i > 0 && c == '-') {
			return false
		}
	}
	return true
}

func parseProtocol(s string) (protocol, string) {
	if named, ok := namedProtocols[strings.ToLower(s)]; ok {
		return named, ""
	}
	scheme, ports, ok := strings.Cut(s, "/")
	if !ok || (scheme != schemeTCP && scheme != schemeUDP) {
		return protocol{}, "must be tcp/PORT, udp/PORT, a port range such as tcp/1000-2000, or a named protocol (ssh, rdp, minecraft)"
	}
	r, msg := parsePortRange(ports)
	if msg != "" {
		return protocol{}, msg
	}
	return protocol{Scheme: scheme, Ports: r}, ""
}

// CanonicalProtocol returns protocol in the form Cloudflare's ports
// mean it: "ssh" is "tcp/22", "TCP/22" is "tcp/22", "tcp/22-22" is
// "tcp/22". A protocol that does not parse comes back lower-cased, so
// that two spellings of the same unknown name still match. A protocol
// already in that form comes back as it is, not as a copy: the manager
// keys every app it holds by its canonical protocol.
func CanonicalProtocol(s string) string {
	p, msg := parseProtocol(strings.ToLower(strings.TrimSpace(s)))
	if msg != "" {
		return strings.ToLower(strings.TrimSpace(s))
	}
	if canonical := p.Scheme + "/" + p.Ports.String(); canonical != s {
		return canonical
	}
	return s
}

// origin is a parsed originDirect entry: "tcp://IP:PORT[-END]".
type origin struct {
	Scheme string
	Addr   netip.Addr
	Ports  portRange
}

// parseOrigin parses one originDirect URI the way Cloudflare's origin_direct
// takes it: a scheme, an IP literal (origin_direct takes no hostnames; that is
// what originDNS is for), IPv6 in brackets, and a port or port range.
func parseOrigin(s string) (origin, string) {
	const form = "must look like tcp://IP:PORT, udp://IP:PORT or tcp://IP:START-END"
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return origin{}, form
	}
	if scheme != schemeTCP && scheme != schemeUDP {
		return origin{}, fmt.Sprintf("scheme %q must be tcp or udp", scheme)
	}

	var host, ports string
	bracketed := strings.HasPrefix(rest, "[")
	if bracketed {
		end := strings.IndexByte(rest, ']')
		if end < 0 || !strings.HasPrefix(rest[end+1:], ":") {
			return origin{}, form
		}
		host, ports = rest[1:end], rest[end+2:]
	} else {
		if strings.Count(rest, ":") > 1 {
			return origin{}, unbracketedIPv6(scheme, rest)
		}
		host, ports, ok = strings.Cut(rest, ":")
		if !ok {
			return origin{}, form + " (the port is missing)"
		}
	}

	addr, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return origin{}, fmt.Sprintf("host %q must be an IP address; use originDNS to reach an origin by name", host)
	case addr.Zone() != "":
		return origin{}, fmt.Sprintf("IP %q must not carry an IPv6 zone", host)
	case bracketed && !addr.Is6():
		return origin{}, "only IPv6 addresses go in brackets"
	}

	r, msg := parsePortRange(ports)
	if msg != "" {
		return origin{}, msg
	}
	return origin{Scheme: scheme, Addr: addr, Ports: r}, ""
}

// unbracketedIPv6 explains an IPv6 origin written without brackets and, when
// the last colon plausibly starts the port, shows the bracketed form.
func unbracketedIPv6(scheme, rest string) string {
	const msg = "IPv6 origin must be in brackets"
	i := strings.LastIndexByte(rest, ':')
	host, ports := rest[:i], rest[i+1:]
	if addr, err := netip.ParseAddr(host); err == nil && addr.Is6() {
		if _, bad := parsePortRange(ports); bad == "" {
			return fmt.Sprintf("%s, e.g. %s://[%s]:%s", msg, scheme, host, ports)
		}
	}
	return msg + ", e.g. tcp://[2001:db8::1]:443"
}
