package spectrum

import (
	"github.com/prometheus/client_golang/prometheus"
)

// ResultSuccess is the result label of requests Cloudflare answered with
// success; every other request is labelled with its Classify reason.
const ResultSuccess = "Success"

// NewRequestsCounter returns spectrum_cloudflare_api_requests_total, labelled
// by HTTP method and result. The caller registers it (for the manager,
// controller-runtime's metrics.Registry) and passes it to NewConnector.
func NewRequestsCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spectrum_cloudflare_api_requests_total",
		Help: "Requests sent to the Cloudflare Spectrum API, by HTTP method and result (Success, or the failure's classification reason such as RateLimited or ArgoNotEnabled).",
	}, []string{"method", "result"})
}

// CountRequests returns an Observer that counts each request in counter.
// Results are the table's reasons, so the label's values stay few.
func CountRequests(counter *prometheus.CounterVec) Observer {
	return func(method string, statusCode, code int) {
		counter.WithLabelValues(method, requestResult(statusCode, code)).Inc()
	}
}

func requestResult(statusCode, code int) string {
	switch {
	case statusCode == 0:
		return ReasonNetworkError
	case statusCode >= 200 && statusCode <= 299 && code == 0:
		return ResultSuccess
	}
	var codes []int
	if code != 0 {
		codes = []int{code}
	}
	return lookup(statusCode, codes).reason
}
