package spectrumtest

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// StoredApp is an app as the simulator holds it.
type StoredApp struct {
	ZoneID    string `json:"zoneID"`
	AccountID string `json:"accountID"`
	// Legacy apps are served in the old response shapes.
	Legacy bool         `json:"legacy,omitempty"`
	App    spectrum.App `json:"app"`
}

// world is the simulated Cloudflare state. The simulator's lock guards it.
type world struct {
	accounts              map[string]*account
	tokens                map[string]*token
	zones                 map[string]*zone
	apps                  map[string]*storedApp
	hostnamesInOtherZones []string
	// nextSeq orders apps by creation, the API's default list order.
	nextSeq int64
}

type account struct {
	id, name, plan  string
	entitlements    Entitlements
	prefixes        []netip.Prefix
	virtualNetworks map[string][]netip.Prefix
}

type token struct {
	account     string
	ipPrefixes  bool
	revoked     bool
	windowStart time.Time
	used        int
}

type zone struct {
	id, name, account string
	ipv4Quota         *int
	edgePorts         *EdgePortsConfig
}

type storedApp struct {
	zoneID string
	app    spectrum.App
	legacy bool
	seq    int64
}

// newWorld builds the state a valid config describes.
func newWorld(cfg Config) *world {
	w := &world{
		accounts:              map[string]*account{},
		tokens:                map[string]*token{},
		zones:                 map[string]*zone{},
		apps:                  map[string]*storedApp{},
		hostnamesInOtherZones: slices.Clone(cfg.HostnamesInOtherZones),
	}
	for _, a := range cfg.Accounts {
		acct := &account{id: a.ID, name: a.Name, plan: a.Plan, entitlements: a.Entitlements,
			virtualNetworks: map[string][]netip.Prefix{}}
		for _, p := range a.BYOIPPrefixes {
			acct.prefixes = append(acct.prefixes, netip.MustParsePrefix(p).Masked())
		}
		for _, vn := range a.VirtualNetworks {
			routes := []netip.Prefix{}
			for _, r := range vn.Routes {
				routes = append(routes, netip.MustParsePrefix(r).Masked())
			}
			acct.virtualNetworks[strings.ToLower(vn.ID)] = routes
		}
		w.accounts[a.ID] = acct
	}
	for _, t := range cfg.Tokens {
		w.tokens[t.Token] = &token{account: t.Account, ipPrefixes: t.IPPrefixesPermission, revoked: t.Revoked}
	}
	for _, z := range cfg.Zones {
		w.zones[z.ID] = &zone{id: z.ID, name: z.Name, account: z.Account, ipv4Quota: z.IPv4Quota, edgePorts: z.EdgePorts}
	}
	for _, a := range cfg.Apps {
		w.put(a.Zone, a.App, a.Legacy)
	}
	return w
}

// put stores app as is, without any check: apps that exist at start and
// out-of-band changes.
func (w *world) put(zoneID string, app spectrum.App, legacy bool) StoredApp {
	now := time.Now().UTC()
	if app.ID == "" {
		app.ID = newID()
	}
	stored, exists := w.apps[app.ID]
	if !exists {
		w.nextSeq++
		stored = &storedApp{seq: w.nextSeq}
		w.apps[app.ID] = stored
	}
	if app.CreatedOn == nil {
		app.CreatedOn = &now
		if exists {
			app.CreatedOn = stored.app.CreatedOn
		}
	}
	if app.ModifiedOn == nil {
		app.ModifiedOn = &now
	}
	stored.zoneID, stored.app, stored.legacy = zoneID, app, legacy
	return w.export(stored)
}

// create stores an admitted app as Cloudflare would: a new id, timestamps,
// and its defaults filled in.
func (w *world) create(zoneID string, app spectrum.App) StoredApp {
	app = withDefaults(app)
	app.ID, app.CreatedOn, app.ModifiedOn = "", nil, nil
	return w.put(zoneID, app, false)
}

// update replaces an admitted app's configuration; unsent fields fall back
// to their defaults, as with a PUT at Cloudflare.
func (w *world) update(old *storedApp, app spectrum.App) StoredApp {
	app = withDefaults(app)
	now := time.Now().UTC()
	app.ID, app.CreatedOn, app.ModifiedOn = old.app.ID, old.app.CreatedOn, &now
	old.app, old.legacy = app, false
	return w.export(old)
}

// app returns an app of the zone, or nil.
func (w *world) app(zoneID, appID string) *storedApp {
	stored := w.apps[appID]
	if stored == nil || stored.zoneID != zoneID {
		return nil
	}
	return stored
}

// appsOf returns the apps for which keep is true, in creation order.
func (w *world) appsOf(keep func(*storedApp) bool) []*storedApp {
	var apps []*storedApp
	for _, a := range w.apps {
		if keep(a) {
			apps = append(apps, a)
		}
	}
	slices.SortFunc(apps, func(a, b *storedApp) int { return cmp.Compare(a.seq, b.seq) })
	return apps
}

func (w *world) export(stored *storedApp) StoredApp {
	accountID := ""
	if z := w.zones[stored.zoneID]; z != nil {
		accountID = z.account
	}
	return StoredApp{ZoneID: stored.zoneID, AccountID: accountID, Legacy: stored.legacy, App: cloneApp(stored.app)}
}

// withDefaults fills in what Cloudflare returns for fields an app left
// unset.
func withDefaults(app spectrum.App) spectrum.App {
	if app.ProxyProtocol == "" {
		app.ProxyProtocol = "off"
	}
	if app.TLS == "" {
		app.TLS = "off"
	}
	if app.TrafficType == "" {
		app.TrafficType = "direct"
	}
	if app.IPFirewall == nil {
		app.IPFirewall = new(bool)
	}
	if app.ArgoSmartRouting == nil {
		app.ArgoSmartRouting = new(bool)
	}
	if app.EdgeIPs == nil && app.DNS.Type == "CNAME" {
		app.EdgeIPs = &spectrum.EdgeIPs{Type: "dynamic", Connectivity: "all"}
	}
	if app.EdgeIPs != nil && app.EdgeIPs.Type == "dynamic" && app.EdgeIPs.Connectivity == "" {
		app.EdgeIPs.Connectivity = "all"
	}
	return app
}

// render is the app as the API answers it.
func render(stored *storedApp) any {
	if !stored.legacy {
		return stored.app
	}
	return legacyShape(stored.app)
}

// legacyShape is an app as Cloudflare returns one created years ago.
func legacyShape(app spectrum.App) map[string]any {
	data, err := json.Marshal(app)
	if err != nil {
		panic(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		panic(err)
	}
	fields["ipv4"] = true
	fields["spp"] = false
	switch app.ProxyProtocol {
	case "v1":
		fields["proxy_protocol"] = true
	case "", "off":
		fields["proxy_protocol"] = false
	}
	delete(fields, "edge_ips")
	return fields
}

// cloneApp deep-copies an app so callers cannot change stored state.
func cloneApp(app spectrum.App) spectrum.App {
	data, err := json.Marshal(app)
	if err != nil {
		panic(err)
	}
	var clone spectrum.App
	if err := json.Unmarshal(data, &clone); err != nil {
		panic(err)
	}
	return clone
}

func newID() string {
	return randomHex(16)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
