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
// analyticseventbytime.go; docs/analytics-api.md):
// GET /zones/{zone_id}/spectrum/analytics/events/bytime sums events between
// since and until (RFC 3339) per time_delta (minute at the finest), broken
// down by dimensions (event, appID, coloName, ipVersion) and limited by
// filters ("," is OR, ";" is AND, "==" compares). Each row of result.data is
// {"dimensions": [values in the query's order], "metrics": [one series per
// metric, one value per time interval]}, and result.time_intervals are the
// intervals' [start, end]. Events are connect, progress, disconnect,
// originError and clientFiltered.
//
// A zone's traffic is one such request, whatever the number of its
// applications: a series per minute of each application's events over the
// window tells both its last minute (connections and bytes) and its
// connects and origin errors over the whole window (OriginsHealthy). It
// counts against the user's budget of 1,200 requests per five minutes like
// every other call, and goes only on slots of the token's budget that no
// configuration request waits for (WithSpareSlot; package budget, spare.go).
// aggregate/current would tell the last minute too, but only that, so it
// would cost a second request.

// TrafficReader reads what Cloudflare's analytics say about the
// applications of a zone. *APIClient implements it.
type TrafficReader interface {
	// ZoneTraffic reads, in one request, the zone's applications' events
	// per minute over the window that ends at the last whole minute. Only
	// apps are asked about where a URL allows it; rows of other
	// applications of the zone are dropped. Its request goes only on a
	// slot of the token's budget nobody waits for: when none comes before
	// ctx ends, it fails with ErrNotSent.
	ZoneTraffic(ctx context.Context, zoneID string, apps []string, window time.Duration) (ZoneTraffic, error)
	// TrafficPace is how many analytics requests per second the token's
	// budget allows at its current pace; zero when analytics has no share.
	TrafficPace() float64
}

// ZoneTraffic is one zone's traffic, per application ID.
type ZoneTraffic struct {
	// Apps holds every application asked about whose traffic the answer
	// tells, zeros included. An application is missing only when the
	// answer was cut at its row limit before it.
	Apps map[string]AppTraffic
	// Since and Until bound the window, whole minutes; the last minute is
	// the one that ends at Until.
	Since, Until time.Time
	// ReadAt is when the answer came.
	ReadAt time.Time
}

// AppTraffic is one application's traffic.
type AppTraffic struct {
	// Connections are the connect events of the last minute, and
	// BytesIngress and BytesEgress the bytes of its events: what clients
	// sent and what the application sent back.
	Connections  int64
	BytesIngress int64
	BytesEgress  int64
	// Connects are clients connecting to the edge, and OriginErrors
	// connections Cloudflare could not open to the origin, over the whole
	// window.
	Connects     int64
	OriginErrors int64
}

// Event values of Cloudflare's event dimension.
const (
	EventConnect        = "connect"
	EventOriginError    = "originError"
	EventClientFiltered = "clientFiltered"
)

func analyticsPath(zoneID, what string) string {
	return "/zones/" + url.PathEscape(zoneID) + "/spectrum/analytics/" + what
}

// maxAppFilterLength bounds the appID filter sent in one URL. Proxies and
// servers commonly refuse request lines over 8 KiB; a comparison
// appID==ID takes 40 characters, so about 150 applications fit. A zone
// with more is read whole, in one request, and the rows of other
// applications are dropped: one request per zone whatever the number of
// apps, where splitting the list would cost one request per 150 apps.
const maxAppFilterLength = 6000

// Rows of an answer: at most one per application and event, of the five
// events; a zone read whole has room for as many applications again that
// the operator does not manage (other credentials, skip policy).
const (
	eventsPerApp    = 5
	minEventsLimit  = 1000
	maxEventsLimit  = 200000
	wholeZoneMargin = 2
)

// ZoneTraffic implements TrafficReader.
func (c *APIClient) ZoneTraffic(ctx context.Context, zoneID string, apps []string, window time.Duration) (ZoneTraffic, error) {
	ctx = WithSpareSlot(ctx)
	// Whole minutes only: the last interval is then a whole minute, the
	// same for every reader, and the answer's series line up with it.
	until := time.Now().UTC().Truncate(time.Minute)
	since := until.Add(-max(time.Minute, window.Round(time.Minute)))
	query := url.Values{
		"dimensions": {"appID,event"},
		"metrics":    {"count,bytesIngress,bytesEgress"},
		"time_delta": {"minute"},
		"since":      {since.Format(time.RFC3339)},
		"until":      {until.Format(time.RFC3339)},
	}
	limit := eventsPerApp * len(apps)
	if filter := appFilter(apps); len(filter) <= maxAppFilterLength {
		query.Set("filters", filter)
	} else {
		limit *= wholeZoneMargin
	}
	limit = min(max(limit, minEventsLimit), maxEventsLimit)
	query.Set("limit", strconv.Itoa(limit))
	var answer byTime
	_, err := c.do(ctx, http.MethodGet, analyticsPath(zoneID, "events/bytime"), query, nil, &answer)
	c.sentAnalytics(err)
	if err != nil {
		return ZoneTraffic{}, explainAnalytics(err)
	}
	return ZoneTraffic{Apps: answer.perApp(apps, until, limit), Since: since, Until: until, ReadAt: time.Now()}, nil
}

// appFilter is the filters value that keeps the rows of apps.
func appFilter(apps []string) string {
	var b strings.Builder
	for i, id := range apps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("appID==")
		b.WriteString(id)
	}
	return b.String()
}

// byTime is the result of events/bytime, for the query ZoneTraffic sends.
type byTime struct {
	Data []struct {
		Dimensions []string    `json:"dimensions"`
		Metrics    [][]float64 `json:"metrics"`
	} `json:"data"`
	// TimeIntervals are the intervals' ends, in the series' order; the
	// zero time where one could not be read.
	TimeIntervals []time.Time
	Query         struct {
		Dimensions []string `json:"dimensions"`
		Metrics    []string `json:"metrics"`
	} `json:"query"`
	// rows is how many rows the answer had, read or not.
	rows int
}

// perApp sums the answer per application asked about: the last minute's
// connects and bytes, and the window's connects and origin errors. Rows are
// read by the dimension and metric order the answer echoes (the query's
// when it echoes none), and the last minute is the interval that ends at
// until (the last one when the answer lists no intervals).
func (a *byTime) perApp(apps []string, until time.Time, limit int) map[string]AppTraffic {
	appAt, eventAt := 0, 1
	if dims := a.Query.Dimensions; len(dims) == 2 && dims[0] == "event" && dims[1] == "appID" {
		appAt, eventAt = 1, 0
	}
	metricAt := map[string]int{"count": 0, "bytesIngress": 1, "bytesEgress": 2}
	if len(a.Query.Metrics) == 3 {
		for i, m := range a.Query.Metrics {
			metricAt[m] = i
		}
	}
	last := -1
	for i, end := range a.TimeIntervals {
		if end.Equal(until) {
			last = i
		}
	}
	out := make(map[string]AppTraffic, len(apps))
	if a.rows < limit {
		// The answer is whole: an application without a row had no traffic.
		for _, id := range apps {
			out[id] = AppTraffic{}
		}
	}
	wanted := make(map[string]bool, len(apps))
	for _, id := range apps {
		wanted[id] = true
	}
	for _, row := range a.Data {
		if len(row.Dimensions) != 2 || len(row.Metrics) != 3 || !wanted[row.Dimensions[appAt]] {
			continue
		}
		id, event := row.Dimensions[appAt], row.Dimensions[eventAt]
		series := func(metric string) []float64 { return row.Metrics[metricAt[metric]] }
		lastOf := func(metric string) int64 {
			values := series(metric)
			switch {
			case len(values) == 0:
				return 0
			case last < 0:
				return int64(values[len(values)-1])
			case last < len(values):
				return int64(values[last])
			}
			return 0
		}
		sum := out[id]
		switch event {
		case EventClientFiltered:
			continue // refused at the edge: neither the app's traffic nor its origin's
		case EventConnect:
			sum.Connections += lastOf("count")
			sum.Connects += total(series("count"))
		case EventOriginError:
			sum.OriginErrors += total(series("count"))
		}
		sum.BytesIngress += lastOf("bytesIngress")
		sum.BytesEgress += lastOf("bytesEgress")
		out[id] = sum
	}
	return out
}

func total(values []float64) int64 {
	var sum float64
	for _, v := range values {
		sum += v
	}
	return int64(sum)
}

// UnmarshalJSON reads an answer leniently: Cloudflare's schema types a
// row's metrics as series of numbers, and a row it sends otherwise is
// skipped rather than failing the zone.
func (a *byTime) UnmarshalJSON(raw []byte) error {
	var loose struct {
		Data          []json.RawMessage `json:"data"`
		TimeIntervals [][]string        `json:"time_intervals"`
		Query         struct {
			Dimensions []string `json:"dimensions"`
			Metrics    []string `json:"metrics"`
		} `json:"query"`
	}
	if err := json.Unmarshal(raw, &loose); err != nil {
		return err
	}
	a.Query, a.rows = loose.Query, len(loose.Data)
	a.TimeIntervals = make([]time.Time, len(loose.TimeIntervals))
	for i, interval := range loose.TimeIntervals {
		if len(interval) == 2 {
			a.TimeIntervals[i], _ = time.Parse(time.RFC3339Nano, interval[1])
		}
	}
	a.Data = a.Data[:0]
	for _, rawRow := range loose.Data {
		var row struct {
			Dimensions []string    `json:"dimensions"`
			Metrics    [][]float64 `json:"metrics"`
		}
		if json.Unmarshal(rawRow, &row) == nil {
			a.Data = append(a.Data, row)
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
