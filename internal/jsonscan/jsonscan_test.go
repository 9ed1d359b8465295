package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzSkipValue holds the walker to encoding/json: a text is one value
// for SkipValue exactly when json.Valid says so, but for nesting deeper
// than MaxDepth, which the walker refuses.
func FuzzSkipValue(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `{"a":[1,-2.5e+3,true,false,null,"x\u00e9\n"]}`, ` {"a" : { "b" : [ ] } } `,
		`{"a":1,}`, `[1 2]`, `01`, `1.`, `-`, `"\x"`, "\"\x01\"", `{"a"}`, `tru`, `nul`, `"\ud800"`,
		strings.Repeat("[", 70) + strings.Repeat("]", 70),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := Scanner{Data: data}
		s.Space()
		walked := s.SkipValue(0) && s.End()
		if valid := json.Valid(data); walked != valid && !(valid && tooDeep(data)) {
			t.Fatalf("%q: the walker says %v, json.Valid %v", data, walked, valid)
		}
	})
}

// tooDeep reports whether valid JSON nests deeper than MaxDepth.
func tooDeep(data []byte) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > MaxDepth+1 {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

func TestMembersReadsPlainKeysOnly(t *testing.T) {
	for text, want := range map[string][]string{
		`{"a":1,"b":{"c":[2]}}`: {"a=1", `b={"c":[2]}`},
		` { } `:                 {},
		`{"a\u0062":1}`:         nil,
		`{"é":1}`:               nil,
		`{"a":1,}`:              nil,
		`[1]`:                   nil,
	} {
		s := Scanner{Data: []byte(text)}
		s.Space()
		var got []string
		ok := s.Members(func(key string, value []byte) bool {
			got = append(got, key+"="+string(value))
			return true
		}) && s.End()
		if want == nil {
			if ok {
				t.Errorf("%s: read as plain members %q", text, got)
			}
			continue
		}
		if !ok || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: %q (%v), want %q", text, got, ok, want)
		}
	}
}
