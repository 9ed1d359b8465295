package spectrumtest

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

const (
	aliceToken1 = "alice-token-one"
	aliceToken2 = "alice-token-two"
	loneToken   = "lone-token"
)

// limitServer has three tokens of one account: two of the user alice, one
// a user of its own.
func limitServer(t *testing.T, rateLimit string) *Server {
	t.Helper()
	cfg, err := ParseConfig([]byte(`
accounts: [{id: acct, plan: enterprise}]
tokens:
  - {token: ` + aliceToken1 + `, account: acct, user: alice}
  - {token: ` + aliceToken2 + `, account: acct, user: alice}
  - {token: ` + loneToken + `, account: acct}
zones: [{id: ` + testZone + `, name: example.com, account: acct}]
rateLimit: ` + rateLimit))
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg)
	t.Cleanup(s.Close)
	return s
}

var ratelimitPattern = regexp.MustCompile(`^"default";r=(\d+);t=(\d+)$`)

// remaining reads r and t from the Ratelimit header.
func remaining(t *testing.T, resp *http.Response) (r, secs int) {
	t.Helper()
	m := ratelimitPattern.FindStringSubmatch(resp.Header.Get("Ratelimit"))
	if m == nil {
		t.Fatalf("Ratelimit header %q", resp.Header.Get("Ratelimit"))
	}
	r, _ = strconv.Atoi(m[1])
	secs, _ = strconv.Atoi(m[2])
	return r, secs
}

func list(t *testing.T, s *Server, token string) *http.Response {
	t.Helper()
	resp, _ := call(t, "GET", s.URL+"/zones/"+testZone+"/spectrum/apps", token, "")
	return resp
}

func TestRateLimitHeaderFormats(t *testing.T) {
	cases := []struct {
		headers string
		// want: header → value on the first request; "" means absent.
		want map[string]string
		// reset: X-RateLimit-Reset on the 429.
		reset bool
	}{
		{"", map[string]string{"Ratelimit": `"default";r=1;t=300`, "Ratelimit-Policy": `"default";q=2;w=300`,
			"X-Ratelimit-Limit": "", "X-Ratelimit-Remaining": ""}, false},
		{"modern", map[string]string{"Ratelimit": `"default";r=1;t=300`, "Ratelimit-Policy": `"default";q=2;w=300`,
			"X-Ratelimit-Limit": ""}, false},
		{"legacy", map[string]string{"Ratelimit": "", "Ratelimit-Policy": "",
			"X-Ratelimit-Limit": "2", "X-Ratelimit-Remaining": "1"}, true},
		{"both", map[string]string{"Ratelimit": `"default";r=1;t=300`, "Ratelimit-Policy": `"default";q=2;w=300`,
			"X-Ratelimit-Limit": "2", "X-Ratelimit-Remaining": "1"}, true},
	}
	for _, tc := range cases {
		t.Run("headers="+tc.headers, func(t *testing.T) {
			s := limitServer(t, `{limit: 2, enforce: true, headers: "`+tc.headers+`"}`)
			resp := list(t, s, loneToken)
			for name, want := range tc.want {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			list(t, s, loneToken)
			refused := list(t, s, loneToken)
			if refused.StatusCode != http.StatusTooManyRequests || refused.Header.Get("Retry-After") != "300" {
				t.Fatalf("third request: HTTP %d Retry-After %q", refused.StatusCode, refused.Header.Get("Retry-After"))
			}
			if got := refused.Header.Get("X-Ratelimit-Reset") != ""; got != tc.reset {
				t.Errorf("X-RateLimit-Reset on the 429 present = %v, want %v", got, tc.reset)
			}
			if s.RateLimited() != 1 {
				t.Errorf("RateLimited() = %d", s.RateLimited())
			}
		})
	}
}

// t counts down to the end of the window, rounded up.
func TestRateLimitResetSeconds(t *testing.T) {
	s := limitServer(t, `{limit: 10, window: 2s}`)
	if r, secs := remaining(t, list(t, s, loneToken)); r != 9 || secs != 2 {
		t.Errorf("first: r=%d t=%d, want r=9 t=2", r, secs)
	}
	time.Sleep(1100 * time.Millisecond)
	if r, secs := remaining(t, list(t, s, loneToken)); r != 8 || secs != 1 {
		t.Errorf("after 1.1s: r=%d t=%d, want r=8 t=1", r, secs)
	}
	time.Sleep(1000 * time.Millisecond)
	if r, secs := remaining(t, list(t, s, loneToken)); r != 9 || secs != 2 {
		t.Errorf("in the next window: r=%d t=%d, want r=9 t=2", r, secs)
	}
}

// Tokens of one user share one budget; a token without a user has its own.
func TestRateLimitBudgetIsTheUsers(t *testing.T) {
	s := limitServer(t, `{limit: 3, window: 60s, enforce: true}`)
	for i, tok := range []string{aliceToken1, aliceToken2, aliceToken1} {
		resp := list(t, s, tok)
		if r, _ := remaining(t, resp); resp.StatusCode != http.StatusOK || r != 2-i {
			t.Fatalf("request %d: HTTP %d r=%d, want r=%d", i, resp.StatusCode, r, 2-i)
		}
	}
	if resp := list(t, s, aliceToken2); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("alice's fourth request: HTTP %d, want 429", resp.StatusCode)
	}
	if resp := list(t, s, loneToken); resp.StatusCode != http.StatusOK {
		t.Errorf("another user: HTTP %d", resp.StatusCode)
	}
	if s.RateLimited() != 1 {
		t.Errorf("RateLimited() = %d, want 1", s.RateLimited())
	}
}

// Other clients spend the same budget, at their rate, counted lazily.
func TestRateLimitOtherClients(t *testing.T) {
	s := limitServer(t, `{limit: 1000, window: 60s, otherClients: [{user: alice, requestsPerSecond: 40}, {user: alice, requestsPerSecond: 10}]}`)
	if r, _ := remaining(t, list(t, s, aliceToken1)); r != 999 {
		t.Fatalf("first request: r=%d, want 999 (others counted from the window's start)", r)
	}
	time.Sleep(400 * time.Millisecond)
	r, _ := remaining(t, list(t, s, aliceToken2))
	// 2 of ours and 50/s × at least 0.4s of theirs.
	if r > 978 || r < 950 {
		t.Fatalf("after 0.4s: r=%d, want about 978", r)
	}
	if lone, _ := remaining(t, list(t, s, loneToken)); lone != 999 {
		t.Errorf("another user: r=%d, want 999", lone)
	}
	// Removed: what they spent stays spent, nothing more is.
	s.SetOtherClient("alice", 0)
	before, _ := remaining(t, list(t, s, aliceToken1))
	time.Sleep(200 * time.Millisecond)
	after, _ := remaining(t, list(t, s, aliceToken1))
	if before > r-1 || after != before-1 {
		t.Errorf("after removing: r=%d then %d, want at most %d then one less", before, after, r-1)
	}
}

// Other clients alone can use up the budget and get the user blocked.
func TestRateLimitOtherClientExhaustsBudget(t *testing.T) {
	s := limitServer(t, `{limit: 20, window: 60s, enforce: true}`)
	list(t, s, aliceToken1)
	s.SetOtherClient("alice", 1000)
	time.Sleep(50 * time.Millisecond)
	resp := list(t, s, aliceToken1)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("HTTP %d Retry-After %q, want 429 after 60s", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if r, secs := remaining(t, resp); r != 0 || secs != 60 {
		t.Errorf("r=%d t=%d, want r=0 t=60", r, secs)
	}
}

// After a 429 the user is blocked for a whole window from that moment,
// beyond the end of the window that was exceeded.
func TestRateLimitBlockLastsAWindow(t *testing.T) {
	s := limitServer(t, `{limit: 2, window: 1s, enforce: true}`)
	start := time.Now()
	list(t, s, aliceToken1)
	list(t, s, aliceToken1)
	time.Sleep(500 * time.Millisecond)
	if resp := list(t, s, aliceToken2); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("third request: HTTP %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	blockedAt := time.Since(start)
	// The exceeded window ended at 1s; the block runs to about 1.5s.
	time.Sleep(time.Until(start.Add(1200 * time.Millisecond)))
	if resp := list(t, s, aliceToken1); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("during the block (%s after the 429): HTTP %d", time.Since(start)-blockedAt, resp.StatusCode)
	}
	if resp := list(t, s, loneToken); resp.StatusCode != http.StatusOK {
		t.Errorf("another user during alice's block: HTTP %d", resp.StatusCode)
	}
	time.Sleep(time.Until(start.Add(blockedAt + 1100*time.Millisecond)))
	resp := list(t, s, aliceToken2)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the block: HTTP %d", resp.StatusCode)
	}
	if r, _ := remaining(t, resp); r != 1 {
		t.Errorf("after the block: r=%d, want a fresh window (1)", r)
	}
	if s.RateLimited() != 2 {
		t.Errorf("RateLimited() = %d, want 2", s.RateLimited())
	}
}

// Without Enforce the budget is only reported.
func TestRateLimitReportedOnly(t *testing.T) {
	s := limitServer(t, `{limit: 1}`)
	for range 3 {
		resp := list(t, s, loneToken)
		if r, _ := remaining(t, resp); resp.StatusCode != http.StatusOK || r != 0 {
			t.Fatalf("HTTP %d r=%d", resp.StatusCode, r)
		}
	}
	if s.RateLimited() != 0 {
		t.Errorf("RateLimited() = %d", s.RateLimited())
	}
}

// Injected 429s are faults, not budget refusals.
func TestRateLimitedCountsNoFaults(t *testing.T) {
	s := limitServer(t, `{limit: 100}`)
	if _, err := s.AddFault(Fault{Kind: FaultRateLimited, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if resp := list(t, s, loneToken); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	if s.RateLimited() != 0 || s.FaultsFired() != 1 {
		t.Errorf("RateLimited() = %d, FaultsFired() = %d", s.RateLimited(), s.FaultsFired())
	}
}

// While another client spends the budget, windows follow one another
// whether or not this client sends anything: what the other spent since the
// window began counts, even when this client's last request was windows ago.
func TestRateLimitOtherClientOpensWindows(t *testing.T) {
	s := limitServer(t, `{limit: 1000, window: 1s, otherClients: [{user: alice, requestsPerSecond: 400}]}`)
	list(t, s, aliceToken1)
	// Sleep into the middle of a later window: more than a window since our
	// request, and at least 0.3 s into the window that holds now.
	time.Sleep(2300 * time.Millisecond)
	r, _ := remaining(t, list(t, s, aliceToken1))
	// The window began at most 1 s ago and at least 0.3 s ago (windows are
	// contiguous from the other client's start): 400/s spent since.
	if r > 1000-1-100 || r < 1000-1-400 {
		t.Errorf("r=%d: want what the other client spent since the window began (100 to 400) counted", r)
	}
}
