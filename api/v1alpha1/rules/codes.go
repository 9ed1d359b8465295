package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The Cloudflare error codes the rules mirror. Meanings and resolutions are in
// the Spectrum "Error codes" page; each rule's comment says which case it
// covers.
const (
	// CodeNone marks a rule without a Cloudflare code of its own.
	CodeNone = 0
	// CodeUnknownField (10012): a Pay-as-you-go app sent a field other than
	// protocol, dns and origin_direct.
	CodeUnknownField = 10012
	// CodeOriginChoice (11000): not exactly one of origin_direct and
	// origin_dns.
	CodeOriginChoice = 11000
	// CodeOriginDNS (11001): bad origin_dns (name, missing origin_port, ttl).
	CodeOriginDNS = 11001
	// CodeOriginAddress (11002): an origin_direct address that does not parse
	// or is not an acceptable origin IP.
	CodeOriginAddress = 11002
	// CodeDNSType (11004): dns.type does not match the edge IP mode, or
	// changed on update.
	CodeDNSType = 11004
	// CodeOneAppPerProtocol (11034): a Pay-as-you-go account already has an
	// application with this protocol.
	CodeOneAppPerProtocol = 11034
	// CodeVirtualNetworkOriginDNS (11041): virtual_network_id with origin_dns.
	CodeVirtualNetworkOriginDNS = 11041
	// CodeVirtualNetworkOrigins (11042): virtual_network_id with more than one
	// origin address.
	CodeVirtualNetworkOrigins = 11042
	// CodeVirtualNetworkPortRange (11043): virtual_network_id with a port
	// range.
	CodeVirtualNetworkPortRange = 11043
	// CodeVirtualNetworkID (11045): virtual_network_id is not a UUID.
	CodeVirtualNetworkID = 11045
)

// Codes are the Cloudflare error codes the rules mirror, every one of the
// constants above but CodeNone. The operator's classification table has a
// row for each.
var Codes = []int{
	CodeUnknownField, CodeOriginChoice, CodeOriginDNS, CodeOriginAddress, CodeDNSType,
	CodeOneAppPerProtocol, CodeVirtualNetworkOriginDNS, CodeVirtualNetworkOrigins,
	CodeVirtualNetworkPortRange, CodeVirtualNetworkID,
}

// violation tags a field error with the Cloudflare code it mirrors, so the
// user sees the same number Cloudflare's documentation and support use, and
// with the source the rule rests on.
func violation(code int, source string, err *field.Error) Violation {
	if code != CodeNone {
		err.Detail = fmt.Sprintf("%s (Cloudflare error %d)", err.Detail, code)
	}
	return Violation{Code: code, Err: err, Source: source}
}

// caution is a warning: a rule stricter than what its source says
// Cloudflare enforces. The object is admitted and sent as written.
func caution(source string, err *field.Error) Violation {
	err.Detail += " (a warning: Cloudflare is not known to refuse it)"
	return Violation{Code: CodeNone, Err: err, Source: source, Warning: true}
}
