package spectrum

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// codeAppNotFound is the error code public Cloudflare providers match for an
// unknown application id (besides the HTTP 404 status).
const codeAppNotFound = 10006

// ErrorDetail is one entry of the v4 envelope's "errors" list.
type ErrorDetail struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// APIError is Cloudflare's answer to a request that did not succeed: a non-2xx
// status, an envelope with "success": false, or a body that could not be
// read as the v4 envelope at all.
type APIError struct {
	// HTTPStatus is the response's status code.
	HTTPStatus int
	// Errors are the envelope's error entries, in Cloudflare's order; empty
	// when the body was not a v4 envelope.
	Errors []ErrorDetail
	// RayID is the cf-ray response header: what Cloudflare support asks for.
	RayID string
	// RetryAfter is the wait the Retry-After header asked for, if any.
	RetryAfter time.Duration
	// Method and Path are the request's, for the message (never the query
	// string or headers, so no credential can leak through them).
	Method, Path string
	// BodyProblem says why the body could not be decoded ("not JSON
	// (text/html): <html>..."); empty when it was a proper envelope.
	BodyProblem string
}

// Error reads "cloudflare: POST /zones/…/spectrum/apps: HTTP 403: 11026 Argo
// Smart Routing is not enabled (ray 8a1b…)".
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloudflare: %s %s: HTTP %d", e.Method, e.Path, e.HTTPStatus)
	if len(e.Errors) > 0 {
		b.WriteString(": ")
		b.WriteString(e.describeErrors())
	}
	if e.BodyProblem != "" {
		b.WriteString(": ")
		b.WriteString(e.BodyProblem)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.RayID != "" {
		fmt.Fprintf(&b, " (ray %s)", e.RayID)
	}
	return b.String()
}

func (e *APIError) describeErrors() string {
	parts := make([]string, 0, len(e.Errors))
	for _, d := range e.Errors {
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("%d %s", d.Code, d.Message)))
	}
	return strings.Join(parts, "; ")
}

// Codes returns the error codes in Cloudflare's order.
func (e *APIError) Codes() []int {
	codes := make([]int, 0, len(e.Errors))
	for _, d := range e.Errors {
		codes = append(codes, d.Code)
	}
	return codes
}

// HasCode reports whether Cloudflare answered with the given code.
func (e *APIError) HasCode(code int) bool {
	for _, d := range e.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// IsNotFound reports whether err says the application does not exist (any
// more): HTTP 404 or error code 10006.
func IsNotFound(err error) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.HTTPStatus == 404 || apiErr.HasCode(codeAppNotFound)
}

// ErrRateLimited is returned, wrapped, when the client's own request budget
// for a token cannot admit a request before the caller's deadline; nothing
// was sent to Cloudflare.
var ErrRateLimited = errors.New("request budget for this API token exhausted until after the deadline")

// ErrNotSent says a request was never sent: the token's budget let nothing
// through before its context ended (the manager stopping, a deadline). It
// wraps the cause (ErrRateLimited, context.Canceled, ...).
var ErrNotSent = errors.New("request not sent")

// RequestError is a request that got no usable answer from Cloudflare: the
// connection failed, timed out or was cut, or the request could not be
// built. Err is the cause (a net.Error, io.ErrUnexpectedEOF,
// context.DeadlineExceeded, ErrRateLimited, ...).
type RequestError struct {
	Method, Path string
	Err          error
	// cause is Err's text with any credential removed, fixed when the error
	// is made.
	cause string
}

func (e *RequestError) Error() string {
	cause := e.cause
	if cause == "" && e.Err != nil {
		cause = e.Err.Error()
	}
	return fmt.Sprintf("cloudflare: %s %s: %s", e.Method, e.Path, cause)
}

func (e *RequestError) Unwrap() error { return e.Err }

// UnreadableAppError is an application Cloudflare listed in a shape the
// client could not decode (see Listing.Unreadable), met where the operator
// needed it: the application a SpectrumApp manages, or would adopt.
type UnreadableAppError struct {
	ZoneID string
	App    UnreadableApp
}

func (e *UnreadableAppError) Error() string {
	return fmt.Sprintf("Cloudflare application %s (%s %s) in zone %s could not be read: %s",
		e.App.ID, e.App.Hostname, e.App.Protocol, e.ZoneID, e.App.Problem)
}

// MayHaveBeenApplied reports whether a failed write may have been applied at
// Cloudflare anyway. A request Cloudflare answered with its error envelope
// was refused, whatever the status (a 503 with code 10002 included); one
// that got no answer (a timeout, a dropped connection), or an answer that is
// not Cloudflare's envelope (an HTML page from the edge or a proxy), may
// have been applied, or may be applied later still. A request the client's
// own budget stopped was never sent.
func MayHaveBeenApplied(err error) bool {
	if err == nil || errors.Is(err, ErrRateLimited) || errors.Is(err, ErrNotSent) {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.BodyProblem != "" && (apiErr.HTTPStatus < 400 || apiErr.HTTPStatus >= 500)
	}
	return true
}
