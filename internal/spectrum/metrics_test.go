package spectrum

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// scripted is one scripted response of metricsServer.
type scripted struct {
	status int
	code   int // 0: success
	// ratelimit and policy are the Ratelimit and Ratelimit-Policy headers.
	ratelimit, policy string
	retryAfter        string
}

// metricsServer answers each request with the next scripted answer.
func metricsServer(t *testing.T, answers ...scripted) string {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if len(answers) == 0 {
			mu.Unlock()
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		a := answers[0]
		answers = answers[1:]
		mu.Unlock()
		if a.ratelimit != "" {
			w.Header().Set("Ratelimit", a.ratelimit)
		}
		if a.policy != "" {
			w.Header().Set("Ratelimit-Policy", a.policy)
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		if a.code == 0 {
			fmt.Fprint(w, `{"success":true,"errors":[],"messages":[],"result":{"id":"app-1","protocol":"tcp/22","dns":{"type":"CNAME","name":"a.example.com"}}}`)
			return
		}
		fmt.Fprintf(w, `{"success":false,"errors":[{"code":%d,"message":"no"}],"messages":[],"result":null}`, a.code)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestMetricsLabelEachRequestByClassStatusAndCode(t *testing.T) {
	url := metricsServer(t,
		scripted{status: 200},
		scripted{status: 403, code: 11026},                  // Argo not enabled: a person must act
		scripted{status: 400, code: 424242},                 // a code the table does not know
		scripted{status: 500, code: 10002},                  // Cloudflare's side: retried
		scripted{status: 429, code: 10100, retryAfter: "1"}, // rate limited
	)
	m := NewMetrics()
	client := NewClient(Options{BaseURL: url, Token: "secret-token-7f3a", Metrics: m})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 5 {
		_, _ = client.GetApp(ctx, "zone-1", "app-1")
	}
	// No answer at all: nothing listens on port 1.
	unreachable := NewClient(Options{BaseURL: "http://127.0.0.1:1", Token: "secret-token-7f3a", Metrics: m})
	if _, err := unreachable.GetApp(ctx, "zone-1", "app-1"); err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	counts := map[string]float64{
		`GET success`: 1, `GET needs_human`: 2, `GET retryable`: 2, `GET network`: 1,
	}
	for key, want := range counts {
		method, class, _ := strings.Cut(key, " ")
		if got := histogramCount(t, m.duration, method, class); got != want {
			t.Errorf("duration{method=%s,class=%s} count = %v, want %v", method, class, got, want)
		}
	}
	for labels, want := range map[[2]string]float64{
		{"200", "none"}: 1, {"403", "11026"}: 1, {"400", "other"}: 1,
		{"500", "10002"}: 1, {"429", "10100"}: 1, {"none", "none"}: 1,
	} {
		if got := testutil.ToFloat64(m.responses.WithLabelValues(labels[0], labels[1])); got != want {
			t.Errorf("responses{status=%s,code=%s} = %v, want %v", labels[0], labels[1], got, want)
		}
	}
	if got := testutil.ToFloat64(m.rateLimited); got != 1 {
		t.Errorf("rate_limited_total = %v, want 1", got)
	}
}

func histogramCount(t *testing.T, h *prometheus.HistogramVec, method, class string) float64 {
	t.Helper()
	var total float64
	problems, err := testutil.GatherAndLint(registryOf(h))
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	families, err := registryOf(h).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == method && labels["class"] == class {
				total += float64(metric.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}

func registryOf(c prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return reg
}
