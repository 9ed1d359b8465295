package spectrum

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// TestClassifyTable walks the table entry by entry: each code, answered with
// its documented status, gets the entry's class and reason, and the message
// carries the code, the status, the Ray ID and the resolution.
func TestClassifyTable(t *testing.T) {
	for _, e := range table {
		codes := e.codes
		if len(codes) == 0 {
			codes = []int{0}
		}
		for _, code := range codes {
			t.Run(fmt.Sprintf("%s/%d/%d", e.reason, code, e.status), func(t *testing.T) {
				apiErr := &APIError{HTTPStatus: e.status, RayID: "8a1b2c3d4e5f6a7b-SJC", Method: "POST", Path: "/zones/z/spectrum/apps"}
				if code != 0 {
					apiErr.Errors = []ErrorDetail{{Code: code, Message: "what Cloudflare said"}}
				}
				got := Classify(fmt.Errorf("creating the app: %w", apiErr))
				if got.Class != e.class || got.Reason != e.reason {
					t.Fatalf("Classify = %v %s, want %v %s", got.Class, got.Reason, e.class, e.reason)
				}
				if got.HTTPStatus != e.status || got.RayID != apiErr.RayID {
					t.Errorf("facts = HTTP %d ray %q", got.HTTPStatus, got.RayID)
				}
				mustContain(t, got.Message, fmt.Sprintf("HTTP %d", e.status), apiErr.RayID, e.resolution)
				if code != 0 {
					mustContain(t, got.Message, fmt.Sprint(code), "what Cloudflare said")
					if len(got.Codes) != 1 || got.Codes[0] != code {
						t.Errorf("Codes = %v", got.Codes)
					}
				}
			})
		}
	}
}

// TestClassifyDocumentedCodes pins the class and reason of every code in the
// API notes, so that a table edit that changes one is deliberate.
func TestClassifyDocumentedCodes(t *testing.T) {
	cases := []struct {
		code, status int
		class        failure.Class
		reason       string
	}{
		{10002, 500, failure.Retryable, "CloudflareInternalError"},
		{10002, 503, failure.Retryable, "CloudflareInternalError"},
		{10012, 400, failure.NeedsHuman, "PlanFieldNotAllowed"},
		{11000, 400, failure.InvalidSpec, "InvalidOriginConfig"},
		{11001, 400, failure.InvalidSpec, "InvalidOriginDNS"},
		{11002, 400, failure.InvalidSpec, "InvalidOriginAddress"},
		{11004, 400, failure.InvalidSpec, "DNSTypeMismatch"},
		{11014, 403, failure.NeedsHuman, "FTPNotEnabled"},
		{11018, 403, failure.NeedsHuman, "BYOIPNotEnabled"},
		{11019, 400, failure.NeedsHuman, "EdgeIPsNotAuthorized"},
		{11026, 403, failure.NeedsHuman, "ArgoNotEnabled"},
		{11033, 400, failure.NeedsHuman, "EdgeIPInUse"},
		{11034, 400, failure.NeedsHuman, "PlanAppLimitReached"},
		{11041, 400, failure.InvalidSpec, "VirtualNetworkWithOriginDNS"},
		{11042, 400, failure.InvalidSpec, "VirtualNetworkMultipleOrigins"},
		{11043, 400, failure.InvalidSpec, "VirtualNetworkPortRange"},
		{11044, 400, failure.NeedsHuman, "VirtualNetworkRouteMissing"},
		{11045, 400, failure.InvalidSpec, "InvalidVirtualNetworkID"},
		{11050, 400, failure.NeedsHuman, "OriginDNSInAnotherZone"},
		{12005, 400, failure.NeedsHuman, "IPv4QuotaExhausted"},
		{13002, 400, failure.NeedsHuman, "ProtocolNotAvailable"},
		{16001, 400, failure.NeedsHuman, "HostnameInAnotherZone"},
		{10000, 401, failure.NeedsHuman, "AuthenticationFailed"},
		{10000, 403, failure.NeedsHuman, "AuthenticationFailed"},
		{9109, 401, failure.NeedsHuman, "AuthenticationFailed"},
		{9109, 403, failure.NeedsHuman, "AuthenticationFailed"},
		{971, 429, failure.Retryable, "RateLimited"},
		{10100, 429, failure.Retryable, "RateLimited"},
		{10300, 429, failure.Retryable, "RateLimited"},
		{10006, 404, failure.Retryable, "AppNotFound"},
	}
	for _, tc := range cases {
		got := Classify(&APIError{HTTPStatus: tc.status, Errors: []ErrorDetail{{Code: tc.code}}})
		if got.Class != tc.class || got.Reason != tc.reason {
			t.Errorf("code %d HTTP %d: got %v %s, want %v %s", tc.code, tc.status, got.Class, got.Reason, tc.class, tc.reason)
		}
	}
}

func TestClassifyWithoutKnownCode(t *testing.T) {
	cases := []struct {
		name   string
		err    *APIError
		class  failure.Class
		reason string
	}{
		{"unknown code on 500", &APIError{HTTPStatus: 500, Errors: []ErrorDetail{{Code: 99999}}}, failure.Retryable, "CloudflareUnavailable"},
		{"unknown code on 502", &APIError{HTTPStatus: 502, Errors: []ErrorDetail{{Code: 99999}}}, failure.Retryable, "CloudflareUnavailable"},
		{"unknown code on 400", &APIError{HTTPStatus: 400, Errors: []ErrorDetail{{Code: 99999}}}, failure.NeedsHuman, "UnknownCloudflareError"},
		// A timeout or a conflicting change at Cloudflare passes by itself;
		// Cloudflare's own SDKs retry 408 and 409.
		{"unknown code on 408", &APIError{HTTPStatus: 408, Errors: []ErrorDetail{{Code: 99999}}}, failure.Retryable, "CloudflareTimeout"},
		{"408 without body", &APIError{HTTPStatus: 408, BodyProblem: "empty response body"}, failure.Retryable, "CloudflareTimeout"},
		{"unknown code on 409", &APIError{HTTPStatus: 409, Errors: []ErrorDetail{{Code: 99999}}}, failure.Retryable, "CloudflareConflict"},
		{"409 without code", &APIError{HTTPStatus: 409}, failure.Retryable, "CloudflareConflict"},
		{"known human code on 409 still needs a person", &APIError{HTTPStatus: 409, Errors: []ErrorDetail{{Code: 16001}}}, failure.NeedsHuman, "HostnameInAnotherZone"},
		{"429 whatever the code", &APIError{HTTPStatus: 429, Errors: []ErrorDetail{{Code: 11026}}}, failure.Retryable, "RateLimited"},
		{"429 without body", &APIError{HTTPStatus: 429, BodyProblem: "empty response body"}, failure.Retryable, "RateLimited"},
		{"401 without code", &APIError{HTTPStatus: 401}, failure.NeedsHuman, "AuthenticationFailed"},
		{"403 without code", &APIError{HTTPStatus: 403}, failure.NeedsHuman, "PermissionDenied"},
		{"404 without code", &APIError{HTTPStatus: 404}, failure.Retryable, "AppNotFound"},
		{"HTML 502", &APIError{HTTPStatus: 502, BodyProblem: "response is not JSON (text/html)"}, failure.Retryable, "CloudflareUnavailable"},
		{"undecodable 200", &APIError{HTTPStatus: 200, BodyProblem: "truncated JSON"}, failure.Retryable, "UnexpectedResponse"},
		{"undecodable 400", &APIError{HTTPStatus: 400, BodyProblem: "empty response body"}, failure.NeedsHuman, "UnknownCloudflareError"},
		{"human code beats retryable", &APIError{HTTPStatus: 500, Errors: []ErrorDetail{{Code: 10002}, {Code: 11026}}}, failure.NeedsHuman, "ArgoNotEnabled"},
		{"first human code wins", &APIError{HTTPStatus: 400, Errors: []ErrorDetail{{Code: 99999}, {Code: 11000}, {Code: 16001}}}, failure.InvalidSpec, "InvalidOriginConfig"},
	}
	for _, tc := range cases {
		got := Classify(tc.err)
		if got.Class != tc.class || got.Reason != tc.reason {
			t.Errorf("%s: got %v %s, want %v %s", tc.name, got.Class, got.Reason, tc.class, tc.reason)
		}
	}
}

// The condition message says what Cloudflare said once, then what to do:
// the resolution is an action, not Cloudflare's sentence again.
func TestMessageDoesNotRepeatCloudflare(t *testing.T) {
	said := map[int]string{
		10002: "An unknown error has occurred",
		10012: "Unknown field \"tls\"",
		11014: "FTP is not enabled for this account",
		11018: "Static edge IPs (BYOIP) are not enabled for this account",
		11019: "Not authorized to use these edge IPs",
		11026: "Argo Smart Routing is not enabled for this account",
		11033: "Edge IP 198.51.100.1 is in use by an application in another zone",
		11034: "An application with this protocol already exists",
		11044: "No route for origin tcp://10.0.0.5:22 in virtual network",
		11050: "The origin DNS record belongs to a different zone",
		12005: "The zone has used its IPv4 quota",
		13002: "Protocol tcp/21 is not available for this zone",
		16001: "The hostname already exists in a different zone",
		9109:  "Invalid access token",
		10000: "Authentication error",
	}
	for _, e := range table {
		for _, code := range e.codes {
			message, ok := said[code]
			if !ok {
				continue
			}
			got := Classify(&APIError{HTTPStatus: e.status, Errors: []ErrorDetail{{Code: code, Message: message}}, Method: "POST", Path: "/zones/z/spectrum/apps"})
			for _, phrase := range []string{"not enabled", "in use by", "already exists", "different zone", "not available", "quota", "Invalid access token", "Authentication error", "unknown error", "Unknown field", "Not authorized", "No route"} {
				if strings.Contains(message, phrase) && strings.Count(got.Message, phrase) > 1 {
					t.Errorf("%d: %q appears twice in %q", code, phrase, got.Message)
				}
			}
		}
	}
}

func TestClassifyTransportErrors(t *testing.T) {
	cases := map[string]error{
		"request error":     &RequestError{Method: "GET", Path: "/zones/z/spectrum/apps", Err: errors.New("connection reset by peer")},
		"connection reset":  fmt.Errorf("read: %w", syscall.ECONNRESET),
		"refused":           &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
		"unexpected EOF":    io.ErrUnexpectedEOF,
		"deadline":          context.DeadlineExceeded,
		"canceled":          context.Canceled,
		"net timeout":       &net.DNSError{Err: "timeout", IsTimeout: true},
		"wrapped deadline":  &RequestError{Err: fmt.Errorf("reading body: %w", context.DeadlineExceeded)},
		"EOF mid-response":  io.EOF,
		"dns not found":     &net.DNSError{Err: "no such host", Name: "api.cloudflare.com", IsNotFound: true},
		"op error on write": &net.OpError{Op: "write", Err: syscall.EPIPE},
	}
	for name, err := range cases {
		got := Classify(err)
		if got.Class != failure.Retryable || got.Reason != v1alpha1.ReasonNetworkError {
			t.Errorf("%s: got %v %s, want failure.Retryable NetworkError", name, got.Class, got.Reason)
		}
		if got.HTTPStatus != 0 || !strings.Contains(got.Message, "could not be reached") {
			t.Errorf("%s: message %q", name, got.Message)
		}
	}
}

func TestClassifyOwnRateLimit(t *testing.T) {
	err := &RequestError{Method: "GET", Path: "/p", Err: fmt.Errorf("%w: pause", ErrRateLimited)}
	got := Classify(err)
	if got.Class != failure.Retryable || got.Reason != v1alpha1.ReasonRateLimited {
		t.Fatalf("got %v %s", got.Class, got.Reason)
	}
}

func TestClassifyNilAndUnknown(t *testing.T) {
	if got := Classify(nil); got.Class != 0 || got.Reason != "" {
		t.Errorf("Classify(nil) = %+v", got)
	}
	if got := Classify(errors.New("something odd")); got.Class != failure.Retryable || got.Reason != v1alpha1.ReasonUnexpectedError {
		t.Errorf("unknown error: %v %s", got.Class, got.Reason)
	}
}

func TestClassifyRetryAfterInMessage(t *testing.T) {
	got := Classify(&APIError{HTTPStatus: 429, RetryAfter: 30 * time.Second, Errors: []ErrorDetail{{Code: 10100, Message: "More than 1200 requests per 300 seconds reached."}}})
	if got.RetryAfter != 30*time.Second {
		t.Errorf("RetryAfter = %s", got.RetryAfter)
	}
	mustContain(t, got.Message, "10100", "HTTP 429", "wait 30s")
}

func TestClassifyMultipleCodesMessage(t *testing.T) {
	got := Classify(&APIError{HTTPStatus: 400, Method: "POST", Path: "/zones/z/spectrum/apps",
		Errors: []ErrorDetail{{Code: 11000, Message: "one."}, {Code: 11001, Message: "two"}}})
	mustContain(t, got.Message, "errors 11000, 11001 (HTTP 400)", "one; two")
}

// Every reason is a stable CamelCase word and every resolution a sentence.
func TestTableIsWellFormed(t *testing.T) {
	seenCodes := map[int]bool{}
	for _, e := range table {
		if e.reason == "" || strings.ContainsAny(e.reason, " -_.") || e.reason[0] < 'A' || e.reason[0] > 'Z' {
			t.Errorf("reason %q is not CamelCase", e.reason)
		}
		if !strings.HasSuffix(e.resolution, ".") || e.class == 0 || e.status == 0 {
			t.Errorf("entry %s is incomplete", e.reason)
		}
		for _, c := range e.codes {
			if seenCodes[c] {
				t.Errorf("code %d is in the table twice", c)
			}
			seenCodes[c] = true
		}
	}
}

func mustContain(t *testing.T, text string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("%q does not contain %q", text, p)
		}
	}
}

// Every code the rule set mirrors has its row in the table: a rule that
// names a code the table does not know would tell the user one thing at
// admission and the controller another when Cloudflare answers with it.
func TestTableKnowsEveryCodeOfTheRules(t *testing.T) {
	for _, code := range rules.Codes {
		e, ok := codeEntry(code)
		if !ok {
			t.Errorf("rule code %d has no row in the classification table", code)
			continue
		}
		if e.class == failure.Retryable {
			t.Errorf("rule code %d is classified Retryable: a spec Cloudflare refuses is refused again", code)
		}
	}
}
