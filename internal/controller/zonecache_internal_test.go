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
