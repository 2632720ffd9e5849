package server

import (
	"maps"
	"net/http"
	"slices"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	healthzPath = "/healthz"
	readyzPath  = "/readyz"
	metricsPath = "/metrics"

	// maxRequestBytes caps every request body. It is the cap
	// controller-runtime's admission.Webhook applies itself (two objects of
	// up to 3 MiB, old and new, plus the review around them), so a
	// legitimate UPDATE review is never refused, and it protects handlers
	// that read bodies without a cap of their own.
	maxRequestBytes = 7 << 20
)

// routes builds the server's handler: request logging outermost so it sees
// the final status, then the body cap, then per-path metrics around each
// mounted handler.
func (s *Server) routes(m *requestMetrics) http.Handler {
	r := chi.NewRouter()
	r.Use(logRequests)
	mount := func(path string, h http.Handler) {
		r.Handle(path, m.instrument(path, h))
	}
	mount(healthzPath, http.HandlerFunc(healthz))
	mount(readyzPath, http.HandlerFunc(s.readyz))
	mount(metricsPath, promhttp.HandlerFor(s.opts.MetricsRegistry, promhttp.HandlerOpts{
		ErrorLog: promErrorLog{s.opts.Log},
	}))
	for _, path := range slices.Sorted(maps.Keys(s.opts.Handlers)) {
		mount(path, s.opts.Handlers[path])
	}
	return http.MaxBytesHandler(r, maxRequestBytes)
}
