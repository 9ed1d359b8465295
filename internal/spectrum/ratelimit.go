package spectrum

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Cloudflare's global API limit: 1,200 requests per five minutes per user or
// token, counted across the dashboard, API keys and tokens. Going over blocks
// every call of that user, dashboard included, for five minutes, so the
// client stays under the budget instead of probing it.
const (
	DefaultRequestsPerSecond = 1200.0 / 300.0
	DefaultBurst             = 10
	DefaultRateLimitWindow   = 300 * time.Second
	// defaultBlock is how long Cloudflare blocks a token after a 429 that
	// did not say how long to wait.
	defaultBlock = 5 * time.Minute
)

// RateLimiter is the request budget of one API token, shared by every caller
// that uses the token. Besides its steady rate it stops everyone for the
// wait a 429 asked for, and slows down when Cloudflare's
// X-RateLimit-Remaining says that someone else (the dashboard, another
// tool) is spending the same budget.
type RateLimiter struct {
	limiter        *rate.Limiter
	steadyRate     rate.Limit
	steadyBurst    int
	window         time.Duration
	mu             sync.Mutex
	resumeAt       time.Time
	pacedByHeaders bool
}

// NewRateLimiter returns a budget of requestsPerSecond with bursts of burst.
// window is the period over which Cloudflare counts X-RateLimit-Limit (five
// minutes for the real API); zero means that.
func NewRateLimiter(requestsPerSecond float64, burst int, window time.Duration) *RateLimiter {
	if requestsPerSecond <= 0 {
		requestsPerSecond = DefaultRequestsPerSecond
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	if window <= 0 {
		window = DefaultRateLimitWindow
	}
	steady := rate.Limit(requestsPerSecond)
	return &RateLimiter{
		limiter:     rate.NewLimiter(steady, burst),
		steadyRate:  steady,
		steadyBurst: burst,
		window:      window,
	}
}

// Wait blocks until a request may be sent. It fails at once, wrapping
// ErrRateLimited, when the wait would outlast ctx's deadline.
func (l *RateLimiter) Wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		wait := time.Until(l.resumeAt)
		l.mu.Unlock()
		if wait <= 0 {
			break
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return fmt.Errorf("%w: Cloudflare asked to pause for %s", ErrRateLimited, wait.Round(time.Second))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		// Loop: another 429 may have extended the pause meanwhile.
	}
	if err := l.limiter.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", ErrRateLimited, err)
	}
	return nil
}

// PauseFor stops every caller of this budget for d (extending, never
// shortening, a pause already in force).
func (l *RateLimiter) PauseFor(d time.Duration) {
	if d <= 0 {
		return
	}
	until := time.Now().Add(d)
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.resumeAt) {
		l.resumeAt = until
	}
}

// observe adjusts the budget to what a response says about it.
func (l *RateLimiter) observe(status int, header http.Header) {
	if status == http.StatusTooManyRequests {
		wait := parseRetryAfter(header.Get("Retry-After"), time.Now())
		if wait <= 0 {
			wait = untilReset(header)
		}
		if wait <= 0 {
			wait = defaultBlock
		}
		l.PauseFor(wait)
	}
	l.paceFromRemaining(header)
}

// paceFromRemaining spreads what is left of Cloudflare's budget over the
// rest of its window once less than a tenth of it remains. Without a reset
// time it assumes the window has just begun: slow, but never a 429.
func (l *RateLimiter) paceFromRemaining(header http.Header) {
	remaining, err := strconv.Atoi(header.Get("X-RateLimit-Remaining"))
	if err != nil {
		return
	}
	limit, err := strconv.Atoi(header.Get("X-RateLimit-Limit"))
	if err != nil || limit <= 0 {
		limit = int(float64(l.steadyRate) * l.window.Seconds())
	}
	lowWater := max(limit/10, l.steadyBurst)

	l.mu.Lock()
	defer l.mu.Unlock()
	if remaining > lowWater {
		if l.pacedByHeaders {
			l.limiter.SetLimit(l.steadyRate)
			l.limiter.SetBurst(l.steadyBurst)
			l.pacedByHeaders = false
		}
		return
	}
	window := untilReset(header)
	if window <= 0 {
		window = l.window
	}
	paced := rate.Limit(float64(max(remaining, 1)) / window.Seconds())
	l.limiter.SetLimit(min(paced, l.steadyRate))
	l.limiter.SetBurst(1)
	l.pacedByHeaders = true
}

// untilReset reads X-RateLimit-Reset (an HTTP date).
func untilReset(header http.Header) time.Duration {
	at, err := http.ParseTime(header.Get("X-RateLimit-Reset"))
	if err != nil {
		return 0
	}
	return time.Until(at)
}

// ConnectorOptions configure a Connector. Zero values mean Cloudflare's
// documented defaults.
type ConnectorOptions struct {
	// BaseURL of the API; DefaultBaseURL when empty.
	BaseURL string
	// RequestsPerSecond and Burst set each token's budget;
	// DefaultRequestsPerSecond and DefaultBurst when zero.
	RequestsPerSecond float64
	Burst             int
	// RateLimitWindow is the period X-RateLimit-Limit counts over;
	// DefaultRateLimitWindow when zero.
	RateLimitWindow time.Duration
	// Timeout bounds each HTTP request; DefaultTimeout when zero.
	Timeout time.Duration
	// HTTPClient sends the requests; a client of its own when nil.
	HTTPClient *http.Client
	// UserAgent is sent with every request; DefaultUserAgent when empty.
	UserAgent string
	// Requests, when set, counts every request (see NewRequestsCounter).
	// The caller registers it.
	Requests *prometheus.CounterVec
	// Observer, when set, is told about every request.
	Observer Observer
}

// Connector hands out clients per API token. All clients of one token share
// one RateLimiter, so every reconcile that uses the token draws on the same
// budget, as Cloudflare counts it.
type Connector struct {
	opts     ConnectorOptions
	observer Observer

	mu      sync.Mutex
	clients map[tokenKey]*APIClient
}

// tokenKey identifies a token without holding it.
type tokenKey [sha256.Size]byte

// NewConnector returns a Connector with opts.
func NewConnector(opts ConnectorOptions) *Connector {
	observer := opts.Observer
	if opts.Requests != nil {
		observer = joinObservers(observer, CountRequests(opts.Requests))
	}
	return &Connector{opts: opts, observer: observer, clients: map[tokenKey]*APIClient{}}
}

// ForToken returns the client for token, creating it and its budget on
// first use.
func (c *Connector) ForToken(token string) Client {
	key := tokenKey(sha256.Sum256([]byte(token)))
	c.mu.Lock()
	defer c.mu.Unlock()
	if client, ok := c.clients[key]; ok {
		return client
	}
	client := NewClient(Options{
		BaseURL:    c.opts.BaseURL,
		Token:      token,
		HTTPClient: c.opts.HTTPClient,
		Timeout:    c.opts.Timeout,
		Limiter:    NewRateLimiter(c.opts.RequestsPerSecond, c.opts.Burst, c.opts.RateLimitWindow),
		UserAgent:  c.opts.UserAgent,
		Observer:   c.observer,
	})
	c.clients[key] = client
	return client
}

func joinObservers(first, second Observer) Observer {
	if first == nil {
		return second
	}
	return func(method string, statusCode, code int) {
		first(method, statusCode, code)
		second(method, statusCode, code)
	}
}
