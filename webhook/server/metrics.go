package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-eip/kube-eip/internal/promreg"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	metricsNamespace = "kube_eip"
	metricsSubsystem = "webhook"
)

// requestMetrics are the server's per-path request metrics. The path label takes
// only mounted paths, so its cardinality is fixed.
type requestMetrics struct {
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*requestMetrics, error) {
	duration, err := promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "request_duration_seconds",
		Help:      "Time to answer a request to the webhook server, by path and HTTP status code.",
		// Admission answers are expected well under a millisecond; the API
		// server gives up at 10 s by default.
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"path", "code"}))
	if err != nil {
		return nil, err
	}
	inFlight, err := promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "requests_in_flight",
		Help:      "Requests to the webhook server being answered now, by path.",
	}, []string{"path"}))
	if err != nil {
		return nil, err
	}
	return &requestMetrics{duration: duration, inFlight: inFlight}, nil
}

// instrument measures h under the label path.
func (m *requestMetrics) instrument(path string, h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerInFlight(m.inFlight.WithLabelValues(path),
		promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(prometheus.Labels{"path": path}), h))
}
