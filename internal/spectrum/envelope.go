package spectrum

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
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
// that does not decode, or nesting deeper than maxEnvelopeDepth.
// FuzzReadEnvelope holds it to json.Unmarshal's answer.
func readEnvelope(body []byte, env *envelope, page *listPage) bool {
	env.Result.page = page
	s := scanner{data: body}
	s.space()
	if !s.consume('{') {
		return false
	}
	s.space()
	if s.consume('}') {
		return s.end()
	}
	for {
		key, ok := s.key()
		if !ok {
			return false
		}
		s.space()
		if !s.consume(':') {
			return false
		}
		s.space()
		start := s.pos
		if !s.skipValue(0) {
			return false
		}
		if !decodeEnvelopeField(env, key, s.data[start:s.pos]) {
			return false
		}
		s.space()
		if s.consume('}') {
			return s.end()
		}
		if !s.consume(',') {
			return false
		}
		s.space()
	}
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

// maxEnvelopeDepth is deeper than any answer of the API nests.
const maxEnvelopeDepth = 64

// scanner reads JSON as encoding/json's checkValid accepts it.
type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// end reports whether only white space follows.
func (s *scanner) end() bool {
	s.space()
	return s.pos == len(s.data)
}

// key reads an object key made of printable ASCII without escapes.
func (s *scanner) key() (string, bool) {
	if !s.consume('"') {
		return "", false
	}
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			key := string(s.data[start:s.pos])
			s.pos++
			return key, true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return "", false
		}
		s.pos++
	}
	return "", false
}

// skipValue moves past one value.
func (s *scanner) skipValue(depth int) bool {
	if s.pos >= len(s.data) || depth > maxEnvelopeDepth {
		return false
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		return s.skipString()
	case c == '{':
		s.pos++
		s.space()
		if s.consume('}') {
			return true
		}
		for {
			s.space()
			if !s.skipString() {
				return false
			}
			s.space()
			if !s.consume(':') {
				return false
			}
			s.space()
			if !s.skipValue(depth + 1) {
				return false
			}
			s.space()
			if s.consume('}') {
				return true
			}
			if !s.consume(',') {
				return false
			}
		}
	case c == '[':
		s.pos++
		s.space()
		if s.consume(']') {
			return true
		}
		for {
			s.space()
			if !s.skipValue(depth + 1) {
				return false
			}
			s.space()
			if s.consume(']') {
				return true
			}
			if !s.consume(',') {
				return false
			}
		}
	case c == '-' || ('0' <= c && c <= '9'):
		return s.skipNumber()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *scanner) literal(word string) bool {
	if bytes.HasPrefix(s.data[s.pos:], []byte(word)) {
		s.pos += len(word)
		return true
	}
	return false
}

// skipString moves past a string; any bytes but control characters, and
// the escapes JSON defines.
func (s *scanner) skipString() bool {
	if !s.consume('"') {
		return false
	}
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.pos++
			if s.pos >= len(s.data) {
				return false
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				s.pos++
				for range 4 {
					if s.pos >= len(s.data) || !isHex(s.data[s.pos]) {
						return false
					}
					s.pos++
				}
			default:
				return false
			}
		default:
			s.pos++
		}
	}
	return false
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// skipNumber moves past -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) skipNumber() bool {
	s.consume('-')
	switch {
	case s.consume('0'):
	case s.digits() == 0:
		return false
	}
	if s.consume('.') && s.digits() == 0 {
		return false
	}
	if s.consume('e') || s.consume('E') {
		if !s.consume('+') {
			s.consume('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	start := s.pos
	for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos - start
}
