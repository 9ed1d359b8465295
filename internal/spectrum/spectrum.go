// Package spectrum is the only place that talks to the Cloudflare Spectrum
// apps API. The rest of the operator sees the narrow Client interface below;
// tests hand it the simulator in package spectrumtest.
package spectrum

import (
	"context"
	"net/http"
	"time"
)

// Client manages the Spectrum applications of Cloudflare zones.
//
// Every error it returns is either an *APIError (Cloudflare answered) or a
// transport error (Cloudflare did not answer); Classify tells which kind of
// failure it is and what to do about it.
type Client interface {
	// ListApps returns every application of the zone, following all pages.
	// An application that cannot be decoded does not fail the listing: it
	// is reported in Listing.Unreadable and the others are returned.
	ListApps(ctx context.Context, zoneID string) (Listing, error)
	// GetApp returns one application; a missing one is an *APIError with
	// HTTP status 404 (see IsNotFound).
	GetApp(ctx context.Context, zoneID, appID string) (App, error)
	// CreateApp creates an application and returns it as Cloudflare stored
	// it. It is never retried automatically: a retried POST whose first
	// attempt was applied would create a duplicate.
	CreateApp(ctx context.Context, zoneID string, app App) (App, error)
	// UpdateApp replaces the application's configuration.
	UpdateApp(ctx context.Context, zoneID, appID string, app App) (App, error)
	// DeleteApp deletes the application.
	DeleteApp(ctx context.Context, zoneID, appID string) error
	// TakeTurn takes, ahead of a request, the turn of the object ctx was
	// made for in the token's budget (budget.WithTurn), so that the request
	// then goes without waiting: nil when it has its turn, an error
	// (budget.WaitingForTurn tells) when it waits in line. A create takes
	// its turn before its record is written, as the record promises the
	// create goes out within seconds.
	TakeTurn(ctx context.Context) error
	// ZoneID finds the ID of the zone named name among the zones the token
	// can see (GET /zones?name=); found is false when there is none, which
	// Cloudflare does not tell apart from a zone the token may not see.
	ZoneID(ctx context.Context, name string) (id string, found bool, err error)
}

// Budget is the request budget of a client's API token, shared by every
// request made with the token (package budget implements it).
type Budget interface {
	// Admit waits until a request may be sent, and fails, with nothing
	// sent, when it cannot be by ctx's deadline (or when the request waits
	// for its turn: see TakeTurn). answered is called once the request is
	// done, with the answer's status and header (0 and nil when none came),
	// from which the budget learns what Cloudflare says is left.
	Admit(ctx context.Context) (answered func(status int, header http.Header), err error)
	// TakeTurn takes the turn of the object ctx was made for (see
	// Client.TakeTurn).
	TakeTurn(ctx context.Context) error
	// SparePace is how many requests per second marked WithSpareSlot
	// (traffic analytics) the budget lets through now: its share of the
	// current pace, nothing when it gives them none or is paused.
	SparePace() float64
}

// Listing is a zone's applications.
type Listing struct {
	// Apps are shared with the client's memory of the zone (and with
	// every later listing that still has them): read them, never modify
	// one.
	Apps []*App
	// Unreadable are the applications the listing held that could not be
	// decoded.
	Unreadable []UnreadableApp
}

// UnreadableApp is an application of a listing that could not be decoded,
// with what could be read of it.
type UnreadableApp struct {
	// ID, Hostname and Protocol are read leniently; any may be empty.
	ID, Hostname, Protocol string
	// Problem says what could not be decoded.
	Problem string
}

// App is a Spectrum application as the API sends and returns it.
type App struct {
	ID         string     `json:"id,omitempty"`
	CreatedOn  *time.Time `json:"created_on,omitempty"`
	ModifiedOn *time.Time `json:"modified_on,omitempty"`

	Protocol         string      `json:"protocol"`
	DNS              DNS         `json:"dns"`
	OriginDirect     []string    `json:"origin_direct,omitempty"`
	OriginDNS        *OriginDNS  `json:"origin_dns,omitempty"`
	OriginPort       *OriginPort `json:"origin_port,omitempty"`
	IPFirewall       *bool       `json:"ip_firewall,omitempty"`
	ProxyProtocol    string      `json:"proxy_protocol,omitempty"`
	TLS              string      `json:"tls,omitempty"`
	TrafficType      string      `json:"traffic_type,omitempty"`
	EdgeIPs          *EdgeIPs    `json:"edge_ips,omitempty"`
	ArgoSmartRouting *bool       `json:"argo_smart_routing,omitempty"`
	VirtualNetworkID string      `json:"virtual_network_id,omitempty"`
}

// DNS is the application's hostname record.
type DNS struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

// OriginDNS is an origin reached by DNS name.
type OriginDNS struct {
	Name string `json:"name"`
	TTL  *int32 `json:"ttl,omitempty"`
	Type string `json:"type,omitempty"`
}

// EdgeIPs are the edge addresses the application answers on.
type EdgeIPs struct {
	Type         string   `json:"type"`
	Connectivity string   `json:"connectivity,omitempty"`
	IPs          []string `json:"ips,omitempty"`
}

// OriginPort is a single origin port or a range "START-END". The API accepts
// and returns a number for a single port and a string for a range.
type OriginPort struct {
	// Start is the first (or only) port.
	Start int
	// End is the last port of a range; 0 for a single port.
	End int
}
