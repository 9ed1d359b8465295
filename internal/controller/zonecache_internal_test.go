package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// listingClient lists one empty zone and finds every zone by name.
type listingClient struct {
	spectrum.Client
	name int
}

func (*listingClient) ListApps(context.Context, string) (spectrum.Listing, error) {
	return spectrum.Listing{}, nil
}

func (*listingClient) ZoneID(context.Context, string) (string, bool, error) {
	return "0123456789abcdef0123456789abcdef", true, nil
}

// The listings and zone-name lookups of a token the Connector has forgotten
// are dropped: at once on a drift pass, and whenever the cache has doubled.
func TestZoneCacheDropsForgottenTokens(t *testing.T) {
	held := map[spectrum.Client]bool{}
	c := newZoneCache(0, logr.Discard(), nil)
	c.held = func(cf spectrum.Client) bool { return held[cf] }
	ctx := context.Background()
	use := func(cf spectrum.Client) {
		t.Helper()
		if _, err := c.refresh(ctx, cf, "zone-a", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.zoneIDByName(ctx, cf, "example.com"); err != nil {
			t.Fatal(err)
		}
	}

	current := &listingClient{}
	held[current] = true
	use(current)
	for i := range 1000 {
		// A token rotated away: the Connector forgets the client it made
		// for the previous one.
		rotated := &listingClient{name: i}
		held[rotated] = true
		delete(held, current)
		current = rotated
		use(current)
		if n := c.entries(); n > 2*2+minSweepAt {
			t.Fatalf("rotation %d: %d entries, want at most %d (twice the held token's 2, or %d)", i, n, 2*2+minSweepAt, minSweepAt)
		}
	}
	if ids := c.zoneIDs(); fmt.Sprint(ids) != "[zone-a]" {
		t.Errorf("zoneIDs = %v, want [zone-a]", ids)
	}
	if n := c.entries(); n != 2 {
		t.Errorf("%d entries after a drift pass, want the held token's listing and zone lookup", n)
	}
	delete(held, current)
	c.zoneIDs()
	if n := c.entries(); n != 0 {
		t.Errorf("%d entries once no token is held, want 0", n)
	}
}

// zoneClient lists a zone holding apps, and counts its listings.
type zoneClient struct {
	spectrum.Client
	apps  []spectrum.App
	lists int
}

func (z *zoneClient) ListApps(context.Context, string) (spectrum.Listing, error) {
	z.lists++
	listing := spectrum.Listing{Apps: make([]*spectrum.App, len(z.apps))}
	for i := range z.apps {
		listing.Apps[i] = &z.apps[i]
	}
	return listing, nil
}

// A listing is updated in place: it must read exactly as the last listing
// says, after apps are added, changed, renamed and deleted, and when two
// applications share a name and one of them goes.
func TestZoneListingUpdatedInPlaceReadsAsTheLastListing(t *testing.T) {
	ctx := context.Background()
	app := func(id, host string) spectrum.App {
		return spectrum.App{ID: id, Protocol: "tcp/22", DNS: spectrum.DNS{Type: "CNAME", Name: host}}
	}
	cf := &zoneClient{}
	c := newZoneCache(time.Minute, logr.Discard(), nil)
	check := func(step string, wantIDs map[string]string) {
		t.Helper()
		// A listing fetched no earlier than now: a new one.
		if _, err := c.refresh(ctx, cf, "z", time.Now()); err != nil {
			t.Fatal(err)
		}
		byID := func(id string) (spectrum.App, bool, error) { return c.byID(ctx, cf, "z", id, time.Time{}) }
		l := c.listing(cf, "z")
		if len(l.apps) != len(wantIDs) {
			t.Fatalf("%s: listing holds %d apps, want %d", step, len(l.apps), len(wantIDs))
		}
		for id, host := range wantIDs {
			got, found, err := byID(id)
			if err != nil || !found || got.DNS.Name != host {
				t.Fatalf("%s: %s reads %+v (found %v, %v), want %s", step, id, got, found, err, host)
			}
		}
		for id, host := range wantIDs {
			got, found, err := c.byName(ctx, cf, "z", host, "tcp/22", time.Time{})
			if err != nil || !found || wantIDs[got.ID] != host {
				t.Fatalf("%s: by name %s finds %+v (found %v, %v), want %s", step, host, got, found, err, id)
			}
		}
	}
	cf.apps = []spectrum.App{app("a1", "one.example"), app("a2", "two.example")}
	check("first listing", map[string]string{"a1": "one.example", "a2": "two.example"})
	cf.apps = []spectrum.App{app("a1", "uno.example"), app("a2", "two.example"), app("a3", "three.example")}
	check("renamed and added", map[string]string{"a1": "uno.example", "a2": "two.example", "a3": "three.example"})
	cf.apps = []spectrum.App{app("a2", "two.example"), app("a3", "three.example")}
	check("deleted", map[string]string{"a2": "two.example", "a3": "three.example"})
	if _, found, _ := c.byName(ctx, cf, "z", "uno.example", "tcp/22", time.Time{}); found {
		t.Error("the deleted app is still found by name")
	}
	cf.apps = []spectrum.App{app("a2", "two.example"), app("a3", "three.example"), app("a4", "dup.example"), app("a5", "dup.example")}
	check("two new apps with the same name", map[string]string{"a2": "two.example", "a3": "three.example", "a4": "dup.example", "a5": "dup.example"})
	cf.apps = []spectrum.App{app("a2", "two.example"), app("a3", "three.example"), app("a4", "dup.example")}
	check("the one its name found gone", map[string]string{"a2": "two.example", "a3": "three.example", "a4": "dup.example"})
}

// listingDuringWrite lists the zone as it was when the request was sent,
// and meanwhile a write of the operator lands (during calls ListApps in
// flight).
type listingDuringWrite struct {
	zoneClient
	during func()
}

func (l *listingDuringWrite) ListApps(ctx context.Context, zone string) (spectrum.Listing, error) {
	listing, err := l.zoneClient.ListApps(ctx, zone)
	if l.during != nil {
		l.during()
	}
	return listing, err
}

// An application the operator created while a listing was in flight is
// not dropped when that listing, sent before it existed, is stored: it
// would read as gone, and the drift check would send a reconcile and a
// get to find it again.
func TestAWriteDuringAListingOutlivesIt(t *testing.T) {
	ctx := context.Background()
	existing := spectrum.App{ID: "a1", Protocol: "tcp/22", DNS: spectrum.DNS{Type: "CNAME", Name: "one.example"}}
	created := spectrum.App{ID: "a2", Protocol: "tcp/22", DNS: spectrum.DNS{Type: "CNAME", Name: "two.example"}}
	cf := &listingDuringWrite{zoneClient: zoneClient{apps: []spectrum.App{existing}}}
	c := newZoneCache(time.Minute, logr.Discard(), nil)
	if _, err := c.refresh(ctx, cf, "z", time.Time{}); err != nil {
		t.Fatal(err)
	}
	cf.during = func() { c.put(cf, "z", created) }
	if _, err := c.refresh(ctx, cf, "z", time.Now()); err != nil {
		t.Fatal(err)
	}
	lists := cf.lists
	for _, app := range []spectrum.App{existing, created} {
		if _, found, err := c.byID(ctx, cf, "z", app.ID, time.Time{}); err != nil || !found {
			t.Errorf("%s: found %v, %v; want it found", app.ID, found, err)
		}
	}
	if cf.lists != lists {
		t.Errorf("%d more listings to read them, want none", cf.lists-lists)
	}
	// The next listing, sent after the write, is the zone as it is: one
	// without the app says it is gone.
	cf.during = nil
	cf.apps = []spectrum.App{existing}
	if _, err := c.refresh(ctx, cf, "z", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := c.byID(ctx, cf, "z", created.ID, time.Time{}); found {
		t.Error("an application a later listing no longer shows is still found")
	}
}
