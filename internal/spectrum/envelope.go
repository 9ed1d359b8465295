package spectrum

import (
	"encoding/json"
	"strings"

	"github.com/cloudflare-operator/spectrum-operator/internal/jsonscan"
)

// readEnvelope decodes body into env as json.Unmarshal(body, env) would
// (with env.Result reading page, when the body is a listing's page),
// walking the body once where encoding/json walks it twice: it checks the
// whole body, then decodes it, skipping over the result to hand it to
// envelopeResult. The manager reads tens of thousands of pages while its
// zones fill up, and every zone each resync: those two walks were most of
// the CPU of listing; hashing the page is a small part (docs/benchmarks.md).
//
// It reports false, leaving env to be decoded by json.Unmarshal, for
// anything but a plain envelope: a body that is not one JSON object, a key
// with escapes or non-ASCII characters or that matches a field only in
// another case (json.Unmarshal's rules for those are its own), a field
// that does not decode, or nesting deeper than jsonscan.MaxDepth.
// FuzzReadEnvelope holds it to json.Unmarshal's answer.
func readEnvelope(body []byte, env *envelope, page *listPage) bool {
	env.Result.page = page
	s := jsonscan.Scanner{Data: body}
	s.Space()
	return s.Members(func(key string, value []byte) bool {
		return decodeEnvelopeField(env, key, value)
	}) && s.End()
}

// envelopeFields are the keys of envelope's fields.
var envelopeFields = []string{"success", "errors", "result", "result_info"}

// decodeEnvelopeField decodes one field's value; a key that is no field is
// ignored, as json.Unmarshal ignores it.
func decodeEnvelopeField(env *envelope, key string, value []byte) bool {
	switch key {
	case "success":
		return json.Unmarshal(value, &env.Success) == nil
	case "errors":
		return json.Unmarshal(value, &env.Errors) == nil
	case "result_info":
		return json.Unmarshal(value, &env.ResultInfo) == nil
	case "result":
		return env.Result.UnmarshalJSON(value) == nil
	}
	for _, field := range envelopeFields {
		if strings.EqualFold(key, field) {
			// json.Unmarshal matches keys case-insensitively.
			return false
		}
	}
	return true
}
