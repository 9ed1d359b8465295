package spectrumtest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The simulator's own model of the traffic Spectrum apps carry, from which
// it answers the analytics endpoints (analytics.go; the API facts are in
// docs/analytics-api.md). It is deterministic so that a test can predict
// every figure: an app's connections arrive at a steady rate, spread evenly
// over its colos and split between IPv4 and IPv6 by a share, from the
// moment its traffic was set (its creation unless a test set it). Of n
// connections counted since then, floor(n × originErrorShare) failed to
// reach the origin; the rest carried their bytes and lasted their duration.
// A connection is booked whole at its start: its connect and its
// originError or disconnect event, bytes and duration fall in the minute it
// began.

// Traffic is an app's simulated traffic.
type Traffic struct {
	// ConnectionsPerMinute is the rate of new connections, all colos and IP
	// versions together.
	ConnectionsPerMinute float64 `json:"connectionsPerMinute"`
	// BytesIngressPerConnection and BytesEgressPerConnection are what each
	// connection that reached the origin received from the client and sent
	// to it.
	BytesIngressPerConnection int64 `json:"bytesIngressPerConnection"`
	BytesEgressPerConnection  int64 `json:"bytesEgressPerConnection"`
	// DurationMilliseconds is how long each connection that reached the
	// origin lasted.
	DurationMilliseconds float64 `json:"durationMilliseconds"`
	// Colos share the connections evenly; [SJC] when empty.
	Colos []string `json:"colos,omitempty"`
	// IPv6Share (0-1) of the connections come over IPv6, the rest IPv4.
	IPv6Share float64 `json:"ipv6Share,omitempty"`
	// OriginErrorShare (0-1) of the connections fail to reach the origin:
	// an originError event instead of a disconnect, no bytes, no duration.
	OriginErrorShare float64 `json:"originErrorShare,omitempty"`
}

// DefaultTraffic is an app's traffic from its creation unless the config's
// traffic or a test says otherwise: a connection a second.
func DefaultTraffic() Traffic {
	return Traffic{ConnectionsPerMinute: 60, BytesIngressPerConnection: 2048, BytesEgressPerConnection: 8192,
		DurationMilliseconds: 1500, Colos: []string{rayColo}}
}

func (t Traffic) validate() error {
	var problems []error
	if t.ConnectionsPerMinute < 0 || t.BytesIngressPerConnection < 0 || t.BytesEgressPerConnection < 0 || t.DurationMilliseconds < 0 {
		problems = append(problems, errors.New("rates, bytes and duration must not be negative"))
	}
	for name, share := range map[string]float64{"ipv6Share": t.IPv6Share, "originErrorShare": t.OriginErrorShare} {
		if share < 0 || share > 1 || math.IsNaN(share) {
			problems = append(problems, fmt.Errorf("%s must be between 0 and 1, not %v", name, share))
		}
	}
	for _, colo := range t.Colos {
		if strings.TrimSpace(colo) == "" {
			problems = append(problems, errors.New("colos must not be empty names"))
		}
	}
	return errors.Join(problems...)
}

// normalized is t with its colos upper-case, SJC when none.
func (t Traffic) normalized() Traffic {
	colos := make([]string, 0, len(t.Colos))
	for _, colo := range t.Colos {
		colos = append(colos, strings.ToUpper(strings.TrimSpace(colo)))
	}
	if len(colos) == 0 {
		colos = []string{rayColo}
	}
	t.Colos = colos
	return t
}

// The events the model produces (docs/analytics-api.md); progress and
// clientFiltered are not simulated.
const (
	eventConnect     = "connect"
	eventDisconnect  = "disconnect"
	eventOriginError = "originError"
)

// trafficSegment is an app's traffic from a time until the next segment.
type trafficSegment struct {
	from    time.Time
	traffic Traffic
}

// trafficCell is what one app did in one colo over one IP version, of one
// event, in a span of time.
type trafficCell struct {
	appID, colo, ipVersion, event string
	count                         float64
	bytesIngress, bytesEgress     float64
	// durationMilliseconds is each counted connection's duration
	// (disconnect cells only).
	durationMilliseconds float64
}

func (c trafficCell) dimension(name string) string {
	switch name {
	case dimensionEvent:
		return c.event
	case dimensionAppID:
		return c.appID
	case dimensionColo:
		return c.colo
	case dimensionIPVersion:
		return c.ipVersion
	}
	return ""
}

// segments are the app's traffic history: what a test set, or its default
// traffic from its creation.
func (w *world) segments(stored *storedApp) []trafficSegment {
	if segments := w.traffic[stored.app.ID]; segments != nil {
		return segments
	}
	return []trafficSegment{{from: stored.app.CreatedOn, traffic: w.defaultTraffic}}
}

// setTraffic makes t the app's traffic from from on, replacing what it had
// from then on.
func (w *world) setTraffic(stored *storedApp, t Traffic, from time.Time) {
	kept := slices.DeleteFunc(slices.Clone(w.segments(stored)), func(s trafficSegment) bool { return !s.from.Before(from) })
	w.traffic[stored.app.ID] = append(kept, trafficSegment{from: from, traffic: t.normalized()})
}

// trafficAt is the app's traffic at t.
func (w *world) trafficAt(stored *storedApp, t time.Time) Traffic {
	segments := w.segments(stored)
	current := segments[0].traffic
	for _, s := range segments {
		if !s.from.After(t) {
			current = s.traffic
		}
	}
	return current
}

// trafficCells visits what zone's apps did in [from, to), never beyond now,
// in the apps' creation order.
func (w *world) trafficCells(zoneID string, from, to, now time.Time, visit func(trafficCell)) {
	if to.After(now) {
		to = now
	}
	if !from.Before(to) {
		return
	}
	for _, stored := range w.appsOf(func(a *storedApp) bool { return a.zoneID == zoneID }) {
		segments := w.segments(stored)
		for i, s := range segments {
			end := to
			if i+1 < len(segments) && segments[i+1].from.Before(end) {
				end = segments[i+1].from
			}
			start := from
			if s.from.After(start) {
				start = s.from
			}
			if start.Before(end) {
				s.traffic.cells(stored.app.ID, s.from, start, end, visit)
			}
		}
	}
}

// cells visits what traffic that began at origin did in [from, to). The
// counts are differences of cumulative floors, so that any split of time
// adds up to the whole.
func (t Traffic) cells(appID string, origin, from, to time.Time, visit func(trafficCell)) {
	const tolerance = 1e-9 // 60/min over exactly 2 min must be 120, not 119
	versions := []struct {
		name  string
		share float64
	}{{"4", 1 - t.IPv6Share}, {"6", t.IPv6Share}}
	for _, colo := range t.Colos {
		for _, v := range versions {
			rate := t.ConnectionsPerMinute / float64(len(t.Colos)) * v.share
			if rate <= 0 {
				continue
			}
			connections := func(at time.Time) float64 { return math.Floor(rate*at.Sub(origin).Minutes() + tolerance) }
			failed := func(n float64) float64 { return math.Floor(n*t.OriginErrorShare + tolerance) }
			startN, endN := connections(from), connections(to)
			connects := endN - startN
			originErrors := failed(endN) - failed(startN)
			served := connects - originErrors
			cell := trafficCell{appID: appID, colo: colo, ipVersion: v.name}
			for _, c := range []trafficCell{
				{event: eventConnect, count: connects},
				{event: eventOriginError, count: originErrors},
				{event: eventDisconnect, count: served, bytesIngress: served * float64(t.BytesIngressPerConnection),
					bytesEgress: served * float64(t.BytesEgressPerConnection), durationMilliseconds: t.DurationMilliseconds},
			} {
				if c.count > 0 {
					c.appID, c.colo, c.ipVersion = cell.appID, cell.colo, cell.ipVersion
					visit(c)
				}
			}
		}
	}
}
