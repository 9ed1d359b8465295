package spectrumtest

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// StoredApp is an app as the simulator holds it, for tests to inspect.
type StoredApp struct {
	ZoneID    string `json:"zoneID"`
	AccountID string `json:"accountID"`
	// Legacy apps are served in the old response shapes.
	Legacy bool `json:"legacy,omitempty"`
	// App is a copy of the app; in JSON, the current API shape.
	App App `json:"app"`
}

// world is the simulated Cloudflare state. The simulator's lock guards it.
type world struct {
	accounts              map[string]*account
	tokens                map[string]*token
	zones                 map[string]*zone
	apps                  map[string]*storedApp
	hostnamesInOtherZones []string
	deniedOrigins         []netip.Prefix
	// budgets are the rate-limit budgets, by user; others are the other
	// clients spending them (see ratelimit.go).
	budgets map[string]*budget
	others  map[string]*otherClient
	// traffic is the apps' traffic history, by app ID, where a test set
	// it; defaultTraffic is every other app's from its creation (see
	// traffic.go).
	traffic        map[string][]trafficSegment
	defaultTraffic Traffic
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
	account    string
	ipPrefixes bool
	revoked    bool
	// withoutAnalytics tokens lack the analytics permission.
	withoutAnalytics bool
	// user is whose rate-limit budget the token spends.
	user string
}

type zone struct {
	id, name, account string
	ipv4Quota         *int
	edgePorts         *edgePorts
}

type edgePorts struct{ tcp, udp []PortRange }

type storedApp struct {
	zoneID string
	app    *App
	legacy bool
	seq    int64
}

// newWorld builds the state a valid config describes.
func newWorld(cfg Config, now time.Time) *world {
	w := &world{
		accounts:              map[string]*account{},
		tokens:                map[string]*token{},
		zones:                 map[string]*zone{},
		apps:                  map[string]*storedApp{},
		hostnamesInOtherZones: slices.Clone(cfg.HostnamesInOtherZones),
		budgets:               map[string]*budget{},
		others:                map[string]*otherClient{},
		traffic:               map[string][]trafficSegment{},
		defaultTraffic:        DefaultTraffic(),
	}
	if cfg.Traffic != nil {
		w.defaultTraffic = cfg.Traffic.normalized()
	}
	for _, p := range cfg.DeniedOrigins {
		w.deniedOrigins = append(w.deniedOrigins, netip.MustParsePrefix(p).Masked())
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
		w.tokens[t.Token] = newToken(t)
	}
	for _, z := range cfg.Zones {
		stored := &zone{id: z.ID, name: z.Name, account: z.Account, ipv4Quota: z.IPv4Quota}
		if z.EdgePorts != nil {
			stored.edgePorts = &edgePorts{tcp: mustPortRanges(z.EdgePorts.TCP), udp: mustPortRanges(z.EdgePorts.UDP)}
		}
		w.zones[z.ID] = stored
	}
	for _, a := range cfg.Apps {
		w.put(a.Zone, &a.App, a.Legacy)
	}
	for _, o := range cfg.RateLimit.OtherClients {
		w.setOtherClient(o.User, w.otherRate(o.User)+o.RequestsPerSecond, now)
	}
	return w
}

func newToken(t TokenConfig) *token {
	return &token{account: t.Account, ipPrefixes: t.IPPrefixesPermission, revoked: t.Revoked, user: budgetUser(t),
		withoutAnalytics: t.WithoutAnalyticsPermission}
}

// budgetUser is whose budget a token spends: its user, or, without one, a
// user of its own (the prefix keeps it apart from configured user names).
func budgetUser(t TokenConfig) string {
	if t.User != "" {
		return t.User
	}
	return "\x00token:" + fingerprint(t.Token)
}

func mustPortRanges(texts []string) []PortRange {
	ranges := []PortRange{}
	for _, text := range texts {
		r, ok := parsePortRange(text)
		if !ok {
			panic(fmt.Sprintf("edge ports %q", text)) // Validate checked them.
		}
		ranges = append(ranges, r)
	}
	return ranges
}

// put stores app as is, without any check: apps that exist at start and
// out-of-band changes. It keeps the creation time of the app it replaces
// unless app has one.
func (w *world) put(zoneID string, app *App, legacy bool) *storedApp {
	now := time.Now().UTC()
	app = app.clone()
	if app.ID == "" {
		app.ID = newID()
	}
	stored, exists := w.apps[app.ID]
	if !exists {
		w.nextSeq++
		stored = &storedApp{seq: w.nextSeq}
		w.apps[app.ID] = stored
	}
	if app.CreatedOn.IsZero() {
		app.CreatedOn = now
		if exists {
			app.CreatedOn = stored.app.CreatedOn
		}
	}
	if app.ModifiedOn.IsZero() {
		app.ModifiedOn = now
	}
	stored.zoneID, stored.app, stored.legacy = zoneID, app, legacy
	return stored
}

// create stores an admitted app as Cloudflare would: a new id, timestamps,
// and its defaults filled in.
func (w *world) create(zoneID string, app *App) *storedApp {
	app = app.withDefaults()
	app.ID, app.CreatedOn, app.ModifiedOn = "", time.Time{}, time.Time{}
	return w.put(zoneID, app, false)
}

// update replaces an admitted app's whole configuration: unsent fields fall
// back to their defaults, as with a PUT at Cloudflare. The app is served in
// the current shape from then on.
func (w *world) update(old *storedApp, app *App) {
	app = app.withDefaults()
	app.ID, app.CreatedOn, app.ModifiedOn = old.app.ID, old.app.CreatedOn, time.Now().UTC()
	old.app, old.legacy = app, false
}

// deleteApp forgets an app and its traffic.
func (w *world) deleteApp(appID string) {
	delete(w.apps, appID)
	delete(w.traffic, appID)
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
	return StoredApp{ZoneID: stored.zoneID, AccountID: accountID, Legacy: stored.legacy, App: *stored.app.clone()}
}

// render is the app as the API answers it.
func render(stored *storedApp) map[string]any {
	return stored.app.render(stored.legacy)
}

func newID() string {
	return randomHex(16)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
