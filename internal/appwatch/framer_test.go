package appwatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"k8s.io/apimachinery/pkg/util/framer"
)

// frames reads every frame of stream through reader, with a buffer of
// size bytes, joining the parts of a frame as client-go's streaming
// decoder does; it stops at the first error.
func frames(newReader func(io.ReadCloser) io.ReadCloser, stream io.Reader, size int) ([]string, error) {
	r := newReader(io.NopCloser(stream))
	var out []string
	var frame []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		frame = append(frame, buf[:n]...)
		if errors.Is(err, io.ErrShortBuffer) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(frame))
		frame = nil
	}
}

func TestFramerSplitsTheStreamAsClientGoDoes(t *testing.T) {
	streams := map[string]string{
		"one event":                  `{"type":"ADDED","object":{"a":1}}`,
		"events on lines":            "{\"a\":1}\n{\"b\":[1,{\"c\":2}]}\n{}\n",
		"white space between":        " \t\r\n{ \"a\" : [ ] }  \n\n { \"b\" : { } }",
		"brackets in strings":        `{"a":"} ] { [","b":"\"}"}{"c":"\\"}`,
		"escaped quote then bracket": `{"a":"\\\"}"}{"b":2}`,
		"a long event":               `{"a":"` + string(bytes.Repeat([]byte("x"), 100_000)) + `"}{"b":1}`,
	}
	for name, stream := range streams {
		t.Run(name, func(t *testing.T) {
			want, wantErr := frames(framer.NewJSONFramedReader, bytes.NewBufferString(stream), 64<<10)
			if !errors.Is(wantErr, io.EOF) || len(want) == 0 {
				t.Fatalf("client-go's framer: %q, %v", want, wantErr)
			}
			for _, size := range []int{1, 7, 1024, 64 << 10} {
				for _, slow := range []bool{false, true} {
					var body io.Reader = bytes.NewBufferString(stream)
					if slow {
						body = iotest.OneByteReader(body)
					}
					got, err := frames(objectFramer{}.NewFrameReader, body, size)
					if !errors.Is(err, io.EOF) || !reflect.DeepEqual(got, want) {
						t.Errorf("buffer %d, one byte at a time %v: %q, %v; want %q", size, slow, got, err, want)
					}
				}
			}
		})
	}
}

func TestFramerEndsAsClientGoDoes(t *testing.T) {
	for _, c := range []struct {
		stream string
		want   error
	}{
		{stream: "", want: io.EOF},
		{stream: " \n ", want: io.EOF},
		{stream: `{"a":1}`, want: io.EOF},
		{stream: `{"a":1`, want: io.ErrUnexpectedEOF},
		{stream: `{"a":"}`, want: io.ErrUnexpectedEOF},
	} {
		_, err := frames(objectFramer{}.NewFrameReader, bytes.NewBufferString(c.stream), 1024)
		if !errors.Is(err, c.want) {
			t.Errorf("%q: %v, want %v", c.stream, err, c.want)
		}
		_, clientGoErr := frames(framer.NewJSONFramedReader, bytes.NewBufferString(c.stream), 1024)
		if !errors.Is(clientGoErr, c.want) {
			t.Errorf("%q: client-go's framer ends with %v, this test expects %v", c.stream, clientGoErr, c.want)
		}
	}
	_, err := frames(objectFramer{}.NewFrameReader, bytes.NewBufferString(`{"a":1} 42`), 1024)
	if err == nil || errors.Is(err, io.EOF) {
		t.Errorf("a stream going on with something other than an object ended with %v, want an error", err)
	}
}

// FuzzFramer holds the framer to client-go's JSON framer on any stream,
// read in small and uneven pieces, so that a frame cut inside a string,
// an escape or between objects is split as client-go splits it. Where
// client-go frames a value that is not an object, which its decoder then
// refuses, the framer refuses it already.
func FuzzFramer(f *testing.F) {
	for _, seed := range []string{`{"a":1}{"b":[1,{"c":"}"}]}`, `{"a":"\\\"}"} {}`, " {\"a\":\"x\"}\n", `{"a":1} 42`, `{"a"`} {
		f.Add([]byte(seed), uint8(7))
	}
	f.Fuzz(func(t *testing.T, stream []byte, size uint8) {
		want, wantErr := frames(framer.NewJSONFramedReader, bytes.NewReader(stream), 64<<10)
		for i, frame := range want {
			if !strings.HasPrefix(frame, "{") {
				want, wantErr = want[:i], errors.New("not an object")
				break
			}
		}
		got, err := frames(objectFramer{}.NewFrameReader, iotest.HalfReader(bytes.NewReader(stream)), int(size)+1)
		if errors.Is(wantErr, io.EOF) {
			if !errors.Is(err, io.EOF) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: frames %q ending with %v, client-go's %q", stream, got, err, want)
			}
			return
		}
		// client-go's framer refuses malformed JSON; this one only balances
		// braces, and leaves the rest to the event reader, which must then
		// meet a frame that is not valid JSON.
		if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Fatalf("%q: frames %q, client-go's %q before its error %v", stream, got, want, wantErr)
		}
		if errors.Is(err, io.EOF) && !slices.ContainsFunc(got[len(want):], func(frame string) bool { return !json.Valid([]byte(frame)) }) {
			t.Fatalf("%q: framed %q as valid JSON, client-go's framer refused it: %v", stream, got[len(want):], wantErr)
		}
	})
}
