// Package jsonscan walks JSON text without decoding it: where a value
// starts and ends, and an object's plain keys. The operator reads two
// streams in volume, Cloudflare's answers and the apiserver's watch
// events, and encoding/json walks each of them two or three times (it
// checks the whole text, then decodes it, skipping what it hands on as raw
// bytes). With this walker the readers find the parts they need in one
// pass and leave the decoding of each part to encoding/json.
//
// It accepts what encoding/json's checkValid accepts, and no more.
package jsonscan

import (
	"bytes"
	"unicode/utf8"
)

// MaxDepth is deeper than any answer of the Cloudflare API or any
// SpectrumApp nests; a value nested deeper is refused (SkipValue reports
// false), and readers leave it to encoding/json.
const MaxDepth = 64

// Scanner reads Data from Pos.
type Scanner struct {
	Data []byte
	Pos  int
}

// Space moves past white space.
func (s *Scanner) Space() {
	for s.Pos < len(s.Data) {
		switch s.Data[s.Pos] {
		case ' ', '\t', '\n', '\r':
			s.Pos++
		default:
			return
		}
	}
}

// Consume moves past c if it is next.
func (s *Scanner) Consume(c byte) bool {
	if s.Pos < len(s.Data) && s.Data[s.Pos] == c {
		s.Pos++
		return true
	}
	return false
}

// End reports whether only white space follows.
func (s *Scanner) End() bool {
	s.Space()
	return s.Pos == len(s.Data)
}

// Key reads an object key made of printable ASCII without escapes; any
// other key reports false (its meaning to encoding/json, which matches
// keys case-insensitively and unescapes them, is encoding/json's to say).
func (s *Scanner) Key() (string, bool) {
	if !s.Consume('"') {
		return "", false
	}
	start := s.Pos
	for s.Pos < len(s.Data) {
		c := s.Data[s.Pos]
		switch {
		case c == '"':
			key := string(s.Data[start:s.Pos])
			s.Pos++
			return key, true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return "", false
		}
		s.Pos++
	}
	return "", false
}

// Members walks the object that starts at Pos, calling member with each
// plain key and the bytes of its value, until member reports false or the
// object ends. It reports whether the object was read to its end with
// every key plain and every value valid.
func (s *Scanner) Members(member func(key string, value []byte) bool) bool {
	if !s.Consume('{') {
		return false
	}
	s.Space()
	if s.Consume('}') {
		return true
	}
	for {
		key, ok := s.Key()
		if !ok {
			return false
		}
		s.Space()
		if !s.Consume(':') {
			return false
		}
		s.Space()
		start := s.Pos
		if !s.SkipValue(0) {
			return false
		}
		if !member(key, s.Data[start:s.Pos]) {
			return false
		}
		s.Space()
		if s.Consume('}') {
			return true
		}
		if !s.Consume(',') {
			return false
		}
		s.Space()
	}
}

// SkipValue moves past one value nested depth levels deep.
func (s *Scanner) SkipValue(depth int) bool {
	if s.Pos >= len(s.Data) || depth > MaxDepth {
		return false
	}
	switch c := s.Data[s.Pos]; {
	case c == '"':
		return s.SkipString()
	case c == '{':
		return s.skipContainer('}', depth, true)
	case c == '[':
		return s.skipContainer(']', depth, false)
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

// skipContainer moves past an object (keyed) or an array, whose opening
// character is at Pos.
func (s *Scanner) skipContainer(closing byte, depth int, keyed bool) bool {
	s.Pos++
	s.Space()
	if s.Consume(closing) {
		return true
	}
	for {
		s.Space()
		if keyed {
			if !s.SkipString() {
				return false
			}
			s.Space()
			if !s.Consume(':') {
				return false
			}
			s.Space()
		}
		if !s.SkipValue(depth + 1) {
			return false
		}
		s.Space()
		if s.Consume(closing) {
			return true
		}
		if !s.Consume(',') {
			return false
		}
	}
}

func (s *Scanner) literal(word string) bool {
	if bytes.HasPrefix(s.Data[s.Pos:], []byte(word)) {
		s.Pos += len(word)
		return true
	}
	return false
}

// SkipString moves past a string: any bytes but control characters, and
// the escapes JSON defines.
func (s *Scanner) SkipString() bool {
	if !s.Consume('"') {
		return false
	}
	for s.Pos < len(s.Data) {
		c := s.Data[s.Pos]
		switch {
		case c == '"':
			s.Pos++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.Pos++
			if s.Pos >= len(s.Data) {
				return false
			}
			switch s.Data[s.Pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.Pos++
			case 'u':
				s.Pos++
				for range 4 {
					if s.Pos >= len(s.Data) || !isHex(s.Data[s.Pos]) {
						return false
					}
					s.Pos++
				}
			default:
				return false
			}
		default:
			s.Pos++
		}
	}
	return false
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// skipNumber moves past -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *Scanner) skipNumber() bool {
	s.Consume('-')
	switch {
	case s.Consume('0'):
	case s.digits() == 0:
		return false
	}
	if s.Consume('.') && s.digits() == 0 {
		return false
	}
	if s.Consume('e') || s.Consume('E') {
		if !s.Consume('+') {
			s.Consume('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *Scanner) digits() int {
	start := s.Pos
	for s.Pos < len(s.Data) && '0' <= s.Data[s.Pos] && s.Data[s.Pos] <= '9' {
		s.Pos++
	}
	return s.Pos - start
}
