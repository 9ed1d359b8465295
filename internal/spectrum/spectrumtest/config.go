package spectrumtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Config is the simulated Cloudflare world: accounts with their plans and
// entitlements, API tokens, zones, and the apps that exist at start. It is
// read from YAML or JSON (see docs/simulator.md).
type Config struct {
	Accounts []AccountConfig `json:"accounts"`
	Tokens   []TokenConfig   `json:"tokens"`
	Zones    []ZoneConfig    `json:"zones"`
	// HostnamesInOtherZones exist at Cloudflare in zones outside this
	// config: an app with such a dns.name is refused with 16001, an
	// origin_dns.name with 11050. Names under another configured zone are
	// refused the same way without being listed.
	HostnamesInOtherZones []string `json:"hostnamesInOtherZones,omitempty"`
	// DeniedOrigins are CIDRs whose origin IPs fail Cloudflare's access
	// check: an origin_direct address in them is refused with 11002. The
	// API notes name the check without listing the ranges, so none is
	// denied unless configured.
	DeniedOrigins []string `json:"deniedOrigins,omitempty"`
	// Apps exist when the simulator starts.
	Apps []AppConfig `json:"apps,omitempty"`
	// RateLimit is the per-user request budget reported in the rate-limit
	// headers and, when Enforce is set, enforced with 429s.
	RateLimit RateLimitConfig `json:"rateLimit,omitempty"`
	// Faults are active from the start (see Fault).
	Faults []Fault `json:"faults,omitempty"`
	// Traffic is every app's traffic from its creation, as the analytics
	// endpoints report it, unless a test sets an app's own (SetTraffic);
	// DefaultTraffic() when unset.
	Traffic *Traffic `json:"traffic,omitempty"`
}

// Plans an account can have.
const (
	PlanEnterprise = "enterprise"
	PlanPayAsYouGo = "pay-as-you-go"
)

// AccountConfig is a Cloudflare account.
type AccountConfig struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Plan is "enterprise" or "pay-as-you-go".
	Plan         string       `json:"plan"`
	Entitlements Entitlements `json:"entitlements,omitempty"`
	// BYOIPPrefixes are the CIDRs allocated to the account; static edge IPs
	// must come from them (11019).
	BYOIPPrefixes   []string               `json:"byoipPrefixes,omitempty"`
	VirtualNetworks []VirtualNetworkConfig `json:"virtualNetworks,omitempty"`
}

// Entitlements are the account features Cloudflare's account team enables.
type Entitlements struct {
	// FTP allows tcp/21 apps (11014 without it).
	FTP bool `json:"ftp"`
	// BYOIP allows static edge IPs (11018 without it).
	BYOIP bool `json:"byoip"`
	// Argo allows argo_smart_routing (11026 without it).
	Argo bool `json:"argo"`
}

// VirtualNetworkConfig is a Cloudflare Tunnel virtual network and the CIDRs
// it routes (11044 for an origin IP outside them).
type VirtualNetworkConfig struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Routes []string `json:"routes,omitempty"`
}

// TokenConfig is an API token, scoped to every zone of its account.
type TokenConfig struct {
	Token   string `json:"token"`
	Account string `json:"account"`
	// IPPrefixesPermission is the Account > IP Prefixes permission static
	// edge IPs need (11019 without it).
	IPPrefixesPermission bool `json:"ipPrefixesPermission,omitempty"`
	// Revoked tokens are refused with 9109.
	Revoked bool `json:"revoked,omitempty"`
	// User is whose rate-limit budget the token spends: tokens of one user
	// share one budget. Empty means the token is a user of its own.
	User string `json:"user,omitempty"`
	// WithoutAnalyticsPermission tokens lack the analytics permission
	// (Zone > Analytics > Read): the analytics endpoints answer them 403
	// with code 10000, the apps endpoints as usual.
	WithoutAnalyticsPermission bool `json:"withoutAnalyticsPermission,omitempty"`
}

// ZoneConfig is a zone of an account.
type ZoneConfig struct {
	// ID is 32 lowercase hex characters.
	ID      string `json:"id"`
	Name    string `json:"name"`
	Account string `json:"account"`
	// IPv4Quota is how many apps with dynamic IPv4 edge addresses the zone
	// may have (12005 beyond it); unlimited when unset.
	IPv4Quota *int `json:"ipv4Quota,omitempty"`
	// EdgePorts are the edge ports the zone's plan offers (13002 for
	// others); every port when unset.
	EdgePorts *EdgePortsConfig `json:"edgePorts,omitempty"`
}

// EdgePortsConfig lists allowed edge ports per transport, each "22" or
// "1000-2000". A transport without entries allows no port.
type EdgePortsConfig struct {
	TCP []string `json:"tcp,omitempty"`
	UDP []string `json:"udp,omitempty"`
}

// AppConfig is an app that exists at start.
type AppConfig struct {
	Zone string `json:"zone"`
	// Legacy apps are served in the shapes of apps created years ago
	// (proxy_protocol as a boolean, "ipv4"/"spp" fields, no edge_ips,
	// origin_port as a string, origin_dns without type when it is "").
	Legacy bool `json:"legacy,omitempty"`
	// App is the app in API JSON, in any shape the API has used.
	App App `json:"app"`
}

// RateLimitConfig is Cloudflare's global API limit: Limit requests per
// Window per user, the real API's 1200 per 300s by default.
type RateLimitConfig struct {
	Limit  int      `json:"limit,omitempty"`  // default 1200
	Window Duration `json:"window,omitempty"` // default 300s
	// Enforce answers 429 (code 10100, Retry-After) beyond the budget and
	// then blocks the user for a whole window, as Cloudflare blocks for five
	// minutes; otherwise the budget is only reported in headers.
	Enforce bool `json:"enforce,omitempty"`
	// Headers: "modern" (default): Ratelimit / Ratelimit-Policy; "legacy":
	// X-RateLimit-Limit/-Remaining (and -Reset on a 429); "both".
	Headers string `json:"headers,omitempty"`
	// OtherClients spend part of a user's budget at a steady rate, as the
	// dashboard, Terraform or a second token would.
	OtherClients []OtherClientConfig `json:"otherClients,omitempty"`
}

// OtherClientConfig is a client outside the test that spends a user's
// budget.
type OtherClientConfig struct {
	User              string  `json:"user"`              // whose budget it spends
	RequestsPerSecond float64 `json:"requestsPerSecond"` // steady rate
}

// Duration is a time.Duration written as "300s" or "250ms" (or a number of
// seconds).
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as "300s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "300s" or a number of seconds.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var text string
	if err := json.Unmarshal(data, &text); err != nil {
		seconds, numErr := strconv.ParseFloat(string(data), 64)
		if numErr != nil {
			return fmt.Errorf("duration must be a string such as \"300s\" or a number of seconds, got %s", data)
		}
		d.Duration = time.Duration(seconds * float64(time.Second))
		return nil
	}
	parsed, err := time.ParseDuration(text)
	if err != nil {
		return err
	}
	d.Duration = parsed
	return nil
}

// LoadConfig reads a YAML or JSON config file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig reads a YAML or JSON config, rejecting unknown fields so that
// a typo does not silently drop a setting.
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

var (
	zoneIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	uuidPattern   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// Validate reports every inconsistency in the config.
func (c *Config) Validate() error {
	var problems []error
	problem := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	accounts := map[string]bool{}
	for i, a := range c.Accounts {
		switch {
		case a.ID == "":
			problem("accounts[%d]: id is required", i)
		case accounts[a.ID]:
			problem("accounts[%d]: duplicate id %q", i, a.ID)
		}
		accounts[a.ID] = true
		if a.Plan != PlanEnterprise && a.Plan != PlanPayAsYouGo {
			problem("accounts[%d]: plan must be %q or %q, not %q", i, PlanEnterprise, PlanPayAsYouGo, a.Plan)
		}
		for _, p := range a.BYOIPPrefixes {
			if _, err := netip.ParsePrefix(p); err != nil {
				problem("accounts[%d]: byoipPrefixes: %v", i, err)
			}
		}
		for j, vn := range a.VirtualNetworks {
			if !uuidPattern.MatchString(vn.ID) {
				problem("accounts[%d].virtualNetworks[%d]: id %q is not a UUID", i, j, vn.ID)
			}
			for _, r := range vn.Routes {
				if _, err := netip.ParsePrefix(r); err != nil {
					problem("accounts[%d].virtualNetworks[%d]: routes: %v", i, j, err)
				}
			}
		}
	}
	tokens := map[string]bool{}
	for i, t := range c.Tokens {
		switch {
		case t.Token == "":
			problem("tokens[%d]: token is required", i)
		case tokens[t.Token]:
			problem("tokens[%d]: duplicate token", i)
		}
		tokens[t.Token] = true
		if !accounts[t.Account] {
			problem("tokens[%d]: unknown account %q", i, t.Account)
		}
	}
	zones := map[string]bool{}
	for i, z := range c.Zones {
		switch {
		case !zoneIDPattern.MatchString(z.ID):
			problem("zones[%d]: id %q must be 32 lowercase hex characters", i, z.ID)
		case zones[z.ID]:
			problem("zones[%d]: duplicate id %q", i, z.ID)
		}
		zones[z.ID] = true
		if z.Name == "" {
			problem("zones[%d]: name is required", i)
		}
		if !accounts[z.Account] {
			problem("zones[%d]: unknown account %q", i, z.Account)
		}
		if z.EdgePorts != nil {
			for _, ports := range append(append([]string{}, z.EdgePorts.TCP...), z.EdgePorts.UDP...) {
				if _, ok := parsePortRange(ports); !ok {
					problem("zones[%d].edgePorts: %q is not a port (1-65535) or a range START-END", i, ports)
				}
			}
		}
	}
	for i, a := range c.Apps {
		if !zones[a.Zone] {
			problem("apps[%d]: unknown zone %q", i, a.Zone)
		}
		if err := a.App.wellFormed(); err != nil {
			problem("apps[%d]: %v", i, err)
		}
	}
	for i, f := range c.Faults {
		if err := f.validate(); err != nil {
			problem("faults[%d]: %v", i, err)
		}
	}
	if c.RateLimit.Limit < 0 || c.RateLimit.Window.Duration < 0 {
		problem("rateLimit: limit and window must not be negative")
	}
	switch c.RateLimit.Headers {
	case "", HeadersModern, HeadersLegacy, HeadersBoth:
	default:
		problem("rateLimit: headers must be %q, %q or %q, not %q", HeadersModern, HeadersLegacy, HeadersBoth, c.RateLimit.Headers)
	}
	for i, o := range c.RateLimit.OtherClients {
		if o.User == "" || o.RequestsPerSecond < 0 {
			problem("rateLimit.otherClients[%d]: needs a user and a requestsPerSecond of at least 0", i)
		}
	}
	if c.Traffic != nil {
		if err := c.Traffic.validate(); err != nil {
			problem("traffic: %v", err)
		}
	}
	for _, p := range c.DeniedOrigins {
		if _, err := netip.ParsePrefix(p); err != nil {
			problem("deniedOrigins: %v", err)
		}
	}
	return errors.Join(problems...)
}

// hostnameUnder reports whether name is zone or inside it.
func hostnameUnder(name, zone string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	zone = strings.ToLower(strings.TrimSuffix(zone, "."))
	return name == zone || strings.HasSuffix(name, "."+zone)
}
