package spectrumtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
)

// FaultKind is what goes wrong.
type FaultKind string

// The faults the simulator can inject.
const (
	// FaultInternalError answers HTTP 500 with code 10002.
	FaultInternalError FaultKind = "internal-error"
	// FaultUnavailable answers HTTP 503 with code 10002 (a dependency such
	// as DNS or IP management is down).
	FaultUnavailable FaultKind = "unavailable"
	// FaultRateLimited answers HTTP 429 with code 10100 and Retry-After.
	FaultRateLimited FaultKind = "rate-limited"
	// FaultBadGateway answers HTTP 502 with an HTML page, as a proxy in
	// front of the API does.
	FaultBadGateway FaultKind = "bad-gateway-html"
	// FaultLatency delays the request by Latency, then handles it.
	FaultLatency FaultKind = "latency"
	// FaultConnectionReset resets the connection without handling the
	// request.
	FaultConnectionReset FaultKind = "connection-reset"
	// FaultResponseLost handles the request (a write is applied) and then
	// resets the connection instead of answering: the client cannot know
	// whether it worked.
	FaultResponseLost FaultKind = "response-lost"
)

// Fault is a failure to inject into matching API requests.
type Fault struct {
	// ID is assigned when the fault is added.
	ID   int       `json:"id,omitempty"`
	Kind FaultKind `json:"kind"`
	// Method matches the HTTP method; any when empty.
	Method string `json:"method,omitempty"`
	// PathPrefix matches the start of the path relative to the API base
	// URL, such as "/zones/023e105f4ecef8ad9ca31a8372d0c353/spectrum/apps";
	// any when empty.
	PathPrefix string `json:"pathPrefix,omitempty"`
	// Probability in (0, 1] that a matching request is hit; 1 when zero.
	Probability float64 `json:"probability,omitempty"`
	// Count is how many requests the fault hits before it is removed;
	// unlimited when zero. Remaining is what is left of it.
	Count     int `json:"count,omitempty"`
	Remaining int `json:"remaining,omitempty"`
	// RetryAfterSeconds is the Retry-After of FaultRateLimited; 1 when zero.
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
	// Latency is the delay of FaultLatency.
	Latency Duration `json:"latency,omitempty"`
}

func (f Fault) validate() error {
	switch f.Kind {
	case FaultInternalError, FaultUnavailable, FaultRateLimited, FaultBadGateway,
		FaultConnectionReset, FaultResponseLost:
	case FaultLatency:
		if f.Latency.Duration <= 0 {
			return fmt.Errorf("a latency fault needs a positive latency")
		}
	default:
		return fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	if f.Probability < 0 || f.Probability > 1 {
		return fmt.Errorf("probability %v is not in [0, 1]", f.Probability)
	}
	if f.Count < 0 || f.RetryAfterSeconds < 0 {
		return fmt.Errorf("count and retryAfterSeconds must not be negative")
	}
	return nil
}

func (f Fault) matches(method, path string) bool {
	if f.Method != "" && !strings.EqualFold(f.Method, method) {
		return false
	}
	return strings.HasPrefix(path, f.PathPrefix)
}

// faultSet is the active faults. The simulator's lock guards it.
type faultSet struct {
	nextID int
	active []Fault
	fired  int
}

func (s *faultSet) add(f Fault) (Fault, error) {
	if err := f.validate(); err != nil {
		return Fault{}, err
	}
	s.nextID++
	f.ID = s.nextID
	f.Remaining = f.Count
	s.active = append(s.active, f)
	return f, nil
}

// strike returns the faults that hit this request: at most one latency and
// at most one other, the first matching of each in the order added.
func (s *faultSet) strike(method, path string) (latency, failure *Fault) {
	kept := s.active[:0]
	for _, f := range s.active {
		hit := f.matches(method, path) &&
			((f.Kind == FaultLatency && latency == nil) || (f.Kind != FaultLatency && failure == nil)) &&
			(f.Probability == 0 || rand.Float64() < f.Probability)
		if hit {
			s.fired++
			struck := f
			if f.Kind == FaultLatency {
				latency = &struck
			} else {
				failure = &struck
			}
			if f.Count > 0 {
				f.Remaining--
				if f.Remaining == 0 {
					continue
				}
			}
		}
		kept = append(kept, f)
	}
	s.active = kept
	return latency, failure
}

// resetConnection cuts the client's connection with a TCP reset, as a
// crashed proxy or a network fault does.
func resetConnection(w http.ResponseWriter) {
	hijacker, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hijacker.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		// Linger 0 makes Close send RST instead of FIN.
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

const badGatewayPage = `<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
`
