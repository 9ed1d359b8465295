package spectrum

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// Class is what a failure asks of the operator.
type Class int

const (
	// Retryable failures go away by themselves: retry with backoff (after
	// RetryAfter, when set).
	Retryable Class = iota + 1
	// NeedsHuman failures repeat until a person acts (an entitlement, a
	// permission, a conflict, a quota): do not retry until something
	// changes.
	NeedsHuman
	// InvalidSpec failures are configurations Cloudflare rejects; the
	// admission webhook should have caught them. The spec must change, so
	// they are never retried either.
	InvalidSpec
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "Retryable"
	case NeedsHuman:
		return "NeedsHuman"
	case InvalidSpec:
		return "InvalidSpec"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Classification is a failure explained: whether to retry, a stable Reason
// for conditions and scripts, and a Message a person can act on.
type Classification struct {
	Class Class
	// Reason is a stable CamelCase word, fit for a condition's reason.
	Reason string
	// Resolution is what to do about it.
	Resolution string
	// Codes are Cloudflare's error codes, in its order.
	Codes []int
	// HTTPStatus is the response's status; 0 when no answer came.
	HTTPStatus int
	// RayID identifies the request for Cloudflare support.
	RayID string
	// RetryAfter is how long Cloudflare asked to wait, if it did.
	RetryAfter time.Duration
	// Message is one or two sentences with the codes, the status, the Ray
	// ID and the resolution.
	Message string
}

// Stable reasons that do not come from a table entry.
const (
	ReasonNetworkError           = "NetworkError"
	ReasonRateLimited            = "RateLimited"
	ReasonUnexpectedResponse     = "UnexpectedResponse"
	ReasonUnknownCloudflareError = "UnknownCloudflareError"
	ReasonUnexpectedError        = "UnexpectedError"
	ReasonCloudflareUnavailable  = "CloudflareUnavailable"
)

// Classify explains err, an error from a Client. A nil err gives the zero
// Classification.
func Classify(err error) Classification {
	if err == nil {
		return Classification{}
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return classifyAPIError(apiErr)
	}
	var claimed *ClaimedError
	if errors.As(err, &claimed) {
		return claimedEntry.explain(Classification{}, claimed.Error())
	}
	var credErr *CredentialsError
	if errors.As(err, &credErr) {
		return credentialsEntry(credErr.Reason).explain(Classification{}, credErr.Detail)
	}
	if errors.Is(err, ErrRateLimited) {
		e := entry{class: Retryable, reason: ReasonRateLimited,
			resolution: "The operator's own request budget for this API token is used up; the request will be sent when the budget allows."}
		return e.explain(Classification{}, "Cloudflare API request postponed: "+err.Error())
	}
	if isTransportError(err) {
		e := entry{class: Retryable, reason: ReasonNetworkError,
			resolution: "The request will be retried. If it persists, check the operator's network path to api.cloudflare.com (DNS, proxy, firewall)."}
		return e.explain(Classification{}, "Cloudflare could not be reached: "+err.Error())
	}
	e := entry{class: Retryable, reason: ReasonUnexpectedError,
		resolution: "The request will be retried; report it if it persists."}
	return e.explain(Classification{}, "Unexpected error talking to Cloudflare: "+err.Error())
}

func isTransportError(err error) bool {
	var requestErr *RequestError
	var netErr net.Error
	return errors.As(err, &requestErr) ||
		errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled)
}

func classifyAPIError(apiErr *APIError) Classification {
	facts := Classification{
		Codes:      apiErr.Codes(),
		HTTPStatus: apiErr.HTTPStatus,
		RayID:      apiErr.RayID,
		RetryAfter: apiErr.RetryAfter,
	}
	return lookup(apiErr.HTTPStatus, facts.Codes).explain(facts, describeAnswer(apiErr))
}

// lookup finds the table entry for an answer. A 429 is a rate limit whatever
// its code (Cloudflare uses several). Otherwise the codes decide, a code that
// needs a person winning over a retryable one, since retrying cannot help;
// then the status; then the status's class.
func lookup(status int, codes []int) entry {
	if status == 429 {
		return statusEntry(429)
	}
	var retryable *entry
	for _, code := range codes {
		e, ok := codeEntry(code)
		if !ok {
			continue
		}
		if e.class != Retryable {
			return e
		}
		if retryable == nil {
			retryable = &e
		}
	}
	if retryable != nil {
		return *retryable
	}
	if e, ok := statusOnlyEntry(status); ok {
		return e
	}
	switch {
	case status >= 500:
		return statusEntry(500)
	case status >= 400:
		return entry{class: NeedsHuman, reason: ReasonUnknownCloudflareError,
			resolution: "Cloudflare refused the request with an error this operator does not know; look the code up in Cloudflare's API documentation or ask Cloudflare support with the Ray ID."}
	default:
		return entry{class: Retryable, reason: ReasonUnexpectedResponse,
			resolution: "Cloudflare's answer could not be understood; the request will be retried. Report it with the Ray ID if it persists."}
	}
}

func codeEntry(code int) (entry, bool) {
	for _, e := range table {
		for _, c := range e.codes {
			if c == code {
				return e, true
			}
		}
	}
	return entry{}, false
}

func statusOnlyEntry(status int) (entry, bool) {
	for _, e := range table {
		if len(e.codes) == 0 && e.status == status {
			return e, true
		}
	}
	return entry{}, false
}

func statusEntry(status int) entry {
	e, _ := statusOnlyEntry(status)
	return e
}

// describeAnswer is what Cloudflare said: "error 11026 (HTTP 403, Ray ID
// 8a1b-SJC): Argo Smart Routing is not enabled".
func describeAnswer(apiErr *APIError) string {
	var b strings.Builder
	b.WriteString("Cloudflare answered ")
	b.WriteString(apiErr.Method)
	b.WriteString(" ")
	b.WriteString(apiErr.Path)
	switch codes := apiErr.Codes(); len(codes) {
	case 0:
		fmt.Fprintf(&b, " with HTTP %d", apiErr.HTTPStatus)
	case 1:
		fmt.Fprintf(&b, " with error %d (HTTP %d", codes[0], apiErr.HTTPStatus)
	default:
		fmt.Fprintf(&b, " with errors %s (HTTP %d", joinInts(codes), apiErr.HTTPStatus)
	}
	if len(apiErr.Errors) > 0 {
		if apiErr.RayID != "" {
			fmt.Fprintf(&b, ", Ray ID %s", apiErr.RayID)
		}
		b.WriteString(")")
	} else if apiErr.RayID != "" {
		fmt.Fprintf(&b, " (Ray ID %s)", apiErr.RayID)
	}
	var said []string
	for _, d := range apiErr.Errors {
		if msg := strings.TrimRight(strings.TrimSpace(d.Message), "."); msg != "" {
			said = append(said, msg)
		}
	}
	if apiErr.BodyProblem != "" {
		said = append(said, apiErr.BodyProblem)
	}
	if len(said) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(said, "; "))
	}
	return b.String()
}

func joinInts(values []int) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}

// explain fills the classification from the entry and the facts of the
// failure.
func (e entry) explain(facts Classification, what string) Classification {
	facts.Class = e.class
	facts.Reason = e.reason
	facts.Resolution = e.resolution
	message := strings.TrimRight(what, ".") + ". " + e.resolution
	if facts.RetryAfter > 0 {
		message += fmt.Sprintf(" Cloudflare asked to wait %s.", facts.RetryAfter)
	}
	facts.Message = message
	return facts
}

// rateLimitResolution explains a 429, whichever code came with it.
const rateLimitResolution = "The API token went over Cloudflare's limit of 1,200 requests per five minutes (counted with the dashboard and every other tool using the same user); every request with this token pauses until Cloudflare allows them again."

// entry is one row of the classification table.
type entry struct {
	// codes are the Cloudflare error codes the row is for; empty for a row
	// that matches on the HTTP status alone.
	codes []int
	// status is the HTTP status Cloudflare documents for codes, or the
	// status the row matches when codes is empty.
	status     int
	class      Class
	reason     string
	resolution string
}

// table is the one place that says what each Cloudflare answer means for
// the operator. Codes and remedies are those of Cloudflare's Spectrum error
// codes page and API documentation (as collected in the project's API notes).
var table = []entry{
	// Cloudflare's side.
	{codes: []int{10002}, status: 500, class: Retryable, reason: "CloudflareInternalError",
		resolution: "Cloudflare had an internal error or a dependency (DNS, IP management) was briefly unavailable; the request will be retried with backoff. If it persists, give Cloudflare support the Ray ID."},

	// Credentials and rate limits.
	{codes: []int{10000}, status: 403, class: NeedsHuman, reason: "AuthenticationFailed",
		resolution: "Cloudflare did not accept the API token for this zone: check that the credentials Secret holds a valid token with Zone > Spectrum > Edit permission on this zone."},
	{codes: []int{9109}, status: 403, class: NeedsHuman, reason: "AuthenticationFailed",
		resolution: "The API token is invalid, expired or revoked: put a valid token with Zone > Spectrum > Edit permission in the credentials Secret."},
	{codes: []int{971, 10100, 10300}, status: 429, class: Retryable, reason: ReasonRateLimited,
		resolution: rateLimitResolution},
	{codes: []int{codeAppNotFound}, status: 404, class: Retryable, reason: "AppNotFound",
		resolution: "The application no longer exists at Cloudflare (it was deleted outside the operator); the operator will create it again."},

	// Plan and entitlements.
	{codes: []int{10012}, status: 400, class: NeedsHuman, reason: "PlanFieldNotAllowed",
		resolution: "Pay-as-you-go accounts may only set protocol, dns and originDirect: remove the other fields, or have Spectrum enabled as a paid add-on."},
	{codes: []int{11034}, status: 400, class: NeedsHuman, reason: "PlanAppLimitReached",
		resolution: "Pay-as-you-go accounts may have one application per protocol and one already exists: remove the other application or get the paid Spectrum add-on."},
	{codes: []int{11014}, status: 403, class: NeedsHuman, reason: "FTPNotEnabled",
		resolution: "FTP is not enabled for the account: ask your Cloudflare account team to enable it."},
	{codes: []int{11018}, status: 403, class: NeedsHuman, reason: "BYOIPNotEnabled",
		resolution: "Static edge IPs (BYOIP) are not enabled for the account: ask your Cloudflare account team to enable BYOIP, or use dynamic edge IPs."},
	{codes: []int{11026}, status: 403, class: NeedsHuman, reason: "ArgoNotEnabled",
		resolution: "Argo Smart Routing is not enabled for the account: ask your Cloudflare account team to enable it, or set argoSmartRouting to false."},

	// Conflicts and quotas that only a person can resolve.
	{codes: []int{11019}, status: 400, class: NeedsHuman, reason: "EdgeIPsNotAuthorized",
		resolution: "The token may not use these edge IPs: give it the Account > IP Prefixes permission, and use addresses from a prefix allocated to the account."},
	{codes: []int{11033}, status: 400, class: NeedsHuman, reason: "EdgeIPInUse",
		resolution: "An edge IP is used by an application of another zone (often an orphaned legacy one): free the address there, or contact Cloudflare support with the Ray ID."},
	{codes: []int{11044}, status: 400, class: NeedsHuman, reason: "VirtualNetworkRouteMissing",
		resolution: "The virtual network has no route for the origin IP (or does not exist): add a Cloudflare Tunnel route for the address in that network, or fix virtualNetworkID."},
	{codes: []int{11050}, status: 400, class: NeedsHuman, reason: "OriginDNSInAnotherZone",
		resolution: "The origin DNS record or load balancer lives in another zone: move it into the application's zone, or use originDirect."},
	{codes: []int{12005}, status: 400, class: NeedsHuman, reason: "IPv4QuotaExhausted",
		resolution: "The zone has used up its IPv4 edge address quota: consolidate applications, buy more addresses, or use BYOIP."},
	{codes: []int{13002}, status: 400, class: NeedsHuman, reason: "ProtocolNotAvailable",
		resolution: "The zone's plan does not offer this protocol or edge port (Cloudflare's message lists the refused ports): pick an allowed port, or upgrade the plan."},
	{codes: []int{16001}, status: 400, class: NeedsHuman, reason: "HostnameInAnotherZone",
		resolution: "The hostname already exists in a different zone: use the right zoneID, another dns.name, or delete it in the other zone."},

	// Configurations the admission webhook should have rejected.
	{codes: []int{11000}, status: 400, class: InvalidSpec, reason: "InvalidOriginConfig",
		resolution: "Set exactly one of originDirect and originDNS."},
	{codes: []int{11001}, status: 400, class: InvalidSpec, reason: "InvalidOriginDNS",
		resolution: "Fix originDNS: a valid hostname, a TTL in Cloudflare's range, and originPort unless the type is SRV."},
	{codes: []int{11002}, status: 400, class: InvalidSpec, reason: "InvalidOriginAddress",
		resolution: "Fix originDirect: tcp://IP:PORT or udp://IP:PORT, IPv6 in brackets, and an IP Cloudflare allows as an origin."},
	{codes: []int{11004}, status: 400, class: InvalidSpec, reason: "DNSTypeMismatch",
		resolution: "Match dns.type to the edge IPs (dynamic needs CNAME, static needs ADDRESS); dns.type cannot change, so recreate the application to change it."},
	{codes: []int{11041}, status: 400, class: InvalidSpec, reason: "VirtualNetworkWithOriginDNS",
		resolution: "An application with virtualNetworkID must use originDirect, not originDNS."},
	{codes: []int{11042}, status: 400, class: InvalidSpec, reason: "VirtualNetworkMultipleOrigins",
		resolution: "An application with virtualNetworkID takes exactly one originDirect address, tcp|udp://IP:PORT."},
	{codes: []int{11043}, status: 400, class: InvalidSpec, reason: "VirtualNetworkPortRange",
		resolution: "An application with virtualNetworkID takes a single port, not a range: create one application per port."},
	{codes: []int{11045}, status: 400, class: InvalidSpec, reason: "InvalidVirtualNetworkID",
		resolution: "virtualNetworkID must be the virtual network's UUID."},

	// Answers without a known code.
	{status: 401, class: NeedsHuman, reason: "AuthenticationFailed",
		resolution: "Cloudflare did not accept the credentials: put a valid API token with Zone > Spectrum > Edit permission in the credentials Secret."},
	{status: 403, class: NeedsHuman, reason: "PermissionDenied",
		resolution: "The API token is not allowed to do this: give it Zone > Spectrum > Edit permission on the zone."},
	{status: 404, class: Retryable, reason: "AppNotFound",
		resolution: "The application no longer exists at Cloudflare (it was deleted outside the operator); the operator will create it again."},
	{status: 429, class: Retryable, reason: ReasonRateLimited,
		resolution: rateLimitResolution},
	{status: 500, class: Retryable, reason: ReasonCloudflareUnavailable,
		resolution: "Cloudflare is temporarily unavailable; the request will be retried with backoff. If it persists, give Cloudflare support the Ray ID."},
}
