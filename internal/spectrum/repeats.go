package spectrum

import (
	"sync"

	"github.com/cloudflare-operator/spectrum-operator/internal/intern"
)

// repeats holds one copy of what decoded applications repeat: their
// settings (protocol, TLS, proxy protocol, traffic type, the edge when it
// is Cloudflare's default), their flags, and origins that several share.
// The operator keeps every application of every zone it manages (the
// client's memory of each listing, and the controller's zone cache): as
// the simulator answers them, with Cloudflare's defaults filled in, each
// application held 462 bytes, and 273 once those repeats are shared
// (docs/benchmarks.md).
//
// Shared values are never modified: an App's pointers may point to the
// same EdgeIPs, OriginPort, flag or time as another's.
var repeats = newRepeatTable()

// maxRepeats bounds each table: tens of settings and origins repeat,
// thousands do not.
const maxRepeats = 4096

type repeatTable struct {
	mu      sync.Mutex
	strings *intern.Table[string, string]
	edges   *intern.Table[edgeKey, *EdgeIPs]
	ports   *intern.Table[OriginPort, *OriginPort]
}

// edgeKey is an edge without addresses of its own.
type edgeKey struct{ kind, connectivity string }

func newRepeatTable() *repeatTable {
	return &repeatTable{
		strings: intern.NewTable[string, string](maxRepeats),
		edges:   intern.NewTable[edgeKey, *EdgeIPs](maxRepeats),
		ports:   intern.NewTable[OriginPort, *OriginPort](maxRepeats),
	}
}

// share makes app's repeated values the table's copies.
func (t *repeatTable) share(app *App) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range []*string{&app.Protocol, &app.DNS.Type, &app.ProxyProtocol, &app.TLS, &app.TrafficType, &app.VirtualNetworkID} {
		t.use(s)
	}
	for i := range app.OriginDirect {
		t.use(&app.OriginDirect[i])
	}
	if origin := app.OriginDNS; origin != nil {
		t.use(&origin.Name)
		t.use(&origin.Type)
	}
	if edge := app.EdgeIPs; edge != nil {
		t.use(&edge.Type)
		t.use(&edge.Connectivity)
		if len(edge.IPs) == 0 {
			app.EdgeIPs = t.edges.Share(edgeKey{edge.Type, edge.Connectivity}, edge)
		}
	}
	if port := app.OriginPort; port != nil {
		app.OriginPort = t.ports.Share(*port, port)
	}
	app.IPFirewall = intern.Flag(app.IPFirewall)
	app.ArgoSmartRouting = intern.Flag(app.ArgoSmartRouting)
	if app.CreatedOn != nil && app.ModifiedOn != nil && app.ModifiedOn.Equal(*app.CreatedOn) {
		app.ModifiedOn = app.CreatedOn
	}
}

// use replaces *s with the table's copy, or makes *s the copy. The caller
// holds mu.
func (t *repeatTable) use(s *string) {
	if *s != "" {
		*s = t.strings.Share(*s, *s)
	}
}
