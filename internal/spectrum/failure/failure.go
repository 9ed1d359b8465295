// Package failure is the operator's vocabulary of failures: what a failure
// asks of the operator (its Class) and how it is told (a Classification).
// Cloudflare's answers are classified in one table (spectrum.Classify); the
// operator's own failures (credentials, claims, the spec) carry their
// classification themselves by implementing Explained.
package failure

import (
	"fmt"
	"strings"
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

// Explained is a failure that carries its own classification: one that is
// not Cloudflare's answer (the operator's Kubernetes side: credentials, two
// SpectrumApps claiming one application), so that spectrum.Classify remains
// the one way to explain a failure.
type Explained interface {
	error
	Classification() Classification
}

// Explain is the classification of a failure, worded as every failure is:
// what happened, then what to do.
func Explain(class Class, reason, resolution, what string) Classification {
	return Classification{
		Class:   class,
		Reason:  reason,
		Message: strings.TrimRight(what, ".") + ". " + resolution,
	}
}
