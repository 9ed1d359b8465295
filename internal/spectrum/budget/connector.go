package budget

import (
	"crypto/sha256"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// ConnectorOptions configure a Connector. Zero values mean Cloudflare's
// documented defaults.
type ConnectorOptions struct {
	// BaseURL of the API; spectrum.DefaultBaseURL when empty.
	BaseURL string
	// RequestsPerSecond and Burst are each token's ceiling, below which it
	// paces from Cloudflare's rate-limit headers; DefaultRequestsPerSecond
	// and DefaultBurst when zero. Cloudflare counts burst + rate × window
	// against its budget.
	RequestsPerSecond float64
	Burst             int
	// RateLimitWindow is the period the legacy X-RateLimit-Limit counts
	// over; when zero, the one the budget implies (X-RateLimit-Limit /
	// RequestsPerSecond: about DefaultRateLimitWindow with the defaults).
	// Ratelimit-Policy says its own window.
	RateLimitWindow time.Duration
	// Timeout bounds each HTTP request; spectrum.DefaultTimeout when zero.
	Timeout time.Duration
	// HTTPClient sends the requests; a client of its own when nil.
	HTTPClient *http.Client
	// UserAgent is sent with every request; spectrum.DefaultUserAgent when
	// empty.
	UserAgent string
	// Requests, when set, counts every request (see
	// spectrum.NewRequestsCounter). The caller registers it.
	Requests *prometheus.CounterVec
	// Observer, when set, is told about every request.
	Observer spectrum.Observer
	// RequestMetrics, when set, records every request (see
	// spectrum.NewMetrics). The caller registers it.
	RequestMetrics *spectrum.Metrics
	// Metrics, when set, records the budget Cloudflare reports left, the
	// pauses and the tokens held (see NewMetrics). The caller registers it.
	Metrics *Metrics
	// IdleTimeout is how long a token's client and budget are kept after
	// its last use, and longer while its budget still matters (see
	// idle.go); DefaultIdleTimeout when zero.
	IdleTimeout time.Duration
	// AnalyticsShare is the share of each token's budget that traffic
	// analytics may use, on slots nobody else waits for (see spare.go);
	// none when zero.
	AnalyticsShare float64
}

// Connector hands out clients per API token. All clients of one token share
// one RateLimiter, so every reconcile that uses the token draws on the same
// budget, as Cloudflare counts it. A token's client is forgotten once idle
// and its budget no longer matters (see idle.go).
type Connector struct {
	opts     ConnectorOptions
	observer spectrum.Observer

	mu     sync.Mutex
	tokens map[tokenKey]*token
	// sweptAt is when idle clients were last looked for.
	sweptAt time.Time
}

// tokenKey identifies a token without holding it.
type tokenKey [sha256.Size]byte

// token is what the Connector holds for one API token: its client and the
// budget every request of the client draws on.
type token struct {
	client *spectrum.APIClient
	budget *RateLimiter
}

// NewConnector returns a Connector with opts.
func NewConnector(opts ConnectorOptions) *Connector {
	observer := opts.Observer
	requests := opts.Requests
	if requests == nil && opts.RequestMetrics != nil {
		requests = opts.RequestMetrics.Requests
	}
	if requests != nil {
		observer = joinObservers(observer, spectrum.CountRequests(requests))
	}
	return &Connector{opts: opts, observer: observer, tokens: map[tokenKey]*token{}}
}

// ForToken returns the client for apiToken, creating it and its budget on
// first use (and on the first use after it was forgotten).
func (c *Connector) ForToken(apiToken string) spectrum.Client {
	key := tokenKey(sha256.Sum256([]byte(apiToken)))
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if held, ok := c.tokens[key]; ok {
		held.budget.activity.touch(now)
		c.evictIdle(now, false)
		return held.client
	}
	c.evictIdle(now, true)
	budget := c.opts.Metrics.limiter(NewRateLimiter(c.opts.RequestsPerSecond, c.opts.Burst, c.opts.RateLimitWindow))
	budget.setSpareShare(c.opts.AnalyticsShare)
	held := &token{
		client: spectrum.NewClient(spectrum.Options{
			BaseURL:    c.opts.BaseURL,
			Token:      apiToken,
			HTTPClient: c.opts.HTTPClient,
			Timeout:    c.opts.Timeout,
			Budget:     budget,
			UserAgent:  c.opts.UserAgent,
			Observer:   c.observer,
			Metrics:    c.opts.RequestMetrics,
		}),
		budget: budget,
	}
	budget.activity.touch(now)
	c.tokens[key] = held
	c.opts.Metrics.heldToken()
	return held.client
}

func joinObservers(first, second spectrum.Observer) spectrum.Observer {
	if first == nil {
		return second
	}
	return func(method string, statusCode, code int) {
		first(method, statusCode, code)
		second(method, statusCode, code)
	}
}

// RequestTimeout is the timeout of each request of the Connector's
// clients.
func (c *Connector) RequestTimeout() time.Duration {
	if c.opts.Timeout > 0 {
		return c.opts.Timeout
	}
	return spectrum.DefaultTimeout
}

func (c *Connector) idleTimeout() time.Duration {
	if c.opts.IdleTimeout > 0 {
		return c.opts.IdleTimeout
	}
	return DefaultIdleTimeout
}

// forgettable tells whether a token can be forgotten now (see idle.go).
func (c *Connector) forgettable(held *token, now time.Time) bool {
	if held.budget.activity.idleFor(now) < c.idleTimeout() {
		return false
	}
	return !now.Before(held.budget.busyUntil())
}

// evictIdle forgets the tokens that can be forgotten. It looks at every
// token, so it runs when a new token is about to be added, and otherwise
// at most twice per idle timeout. The caller holds c.mu.
func (c *Connector) evictIdle(now time.Time, force bool) {
	if !force && now.Sub(c.sweptAt) < c.idleTimeout()/2 {
		return
	}
	c.sweptAt = now
	for key, held := range c.tokens {
		if c.forgettable(held, now) {
			delete(c.tokens, key)
			c.opts.Metrics.forgetToken(held.budget)
		}
	}
}

// Holds tells whether client is the one the Connector hands out for its
// token: false once it has been forgotten, so that state kept per client
// elsewhere (zone listings) can be dropped with it.
func (c *Connector) Holds(client spectrum.Client) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, held := range c.tokens {
		if spectrum.Client(held.client) == client {
			return true
		}
	}
	return false
}

// Tokens is how many tokens the Connector holds a client for, after
// forgetting those it can.
func (c *Connector) Tokens() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictIdle(time.Now(), true)
	return len(c.tokens)
}
