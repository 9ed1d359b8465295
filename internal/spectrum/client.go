package spectrum

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for Options.
const (
	DefaultBaseURL   = "https://api.cloudflare.com/client/v4"
	DefaultTimeout   = 30 * time.Second
	DefaultUserAgent = "spectrum-operator"
)

// The apps API returns at most 100 apps per page; asking for the maximum
// keeps a list of a big zone to few requests of the shared budget.
const (
	listPageSize = 100
	// maxListPages stops a list whose pagination never ends (a server bug)
	// from looping forever: 100,000 apps is far beyond any zone.
	maxListPages = 1000
)

// Observer is told about every request the client sends: its method, the
// HTTP status (0 when no answer came) and the first Cloudflare error code (0
// when none). It must be fast and must not block.
type Observer func(method string, statusCode int, code int)

// Options configure an APIClient.
type Options struct {
	// BaseURL of the API; DefaultBaseURL when empty.
	BaseURL string
	// Token is the API token, sent as "Authorization: Bearer".
	Token string
	// HTTPClient sends the requests; when nil, a client on a transport all
	// such clients share.
	HTTPClient *http.Client
	// Timeout bounds each HTTP request, body included; DefaultTimeout when
	// zero. Waiting for the rate limiter is bounded by the caller's context
	// only.
	Timeout time.Duration
	// Budget is the token's request budget (package budget); no limit when
	// nil.
	Budget Budget
	// UserAgent is sent with every request; DefaultUserAgent when empty.
	UserAgent string
	// Observer, when set, is told about every request.
	Observer Observer
	// Metrics, when set, records every request's duration and answer.
	Metrics *Metrics
}

// APIClient is the Client that talks HTTP to Cloudflare.
//
// It never retries: a retried POST whose first attempt was applied creates a
// duplicate app, and for the other methods the controller's requeue, guided
// by Classify, is the one retry policy.
type APIClient struct {
	baseURL    string
	credential *credential
	httpClient *http.Client
	timeout    time.Duration
	budget     Budget
	userAgent  string
	observer   Observer
	metrics    *Metrics
	decoded    decodedApps
}

// credential keeps the token inside a closure: fmt prints a func as an
// address, so printing a client with any verb, or a panic's dump of one,
// never shows the token.
type credential struct{ token func() string }

func newCredential(token string) *credential {
	return &credential{token: func() string { return token }}
}

// redact removes the token from text that came from elsewhere (an error
// message echoing a header, a transport error), so no error, condition or
// log line can carry it.
func (c *credential) redact(text string) string {
	token := c.token()
	if token == "" {
		return text
	}
	return strings.ReplaceAll(text, token, "[REDACTED]")
}

var _ Client = (*APIClient)(nil)

// sharedTransport sends the requests of every client that brings no HTTP
// client of its own. http.DefaultTransport keeps two idle connections per
// host: with the operator's reconciles and its drift check sending side by
// side over HTTP/1.1 (a proxy, the simulator), every other connection was
// closed after its answer and dialled again for the next request (1.3 % of
// the manager's CPU converging 20,000 apps). Cloudflare's API speaks
// HTTP/2, which multiplexes one connection either way.
var sharedTransport = func() *http.Transport {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = maxIdleConnsPerHost
	return transport
}()

// maxIdleConnsPerHost is more connections than the operator sends requests
// on at once (its workers, the drift check and the traffic watch).
const maxIdleConnsPerHost = 64

// NewClient returns a client with opts.
func NewClient(opts Options) *APIClient {
	client := &APIClient{
		baseURL:    strings.TrimRight(opts.BaseURL, "/"),
		credential: newCredential(opts.Token),
		httpClient: opts.HTTPClient,
		timeout:    opts.Timeout,
		budget:     opts.Budget,
		userAgent:  opts.UserAgent,
		observer:   opts.Observer,
		metrics:    opts.Metrics,
	}
	if client.baseURL == "" {
		client.baseURL = DefaultBaseURL
	}
	if client.httpClient == nil {
		client.httpClient = &http.Client{Transport: sharedTransport}
	}
	if client.timeout <= 0 {
		client.timeout = DefaultTimeout
	}
	if client.userAgent == "" {
		client.userAgent = DefaultUserAgent
	}
	return client
}

func appsPath(zoneID string) string {
	return "/zones/" + url.PathEscape(zoneID) + "/spectrum/apps"
}

func appPath(zoneID, appID string) string {
	return appsPath(zoneID) + "/" + url.PathEscape(appID)
}

// ListApps implements Client.
func (c *APIClient) ListApps(ctx context.Context, zoneID string) (Listing, error) {
	var listing Listing
	seen := 0
	previous := c.decoded.of(zoneID)
	decoded := decodedZone{whole: make(map[[sha256.Size]byte]*decodedPage, len(previous.whole)), pages: make([]*decodedPage, 0, len(previous.pages))}
	for page := 1; page <= maxListPages; page++ {
		query := url.Values{"page": {strconv.Itoa(page)}, "per_page": {strconv.Itoa(listPageSize)}}
		result := listPage{known: previous.whole}
		info, err := c.do(ctx, http.MethodGet, appsPath(zoneID), query, nil, &result)
		if err != nil {
			return Listing{}, err
		}
		if page == 1 && info != nil {
			// Grown page by page, the list of a large zone was copied
			// over and over.
			listing.Apps = make([]*App, 0, min(max(info.TotalCount, 0), listPageSize*maxListPages))
		}
		read, known := previous.whole[result.sum]
		if !known {
			read = listing.readPage(result.apps, previous.near(len(decoded.pages)))
		}
		listing.Apps = append(listing.Apps, read.apps...)
		if len(read.apps) == read.listed {
			// Only a page of readable applications is reused whole: the
			// others are reported on every listing.
			decoded.whole[result.sum] = read
		}
		decoded.pages = append(decoded.pages, read)
		seen += read.listed
		if isLastPage(info, page, read.listed, seen) {
			c.decoded.remember(zoneID, decoded)
			return listing, nil
		}
	}
	return Listing{}, &RequestError{Method: http.MethodGet, Path: appsPath(zoneID),
		Err: fmt.Errorf("pagination did not end after %d pages", maxListPages)}
}

// readPage reads a page the last listing did not have whole, reusing the
// applications the last listing had near the same place (reused), and
// sets aside those that cannot be read.
func (l *Listing) readPage(raws []json.RawMessage, reused map[[sha256.Size]byte]*App) *decodedPage {
	read := &decodedPage{listed: len(raws), apps: make([]*App, 0, len(raws)), sums: make([][sha256.Size]byte, 0, len(raws))}
	for _, raw := range raws {
		sum := sha256.Sum256(raw)
		app, ok := reused[sum]
		if !ok {
			if app, ok = l.decode(raw); !ok {
				continue
			}
		}
		read.apps = append(read.apps, app)
		read.sums = append(read.sums, sum)
	}
	return read
}

// listPage is one page of a listing as decodeResponse reads it: the
// SHA-256 of its result and, unless the last listing of the zone had the
// very same page (known), its applications' JSON, split out. While apps
// are being created, most pages of a zone are the same from one listing
// to the next (Cloudflare lists in creation order), and splitting each
// page into applications again was most of a listing's CPU.
type listPage struct {
	known map[[sha256.Size]byte]*decodedPage
	sum   [sha256.Size]byte
	apps  []json.RawMessage
}

func (p *listPage) read(result json.RawMessage) error {
	p.sum = sha256.Sum256(result)
	if _, ok := p.known[p.sum]; ok {
		return nil
	}
	return json.Unmarshal(result, &p.apps)
}

// decode decodes one application of a listing. One that does not decode
// (a shape no SDK fixture shows) is set aside with what can be read of
// it, so that it does not hide the zone's other applications.
func (l *Listing) decode(raw json.RawMessage) (*App, bool) {
	app := new(App)
	err := json.Unmarshal(raw, app)
	if err == nil {
		return app, true
	}
	var loose struct {
		ID       any `json:"id"`
		Protocol any `json:"protocol"`
		DNS      struct {
			Name any `json:"name"`
		} `json:"dns"`
	}
	_ = json.Unmarshal(raw, &loose)
	l.Unreadable = append(l.Unreadable, UnreadableApp{
		ID:       looseString(loose.ID),
		Hostname: looseString(loose.DNS.Name),
		Protocol: looseString(loose.Protocol),
		Problem:  describeJSONError(err),
	})
	return nil, false
}

// decodedApps remembers, per zone, the pages of its last complete listing
// and their applications, each page by the SHA-256 of its JSON and each
// application by the SHA-256 of its own. From one listing to the next
// most of a zone is unchanged, and decoding it again was most of a steady
// manager's CPU (the drift check lists every zone every resync period):
// a page listed before is reused whole, and a page that changed reuses
// the applications the last listing had near the same place (an
// application created, deleted or changed shifts its neighbours by one at
// most). Only the last listing is kept, so it holds what the zone holds:
// per application a pointer and a sum, 40 bytes (a map of the zone's
// applications by sum beside the pages took ~150). The Apps are shared
// between listings, and with whoever keeps a listing (the controller's
// zone cache): one copy of each application in memory. A listing is read,
// never modified.
type decodedApps struct {
	mu    sync.Mutex
	zones map[string]decodedZone
}

// decodedZone is one zone's last listing: its pages in order, and those
// whose applications could all be read by the SHA-256 of their JSON.
type decodedZone struct {
	pages []*decodedPage
	whole map[[sha256.Size]byte]*decodedPage
}

// decodedPage is a page's readable applications, in order, with the
// SHA-256 of each one's JSON, and how many the page listed.
type decodedPage struct {
	apps   []*App
	sums   [][sha256.Size]byte
	listed int
}

// near returns the applications of the pages around the i-th (counted
// from 0) by their sums.
func (z decodedZone) near(i int) map[[sha256.Size]byte]*App {
	apps := map[[sha256.Size]byte]*App{}
	from, to := min(max(i-1, 0), len(z.pages)), min(i+2, len(z.pages))
	for _, page := range z.pages[from:to] {
		for j, sum := range page.sums {
			apps[sum] = page.apps[j]
		}
	}
	return apps
}

func (d *decodedApps) of(zoneID string) decodedZone {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.zones[zoneID]
}

func (d *decodedApps) remember(zoneID string, zone decodedZone) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.zones == nil {
		d.zones = map[string]decodedZone{}
	}
	d.zones[zoneID] = zone
}

func looseString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// isLastPage decides from result_info, tolerating responses without it
// (one page) or with only some of its counts.
func isLastPage(info *ResultInfo, page, pageLen, seen int) bool {
	switch {
	case info == nil || pageLen == 0:
		return true
	case info.TotalPages > 0:
		return page >= info.TotalPages
	case info.TotalCount > 0:
		return seen >= info.TotalCount
	default:
		perPage := info.PerPage
		if perPage <= 0 {
			perPage = listPageSize
		}
		return pageLen < perPage
	}
}

// GetApp implements Client.
func (c *APIClient) GetApp(ctx context.Context, zoneID, appID string) (App, error) {
	var app App
	_, err := c.do(ctx, http.MethodGet, appPath(zoneID, appID), nil, nil, &app)
	return app, err
}

// CreateApp implements Client. It is sent once, whatever happens.
func (c *APIClient) CreateApp(ctx context.Context, zoneID string, app App) (App, error) {
	var created App
	_, err := c.do(ctx, http.MethodPost, appsPath(zoneID), nil, requestBody(app), &created)
	return created, err
}

// UpdateApp implements Client.
func (c *APIClient) UpdateApp(ctx context.Context, zoneID, appID string, app App) (App, error) {
	var updated App
	_, err := c.do(ctx, http.MethodPut, appPath(zoneID, appID), nil, requestBody(app), &updated)
	return updated, err
}

// DeleteApp implements Client.
func (c *APIClient) DeleteApp(ctx context.Context, zoneID, appID string) error {
	_, err := c.do(ctx, http.MethodDelete, appPath(zoneID, appID), nil, nil, nil)
	return err
}

// ZoneID implements Client.
func (c *APIClient) ZoneID(ctx context.Context, name string) (string, bool, error) {
	var zones []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	query := url.Values{"name": {NormalizeHostname(name)}, "per_page": {"5"}}
	if _, err := c.do(ctx, http.MethodGet, "/zones", query, nil, &zones); err != nil {
		return "", false, err
	}
	for _, z := range zones {
		if NormalizeHostname(z.Name) == NormalizeHostname(name) && z.ID != "" {
			return z.ID, true, nil
		}
	}
	return "", false, nil
}

// requestBody drops the fields only Cloudflare sets.
func requestBody(app App) App {
	app.ID = ""
	app.CreatedOn = nil
	app.ModifiedOn = nil
	return app
}

// TakeTurn takes the turn of the object ctx was made for in the token's
// budget (see Budget); nil without a budget.
func (c *APIClient) TakeTurn(ctx context.Context) error {
	if c.budget == nil {
		return nil
	}
	return c.budget.TakeTurn(ctx)
}

// admit waits until the token's budget lets a request through.
func (c *APIClient) admit(ctx context.Context) (answered func(status int, header http.Header), err error) {
	if c.budget == nil {
		return func(int, http.Header) {}, nil
	}
	return c.budget.Admit(ctx)
}

// do sends one request and decodes its answer into result.
func (c *APIClient) do(ctx context.Context, method, path string, query url.Values, body, result any) (*ResultInfo, error) {
	requestFailed := func(err error) error {
		return &RequestError{Method: method, Path: path, Err: err, cause: c.credential.redact(err.Error())}
	}

	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, requestFailed(fmt.Errorf("encoding the request: %w", err))
		}
	}
	answered, err := c.admit(ctx)
	if err != nil {
		return nil, requestFailed(fmt.Errorf("%w: %w", ErrNotSent, err))
	}
	status, header := 0, http.Header(nil)
	defer func() { answered(status, header) }()

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, query, payload)
	if err != nil {
		return nil, requestFailed(err)
	}
	sent := time.Now()
	resp, err := c.httpClient.Do(req)
	if err != nil {
		c.observe(method, 0, 0, sent)
		return nil, requestFailed(unwrapURLError(err))
	}
	buffer := bodyBuffers.Get().(*bytes.Buffer)
	defer putBodyBuffer(buffer)
	truncated, err := readBody(resp.Body, buffer)
	raw := buffer.Bytes()
	if err != nil {
		c.observe(method, 0, 0, sent)
		return nil, requestFailed(err)
	}
	status, header = resp.StatusCode, resp.Header

	info, err := decodeResponse(response{
		method: method, path: path, status: resp.StatusCode,
		header: resp.Header, body: raw, truncated: truncated,
	}, result)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		c.redactAPIError(apiErr)
		c.observe(method, resp.StatusCode, firstCode(apiErr), sent)
		return nil, apiErr
	}
	c.observe(method, resp.StatusCode, 0, sent)
	return info, err
}

func (c *APIClient) newRequest(ctx context.Context, method, path string, query url.Values, payload []byte) (*http.Request, error) {
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.credential.token())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// bodyBuffers hold response bodies while they are decoded. A listing page
// is tens of KiB, and reading each into a new buffer, grown by doubling,
// was 7 % of what the manager allocated to converge 10,000 apps. Nothing
// decoded refers to the buffer: encoding/json copies what it keeps.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest buffer kept for reuse: a rare huge answer
// is not held on to.
const maxPooledBody = 1 << 20

func putBodyBuffer(buffer *bytes.Buffer) {
	if buffer.Cap() <= maxPooledBody {
		bodyBuffers.Put(buffer)
	}
}

// readBody reads at most maxResponseBytes into buffer and says whether
// there was more.
func readBody(body io.ReadCloser, buffer *bytes.Buffer) (bool, error) {
	defer body.Close()
	buffer.Reset()
	if _, err := buffer.ReadFrom(io.LimitReader(body, maxResponseBytes+1)); err != nil {
		return false, err
	}
	if buffer.Len() > maxResponseBytes {
		buffer.Truncate(maxResponseBytes)
		return true, nil
	}
	return false, nil
}

// unwrapURLError drops *url.Error's "Get \"https://...\":" prefix: the
// RequestError already names the method and path.
func unwrapURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}

func (c *APIClient) redactAPIError(apiErr *APIError) {
	for i := range apiErr.Errors {
		apiErr.Errors[i].Message = c.credential.redact(apiErr.Errors[i].Message)
	}
	apiErr.BodyProblem = c.credential.redact(apiErr.BodyProblem)
	apiErr.RayID = c.credential.redact(apiErr.RayID)
}

// observe tells the observer and the metrics about a request sent at sent
// (after the rate limiter let it through: the wait is not Cloudflare's).
func (c *APIClient) observe(method string, status, code int, sent time.Time) {
	c.metrics.request(method, status, code, time.Since(sent))
	if c.observer != nil {
		c.observer(method, status, code)
	}
}

func firstCode(apiErr *APIError) int {
	if len(apiErr.Errors) == 0 {
		return 0
	}
	return apiErr.Errors[0].Code
}
