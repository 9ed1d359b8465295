// Package spectrumtest is a stateful simulator of the Cloudflare Spectrum
// apps API, faithful to the project's API notes: accounts with plans and
// entitlements, tokens, zones with quotas and allowed ports, the documented
// error codes in the situations that cause them, pagination, the per-user
// rate limit with its headers, injected faults, and the analytics endpoints
// answered from its own model of the apps' traffic. Tests use NewServer;
// the spectrum-simulator binary serves the same handler.
//
// It is an independent model of Cloudflare: it decodes bodies with its own
// wire model (wire.go, whose App is also what its inspection API returns)
// and judges them with its own table of checks (admission.go), each naming
// its source. It imports no package of the operator, not even through
// another package (TestIndependentOfTheOperator). A stand-in that reused
// the operator's code could only agree with the code under test.
package spectrumtest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// APIPrefix is where the API is served, as at api.cloudflare.com.
	APIPrefix = "/client/v4"
	// AdminPrefix is where the simulator's own control API is served.
	AdminPrefix = "/_simulator"

	defaultPerPage = 20
	maxPerPage     = 100
	maxRequestBody = 1 << 20
	rayColo        = "SJC"
)

// Simulator is the simulated API as an http.Handler: the API under
// APIPrefix, the control API under AdminPrefix. It is safe for concurrent
// use.
type Simulator struct {
	cfg       Config
	rateLimit RateLimitConfig
	admin     http.Handler

	mu     sync.Mutex
	world  *world
	faults faultSet
	calls  map[string]int
	// rateLimited counts the 429s answered because a budget was exceeded.
	rateLimited int
}

// New returns a simulator of the world cfg describes.
func New(cfg Config) (*Simulator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Simulator{cfg: cfg, rateLimit: cfg.RateLimit, calls: map[string]int{}}
	if s.rateLimit.Limit == 0 {
		s.rateLimit.Limit = 1200
	}
	if s.rateLimit.Window.Duration == 0 {
		s.rateLimit.Window.Duration = 300 * time.Second
	}
	if s.rateLimit.Headers == "" {
		s.rateLimit.Headers = HeadersModern
	}
	s.reset()
	s.admin = s.adminHandler()
	return s, nil
}

// reset restores the world and faults of the config. The caller holds the
// lock, or has not shared s yet.
func (s *Simulator) reset() {
	s.world = newWorld(s.cfg, time.Now())
	s.faults = faultSet{}
	for _, f := range s.cfg.Faults {
		if _, err := s.faults.add(f); err != nil {
			panic(err) // Validate checked every fault.
		}
	}
}

// Server is a Simulator listening on 127.0.0.1.
type Server struct {
	*Simulator
	// URL is the API base URL (what a client's base URL option takes).
	URL string
	// AdminURL is the control API's base URL.
	AdminURL string

	server *httptest.Server
}

// NewServer starts a simulator of cfg on a free loopback port. Like
// httptest.NewServer it panics when it cannot start (here also on an invalid
// config); call Close when done.
func NewServer(cfg Config) *Server {
	sim, err := New(cfg)
	if err != nil {
		panic(fmt.Sprintf("spectrumtest: invalid config: %v", err))
	}
	server := httptest.NewServer(sim)
	return &Server{Simulator: sim, URL: server.URL + APIPrefix, AdminURL: server.URL + AdminPrefix, server: server}
}

// Close stops the server.
func (s *Server) Close() { s.server.Close() }

// ServeHTTP implements http.Handler.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, AdminPrefix+"/"):
		s.admin.ServeHTTP(w, r)
	case strings.HasPrefix(r.URL.Path, APIPrefix+"/"):
		s.serveAPI(w, r)
	default:
		writeEnvelope(w, &answer{failure: refuse(http.StatusNotFound, codeNoRoute, "No route for that URI")})
	}
}

// answer is one API response before it is written.
type answer struct {
	result     any
	resultInfo *resultInfo
	failure    *failure
	header     http.Header
}

func (s *Simulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, APIPrefix)
	s.mu.Lock()
	s.calls[r.Method]++
	latency, fault := s.faults.strike(r.Method, path)
	s.mu.Unlock()

	if latency != nil && !sleep(r.Context(), latency.Latency.Duration) {
		return
	}
	if fault != nil && fault.Kind != FaultResponseLost {
		s.injectFailure(w, fault)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err != nil {
		return
	}

	s.mu.Lock()
	a := s.handle(r, path, body)
	s.mu.Unlock()

	if fault != nil {
		resetConnection(w)
		return
	}
	writeEnvelope(w, a)
}

// resultInfo is the list envelope's page information.
type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

func (s *Simulator) injectFailure(w http.ResponseWriter, fault *Fault) {
	switch fault.Kind {
	case FaultConnectionReset:
		resetConnection(w)
	case FaultInternalError:
		writeEnvelope(w, &answer{failure: refuse(http.StatusInternalServerError, codeInternalError, "An unknown error has occurred")})
	case FaultUnavailable:
		writeEnvelope(w, &answer{failure: refuse(http.StatusServiceUnavailable, codeInternalError,
			"A dependency is temporarily unavailable; please try again")})
	case FaultRateLimited:
		wait := max(fault.RetryAfterSeconds, 1)
		header := http.Header{}
		header.Set("Retry-After", strconv.Itoa(wait))
		if s.rateLimit.Headers != HeadersModern {
			header.Set("X-RateLimit-Reset", time.Now().Add(time.Duration(wait)*time.Second).UTC().Format(http.TimeFormat))
		}
		writeEnvelope(w, &answer{header: header, failure: refuse(http.StatusTooManyRequests, codeRateLimited,
			"More than 1200 requests per 300 seconds reached. Please wait and consider throttling your request speed")})
	case FaultBadGateway:
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("cf-ray", newRayID())
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, badGatewayPage)
	}
}

// handle answers an API request. The caller holds the lock.
func (s *Simulator) handle(r *http.Request, path string, body []byte) *answer {
	zoneID, appID, routed := parseAppsPath(path)
	analyticsZone, report, analytics := parseAnalyticsPath(path)
	listsZones := strings.Trim(path, "/") == "zones" && r.Method == http.MethodGet
	if !routed && !listsZones && !analytics {
		return &answer{failure: refuse(http.StatusNotFound, codeNoRoute, "No route for that URI")}
	}
	tok, f := s.world.authenticate(r.Header.Get("Authorization"))
	if f != nil {
		return &answer{failure: f}
	}
	header, f := s.spendBudget(tok)
	if f != nil {
		return &answer{header: header, failure: f}
	}
	var a *answer
	switch {
	case listsZones:
		a = s.listZones(tok, r)
	case analytics:
		a = s.analytics(r, tok, analyticsZone, report)
	default:
		a = s.route(r, tok, zoneID, appID, body)
	}
	a.header = header
	return a
}

// listZones answers GET /zones[?name=...]: the zones the token can see (its
// account's), as Cloudflare's zones API lists them. A zone the token cannot
// see is simply not listed, like one that does not exist.
func (s *Simulator) listZones(tok *token, r *http.Request) *answer {
	name := strings.ToLower(strings.TrimSuffix(r.URL.Query().Get("name"), "."))
	zones := []map[string]any{}
	for _, z := range s.world.zones {
		if z.account != tok.account || (name != "" && strings.ToLower(z.name) != name) {
			continue
		}
		zones = append(zones, map[string]any{"id": z.id, "name": z.name, "status": "active",
			"account": map[string]string{"id": z.account}})
	}
	slices.SortFunc(zones, func(a, b map[string]any) int { return cmp.Compare(a["name"].(string), b["name"].(string)) })
	return &answer{result: zones, resultInfo: &resultInfo{Page: 1, PerPage: max(len(zones), 1), Count: len(zones), TotalCount: len(zones), TotalPages: 1}}
}

func (s *Simulator) route(r *http.Request, tok *token, zoneID, appID string, body []byte) *answer {
	z, f := s.world.authorizeZone(tok, zoneID)
	if f != nil {
		return &answer{failure: f}
	}
	switch {
	case appID == "" && r.Method == http.MethodGet:
		return s.list(z, r)
	case appID == "" && r.Method == http.MethodPost:
		app, f := s.world.admit(tok, z, body, nil)
		if f != nil {
			return &answer{failure: f}
		}
		return &answer{result: render(s.world.create(z.id, app))}
	case appID == "" || r.Method == http.MethodPost:
		return &answer{failure: refuse(http.StatusMethodNotAllowed, codeMethodNotAllowed, "Method %s not allowed for this endpoint", r.Method)}
	}
	stored := s.world.app(z.id, appID)
	if stored == nil {
		return &answer{failure: refuse(http.StatusNotFound, codeAppNotFound, "Spectrum application %s not found", appID)}
	}
	switch r.Method {
	case http.MethodGet:
		return &answer{result: render(stored)}
	case http.MethodPut, http.MethodPatch:
		app, f := s.world.admit(tok, z, body, stored)
		if f != nil {
			return &answer{failure: f}
		}
		s.world.update(stored, app)
		return &answer{result: render(stored)}
	case http.MethodDelete:
		s.world.deleteApp(appID)
		return &answer{result: map[string]string{"id": appID}}
	}
	return &answer{failure: refuse(http.StatusMethodNotAllowed, codeMethodNotAllowed, "Method %s not allowed for this endpoint", r.Method)}
}

// parseAppsPath splits "/zones/{zone}/spectrum/apps[/{app}]".
func parseAppsPath(path string) (zoneID, appID string, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 4 || len(parts) > 5 || parts[0] != "zones" || parts[1] == "" || parts[2] != "spectrum" || parts[3] != "apps" {
		return "", "", false
	}
	if len(parts) == 5 {
		if parts[4] == "" {
			return "", "", false
		}
		appID = parts[4]
	}
	return parts[1], appID, true
}

// authenticate finds the caller's token.
func (w *world) authenticate(authorization string) (*token, *failure) {
	secret, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || strings.TrimSpace(secret) == "" {
		return nil, refuse(http.StatusUnauthorized, codeAuthentication, "Authentication error")
	}
	secret = strings.TrimSpace(secret)
	tok := w.tokens[secret]
	if tok == nil || tok.revoked {
		// Echoes the token, as a careless API might: the operator must
		// redact what comes back, and its token-leak tests see this.
		return nil, refuse(http.StatusForbidden, codeInvalidToken, "Invalid access token: %s", secret)
	}
	return tok, nil
}

// authorizeZone finds a zone of the token's account. Like Cloudflare it
// does not tell a zone that does not exist from one the token may not see.
func (w *world) authorizeZone(tok *token, zoneID string) (*zone, *failure) {
	z := w.zones[zoneID]
	if z == nil || z.account != tok.account {
		return nil, refuse(http.StatusForbidden, codeAuthentication, "Authentication error")
	}
	return z, nil
}

// list answers one page of the zone's apps.
func (s *Simulator) list(z *zone, r *http.Request) *answer {
	query := r.URL.Query()
	page := max(atoiOr(query.Get("page"), 1), 1)
	perPage := min(max(atoiOr(query.Get("per_page"), defaultPerPage), 1), maxPerPage)
	apps := s.world.appsOf(func(a *storedApp) bool { return a.zoneID == z.id })
	sortApps(apps, query.Get("order"), query.Get("direction"))

	total := len(apps)
	start := min((page-1)*perPage, total)
	end := min(start+perPage, total)
	result := make([]any, 0, end-start)
	for _, a := range apps[start:end] {
		result = append(result, render(a))
	}
	return &answer{result: result, resultInfo: &resultInfo{
		Page: page, PerPage: perPage, Count: len(result), TotalCount: total,
		TotalPages: (total + perPage - 1) / perPage,
	}}
}

// sortApps orders by one of the API's order fields; creation order
// otherwise.
func sortApps(apps []*storedApp, order, direction string) {
	key := func(a, b *storedApp) int { return cmp.Compare(a.seq, b.seq) }
	switch order {
	case "protocol":
		key = func(a, b *storedApp) int { return cmp.Compare(a.app.Protocol, b.app.Protocol) }
	case "app_id":
		key = func(a, b *storedApp) int { return cmp.Compare(a.app.ID, b.app.ID) }
	case "dns":
		key = func(a, b *storedApp) int { return cmp.Compare(a.app.DNS.Name, b.app.DNS.Name) }
	case "modified_on":
		key = func(a, b *storedApp) int { return a.app.ModifiedOn.Compare(b.app.ModifiedOn) }
	}
	slices.SortStableFunc(apps, key)
	if direction == "desc" {
		slices.Reverse(apps)
	}
}

func atoiOr(text string, fallback int) int {
	n, err := strconv.Atoi(text)
	if err != nil {
		return fallback
	}
	return n
}

// writeEnvelope writes the v4 envelope with a Ray ID, as every Cloudflare
// answer has.
func writeEnvelope(w http.ResponseWriter, a *answer) {
	for name, values := range a.header {
		w.Header()[name] = values
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("cf-ray", newRayID())
	envelope := map[string]any{
		"success":  a.failure == nil,
		"errors":   []errorDetail{},
		"messages": []any{},
		"result":   a.result,
	}
	status := http.StatusOK
	if a.failure != nil {
		envelope["errors"] = a.failure.errors
		envelope["result"] = nil
		status = a.failure.status
	}
	if a.resultInfo != nil {
		envelope["result_info"] = a.resultInfo
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(envelope)
}

// newRayID looks like Cloudflare's: 16 hex digits and the colo.
func newRayID() string {
	return randomHex(8) + "-" + rayColo
}

// sleep waits d or until ctx ends, reporting whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
