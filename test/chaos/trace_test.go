package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// trace records the write requests the simulator receives, so that a
// failed chaos run can tell the story of each application in trouble.
type trace struct {
	mu      sync.Mutex
	entries []traceEntry
	start   time.Time
}

type traceEntry struct {
	start, end time.Duration
	method     string
	path       string
	hostname   string
	answer     string
}

// startTrace records write requests to the chaos zones until the test
// ends.
func startTrace(t *testing.T) *trace {
	tr := &trace{start: time.Now()}
	restore := h.WrapSimulator(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet || !strings.Contains(r.URL.Path, "/zones/"+chaosZonePrefix) {
				next.ServeHTTP(w, r)
				return
			}
			e := traceEntry{start: time.Since(tr.start), method: r.Method, path: r.URL.Path, answer: "none (reset)"}
			// The body is copied as the simulator reads it: reading it
			// first would change when the server notices a client that
			// gave up.
			var body bytes.Buffer
			if r.Body != nil {
				r.Body = struct {
					io.Reader
					io.Closer
				}{io.TeeReader(r.Body, &body), r.Body}
			}
			rec := &recordingWriter{ResponseWriter: w, entry: &e}
			next.ServeHTTP(rec, r)
			e.end = time.Since(tr.start)
			var app struct {
				DNS struct{ Name string } `json:"dns"`
			}
			if json.Unmarshal(body.Bytes(), &app) == nil {
				e.hostname = app.DNS.Name
			}
			tr.mu.Lock()
			tr.entries = append(tr.entries, e)
			tr.mu.Unlock()
		})
	})
	t.Cleanup(restore)
	return tr
}

// story returns the recorded requests that mention any of the words.
func (tr *trace) story(words ...string) string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var b strings.Builder
	for _, e := range tr.entries {
		for _, w := range words {
			if w != "" && (strings.Contains(e.hostname, w) || strings.Contains(e.path, w) || strings.Contains(e.answer, w)) {
				fmt.Fprintf(&b, "\n  %7.3fs-%7.3fs %s %s %s -> %s", e.start.Seconds(), e.end.Seconds(), e.method, e.path, e.hostname, e.answer)
				break
			}
		}
	}
	return b.String()
}

type recordingWriter struct {
	http.ResponseWriter
	entry *traceEntry
	buf   bytes.Buffer
}

func (w *recordingWriter) WriteHeader(status int) {
	w.entry.answer = fmt.Sprint(status)
	w.ResponseWriter.WriteHeader(status)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.buf.Len() < 512 {
		w.buf.Write(p)
		var env struct {
			Result struct{ ID string } `json:"result"`
		}
		if json.Unmarshal(w.buf.Bytes(), &env) == nil && env.Result.ID != "" {
			w.entry.answer = strings.Fields(w.entry.answer)[0] + " id " + env.Result.ID
		}
	}
	return w.ResponseWriter.Write(p)
}

func (w *recordingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.entry.answer = "applied, answer lost (reset)"
	return w.ResponseWriter.(http.Hijacker).Hijack()
}
