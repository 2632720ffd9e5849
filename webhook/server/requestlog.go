package server

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-logr/logr"
)

// logRequests logs each request at V(1) with the logger from its context.
// At lower verbosity it costs one context lookup, which keeps it off the
// admission latency budget.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger := logr.FromContextOrDiscard(r.Context()).V(1)
		if !logger.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		code := ww.Status()
		if code == 0 {
			// The handler wrote nothing; net/http answers 200 for it.
			code = http.StatusOK
		}
		logger.Info("Request served",
			"method", r.Method,
			"path", r.URL.Path,
			"code", code,
			"bytes", ww.BytesWritten(),
			"duration", time.Since(start),
			"remote", r.RemoteAddr,
		)
	})
}
