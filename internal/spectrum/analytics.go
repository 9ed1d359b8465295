package spectrum

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1alpha1 "github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// Spectrum analytics (Cloudflare's API reference, "Spectrum > Analytics",
// and the official SDKs' generated types, cloudflare-go spectrum/
// analyticsaggregatecurrent.go and analyticseventsummary.go):
//   - GET /zones/{zone_id}/spectrum/analytics/aggregate/current covers the
//     last minute, one row per application: appID, bytesIngress,
//     bytesEgress, connections, durationAvg. Its appID parameter is a
//     comma-separated list of application IDs that limits the rows.
//   - GET /zones/{zone_id}/spectrum/analytics/events/summary sums events
//     between since and until (RFC 3339), broken down by dimensions
//     (event, appID, coloName, ipVersion) and limited by filters ("," is
//     OR, ";" is AND, "==" compares); each row of result.data is
//     {"dimensions": [values in the query's order], "metrics": [values in
//     the query's order]}. Events are connect, progress, disconnect,
//     originError and clientFiltered.
//
// Both count against the user's budget of 1,200 requests per five minutes,
// like every other call: a zone's traffic costs two requests however many
// applications it holds, and only slots of the token's budget that no
// configuration request waits for (WithSpareSlot; package budget, spare.go).

// TrafficReader reads what Cloudflare's analytics say about the
// applications of a zone. *APIClient implements it.
type TrafficReader interface {
	// ZoneTraffic reads the zone's last minute per application, and its
	// connect and originError events over the window that ends now. Only
	// apps are asked about where the API allows it; rows of other
	// applications of the zone are dropped. Its requests go only on slots
	// of the token's budget nobody waits for: when none comes before ctx
	// ends, it fails with ErrNotSent.
	ZoneTraffic(ctx context.Context, zoneID string, apps []string, window time.Duration) (ZoneTraffic, error)
	// TrafficPace is how many analytics requests per second the token's
	// budget allows at its current pace; zero when analytics has no share.
	TrafficPace() float64
}

// ZoneTraffic is one zone's traffic, per application ID.
type ZoneTraffic struct {
	// LastMinute is each application's last minute (aggregate/current).
	// An application without traffic may have no entry.
	LastMinute map[string]AppTraffic
	// Events are each application's connects and origin errors between
	// Since and Until (events/summary).
	Events       map[string]AppEvents
	Since, Until time.Time
	// ReadAt is when the answers came.
	ReadAt time.Time
}

// AppTraffic is one application's traffic over the last minute.
type AppTraffic struct {
	Connections  int64
	BytesIngress int64
	BytesEgress  int64
}

// AppEvents counts one application's events over a window.
type AppEvents struct {
	// Connects are clients connecting to the edge; OriginErrors are
	// connections Cloudflare could not open to the origin.
	Connects     int64
	OriginErrors int64
}

// Event values of Cloudflare's event dimension.
const (
	EventConnect     = "connect"
	EventOriginError = "originError"
)

func analyticsPath(zoneID, what string) string {
	return "/zones/" + url.PathEscape(zoneID) + "/spectrum/analytics/" + what
}

// maxAppFilterLength bounds the appID list sent in one URL. Proxies and
// servers commonly refuse request lines over 8 KiB; an application ID is 32
// characters, so about 200 IDs fit. A zone with more is read whole, in one
// request, and the rows of other applications are dropped: one request per
// zone whatever the number of apps, where splitting the list would cost one
// request per 200 apps.
const maxAppFilterLength = 6000

// minEventsLimit is the fewest rows asked of events/summary; a zone's
// rows are at most two per application (connect and originError).
const minEventsLimit = 1000

// ZoneTraffic implements TrafficReader.
func (c *APIClient) ZoneTraffic(ctx context.Context, zoneID string, apps []string, window time.Duration) (ZoneTraffic, error) {
	ctx = WithSpareSlot(ctx)
	wanted := make(map[string]bool, len(apps))
	for _, id := range apps {
		wanted[id] = true
	}
	lastMinute, err := c.lastMinute(ctx, zoneID, apps, wanted)
	if err != nil {
		return ZoneTraffic{}, explainAnalytics(err)
	}
	until := time.Now().UTC().Truncate(time.Second)
	since := until.Add(-window)
	events, err := c.events(ctx, zoneID, len(apps), since, until, wanted)
	if err != nil {
		return ZoneTraffic{}, explainAnalytics(err)
	}
	return ZoneTraffic{LastMinute: lastMinute, Events: events, Since: since, Until: until, ReadAt: time.Now()}, nil
}

// currentRow is a row of aggregate/current. Cloudflare's schema says
// numbers; they are read as floats, as JSON numbers may come with a
// fraction.
type currentRow struct {
	AppID        string  `json:"appID"`
	BytesIngress float64 `json:"bytesIngress"`
	BytesEgress  float64 `json:"bytesEgress"`
	Connections  float64 `json:"connections"`
}

func (c *APIClient) lastMinute(ctx context.Context, zoneID string, apps []string, wanted map[string]bool) (map[string]AppTraffic, error) {
	query := url.Values{}
	if list := strings.Join(apps, ","); len(list) <= maxAppFilterLength {
		query.Set("appID", list)
	}
	var rows []currentRow
	_, err := c.do(ctx, http.MethodGet, analyticsPath(zoneID, "aggregate/current"), query, nil, &rows)
	c.sentAnalytics(err)
	if err != nil {
		return nil, err
	}
	out := make(map[string]AppTraffic, len(rows))
	for _, row := range rows {
		if !wanted[row.AppID] {
			continue
		}
		sum := out[row.AppID]
		sum.Connections += int64(row.Connections)
		sum.BytesIngress += int64(row.BytesIngress)
		sum.BytesEgress += int64(row.BytesEgress)
		out[row.AppID] = sum
	}
	return out, nil
}

// summary is the result of events/summary.
type summary struct {
	Data []struct {
		Dimensions []string  `json:"dimensions"`
		Metrics    []float64 `json:"metrics"`
	} `json:"data"`
	Query struct {
		Dimensions []string `json:"dimensions"`
	} `json:"query"`
}

// events asks for one row per application and event, of the two events
// that tell whether origins answer. The appID list is not sent as a filter:
// an OR of thousands of comparisons does not fit a URL, and rows of other
// applications are few and dropped.
func (c *APIClient) events(ctx context.Context, zoneID string, apps int, since, until time.Time, wanted map[string]bool) (map[string]AppEvents, error) {
	query := url.Values{
		"dimensions": {"appID,event"},
		"metrics":    {"count"},
		"filters":    {"event==" + EventConnect + ",event==" + EventOriginError},
		"since":      {since.Format(time.RFC3339)},
		"until":      {until.Format(time.RFC3339)},
		"limit":      {strconv.Itoa(max(minEventsLimit, 4*apps))},
	}
	var result summary
	_, err := c.do(ctx, http.MethodGet, analyticsPath(zoneID, "events/summary"), query, nil, &result)
	c.sentAnalytics(err)
	if err != nil {
		return nil, err
	}
	appAt, eventAt := 0, 1
	if dims := result.Query.Dimensions; len(dims) == 2 && dims[0] == "event" && dims[1] == "appID" {
		appAt, eventAt = 1, 0
	}
	out := map[string]AppEvents{}
	for _, row := range result.Data {
		if len(row.Dimensions) != 2 || len(row.Metrics) == 0 || !wanted[row.Dimensions[appAt]] {
			continue
		}
		id, count := row.Dimensions[appAt], int64(row.Metrics[0])
		sum := out[id]
		switch row.Dimensions[eventAt] {
		case EventConnect:
			sum.Connects += count
		case EventOriginError:
			sum.OriginErrors += count
		default:
			continue
		}
		out[id] = sum
	}
	return out, nil
}

// UnmarshalJSON reads a summary leniently: Cloudflare's schema types a
// row's metrics as a list of numbers, and a row it sends otherwise is
// skipped rather than failing the zone.
func (s *summary) UnmarshalJSON(raw []byte) error {
	var loose struct {
		Data  []json.RawMessage `json:"data"`
		Query struct {
			Dimensions []string `json:"dimensions"`
		} `json:"query"`
	}
	if err := json.Unmarshal(raw, &loose); err != nil {
		return err
	}
	s.Query.Dimensions = loose.Query.Dimensions
	for _, rawRow := range loose.Data {
		var row struct {
			Dimensions []string  `json:"dimensions"`
			Metrics    []float64 `json:"metrics"`
		}
		if json.Unmarshal(rawRow, &row) == nil {
			s.Data = append(s.Data, row)
		}
	}
	return nil
}

// TrafficPace implements TrafficReader.
func (c *APIClient) TrafficPace() float64 {
	if c.budget == nil {
		return 0
	}
	return c.budget.SparePace()
}

type spareKey struct{}

// WithSpareSlot marks ctx's requests as traffic analytics: the budget lets
// them go only on slots no other request waits for, within its share
// (package budget, spare.go), and fails them (ErrNotSent) when none comes
// before ctx ends.
func WithSpareSlot(ctx context.Context) context.Context {
	return context.WithValue(ctx, spareKey{}, true)
}

// SpareSlot tells whether ctx's requests go only on spare slots.
func SpareSlot(ctx context.Context) bool {
	spare, _ := ctx.Value(spareKey{}).(bool)
	return spare
}

// AnalyticsDeniedError is Cloudflare refusing the token its analytics
// (HTTP 401 or 403): the token may manage Spectrum applications without
// being allowed to read their analytics. It is explained by the
// classification table's entry for the answer, with a resolution of its own.
type AnalyticsDeniedError struct {
	apiErr *APIError
}

func (e *AnalyticsDeniedError) Error() string { return e.apiErr.Error() }

// Classification implements failure.Explained, with the reason
// v1alpha1.ReasonAnalyticsNotPermitted.
func (e *AnalyticsDeniedError) Classification() failure.Classification {
	c := classifyAPIError(e.apiErr)
	c.Class = failure.NeedsHuman
	c.Reason = v1alpha1.ReasonAnalyticsNotPermitted
	c.Message = strings.TrimRight(describeAnswer(e.apiErr), ".") + ". " +
		"Give the API token Zone > Analytics > Read on the zone to see its traffic; configuration is not affected."
	return c
}

// explainAnalytics turns a refusal of the token into an
// AnalyticsDeniedError; other errors stay as they are.
func explainAnalytics(err error) error {
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.HTTPStatus == http.StatusUnauthorized || apiErr.HTTPStatus == http.StatusForbidden) {
		return &AnalyticsDeniedError{apiErr: apiErr}
	}
	return err
}

// AnalyticsDenied tells whether err is Cloudflare refusing the token its
// analytics.
func AnalyticsDenied(err error) bool {
	var denied *AnalyticsDeniedError
	return errors.As(err, &denied)
}

var _ TrafficReader = (*APIClient)(nil)

func newAnalyticsCounter() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: "spectrum_cloudflare_analytics_requests_total",
		Help: "Requests sent to Cloudflare's Spectrum analytics for the traffic of SpectrumApps (counted in spectrum_cloudflare_api_requests_total too). They go only on slots of a token's budget nobody else waits for, within --analytics-budget-share of it.",
	})
}

// analyticsSent counts an analytics request sent.
func (m *Metrics) analyticsSent() {
	if m != nil {
		m.analytics.Inc()
	}
}

// sentAnalytics counts the request whose outcome err is, unless it was
// never sent.
func (c *APIClient) sentAnalytics(err error) {
	if !errors.Is(err, ErrNotSent) {
		c.metrics.analyticsSent()
	}
}
