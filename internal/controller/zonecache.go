package controller

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// zoneCache holds one listing per zone and client (that is, per API token),
// shared by every reconcile: checking N apps of a zone for drift costs one
// list call per page per period, not N gets. The operator's own writes go
// into the listing as they succeed, so it never hides them.
//
// Locking, once for the whole file: mu guards the map of listings and every
// listing's fields; each listing's fetching mutex serializes the list call
// itself, so that concurrent reconciles of one zone wait for a single call
// instead of each making their own. fetching is always taken before mu,
// never while holding it, and mu is never held across a call to Cloudflare.
//
// Listings are kept per client, and a client per token: they are dropped
// with their client once the Connector has forgotten it (held says so), so
// that a Secret rewritten with new tokens does not leave a listing behind
// per token. Dropped entries are looked for on every drift pass (zoneIDs)
// and whenever the cache has doubled since it last looked, which bounds it
// to twice what the tokens held need, without a clock of its own.
type zoneCache struct {
	maxAge time.Duration
	log    logr.Logger
	// unreadable counts applications skipped because they could not be
	// decoded (spectrum_cloudflare_unreadable_applications_total).
	unreadable prometheus.Counter
	// held tells whether the Connector still hands out a client; nil when
	// it never forgets one.
	held func(spectrum.Client) bool

	mu    sync.Mutex
	zones map[zoneKey]*zoneListing
	// names are the zone IDs looked up by name, per client.
	names map[zoneKey]*zoneName
	// sweepAt is the number of entries at which forgotten clients' entries
	// are next looked for.
	sweepAt int
}

type zoneKey struct {
	client spectrum.Client
	zoneID string
}

type zoneListing struct {
	fetching sync.Mutex
	// fetchedAt is when the list request that made the listing was sent:
	// the listing shows every write applied before then.
	fetchedAt time.Time
	// invalidatedAt is when a write's outcome became unknown; a listing
	// fetched before it (even one in flight at the time) is stale.
	invalidatedAt time.Time
	apps          map[string]listedApp
	byName        map[nameKey]string
	// pass counts the listings stored into apps: the entries a listing
	// did not stamp are gone from the zone.
	pass uint64
	// unreadable are the applications the listing held that could not be
	// decoded, by ID and by name, so that neither managing nor adopting
	// one mistakes it for absent.
	unreadable       map[string]spectrum.UnreadableApp
	unreadableByName map[nameKey]spectrum.UnreadableApp
}

// listedApp is an application of the listing, and the listing that last
// showed it (or the write that stored it). The application is the
// client's own (spectrum.Listing): shared, never modified.
type listedApp struct {
	app  *spectrum.App
	pass uint64
	// writtenAt is when a write of the operator stored it (Unix
	// nanoseconds; 0 for a listing's): a listing sent before then may not
	// show it yet.
	writtenAt int64
}

func newZoneCache(maxAge time.Duration, log logr.Logger, unreadable prometheus.Counter) *zoneCache {
	if maxAge <= 0 {
		maxAge = time.Minute
	}
	return &zoneCache{maxAge: maxAge, log: log, unreadable: unreadable,
		zones: map[zoneKey]*zoneListing{}, names: map[zoneKey]*zoneName{}, sweepAt: minSweepAt}
}

// minSweepAt is the fewest entries worth looking through for forgotten
// clients.
const minSweepAt = 16

// dropForgotten drops the entries of clients the Connector has forgotten.
// The caller holds mu.
func (c *zoneCache) dropForgotten() {
	if c.held != nil {
		held := map[spectrum.Client]bool{}
		isHeld := func(cf spectrum.Client) bool {
			h, ok := held[cf]
			if !ok {
				h = c.held(cf)
				held[cf] = h
			}
			return h
		}
		for key := range c.zones {
			if !isHeld(key.client) {
				delete(c.zones, key)
			}
		}
		for key := range c.names {
			if !isHeld(key.client) {
				delete(c.names, key)
			}
		}
	}
	c.sweepAt = max(2*(len(c.zones)+len(c.names)), minSweepAt)
}

// added drops forgotten clients' entries once the cache has doubled since
// it last did. The caller holds mu.
func (c *zoneCache) added() {
	if len(c.zones)+len(c.names) >= c.sweepAt {
		c.dropForgotten()
	}
}

// entries is how many listings and zone-name lookups the cache holds.
func (c *zoneCache) entries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.zones) + len(c.names)
}

// zoneIDByName looks up a zone's ID by name, once per client (that is,
// per token): N apps of one zone cost one lookup. Concurrent reconciles of
// the zone wait for that one lookup instead of each making their own.
func (c *zoneCache) zoneIDByName(ctx context.Context, cf spectrum.Client, name string) (string, bool, error) {
	key := zoneKey{cf, spectrum.NormalizeHostname(name)}
	c.mu.Lock()
	n, ok := c.names[key]
	if !ok {
		n = &zoneName{}
		c.names[key] = n
		c.added()
	}
	c.mu.Unlock()
	n.lookup.Lock()
	defer n.lookup.Unlock()
	if n.id != "" {
		return n.id, true, nil
	}
	id, found, err := cf.ZoneID(ctx, name)
	if err != nil || !found {
		return "", found, err
	}
	n.id = id
	return id, true, nil
}

// zoneName is a zone ID looked up by name; lookup serializes the lookup
// and guards id.
type zoneName struct {
	lookup sync.Mutex
	id     string
}

// zoneIDs are the zones the cache holds listings of, each once, after
// dropping those of forgotten tokens. Nothing the drift check needs is
// lost: it uses every in-sync app's token each pass, and a token is
// forgotten only after the idle timeout (three resync periods or more, see
// cmd/manager) without any use.
func (c *zoneCache) zoneIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropForgotten()
	seen := make(map[string]bool, len(c.zones))
	ids := make([]string, 0, len(c.zones))
	for key := range c.zones {
		if !seen[key.zoneID] {
			seen[key.zoneID] = true
			ids = append(ids, key.zoneID)
		}
	}
	return ids
}

func (c *zoneCache) listing(cf spectrum.Client, zoneID string) *zoneListing {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := zoneKey{cf, zoneID}
	l, ok := c.zones[key]
	if !ok {
		l = &zoneListing{}
		c.zones[key] = l
		c.added()
	}
	return l
}

// refresh lists the zone's applications again when the last listing is
// older than maxAge, was invalidated, or was fetched before notBefore.
func (c *zoneCache) refresh(ctx context.Context, cf spectrum.Client, zoneID string, notBefore time.Time) (*zoneListing, error) {
	l := c.listing(cf, zoneID)
	l.fetching.Lock()
	defer l.fetching.Unlock()
	c.mu.Lock()
	fresh := l.apps != nil && time.Since(l.fetchedAt) <= c.maxAge &&
		l.fetchedAt.After(l.invalidatedAt) && !l.fetchedAt.Before(notBefore)
	c.mu.Unlock()
	if fresh {
		return l, nil
	}
	sent := time.Now()
	listing, err := cf.ListApps(ctx, zoneID)
	if err != nil {
		return nil, err
	}
	for _, bad := range listing.Unreadable {
		c.log.Info("Skipped an application Cloudflare listed that could not be read",
			"zone", zoneID, "applicationID", bad.ID, "hostname", bad.Hostname, "protocol", bad.Protocol, "problem", bad.Problem)
		if c.unreadable != nil {
			c.unreadable.Inc()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l.update(listing.Apps, sent)
	l.unreadable = make(map[string]spectrum.UnreadableApp, len(listing.Unreadable))
	l.unreadableByName = make(map[nameKey]spectrum.UnreadableApp, len(listing.Unreadable))
	for _, bad := range listing.Unreadable {
		l.unreadable[bad.ID] = bad
		l.unreadableByName[newNameKey(bad.Hostname, bad.Protocol)] = bad
	}
	// Dated by when it was asked for: a write whose outcome became unknown
	// while the list was in flight may be missing from it, and
	// invalidatedAt, being later, marks it stale.
	l.fetchedAt = sent
	return l, nil
}

// byID returns the zone's application with that ID, if the listing,
// fetched no earlier than notBefore, has it.
func (c *zoneCache) byID(ctx context.Context, cf spectrum.Client, zoneID, appID string, notBefore time.Time) (spectrum.App, bool, error) {
	l, err := c.refresh(ctx, cf, zoneID, notBefore)
	if err != nil {
		return spectrum.App{}, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if bad, ok := l.unreadable[appID]; ok {
		return spectrum.App{}, false, &spectrum.UnreadableAppError{ZoneID: zoneID, App: bad}
	}
	listed, ok := l.apps[appID]
	if !ok {
		return spectrum.App{}, false, nil
	}
	return *listed.app, true, nil
}

// byName returns the zone's application with that hostname and protocol,
// from a listing fetched no earlier than notBefore.
func (c *zoneCache) byName(ctx context.Context, cf spectrum.Client, zoneID, hostname, protocol string, notBefore time.Time) (spectrum.App, bool, error) {
	l, err := c.refresh(ctx, cf, zoneID, notBefore)
	if err != nil {
		return spectrum.App{}, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := newNameKey(hostname, protocol)
	if id, ok := l.byName[key]; ok {
		return *l.apps[id].app, true, nil
	}
	if bad, ok := l.unreadableByName[key]; ok {
		return spectrum.App{}, false, &spectrum.UnreadableAppError{ZoneID: zoneID, App: bad}
	}
	return spectrum.App{}, false, nil
}

func (c *zoneCache) put(cf spectrum.Client, zoneID string, app spectrum.App) {
	l := c.listing(cf, zoneID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.apps != nil {
		l.store(&app, time.Now().UnixNano())
	}
}

func (c *zoneCache) remove(cf spectrum.Client, zoneID, appID string) {
	l := c.listing(cf, zoneID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if listed, ok := l.apps[appID]; ok {
		delete(l.byName, newNameKey(listed.app.DNS.Name, listed.app.Protocol))
		delete(l.apps, appID)
	}
}

func (c *zoneCache) invalidate(cf spectrum.Client, zoneID string) {
	l := c.listing(cf, zoneID)
	c.mu.Lock()
	defer c.mu.Unlock()
	l.apps, l.byName = nil, nil
	l.invalidatedAt = time.Now()
}

// update makes the listing what Cloudflare listed, in place: from one
// listing to the next most of a zone is the same, and building both maps
// anew for every listing (with a name key parsed for every app) was a
// fifth of what the manager allocated while 10,000 apps converged. The
// caller holds the cache's mu.
func (l *zoneListing) update(apps []*spectrum.App, sent time.Time) {
	if l.apps == nil {
		l.apps = make(map[string]listedApp, len(apps))
		l.byName = make(map[nameKey]string, len(apps))
	}
	l.pass++
	stamped := 0
	for _, app := range apps {
		if l.store(app, 0) {
			stamped++
		}
	}
	if stamped == len(l.apps) {
		return
	}
	// What the listing does not show is gone, but for what the operator
	// wrote after the listing was asked for: an application it created
	// meanwhile would read as gone until the next listing.
	for id, listed := range l.apps {
		if listed.pass != l.pass && listed.writtenAt < sent.UnixNano() {
			delete(l.apps, id)
		}
	}
	// Two applications may share a name (made outside the operator); the
	// name of one gone must still find the other.
	clear(l.byName)
	for id, listed := range l.apps {
		l.byName[newNameKey(listed.app.DNS.Name, listed.app.Protocol)] = id
	}
}

// store adds or replaces app, stamped by the current pass (and, for a
// write of the operator, the time it was written), and says whether it was
// not yet stamped by the pass. The caller holds the cache's mu.
func (l *zoneListing) store(app *spectrum.App, writtenAt int64) bool {
	old, ok := l.apps[app.ID]
	l.apps[app.ID] = listedApp{app: app, pass: l.pass, writtenAt: writtenAt}
	if ok && old.app.DNS.Name == app.DNS.Name && old.app.Protocol == app.Protocol {
		return old.pass != l.pass
	}
	if ok {
		delete(l.byName, newNameKey(old.app.DNS.Name, old.app.Protocol))
	}
	l.byName[newNameKey(app.DNS.Name, app.Protocol)] = app.ID
	return !ok || old.pass != l.pass
}

// nameKey identifies an application by what adoption matches on: the
// hostname as spectrum.NormalizeHostname writes it, and the protocol as its
// ports ("ssh" is "tcp/22").
type nameKey struct{ hostname, protocol string }

func newNameKey(hostname, protocol string) nameKey {
	return nameKey{spectrum.NormalizeHostname(hostname), rules.CanonicalProtocol(protocol)}
}
