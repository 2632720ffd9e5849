package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
)

// healthz answers while the process can serve at all; the kubelet restarts
// the container when it stops answering.
func healthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok\n")
}

// readyz answers 200 only while the server can admit pods: a valid
// certificate loaded, every readiness check passing, not shutting down.
// Otherwise 503, one line per reason, so `kubectl get --raw` or a probe's
// event says what is missing.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	problems := s.notReady()
	if len(problems) == 0 {
		writeText(w, http.StatusOK, "ok\n")
		return
	}
	logr.FromContextOrDiscard(r.Context()).V(1).Info("Not ready", "reasons", problems)
	writeText(w, http.StatusServiceUnavailable, strings.Join(problems, "\n")+"\n")
}

// notReady lists why the server is not ready, empty when it is.
func (s *Server) notReady() []string {
	var problems []string
	if s.shuttingDown.Load() {
		problems = append(problems, "shutting down")
	}
	if err := s.opts.Certs.Healthy(); err != nil {
		problems = append(problems, fmt.Sprintf("certificate: %v", err))
	}
	for i, check := range s.opts.Readiness {
		if err := check(); err != nil {
			problems = append(problems, fmt.Sprintf("readiness check %d: %v", i, err))
		}
	}
	return problems
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}
