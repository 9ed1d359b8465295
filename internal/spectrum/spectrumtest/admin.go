package spectrumtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The control surface: what tests (in Go) and demos (over HTTP under
// AdminPrefix) use to look at the simulated world and to change it behind
// the operator's back.

// Entitlement names an account feature.
type Entitlement string

// The entitlements the Spectrum API checks.
const (
	EntitlementFTP   Entitlement = "ftp"
	EntitlementBYOIP Entitlement = "byoip"
	EntitlementArgo  Entitlement = "argo"
)

// ErrNotFound is returned for an unknown account, token, zone or app.
var ErrNotFound = errors.New("not found")

// Apps returns every app of every zone, in creation order.
func (s *Simulator) Apps() []StoredApp {
	s.mu.Lock()
	defer s.mu.Unlock()
	var apps []StoredApp
	for _, a := range s.world.appsOf(func(*storedApp) bool { return true }) {
		apps = append(apps, s.world.export(a))
	}
	return apps
}

// Calls returns how many API requests arrived, by HTTP method (faulted ones
// included).
func (s *Simulator) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// CallCount returns how many API requests with method arrived.
func (s *Simulator) CallCount(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[strings.ToUpper(method)]
}

// FaultsFired returns how many requests a fault hit.
func (s *Simulator) FaultsFired() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.fired
}

// ResetCounters zeroes the call and fault counters.
func (s *Simulator) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.faults.fired = 0
	s.rateLimited = 0
}

// Reset restores the world, faults and counters of the config.
func (s *Simulator) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset()
	s.calls = map[string]int{}
	s.rateLimited = 0
}

// RateLimited returns how many requests were answered 429 because a
// budget was exceeded (or its user was blocked), not by an injected fault.
func (s *Simulator) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateLimited
}

// SetOtherClient makes other clients (the dashboard, Terraform, a second
// token) spend user's rate-limit budget at requestsPerSecond from now on; 0
// removes them. What they spent so far in the open window stays spent.
func (s *Simulator) SetOtherClient(user string, requestsPerSecond float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.world.setOtherClient(user, requestsPerSecond, time.Now())
}

// AddFault starts injecting f and returns it with its ID.
func (s *Simulator) AddFault(f Fault) (Fault, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.add(f)
}

// Faults returns the active faults.
func (s *Simulator) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.faults.active)
}

// ClearFaults stops every fault.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.active = nil
}

// SetEntitlement grants (enabled) or revokes an account's entitlement.
func (s *Simulator) SetEntitlement(accountID string, entitlement Entitlement, enabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.world.accounts[accountID]
	if acct == nil {
		return fmt.Errorf("account %q: %w", accountID, ErrNotFound)
	}
	switch entitlement {
	case EntitlementFTP:
		acct.entitlements.FTP = enabled
	case EntitlementBYOIP:
		acct.entitlements.BYOIP = enabled
	case EntitlementArgo:
		acct.entitlements.Argo = enabled
	default:
		return fmt.Errorf("unknown entitlement %q (ftp, byoip or argo)", entitlement)
	}
	return nil
}

// SetTokenRevoked revokes (or restores) an API token.
func (s *Simulator) SetTokenRevoked(secret string, revoked bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := s.world.tokens[secret]
	if tok == nil {
		return fmt.Errorf("token: %w", ErrNotFound)
	}
	tok.revoked = revoked
	return nil
}

// SetTokenAnalytics grants (allowed) or removes a token's analytics
// permission: without it the analytics endpoints answer 403 with code
// 10000.
func (s *Simulator) SetTokenAnalytics(secret string, allowed bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := s.world.tokens[secret]
	if tok == nil {
		return fmt.Errorf("token: %w", ErrNotFound)
	}
	tok.withoutAnalytics = !allowed
	return nil
}

// SetTraffic makes t an app's traffic from from on (now when zero): what the
// app did from then on is replaced, so a test may give an app a past
// instead of waiting for one, even before the app was created.
func (s *Simulator) SetTraffic(zoneID, appID string, t Traffic, from time.Time) error {
	if err := t.validate(); err != nil {
		return fmt.Errorf("traffic: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stored := s.world.app(zoneID, appID)
	if stored == nil {
		return fmt.Errorf("app %s in zone %s: %w", appID, zoneID, ErrNotFound)
	}
	s.world.setTraffic(stored, t, changeTime(from))
	return nil
}

// SetOriginErrors makes share (0-1) of an app's connections fail to reach
// its origins from from on (now when zero), its traffic otherwise as it
// was: they are originError events instead of disconnects. 0 heals them.
func (s *Simulator) SetOriginErrors(zoneID, appID string, share float64, from time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored := s.world.app(zoneID, appID)
	if stored == nil {
		return fmt.Errorf("app %s in zone %s: %w", appID, zoneID, ErrNotFound)
	}
	from = changeTime(from)
	t := s.world.trafficAt(stored, from)
	t.OriginErrorShare = share
	if err := t.validate(); err != nil {
		return fmt.Errorf("traffic: %w", err)
	}
	s.world.setTraffic(stored, t, from)
	return nil
}

// Traffic returns an app's traffic now.
func (s *Simulator) Traffic(zoneID, appID string) (Traffic, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored := s.world.app(zoneID, appID)
	if stored == nil {
		return Traffic{}, fmt.Errorf("app %s in zone %s: %w", appID, zoneID, ErrNotFound)
	}
	return s.world.trafficAt(stored, time.Now()), nil
}

func changeTime(from time.Time) time.Time {
	if from.IsZero() {
		return time.Now().UTC()
	}
	return from.UTC()
}

// AddToken makes another API token valid from now on, as creating one in
// the dashboard would; Reset forgets it.
func (s *Simulator) AddToken(t TokenConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case t.Token == "":
		return errors.New("token: the token is required")
	case s.world.tokens[t.Token] != nil:
		return errors.New("token: already exists")
	case s.world.accounts[t.Account] == nil:
		return fmt.Errorf("account %q: %w", t.Account, ErrNotFound)
	}
	s.world.tokens[t.Token] = newToken(t)
	return nil
}

// DeleteApp deletes an app out of band, as someone using the dashboard
// would.
func (s *Simulator) DeleteApp(zoneID, appID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.world.app(zoneID, appID) == nil {
		return fmt.Errorf("app %s in zone %s: %w", appID, zoneID, ErrNotFound)
	}
	s.world.deleteApp(appID)
	return nil
}

// PutApp stores an app out of band, without any check: it replaces the app
// with app.ID, or adds one (with a new ID when app.ID is empty). legacy
// serves it in the old response shapes.
func (s *Simulator) PutApp(zoneID string, app App, legacy bool) (StoredApp, error) {
	app.ModifiedOn = time.Time{}
	if err := app.wellFormed(); err != nil {
		return StoredApp{}, err
	}
	return s.putApp(zoneID, &app, legacy)
}

func (s *Simulator) putApp(zoneID string, app *App, legacy bool) (StoredApp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.world.zones[zoneID] == nil {
		return StoredApp{}, fmt.Errorf("zone %s: %w", zoneID, ErrNotFound)
	}
	if existing := s.world.apps[app.ID]; existing != nil && existing.zoneID != zoneID {
		return StoredApp{}, fmt.Errorf("app %s belongs to zone %s", app.ID, existing.zoneID)
	}
	return s.world.export(s.world.put(zoneID, app, legacy)), nil
}

// ModifyApp changes an app out of band (drift): mutate gets a copy of the
// stored app, and what it leaves is stored without any check.
func (s *Simulator) ModifyApp(zoneID, appID string, mutate func(*App)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored := s.world.app(zoneID, appID)
	if stored == nil {
		return fmt.Errorf("app %s in zone %s: %w", appID, zoneID, ErrNotFound)
	}
	app := stored.app.clone()
	mutate(app)
	app.ID, app.ModifiedOn = appID, time.Time{}
	if err := app.wellFormed(); err != nil {
		return err
	}
	s.world.put(zoneID, app, stored.legacy)
	return nil
}

// State is the whole simulated world, as GET /_simulator/state shows it.
// Tokens appear by fingerprint (the first 12 hex digits of their SHA-256),
// never in clear.
type State struct {
	Accounts []AccountConfig `json:"accounts"`
	Tokens   []TokenState    `json:"tokens"`
	Zones    []ZoneConfig    `json:"zones"`
	Apps     []StoredApp     `json:"apps"`
	Faults   []Fault         `json:"faults"`
	Counters Counters        `json:"counters"`
}

// TokenState is a token without its secret.
type TokenState struct {
	Fingerprint          string `json:"fingerprint"`
	Account              string `json:"account"`
	IPPrefixesPermission bool   `json:"ipPrefixesPermission"`
	AnalyticsPermission  bool   `json:"analyticsPermission"`
	Revoked              bool   `json:"revoked"`
	// User is whose budget the token spends; empty for a user of its own.
	User string `json:"user,omitempty"`
	// RequestsInWindow is what the token's user sent in the open window
	// (other clients' spending not included).
	RequestsInWindow int `json:"requestsInWindow"`
}

// Counters are the request counters.
type Counters struct {
	Calls       map[string]int `json:"calls"`
	FaultsFired int            `json:"faultsFired"`
	// RateLimited is RateLimited().
	RateLimited int `json:"rateLimited"`
}

// State returns a snapshot of the world.
func (s *Simulator) State() State {
	apps := s.Apps()
	s.mu.Lock()
	defer s.mu.Unlock()
	state := State{Apps: apps, Faults: slices.Clone(s.faults.active),
		Counters: Counters{Calls: maps.Clone(s.calls), FaultsFired: s.faults.fired, RateLimited: s.rateLimited}}
	for _, a := range s.cfg.Accounts {
		acct := s.world.accounts[a.ID]
		a.Entitlements = acct.entitlements
		state.Accounts = append(state.Accounts, a)
	}
	for _, t := range s.cfg.Tokens {
		tok := s.world.tokens[t.Token]
		used := 0
		if b := s.world.budgets[tok.user]; b != nil && time.Now().Before(b.windowStart.Add(s.rateLimit.Window.Duration)) {
			used = b.used
		}
		state.Tokens = append(state.Tokens, TokenState{Fingerprint: fingerprint(t.Token), Account: tok.account,
			IPPrefixesPermission: tok.ipPrefixes, AnalyticsPermission: !tok.withoutAnalytics, Revoked: tok.revoked, User: t.User, RequestsInWindow: used})
	}
	state.Zones = slices.Clone(s.cfg.Zones)
	return state
}

func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:6])
}

// adminHandler serves the control API; see docs/simulator.md.
func (s *Simulator) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AdminPrefix+"/state", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.State())
	})
	mux.HandleFunc("GET "+AdminPrefix+"/apps", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Apps())
	})
	mux.HandleFunc("GET "+AdminPrefix+"/counters", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, Counters{Calls: s.Calls(), FaultsFired: s.FaultsFired(), RateLimited: s.RateLimited()})
	})
	mux.HandleFunc("POST "+AdminPrefix+"/reset-counters", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetCounters()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+AdminPrefix+"/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+AdminPrefix+"/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("POST "+AdminPrefix+"/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if !readJSON(w, r, &f) {
			return
		}
		added, err := s.AddFault(f)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusCreated, added)
	})
	mux.HandleFunc("DELETE "+AdminPrefix+"/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+AdminPrefix+"/entitlements", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Account     string      `json:"account"`
			Entitlement Entitlement `json:"entitlement"`
			Enabled     bool        `json:"enabled"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		if err := s.SetEntitlement(req.Account, req.Entitlement, req.Enabled); err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+AdminPrefix+"/tokens/revoke", s.handleTokenRevoked(true))
	mux.HandleFunc("POST "+AdminPrefix+"/tokens/restore", s.handleTokenRevoked(false))
	mux.HandleFunc("POST "+AdminPrefix+"/tokens/analytics", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Token   string `json:"token"`
			Allowed bool   `json:"allowed"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		if err := s.SetTokenAnalytics(req.Token, req.Allowed); err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+AdminPrefix+"/apps/{zone}/{app}/traffic", func(w http.ResponseWriter, r *http.Request) {
		s.writeTraffic(w, r, nil)
	})
	mux.HandleFunc("PUT "+AdminPrefix+"/apps/{zone}/{app}/traffic", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Traffic
			From time.Time `json:"from"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		s.writeTraffic(w, r, s.SetTraffic(r.PathValue("zone"), r.PathValue("app"), req.Traffic, req.From))
	})
	mux.HandleFunc("PUT "+AdminPrefix+"/apps/{zone}/{app}/origin-errors", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Share float64   `json:"share"`
			From  time.Time `json:"from"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		s.writeTraffic(w, r, s.SetOriginErrors(r.PathValue("zone"), r.PathValue("app"), req.Share, req.From))
	})
	mux.HandleFunc("DELETE "+AdminPrefix+"/apps/{zone}/{app}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.DeleteApp(r.PathValue("zone"), r.PathValue("app")); err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT "+AdminPrefix+"/apps/{zone}/{app}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
			return
		}
		app, _, err := decodeApp(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		app.ID, app.ModifiedOn = r.PathValue("app"), time.Time{}
		stored, err := s.putApp(r.PathValue("zone"), app, r.URL.Query().Get("legacy") == "true")
		if err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, stored)
	})
	return mux
}

// writeTraffic answers with the app's traffic now, or with err.
func (s *Simulator) writeTraffic(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	t, err := s.Traffic(r.PathValue("zone"), r.PathValue("app"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Simulator) handleTokenRevoked(revoked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Token string `json:"token"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		if err := s.SetTokenRevoked(req.Token, revoked); err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func statusOf(err error) int {
	if errors.Is(err, ErrNotFound) {
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

func readJSON(w http.ResponseWriter, r *http.Request, into any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody)).Decode(into); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, value any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	_ = encoder.Encode(value)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
