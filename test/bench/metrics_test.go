//go:build bench

package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics is one scrape of the manager's /metrics.
type metrics []sample

// scrape reads the manager's metrics endpoint (plain HTTP on loopback).
func scrape(ctx context.Context, addr string) (metrics, error) {
	return fetchMetrics(ctx, http.DefaultClient, "http://"+addr+"/metrics")
}

// fetchMetrics GETs a Prometheus text endpoint and parses it.
func fetchMetrics(ctx context.Context, httpClient *http.Client, url string) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Uncompressed, over loopback: Go's client asks for gzip by default,
	// and compressing scrapes many times a second was a tenth of the CPU
	// the manager was measured to spend converging.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("metrics at %s: HTTP %d: %s", url, resp.StatusCode, body)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (metrics, error) {
	var out metrics
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out = append(out, s)
	}
	return out, scanner.Err()
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return s, errors.New("no value")
	}
	s.name = line[:end]
	rest := line[end:]
	if rest[0] == '{' {
		i := 1
		for i < len(rest) && rest[i] != '}' {
			eq := strings.IndexByte(rest[i:], '=')
			if eq < 0 || i+eq+1 >= len(rest) || rest[i+eq+1] != '"' {
				return s, errors.New("bad label")
			}
			key := strings.TrimSpace(strings.TrimLeft(rest[i:i+eq], ","))
			var value strings.Builder
			j := i + eq + 2
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					if rest[j] == 'n' {
						value.WriteByte('\n')
						continue
					}
				}
				value.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return s, errors.New("unterminated label value")
			}
			s.labels[key] = value.String()
			i = j + 1
			if i < len(rest) && rest[i] == ',' {
				i++
			}
		}
		if i >= len(rest) {
			return s, errors.New("unterminated labels")
		}
		rest = rest[i+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, errors.New("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// sum adds the samples named name whose labels include every pair of
// match (label=value).
func (m metrics) sum(name string, match ...string) float64 {
	var total float64
	for _, s := range m {
		if s.name != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			if s.labels[match[i]] != match[i+1] {
				ok = false
				break
			}
		}
		if ok {
			total += s.value
		}
	}
	return total
}

// kubeWrites is how many write requests the manager sent to the apiserver
// (client-go's rest_client_requests_total), by method.
func (m metrics) kubeWrites() map[string]float64 {
	out := map[string]float64{}
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		if n := m.sum("rest_client_requests_total", "method", method); n > 0 {
			out[method] = n
		}
	}
	return out
}

// statusWrites is how many SpectrumApp writes the manager sent (status
// patches and finalizer updates); events are POSTs and counted apart.
func (m metrics) appWrites() float64 {
	return m.sum("rest_client_requests_total", "method", "PATCH") + m.sum("rest_client_requests_total", "method", "PUT")
}

// trafficWrites are the traffic watch's status writes, which appWrites
// counts too.
func (m metrics) trafficWrites() float64 {
	return m.sum("spectrum_traffic_status_writes_total")
}

// analyticsShare is the analytics requests over all requests sent to
// Cloudflare, between m0 and m.
func (m metrics) analyticsShare(m0 metrics) (analytics, all, share float64) {
	analytics = m.sum("spectrum_cloudflare_analytics_requests_total") - m0.sum("spectrum_cloudflare_analytics_requests_total")
	all = m.sum("spectrum_cloudflare_api_requests_total") - m0.sum("spectrum_cloudflare_api_requests_total")
	if all > 0 {
		share = analytics / all
	}
	return analytics, all, share
}

func (m metrics) readyApps() float64 {
	return m.sum("spectrum_apps", "ready", "True")
}

func (m metrics) reconciles() float64 {
	return m.sum("controller_runtime_reconcile_total", "controller", "spectrumapp")
}

func (m metrics) rateLimited() float64 {
	return m.sum("spectrum_cloudflare_api_requests_total", "result", "RateLimited")
}

// procMemory returns the process's peak and current resident set (VmHWM,
// VmRSS) in bytes.
func procMemory(pid int) (peak, current int64, err error) {
	v, err := procStatus(pid)
	if err != nil {
		return 0, 0, err
	}
	return v["VmHWM"], v["VmRSS"], nil
}

// procStatus returns the kB fields of /proc/<pid>/status (VmHWM, VmRSS,
// RssAnon, RssFile, ...) in bytes.
func procStatus(pid int) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var kib int64
		if _, err := fmt.Sscanf(strings.TrimSpace(value), "%d kB", &kib); err != nil {
			continue
		}
		out[name] = kib << 10
	}
	if out["VmHWM"] == 0 {
		return nil, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return out, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the CPU time (user + system) the process has used.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, may hold spaces; fields after it start at
	// field 3 (state). utime and stime are fields 14 and 15.
	text := string(data)
	fields := strings.Fields(text[strings.LastIndexByte(text, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// freeAddress returns a loopback host:port that was free a moment ago.
func freeAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }
