package spectrum

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1/rules"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum/failure"
)

// Classify explains err, an error from a Client. A nil err gives the zero
// failure.Classification.
func Classify(err error) failure.Classification {
	if err == nil {
		return failure.Classification{}
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return classifyAPIError(apiErr)
	}
	var explained failure.Explained
	if errors.As(err, &explained) {
		return explained.Classification()
	}
	var unreadable *UnreadableAppError
	if errors.As(err, &unreadable) {
		e := entry{class: failure.Retryable, reason: v1alpha1.ReasonUnreadableApplication,
			resolution: "The operator retries with backoff; the zone's other applications are not affected. Report the application's shape, with its ID, if it persists."}
		return e.explain(failure.Classification{}, unreadable.Error())
	}
	if errors.Is(err, ErrRateLimited) {
		e := entry{class: failure.Retryable, reason: v1alpha1.ReasonRateLimited,
			resolution: "The operator's own request budget for this API token is used up; the request will be sent when the budget allows."}
		return e.explain(failure.Classification{}, "Cloudflare API request postponed: "+err.Error())
	}
	if isTransportError(err) {
		e := entry{class: failure.Retryable, reason: v1alpha1.ReasonNetworkError,
			resolution: "The request will be retried. If it persists, check the operator's network path to api.cloudflare.com (DNS, proxy, firewall)."}
		return e.explain(failure.Classification{}, "Cloudflare could not be reached: "+err.Error())
	}
	e := entry{class: failure.Retryable, reason: v1alpha1.ReasonUnexpectedError,
		resolution: "The request will be retried; report it if it persists."}
	return e.explain(failure.Classification{}, "Unexpected error talking to Cloudflare: "+err.Error())
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

func classifyAPIError(apiErr *APIError) failure.Classification {
	facts := failure.Classification{
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
		if e.class != failure.Retryable {
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
		return entry{class: failure.NeedsHuman, reason: v1alpha1.ReasonUnknownCloudflareError,
			resolution: "Look the code up in Cloudflare's API documentation, or ask Cloudflare support with the Ray ID."}
	default:
		return entry{class: failure.Retryable, reason: v1alpha1.ReasonUnexpectedResponse,
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
func (e entry) explain(facts failure.Classification, what string) failure.Classification {
	explained := failure.Explain(e.class, e.reason, e.resolution, what)
	facts.Class, facts.Reason, facts.Message = explained.Class, explained.Reason, explained.Message
	if facts.RetryAfter > 0 {
		facts.Message += fmt.Sprintf(" Cloudflare asked to wait %s.", facts.RetryAfter)
	}
	return facts
}

// rateLimitResolution explains a 429, whichever code came with it.
const rateLimitResolution = "Nothing to do: every request of this token waits until Cloudflare allows them again. The limit of 1,200 requests per five minutes is the user's, shared with the dashboard and every other tool: look for another tool spending it."

// entry is one row of the classification table.
type entry struct {
	// codes are the Cloudflare error codes the row is for; empty for a row
	// that matches on the HTTP status alone.
	codes []int
	// status is the HTTP status Cloudflare documents for codes, or the
	// status the row matches when codes is empty.
	status     int
	class      failure.Class
	reason     string
	resolution string
}

// table is the one place that says what each Cloudflare answer means for
// the operator. The codes the rule set mirrors are named by its constants
// (rules.Codes), so the two tables cannot drift apart. Codes and remedies are those of Cloudflare's Spectrum error
// codes page and API documentation (as collected in the project's API notes).
var table = []entry{
	// Cloudflare's side.
	{codes: []int{10002}, status: 500, class: failure.Retryable, reason: "CloudflareInternalError",
		resolution: "Nothing to do: the operator retries with backoff. If it persists, give Cloudflare support the Ray ID."},

	// Credentials and rate limits.
	{codes: []int{10000}, status: 403, class: failure.NeedsHuman, reason: "AuthenticationFailed",
		resolution: "Check that the credentials Secret holds a valid API token with Zone > Spectrum > Edit permission on this zone."},
	{codes: []int{9109}, status: 403, class: failure.NeedsHuman, reason: "AuthenticationFailed",
		resolution: "The token is expired or revoked, or never existed: put a valid API token with Zone > Spectrum > Edit permission in the credentials Secret."},
	{codes: []int{971, 10100, 10300}, status: 429, class: failure.Retryable, reason: v1alpha1.ReasonRateLimited,
		resolution: rateLimitResolution},
	{codes: []int{codeAppNotFound}, status: 404, class: failure.Retryable, reason: "AppNotFound",
		resolution: "Nothing to do: the operator creates the application again."},

	// Plan and entitlements.
	{codes: []int{rules.CodeUnknownField}, status: 400, class: failure.NeedsHuman, reason: "PlanFieldNotAllowed",
		resolution: "Remove every field but protocol, dns and originDirect, or have Spectrum enabled as a paid add-on."},
	{codes: []int{rules.CodeOneAppPerProtocol}, status: 400, class: failure.NeedsHuman, reason: "PlanAppLimitReached",
		resolution: "Remove the account's other application with this protocol, or get the paid Spectrum add-on."},
	{codes: []int{11014}, status: 403, class: failure.NeedsHuman, reason: "FTPNotEnabled",
		resolution: "Ask your Cloudflare account team to enable FTP for the account."},
	{codes: []int{11018}, status: 403, class: failure.NeedsHuman, reason: "BYOIPNotEnabled",
		resolution: "Ask your Cloudflare account team to enable BYOIP, or use dynamic edge IPs."},
	{codes: []int{11026}, status: 403, class: failure.NeedsHuman, reason: "ArgoNotEnabled",
		resolution: "Ask your Cloudflare account team to enable Argo Smart Routing, or set argoSmartRouting to false."},

	// Conflicts and quotas that only a person can resolve.
	{codes: []int{11019}, status: 400, class: failure.NeedsHuman, reason: "EdgeIPsNotAuthorized",
		resolution: "Give the API token the Account > IP Prefixes permission, and use addresses from a prefix allocated to the account."},
	{codes: []int{11033}, status: 400, class: failure.NeedsHuman, reason: "EdgeIPInUse",
		resolution: "Free the address in the other zone (often an orphaned legacy application there), or contact Cloudflare support with the Ray ID."},
	{codes: []int{11044}, status: 400, class: failure.NeedsHuman, reason: "VirtualNetworkRouteMissing",
		resolution: "Add a Cloudflare Tunnel route for the origin address in that virtual network, or fix virtualNetworkID."},
	{codes: []int{11050}, status: 400, class: failure.NeedsHuman, reason: "OriginDNSInAnotherZone",
		resolution: "Move the origin's DNS record or load balancer into the application's zone, or use originDirect."},
	{codes: []int{12005}, status: 400, class: failure.NeedsHuman, reason: "IPv4QuotaExhausted",
		resolution: "Consolidate applications, buy more IPv4 addresses, or use BYOIP."},
	{codes: []int{13002}, status: 400, class: failure.NeedsHuman, reason: "ProtocolNotAvailable",
		resolution: "Pick an edge port the zone's plan offers, or upgrade the plan."},
	{codes: []int{16001}, status: 400, class: failure.NeedsHuman, reason: "HostnameInAnotherZone",
		resolution: "Use the right zoneID, another dns.name, or delete the hostname in the other zone."},

	// Configurations the admission webhook should have rejected.
	{codes: []int{rules.CodeOriginChoice}, status: 400, class: failure.InvalidSpec, reason: "InvalidOriginConfig",
		resolution: "Set exactly one of originDirect and originDNS."},
	{codes: []int{rules.CodeOriginDNS}, status: 400, class: failure.InvalidSpec, reason: "InvalidOriginDNS",
		resolution: "Fix originDNS: a valid hostname, a TTL in Cloudflare's range, and originPort unless the type is SRV."},
	{codes: []int{rules.CodeOriginAddress}, status: 400, class: failure.InvalidSpec, reason: "InvalidOriginAddress",
		resolution: "Fix originDirect: tcp://IP:PORT or udp://IP:PORT, IPv6 in brackets, and an IP Cloudflare allows as an origin."},
	{codes: []int{rules.CodeDNSType}, status: 400, class: failure.InvalidSpec, reason: "DNSTypeMismatch",
		resolution: "Match dns.type to the edge IPs (dynamic needs CNAME, static needs ADDRESS); dns.type cannot change, so recreate the application to change it."},
	{codes: []int{rules.CodeVirtualNetworkOriginDNS}, status: 400, class: failure.InvalidSpec, reason: "VirtualNetworkWithOriginDNS",
		resolution: "An application with virtualNetworkID must use originDirect, not originDNS."},
	{codes: []int{rules.CodeVirtualNetworkOrigins}, status: 400, class: failure.InvalidSpec, reason: "VirtualNetworkMultipleOrigins",
		resolution: "An application with virtualNetworkID takes exactly one originDirect address, tcp|udp://IP:PORT."},
	{codes: []int{rules.CodeVirtualNetworkPortRange}, status: 400, class: failure.InvalidSpec, reason: "VirtualNetworkPortRange",
		resolution: "An application with virtualNetworkID takes a single port, not a range: create one application per port."},
	{codes: []int{rules.CodeVirtualNetworkID}, status: 400, class: failure.InvalidSpec, reason: "InvalidVirtualNetworkID",
		resolution: "virtualNetworkID must be the virtual network's UUID."},

	// Answers without a known code.
	{status: 401, class: failure.NeedsHuman, reason: "AuthenticationFailed",
		resolution: "Put a valid API token with Zone > Spectrum > Edit permission in the credentials Secret."},
	{status: 403, class: failure.NeedsHuman, reason: "PermissionDenied",
		resolution: "Give the API token Zone > Spectrum > Edit permission on the zone."},
	{status: 404, class: failure.Retryable, reason: "AppNotFound",
		resolution: "Nothing to do: the operator creates the application again."},
	// 408 and 409 without a known code: a request that timed out at
	// Cloudflare, or raced another change; Cloudflare's own SDKs retry both.
	{status: 408, class: failure.Retryable, reason: "CloudflareTimeout",
		resolution: "Nothing to do: the operator retries with backoff."},
	{status: 409, class: failure.Retryable, reason: "CloudflareConflict",
		resolution: "Nothing to do: the operator reads the application again and retries with backoff."},
	{status: 429, class: failure.Retryable, reason: v1alpha1.ReasonRateLimited,
		resolution: rateLimitResolution},
	{status: 500, class: failure.Retryable, reason: v1alpha1.ReasonCloudflareUnavailable,
		resolution: "Nothing to do: the operator retries with backoff. If it persists, give Cloudflare support the Ray ID."},
}
