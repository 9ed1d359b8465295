// Package rules is the one rule set for Spectrum application configs. The
// admission webhook uses it to reject mistakes before they reach Cloudflare,
// the controller checks again before every write, and the simulator uses it to
// answer with the same 400 codes Cloudflare would. Each rule names the
// Cloudflare error code it mirrors.
package rules

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Violation is one broken rule: the field error a user sees and the
// Cloudflare error code the rule prevents.
type Violation struct {
	// Code is the Cloudflare error code the API would answer with, or
	// CodeNone for a rule that has no Cloudflare code of its own (an
	// immutable Kubernetes-side field, or a mistake the reference does not
	// give a code for).
	Code int
	// Err names the field and says what is wrong; unless Code is CodeNone,
	// its Detail ends with "(Cloudflare error CODE)".
	Err *field.Error
}

// Violations are all the rules an object breaks, in a stable order.
type Violations []Violation

// FieldErrors returns the violations as a field.ErrorList, for admission.
func (vs Violations) FieldErrors() field.ErrorList {
	if len(vs) == 0 {
		return nil
	}
	list := make(field.ErrorList, 0, len(vs))
	for _, v := range vs {
		list = append(list, v.Err)
	}
	return list
}

// Codes returns each violation's Cloudflare code, in order.
func (vs Violations) Codes() []int {
	codes := make([]int, 0, len(vs))
	for _, v := range vs {
		codes = append(codes, v.Code)
	}
	return codes
}
