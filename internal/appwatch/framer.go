package appwatch

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// objectFramer splits a watch stream into its events, each one JSON
// object: where client-go's framer decodes every event with encoding/json
// to find its end, this one counts brackets outside strings, and leaves
// checking the JSON to the event's decoder (an event that is not JSON
// fails there, as it failed in the framer before).
type objectFramer struct{}

func (objectFramer) NewFrameReader(r io.ReadCloser) io.ReadCloser {
	return &frameReader{body: r, in: bufio.NewReaderSize(r, 32<<10)}
}

// NewFrameWriter writes events as they are, as client-go's JSON framer does.
func (objectFramer) NewFrameWriter(w io.Writer) io.Writer { return w }

// frameReader hands out one event per Read, as client-go's framers do: an
// event longer than the caller's buffer comes in parts, each but the last
// with io.ErrShortBuffer.
type frameReader struct {
	body   io.ReadCloser
	in     *bufio.Reader
	frame  []byte
	served int
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.served == len(f.frame) {
		if err := f.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.frame[f.served:])
	f.served += n
	if f.served < len(f.frame) {
		return n, io.ErrShortBuffer
	}
	return n, nil
}

func (f *frameReader) Close() error { return f.body.Close() }

// next reads the next object into frame: io.EOF when the stream ends
// between objects, io.ErrUnexpectedEOF within one.
func (f *frameReader) next() error {
	f.frame, f.served = f.frame[:0], 0
	for {
		c, err := f.in.ReadByte()
		if err != nil {
			return err
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			continue
		}
		if c != '{' {
			return fmt.Errorf("watch stream: expected an event (a JSON object), found %q", c)
		}
		break
	}
	f.frame = append(f.frame, '{')
	depth, inString, escaped := 1, false, false
	for {
		chunk, err := f.in.Peek(max(f.in.Buffered(), 1))
		if len(chunk) == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		end := scanObject(chunk, &depth, &inString, &escaped)
		if end < 0 {
			end = len(chunk)
		}
		f.frame = append(f.frame, chunk[:end]...)
		if _, err := f.in.Discard(end); err != nil {
			return err
		}
		if depth == 0 {
			return nil
		}
	}
}

// scanObject follows an object through chunk, from the state its earlier
// bytes left (depth of brackets, inside a string, after a backslash in
// one), and returns where it ends, or -1 if it goes on. Inside strings,
// which are most of an event, it jumps from quote to quote, remembering
// the next quote across escapes so that a string of many escapes is still
// read once.
func scanObject(chunk []byte, depth *int, inString, escaped *bool) int {
	nextQuote := -1 // where the next quote at or after i is, once searched
	for i := 0; i < len(chunk); {
		if *escaped {
			*escaped = false
			i++
			continue
		}
		if *inString {
			if nextQuote < i {
				nextQuote = len(chunk)
				if q := bytes.IndexByte(chunk[i:], '"'); q >= 0 {
					nextQuote = i + q
				}
			}
			if backslash := bytes.IndexByte(chunk[i:nextQuote], '\\'); backslash >= 0 {
				*escaped = true
				i += backslash + 1
				continue
			}
			if nextQuote == len(chunk) {
				return -1
			}
			*inString = false
			i = nextQuote + 1
			continue
		}
		switch chunk[i] {
		case '"':
			*inString = true
		case '{', '[':
			*depth++
		case '}', ']':
			*depth--
			if *depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return -1
}
