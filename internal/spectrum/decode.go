package spectrum

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// maxResponseBytes caps how much of a response body is read. A page of 100
// apps is well under 100 KiB; anything near the cap is not an answer from the
// apps API (an error page loop, a misrouted download) and must not exhaust
// the operator's memory.
const maxResponseBytes = 4 << 20

// envelope is the v4 response wrapper shared by every Cloudflare endpoint.
type envelope struct {
	Success    *bool          `json:"success"`
	Errors     []ErrorDetail  `json:"errors"`
	Result     envelopeResult `json:"result"`
	ResultInfo *ResultInfo    `json:"result_info"`
}

// envelopeResult is the envelope's result: kept as JSON for decoding once
// the envelope says it succeeded, or, for a listing page, read in place
// while the envelope is decoded. A page is tens of KiB, and copying each
// out of the body was a quarter of what listing a zone allocated.
type envelopeResult struct {
	raw  json.RawMessage
	page *listPage
	// read is true when a page was read, and err what reading it found.
	read bool
	err  error
}

// UnmarshalJSON implements json.Unmarshaler. A page's problems are kept
// for decodeResponse, which tells an error answer apart from a bad page
// first.
func (r *envelopeResult) UnmarshalJSON(data []byte) error {
	if r.page == nil {
		r.raw = append(r.raw[:0], data...)
		return nil
	}
	if string(data) == "null" {
		return nil
	}
	r.read, r.err = true, r.page.read(data)
	return nil
}

// ResultInfo is the pagination block of list responses.
type ResultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

// response is one answer as it came off the wire.
type response struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
	// truncated is true when the body was longer than maxResponseBytes.
	truncated bool
}

// decodeResponse turns a response into its result (decoded into result,
// which may be nil when the caller needs none) or an *APIError. Any status
// outside 2xx is an error whatever the body says; a body that is not a v4
// envelope is an error whatever the status says.
func decodeResponse(r response, result any) (*ResultInfo, error) {
	fail := func(details []ErrorDetail, problem string) error {
		return &APIError{
			HTTPStatus:  r.status,
			Errors:      details,
			RayID:       r.header.Get("cf-ray"),
			RetryAfter:  ParseRetryAfter(r.header.Get("Retry-After"), time.Now()),
			Method:      r.method,
			Path:        r.path,
			BodyProblem: problem,
		}
	}
	success := r.status >= 200 && r.status <= 299

	if problem := bodyProblem(r); problem != "" {
		return nil, fail(nil, problem)
	}
	var env envelope
	page, isPage := result.(*listPage)
	if !readEnvelope(r.body, &env, page) {
		env = envelope{Result: envelopeResult{page: page}}
		if err := json.Unmarshal(r.body, &env); err != nil {
			return nil, fail(nil, "response is not a Cloudflare API envelope: "+describeJSONError(err))
		}
	}
	if !success || len(env.Errors) > 0 || (env.Success != nil && !*env.Success) {
		return nil, fail(env.Errors, "")
	}
	if result == nil {
		return env.ResultInfo, nil
	}
	if isPage {
		switch {
		case !env.Result.read:
			return nil, fail(nil, "response has no result")
		case env.Result.err != nil:
			return nil, fail(nil, "response result is not an application: "+describeJSONError(env.Result.err))
		}
		return env.ResultInfo, nil
	}
	if len(env.Result.raw) == 0 || string(env.Result.raw) == "null" {
		return nil, fail(nil, "response has no result")
	}
	if err := json.Unmarshal(env.Result.raw, result); err != nil {
		return nil, fail(nil, "response result is not an application: "+describeJSONError(err))
	}
	return env.ResultInfo, nil
}

// bodyProblem explains why a body cannot be an envelope before trying to
// parse it, so that a proxy's HTML page reads as such in the message.
func bodyProblem(r response) string {
	if r.truncated {
		return fmt.Sprintf("response body larger than %d MiB", maxResponseBytes>>20)
	}
	trimmed := bytes.TrimSpace(r.body)
	if len(trimmed) == 0 {
		return "empty response body"
	}
	if trimmed[0] == '{' {
		return ""
	}
	contentType := r.header.Get("Content-Type")
	if mediaType, _, err := mime.ParseMediaType(contentType); err == nil {
		contentType = mediaType
	}
	if contentType == "" {
		contentType = "no content type"
	}
	return fmt.Sprintf("response is not JSON (%s): %q", contentType, snippet(trimmed))
}

// snippet is the start of a body, printable and short enough for a
// condition message.
func snippet(body []byte) string {
	const maxRunes = 80
	var b strings.Builder
	lastSpace := false
	for i, r := range string(body) {
		if i >= 4*maxRunes || b.Len() >= maxRunes {
			b.WriteString("…")
			break
		}
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			if !lastSpace {
				b.WriteByte(' ')
			}
			lastSpace = true
			continue
		}
		lastSpace = false
		b.WriteRune(r)
	}
	return b.String()
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q has the wrong type (%s)", typeErr.Field, typeErr.Value)
	case strings.Contains(err.Error(), "unexpected end of JSON input"):
		return "truncated JSON"
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset)
	}
	return err.Error()
}

// maxRetryAfter caps Retry-After at Cloudflare's rate-limit window (1,200
// requests per 5 minutes): no wait it can mean is longer. A larger value,
// from a proxy on the way or a bug, would otherwise pause every app on the
// token, and on a shared token every tenant, for as long as it says.
const maxRetryAfter = 300 * time.Second

// ParseRetryAfter reads Retry-After as seconds or as an HTTP date, capped at
// maxRetryAfter.
func ParseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if seconds, err := strconv.ParseInt(value, 10, 64); err == nil {
		if seconds <= 0 {
			return 0
		}
		return time.Duration(min(seconds, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return min(at.Sub(now).Round(time.Second), maxRetryAfter)
	}
	return 0
}
