package spectrumtest

import (
	"cmp"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Spectrum analytics endpoints, answered from the traffic model
// (traffic.go). The API facts and their sources are in
// docs/analytics-api.md; where the sources are silent this file says what
// it chose.

// The reports under /zones/{zone}/spectrum/analytics/.
const (
	reportCurrent = "aggregate/current"
	reportSummary = "events/summary"
	reportByTime  = "events/bytime"
)

// The dimensions and metrics of the events reports (docs/analytics-api.md).
const (
	dimensionEvent     = "event"
	dimensionAppID     = "appID"
	dimensionColo      = "coloName"
	dimensionIPVersion = "ipVersion"

	metricCount          = "count"
	metricBytesIngress   = "bytesIngress"
	metricBytesEgress    = "bytesEgress"
	metricDurationAvg    = "durationAvg"
	metricDurationMedian = "durationMedian"
	metricDuration90th   = "duration90th"
	metricDuration99th   = "duration99th"

	// defaultLimit is the simulator's choice: Cloudflare does not publish
	// its default.
	defaultLimit = 10000
	// defaultSpan is since's default distance from until.
	defaultSpan = 6 * time.Hour
	// maxIntervals bounds a bytime answer.
	maxIntervals = 10000
)

var (
	dimensions = []string{dimensionEvent, dimensionAppID, dimensionColo, dimensionIPVersion}
	metrics    = []string{metricCount, metricBytesIngress, metricBytesEgress, metricDurationAvg, metricDurationMedian, metricDuration90th, metricDuration99th}
)

// parseAnalyticsPath splits "/zones/{zone}/spectrum/analytics/{report}".
func parseAnalyticsPath(path string) (zoneID, report string, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) != 6 || parts[0] != "zones" || parts[1] == "" || parts[2] != "spectrum" || parts[3] != "analytics" {
		return "", "", false
	}
	report = parts[4] + "/" + parts[5]
	switch report {
	case reportCurrent, reportSummary, reportByTime:
		return parts[1], report, true
	}
	return "", "", false
}

// analytics answers a report of the zone. Like every call it has already
// spent the caller's budget.
func (s *Simulator) analytics(r *http.Request, tok *token, zoneID, report string) *answer {
	z, f := s.world.authorizeZone(tok, zoneID)
	if f != nil {
		return &answer{failure: f}
	}
	if r.Method != http.MethodGet {
		return &answer{failure: refuse(http.StatusMethodNotAllowed, codeMethodNotAllowed, "Method %s not allowed for this endpoint", r.Method)}
	}
	if tok.withoutAnalytics {
		// Cloudflare's answer to a token that lacks the permission an
		// endpoint needs (docs/analytics-api.md, "Permission").
		return &answer{failure: refuse(http.StatusForbidden, codeAuthentication, "Authentication error")}
	}
	now := time.Now().UTC()
	query := r.URL.Query()
	if report == reportCurrent {
		return &answer{result: s.world.currentAggregate(z.id, query, now)}
	}
	q, f := parseEventsQuery(query, now, report == reportByTime)
	if f != nil {
		return &answer{failure: f}
	}
	if report == reportSummary {
		return &answer{result: s.world.summary(z.id, q, now)}
	}
	return &answer{result: s.world.byTime(z.id, q, now)}
}

// currentAggregate is one app's last minute, as aggregate/current lists it.
type currentAggregate struct {
	AppID        string  `json:"appID"`
	BytesIngress float64 `json:"bytesIngress"`
	BytesEgress  float64 `json:"bytesEgress"`
	Connections  float64 `json:"connections"`
	DurationAvg  float64 `json:"durationAvg"`
}

// currentAggregate answers aggregate/current: the last minute per app, of
// the apps in appID (all when empty) and the colo colo_name (all when
// empty). An app without traffic in that minute is left out.
func (w *world) currentAggregate(zoneID string, query url.Values, now time.Time) []currentAggregate {
	wanted := map[string]bool{}
	// app_id_param is the 3.x TypeScript SDK's name for appID.
	for _, id := range append(listParam(query, "appID"), listParam(query, "app_id_param")...) {
		wanted[id] = true
	}
	colo := strings.TrimSpace(query.Get("colo_name"))
	byApp := map[string]*accumulator{}
	connections := map[string]float64{}
	var order []string
	w.trafficCells(zoneID, now.Add(-time.Minute), now, now, func(c trafficCell) {
		if (len(wanted) > 0 && !wanted[c.appID]) || (colo != "" && !strings.EqualFold(colo, c.colo)) {
			return
		}
		acc := byApp[c.appID]
		if acc == nil {
			acc = &accumulator{}
			byApp[c.appID] = acc
			order = append(order, c.appID)
		}
		acc.add(c)
		if c.event == eventConnect {
			connections[c.appID] += c.count
		}
	})
	result := []currentAggregate{}
	for _, id := range order {
		acc := byApp[id]
		result = append(result, currentAggregate{AppID: id, BytesIngress: acc.bytesIngress, BytesEgress: acc.bytesEgress,
			Connections: connections[id], DurationAvg: acc.metric(metricDurationAvg)})
	}
	return result
}

// eventsQuery is a parsed summary or bytime query.
type eventsQuery struct {
	dimensions, metrics []string
	since, until        time.Time
	filterText          string
	filter              filter
	sort                []sortKey
	sortText            []string
	limit               int
	// step is bytime's time_delta.
	step string
}

type sortKey struct {
	field      string
	descending bool
}

func badQuery(format string, args ...any) *failure {
	return refuse(http.StatusBadRequest, codeInvalidRequest, format, args...)
}

// parseEventsQuery reads the events reports' query (docs/analytics-api.md).
func parseEventsQuery(query url.Values, now time.Time, byTime bool) (eventsQuery, *failure) {
	q := eventsQuery{dimensions: listParam(query, "dimensions"), metrics: listParam(query, "metrics"), limit: defaultLimit}
	for _, d := range q.dimensions {
		if !slices.Contains(dimensions, d) {
			return q, badQuery("Unknown dimension %q: use %s", d, strings.Join(dimensions, ", "))
		}
	}
	if len(q.metrics) == 0 {
		q.metrics = []string{metricCount}
	}
	for _, m := range q.metrics {
		if !slices.Contains(metrics, m) {
			return q, badQuery("Unknown metric %q: use %s", m, strings.Join(metrics, ", "))
		}
	}
	var f *failure
	if q.until, f = timeParam(query, "until", now); f != nil {
		return q, f
	}
	if q.since, f = timeParam(query, "since", q.until.Add(-defaultSpan)); f != nil {
		return q, f
	}
	if !q.since.Before(q.until) {
		return q, badQuery("since (%s) must be before until (%s)", q.since.Format(time.RFC3339), q.until.Format(time.RFC3339))
	}
	q.filterText = query.Get("filters")
	if q.filter, f = parseFilter(q.filterText); f != nil {
		return q, f
	}
	q.sortText = listParam(query, "sort")
	for _, text := range q.sortText {
		key := sortKey{field: strings.TrimLeft(text, "+-"), descending: strings.HasPrefix(text, "-")}
		if !slices.Contains(q.metrics, key.field) && !slices.Contains(q.dimensions, key.field) {
			return q, badQuery("Sort field %q must be one of the query's metrics or dimensions", key.field)
		}
		q.sort = append(q.sort, key)
	}
	if text := query.Get("limit"); text != "" {
		limit, err := strconv.Atoi(text)
		if err != nil || limit < 1 {
			return q, badQuery("limit must be a positive integer, not %q", text)
		}
		q.limit = limit
	}
	if byTime {
		q.step = query.Get("time_delta")
		if q.step == "" || q.step == "auto" {
			q.step = autoStep(q.until.Sub(q.since))
		}
		start, ok := stepStart(q.step, q.since)
		if !ok {
			return q, badQuery("Unknown time_delta %q: use year, quarter, month, week, day, hour, dekaminute or minute", q.step)
		}
		for n := 0; start.Before(q.until); n, start = n+1, stepNext(q.step, start) {
			if n == maxIntervals {
				return q, badQuery("More than %d time intervals of a %s from since to until: use a longer time_delta", maxIntervals, q.step)
			}
		}
	}
	return q, nil
}

// listParam reads a list given as repeated parameters (the SDKs) or
// comma-separated (the docs' example).
func listParam(query url.Values, name string) []string {
	var list []string
	for _, value := range query[name] {
		for item := range strings.SplitSeq(value, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
	}
	return list
}

func timeParam(query url.Values, name string, fallback time.Time) (time.Time, *failure) {
	text := query.Get(name)
	if text == "" {
		return fallback, nil
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return time.Time{}, badQuery("%s must be an RFC 3339 time, not %q", name, text)
	}
	return t.UTC(), nil
}

// filter is OR of ANDs of comparisons; empty matches everything.
type filter [][]comparison

type comparison struct {
	dimension, operator, value string
}

var (
	orSeparator   = regexp.MustCompile(`,|\s+OR\s+`)
	andSeparator  = regexp.MustCompile(`;|\s+AND\s+`)
	comparisonRe  = regexp.MustCompile(`^\s*([A-Za-z]+)\s*(==|!=|>=|<=|>|<)\s*(.*?)\s*$`)
	quotedValueRe = regexp.MustCompile(`^'(.*)'$|^"(.*)"$`)
)

// parseFilter reads the filters syntax: OR is "," or " OR ", AND is ";"
// or " AND " and binds tighter.
func parseFilter(text string) (filter, *failure) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	var f filter
	for _, term := range orSeparator.Split(text, -1) {
		var all []comparison
		for _, part := range andSeparator.Split(term, -1) {
			m := comparisonRe.FindStringSubmatch(part)
			if m == nil || m[3] == "" {
				return nil, badQuery("Malformed filter %q: want DIMENSION OPERATOR VALUE, such as event==originError", part)
			}
			if !slices.Contains(dimensions, m[1]) {
				return nil, badQuery("Unknown dimension %q in filters: use %s", m[1], strings.Join(dimensions, ", "))
			}
			value := m[3]
			if q := quotedValueRe.FindStringSubmatch(value); q != nil {
				value = q[1] + q[2]
			}
			all = append(all, comparison{dimension: m[1], operator: m[2], value: value})
		}
		f = append(f, all)
	}
	return f, nil
}

func (f filter) matches(c trafficCell) bool {
	if len(f) == 0 {
		return true
	}
	for _, all := range f {
		if !slices.ContainsFunc(all, func(x comparison) bool { return !x.holds(c.dimension(x.dimension)) }) {
			return true
		}
	}
	return false
}

// holds compares ipVersion as a number, the rest as text.
func (c comparison) holds(actual string) bool {
	order := strings.Compare(actual, c.value)
	if c.dimension == dimensionIPVersion {
		a, errA := strconv.Atoi(actual)
		b, errB := strconv.Atoi(c.value)
		if errA == nil && errB == nil {
			order = cmp.Compare(a, b)
		}
	}
	switch c.operator {
	case "==":
		return order == 0
	case "!=":
		return order != 0
	case ">":
		return order > 0
	case "<":
		return order < 0
	case ">=":
		return order >= 0
	}
	return order <= 0
}

// accumulator sums cells into the events metrics.
type accumulator struct {
	count, bytesIngress, bytesEgress float64
	// durations are the served connections' durations with their counts.
	durations []weightedDuration
}

type weightedDuration struct{ milliseconds, connections float64 }

func (a *accumulator) add(c trafficCell) {
	a.count += c.count
	a.bytesIngress += c.bytesIngress
	a.bytesEgress += c.bytesEgress
	if c.event == eventDisconnect {
		a.durations = append(a.durations, weightedDuration{c.durationMilliseconds, c.count})
	}
}

func (a *accumulator) merge(b *accumulator) {
	a.count += b.count
	a.bytesIngress += b.bytesIngress
	a.bytesEgress += b.bytesEgress
	a.durations = append(a.durations, b.durations...)
}

func (a *accumulator) metric(name string) float64 {
	switch name {
	case metricCount:
		return a.count
	case metricBytesIngress:
		return a.bytesIngress
	case metricBytesEgress:
		return a.bytesEgress
	case metricDurationAvg:
		var sum, n float64
		for _, d := range a.durations {
			sum += d.milliseconds * d.connections
			n += d.connections
		}
		if n == 0 {
			return 0
		}
		return sum / n
	case metricDurationMedian:
		return a.percentile(0.5)
	case metricDuration90th:
		return a.percentile(0.9)
	}
	return a.percentile(0.99)
}

// percentile is the nearest-rank percentile of the connections' durations.
func (a *accumulator) percentile(p float64) float64 {
	sorted := slices.SortedFunc(slices.Values(a.durations), func(x, y weightedDuration) int { return cmp.Compare(x.milliseconds, y.milliseconds) })
	var total float64
	for _, d := range sorted {
		total += d.connections
	}
	if total == 0 {
		return 0
	}
	rank := math.Ceil(p * total)
	var seen float64
	for _, d := range sorted {
		if seen += d.connections; seen >= rank {
			return d.milliseconds
		}
	}
	return sorted[len(sorted)-1].milliseconds
}

// eventsResult is the result of both events reports.
type eventsResult struct {
	Data    []eventsRow        `json:"data"`
	DataLag float64            `json:"data_lag"`
	Max     map[string]float64 `json:"max"`
	Min     map[string]float64 `json:"min"`
	Query   eventsQueryEcho    `json:"query"`
	Rows    int                `json:"rows"`
	Totals  map[string]float64 `json:"totals"`
	// TimeIntervals are bytime's buckets.
	TimeIntervals [][2]time.Time `json:"time_intervals,omitempty"`
}

// eventsRow is one combination of dimension values. Metrics is []float64
// (summary) or [][]float64, one series per metric (bytime).
type eventsRow struct {
	Dimensions []string `json:"dimensions"`
	Metrics    any      `json:"metrics"`
}

type eventsQueryEcho struct {
	Dimensions []string  `json:"dimensions"`
	Filters    string    `json:"filters,omitempty"`
	Limit      int       `json:"limit"`
	Metrics    []string  `json:"metrics"`
	Since      time.Time `json:"since"`
	Sort       []string  `json:"sort,omitempty"`
	Until      time.Time `json:"until"`
}

// group is one row being built.
type group struct {
	key   []string
	total accumulator
	// buckets are bytime's per-interval accumulators.
	buckets []accumulator
}

// groups collects filtered cells by the query's dimensions. Without
// dimensions there is always the one row of the whole.
type groups struct {
	q      eventsQuery
	byKey  map[string]*group
	order  []*group
	totals accumulator
	width  int
}

func newGroups(q eventsQuery, width int) *groups {
	g := &groups{q: q, byKey: map[string]*group{}, width: width}
	if len(q.dimensions) == 0 {
		g.get(nil)
	}
	return g
}

func (g *groups) get(key []string) *group {
	joined := strings.Join(key, "\x00")
	if row := g.byKey[joined]; row != nil {
		return row
	}
	row := &group{key: key, buckets: make([]accumulator, g.width)}
	g.byKey[joined] = row
	g.order = append(g.order, row)
	return row
}

func (g *groups) add(bucket int, c trafficCell) {
	if !g.q.filter.matches(c) {
		return
	}
	key := make([]string, len(g.q.dimensions))
	for i, d := range g.q.dimensions {
		key[i] = c.dimension(d)
	}
	row := g.get(key)
	row.total.add(c)
	if bucket >= 0 {
		row.buckets[bucket].add(c)
	}
	g.totals.add(c)
}

// rows sorts the groups (by sort, then by dimension values) and applies
// the limit.
func (g *groups) rows() []*group {
	rows := slices.Clone(g.order)
	slices.SortStableFunc(rows, func(a, b *group) int {
		for _, key := range g.q.sort {
			var order int
			if i := slices.Index(g.q.dimensions, key.field); i >= 0 {
				order = strings.Compare(a.key[i], b.key[i])
			} else {
				order = cmp.Compare(a.total.metric(key.field), b.total.metric(key.field))
			}
			if key.descending {
				order = -order
			}
			if order != 0 {
				return order
			}
		}
		return slices.Compare(a.key, b.key)
	})
	return rows[:min(len(rows), g.q.limit)]
}

func (g *groups) result(data []eventsRow, points func(*group) [][]float64) eventsResult {
	res := eventsResult{Data: data, Max: map[string]float64{}, Min: map[string]float64{}, Totals: map[string]float64{},
		Rows: len(data), Query: eventsQueryEcho{Dimensions: g.q.dimensions, Filters: g.q.filterText, Limit: g.q.limit,
			Metrics: g.q.metrics, Since: g.q.since, Sort: g.q.sortText, Until: g.q.until}}
	if res.Query.Dimensions == nil {
		res.Query.Dimensions = []string{}
	}
	for i, m := range g.q.metrics {
		res.Totals[m] = g.totals.metric(m)
		first := true
		for _, row := range g.order {
			for _, v := range points(row)[i] {
				if first || v > res.Max[m] {
					res.Max[m] = v
				}
				if first || v < res.Min[m] {
					res.Min[m] = v
				}
				first = false
			}
		}
	}
	return res
}

// summary answers events/summary.
func (w *world) summary(zoneID string, q eventsQuery, now time.Time) eventsResult {
	g := newGroups(q, 0)
	w.trafficCells(zoneID, q.since, q.until, now, func(c trafficCell) { g.add(-1, c) })
	values := func(row *group) [][]float64 {
		points := make([][]float64, len(q.metrics))
		for i, m := range q.metrics {
			points[i] = []float64{row.total.metric(m)}
		}
		return points
	}
	data := []eventsRow{}
	for _, row := range g.rows() {
		flat := []float64{}
		for _, p := range values(row) {
			flat = append(flat, p[0])
		}
		data = append(data, eventsRow{Dimensions: nonNil(row.key), Metrics: flat})
	}
	return g.result(data, values)
}

// byTime answers events/bytime: the summary's rows, each metric a series
// over the time intervals.
func (w *world) byTime(zoneID string, q eventsQuery, now time.Time) eventsResult {
	var intervals [][2]time.Time
	for start, _ := stepStart(q.step, q.since); start.Before(q.until); start = stepNext(q.step, start) {
		intervals = append(intervals, [2]time.Time{start, stepNext(q.step, start)})
	}
	g := newGroups(q, len(intervals))
	for i, interval := range intervals {
		from, to := interval[0], interval[1]
		if from.Before(q.since) {
			from = q.since
		}
		if to.After(q.until) {
			to = q.until
		}
		w.trafficCells(zoneID, from, to, now, func(c trafficCell) { g.add(i, c) })
	}
	series := func(row *group) [][]float64 {
		points := make([][]float64, len(q.metrics))
		for i, m := range q.metrics {
			points[i] = make([]float64, len(intervals))
			for j := range intervals {
				points[i][j] = row.buckets[j].metric(m)
			}
		}
		return points
	}
	data := []eventsRow{}
	for _, row := range g.rows() {
		data = append(data, eventsRow{Dimensions: nonNil(row.key), Metrics: series(row)})
	}
	res := g.result(data, series)
	res.TimeIntervals = intervals
	return res
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// autoStep is the simulator's pick when time_delta is omitted.
func autoStep(span time.Duration) string {
	switch {
	case span <= time.Hour:
		return "minute"
	case span <= 6*time.Hour:
		return "dekaminute"
	case span <= 7*24*time.Hour:
		return "hour"
	}
	return "day"
}

// stepStart is the start of the step's interval holding t (UTC).
func stepStart(step string, t time.Time) (time.Time, bool) {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch step {
	case "minute":
		return t.Truncate(time.Minute), true
	case "dekaminute":
		return t.Truncate(10 * time.Minute), true
	case "hour":
		return t.Truncate(time.Hour), true
	case "day":
		return day, true
	case "week":
		return day.AddDate(0, 0, -(int(day.Weekday())+6)%7), true // weeks begin on Monday
	case "month":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC), true
	case "quarter":
		return time.Date(t.Year(), t.Month()-(t.Month()-1)%3, 1, 0, 0, 0, 0, time.UTC), true
	case "year":
		return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC), true
	}
	return time.Time{}, false
}

// stepNext is the start of the interval after the one starting at start.
func stepNext(step string, start time.Time) time.Time {
	switch step {
	case "minute":
		return start.Add(time.Minute)
	case "dekaminute":
		return start.Add(10 * time.Minute)
	case "hour":
		return start.Add(time.Hour)
	case "day":
		return start.AddDate(0, 0, 1)
	case "week":
		return start.AddDate(0, 0, 7)
	case "month":
		return start.AddDate(0, 1, 0)
	case "quarter":
		return start.AddDate(0, 3, 0)
	}
	return start.AddDate(1, 0, 0)
}
