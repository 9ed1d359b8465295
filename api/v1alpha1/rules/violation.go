// Package rules is the one rule set for Spectrum application configs. The
// admission webhook uses it to reject mistakes before they reach Cloudflare
// and the controller checks again before every write. Each rule names the
// Cloudflare error code it mirrors and the source that says Cloudflare
// behaves so. The simulator does not use it: it is an independent model of
// Cloudflare, so that a wrong rule shows up as a disagreement.
package rules

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Sources a rule can rest on. A rule whose source only suggests a
// limit, or has none, is a warning: rejecting a manifest Cloudflare would
// accept breaks a user's valid configuration.
const (
	// SourceAPIPage is the project's Spectrum API notes
	// (shared/spectrum-api.md): the error-codes page, the configuration
	// options, and the API schema as the official SDK encodes it.
	SourceAPIPage = "Cloudflare Spectrum API reference and error codes"
	// SourceAPISchema is Cloudflare's OpenAPI schema (also enforced by the
	// Terraform provider's validators).
	SourceAPISchema = "Cloudflare API schema"
	// SourceTerraformAcceptance is an observed response: what the acceptance
	// tests of Cloudflare's Terraform provider, run against the live API,
	// create and read back.
	SourceTerraformAcceptance = "observed: Cloudflare Terraform provider acceptance tests"
	// SourceKubernetes marks a rule about the Kubernetes side (an immutable
	// field), not about Cloudflare.
	SourceKubernetes = "Kubernetes API conventions"
	// SourceNone marks a caution of the operator's own, with no Cloudflare
	// source: only ever a warning.
	SourceNone = "no Cloudflare source"
)

// Violation is one broken rule: the field error a user sees, the Cloudflare
// error code the rule prevents, and where the rule comes from.
type Violation struct {
	// Code is the Cloudflare error code the API would answer with, or
	// CodeNone for a rule that has no Cloudflare code of its own (an
	// immutable Kubernetes-side field, or a mistake the reference does not
	// give a code for).
	Code int
	// Err names the field and says what is wrong; unless Code is CodeNone,
	// its Detail ends with "(Cloudflare error CODE)".
	Err *field.Error
	// Source is what says Cloudflare behaves so (one of the Source
	// constants).
	Source string
	// Warning is true for a rule stricter than its source: admission warns
	// and lets the object through, and the controller sends it.
	Warning bool
}

// Violations are all the rules an object breaks, in a stable order.
type Violations []Violation

// Rejections are the violations that are not warnings.
func (vs Violations) Rejections() Violations {
	var out Violations
	for _, v := range vs {
		if !v.Warning {
			out = append(out, v)
		}
	}
	return out
}

// Warnings are the warnings' messages, for admission warnings.
func (vs Violations) Warnings() []string {
	var out []string
	for _, v := range vs {
		if v.Warning {
			out = append(out, v.Err.Error())
		}
	}
	return out
}

// FieldErrors returns the rejections as a field.ErrorList, for admission.
func (vs Violations) FieldErrors() field.ErrorList {
	var list field.ErrorList
	for _, v := range vs {
		if !v.Warning {
			list = append(list, v.Err)
		}
	}
	return list
}

// Codes returns each rejection's Cloudflare code, in order.
func (vs Violations) Codes() []int {
	codes := []int{}
	for _, v := range vs {
		if !v.Warning {
			codes = append(codes, v.Code)
		}
	}
	return codes
}
