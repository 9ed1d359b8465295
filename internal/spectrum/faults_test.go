package spectrum_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/budget"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/spectrumtest"
)

func addFault(t *testing.T, sim *spectrumtest.Server, f spectrumtest.Fault) {
	t.Helper()
	if _, err := sim.AddFault(f); err != nil {
		t.Fatal(err)
	}
}

func TestClientServerErrors(t *testing.T) {
	cases := []struct {
		kind    spectrumtest.FaultKind
		status  int
		code    int
		reason  string
		problem string
	}{
		{spectrumtest.FaultInternalError, 500, 10002, "CloudflareInternalError", ""},
		{spectrumtest.FaultUnavailable, 503, 10002, "CloudflareInternalError", ""},
		{spectrumtest.FaultBadGateway, 502, 0, "CloudflareUnavailable", "not JSON (text/html)"},
	}
	for _, tc := range cases {
		t.Run(string(tc.kind), func(t *testing.T) {
			sim := startSimulator(t, testConfig())
			addFault(t, sim, spectrumtest.Fault{Kind: tc.kind, Method: "GET", Count: 1})
			client := newClient(sim, enterpriseToken)
			_, err := client.ListApps(testContext(t), enterpriseZone)
			var apiErr *spectrum.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatus != tc.status || apiErr.RayID == "" {
				t.Fatalf("error %v, want HTTP %d with a Ray ID", err, tc.status)
			}
			if tc.code != 0 && !apiErr.HasCode(tc.code) {
				t.Errorf("codes %v, want %d", apiErr.Codes(), tc.code)
			}
			if !strings.Contains(apiErr.BodyProblem, tc.problem) {
				t.Errorf("BodyProblem %q, want %q", apiErr.BodyProblem, tc.problem)
			}
			if c := spectrum.Classify(err); c.Class != failure.Retryable || c.Reason != tc.reason {
				t.Errorf("classified %v %s, want Retryable %s", c.Class, c.Reason, tc.reason)
			}
			if _, err := client.ListApps(testContext(t), enterpriseZone); err != nil {
				t.Errorf("after the fault: %v", err)
			}
		})
	}
}

// A 429 pauses every caller of the token for Retry-After, and a caller
// whose deadline comes first fails at once without sending anything.
func TestClientHonoursRetryAfter(t *testing.T) {
	sim := startSimulator(t, testConfig())
	addFault(t, sim, spectrumtest.Fault{Kind: spectrumtest.FaultRateLimited, Count: 1, RetryAfterSeconds: 1})
	connector := budget.NewConnector(budget.ConnectorOptions{BaseURL: sim.URL, RequestsPerSecond: 1000})
	client := connector.ForToken(enterpriseToken)

	_, err := client.ListApps(testContext(t), enterpriseZone)
	c := spectrum.Classify(err)
	if c.Class != failure.Retryable || c.Reason != "RateLimited" || c.RetryAfter != time.Second || c.HTTPStatus != 429 {
		t.Fatalf("classified %+v", c)
	}
	hurried, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = connector.ForToken(enterpriseToken).GetApp(hurried, enterpriseZone, "a")
	if !errors.Is(err, spectrum.ErrRateLimited) || spectrum.Classify(err).Reason != "RateLimited" {
		t.Fatalf("during the pause: %v, want ErrRateLimited", err)
	}
	if got := sim.CallCount("GET"); got != 1 {
		t.Fatalf("GET calls = %d: a request was sent during the pause", got)
	}
	start := time.Now()
	if _, err := client.ListApps(testContext(t), enterpriseZone); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 700*time.Millisecond {
		t.Errorf("the request after a 429 went out after %s, want about 1s", waited)
	}
	// Another token is not paused.
	start = time.Now()
	if _, err := connector.ForToken(noPrefixesToken).ListApps(testContext(t), enterpriseZone); err != nil || time.Since(start) > 500*time.Millisecond {
		t.Errorf("other token: %v after %s", err, time.Since(start))
	}
}

func TestSimulatorEnforcesRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit = spectrumtest.RateLimitConfig{Limit: 3, Window: spectrumtest.Duration{Duration: time.Second}, Enforce: true}
	sim := startSimulator(t, cfg)
	client := newClient(sim, enterpriseToken)
	for i := range 3 {
		if _, err := client.ListApps(testContext(t), enterpriseZone); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	_, err := client.ListApps(testContext(t), enterpriseZone)
	var apiErr *spectrum.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != 429 || !apiErr.HasCode(10100) || apiErr.RetryAfter != time.Second {
		t.Fatalf("4th request: %v, want 429 10100 with Retry-After 1", err)
	}
	if _, err := newClient(sim, noPrefixesToken).ListApps(testContext(t), enterpriseZone); err != nil {
		t.Errorf("the budget is per token, yet another token was refused: %v", err)
	}
}

// With Cloudflare's budget the client stays under it: a limited client
// spaces requests out after its burst.
func TestClientBudgetSpacesRequests(t *testing.T) {
	sim := startSimulator(t, testConfig())
	client := budget.NewConnector(budget.ConnectorOptions{BaseURL: sim.URL, RequestsPerSecond: 20, Burst: 2}).ForToken(enterpriseToken)
	start := time.Now()
	for range 6 {
		if _, err := client.ListApps(testContext(t), enterpriseZone); err != nil {
			t.Fatal(err)
		}
	}
	// 2 at once, then 4 at 20/s.
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Errorf("6 requests took %s, want at least 200ms at 20/s with a burst of 2", elapsed)
	}
}

func TestClientConnectionReset(t *testing.T) {
	sim := startSimulator(t, testConfig())
	addFault(t, sim, spectrumtest.Fault{Kind: spectrumtest.FaultConnectionReset, PathPrefix: "/zones/" + enterpriseZone})
	_, err := newClient(sim, enterpriseToken).ListApps(testContext(t), enterpriseZone)
	var requestErr *spectrum.RequestError
	if !errors.As(err, &requestErr) {
		t.Fatalf("error %v (%T), want a *RequestError", err, err)
	}
	if c := spectrum.Classify(err); c.Class != failure.Retryable || c.Reason != "NetworkError" {
		t.Errorf("classified %v %s, want Retryable NetworkError", c.Class, c.Reason)
	}
	// The fault matches its path prefix only.
	if _, err := newClient(sim, enterpriseToken).ListApps(testContext(t), otherZone); err != nil {
		t.Errorf("another zone: %v", err)
	}
}

func TestClientTimeout(t *testing.T) {
	sim := startSimulator(t, testConfig())
	addFault(t, sim, spectrumtest.Fault{Kind: spectrumtest.FaultLatency, Latency: spectrumtest.Duration{Duration: 2 * time.Second}})
	client := spectrum.NewClient(spectrum.Options{BaseURL: sim.URL, Token: enterpriseToken, Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := client.ListApps(testContext(t), enterpriseZone)
	if c := spectrum.Classify(err); c.Reason != "NetworkError" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v classified %s, want a deadline NetworkError", err, c.Reason)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("timed out after %s, want about 100ms", elapsed)
	}
}

// "Applied but response lost": the create happens, the answer never comes.
// The client must not retry the POST, so exactly one app exists.
func TestClientNeverRetriesCreate(t *testing.T) {
	sim := startSimulator(t, testConfig())
	addFault(t, sim, spectrumtest.Fault{Kind: spectrumtest.FaultResponseLost, Method: "POST", Count: 1})
	client := budget.NewConnector(budget.ConnectorOptions{BaseURL: sim.URL, RequestsPerSecond: 1000}).ForToken(enterpriseToken)
	_, err := client.CreateApp(testContext(t), enterpriseZone, sshApp("ssh.example.com"))
	if c := spectrum.Classify(err); c.Class != failure.Retryable || c.Reason != "NetworkError" {
		t.Fatalf("lost response: %v classified %v %s", err, c.Class, c.Reason)
	}
	apps := sim.Apps()
	if len(apps) != 1 || apps[0].App.DNS.Name != "ssh.example.com" || apps[0].ZoneID != enterpriseZone {
		t.Fatalf("apps after a lost create = %+v, want exactly one", apps)
	}
	if got := sim.CallCount("POST"); got != 1 {
		t.Fatalf("POST calls = %d, want 1", got)
	}
	if sim.FaultsFired() != 1 {
		t.Errorf("faults fired = %d", sim.FaultsFired())
	}
}

func TestFaultProbabilityAndCount(t *testing.T) {
	sim := startSimulator(t, testConfig())
	addFault(t, sim, spectrumtest.Fault{Kind: spectrumtest.FaultUnavailable, Count: 2})
	client := newClient(sim, enterpriseToken)
	var failures int
	for range 5 {
		if _, err := client.ListApps(testContext(t), enterpriseZone); err != nil {
			failures++
		}
	}
	if failures != 2 || len(sim.Faults()) != 0 {
		t.Errorf("a fault with count 2 failed %d requests and left %v", failures, sim.Faults())
	}
	addFault(t, sim, spectrumtest.Fault{Kind: spectrumtest.FaultUnavailable, Probability: 0.5})
	failures = 0
	for range 200 {
		if _, err := client.ListApps(testContext(t), enterpriseZone); err != nil {
			failures++
		}
	}
	if failures < 50 || failures > 150 {
		t.Errorf("probability 0.5 failed %d of 200 requests", failures)
	}
}

// Many callers of one token against a budget counted in fixed windows, the
// strictest model of Cloudflare's (no bursts across a window's edge): the
// client learns the window from the headers and never gets a 429.
func TestConcurrentCallersStayInsideAFixedWindowBudget(t *testing.T) {
	cfg := testConfig()
	// The client paces from the X-RateLimit-* headers; the simulator sends
	// the modern Ratelimit headers by default, so ask for both.
	cfg.RateLimit = spectrumtest.RateLimitConfig{Limit: 10, Window: spectrumtest.Duration{Duration: 500 * time.Millisecond}, Enforce: true,
		Headers: spectrumtest.HeadersBoth}
	sim := startSimulator(t, cfg)
	var mu sync.Mutex
	statuses := map[int]int{}
	client := budget.NewConnector(budget.ConnectorOptions{
		BaseURL: sim.URL, RequestsPerSecond: 20, Burst: 5,
		Observer: func(_ string, status, _ int) {
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		},
	}).ForToken(enterpriseToken)

	const callers, each = 8, 6
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				if _, err := client.ListApps(ctx, enterpriseZone); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if statuses[http.StatusTooManyRequests] != 0 || statuses[http.StatusOK] != callers*each {
		t.Fatalf("statuses %v: want %d answers of 200 and no 429", statuses, callers*each)
	}
}
