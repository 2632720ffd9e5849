package server

import (
	"fmt"
	"log"
	"strings"

	"github.com/go-logr/logr"
)

// newErrorLog routes net/http's own messages (TLS handshake failures,
// recovered handler panics) into the structured log.
func newErrorLog(logger logr.Logger) *log.Logger {
	return log.New(errorLogWriter{logger}, "", 0)
}

type errorLogWriter struct {
	logger logr.Logger
}

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	// A handshake that ends in EOF is a TCP probe or a client that gave up,
	// not a misconfiguration; a bad caBundle shows as "bad certificate" and
	// stays visible.
	if strings.HasSuffix(msg, ": EOF") {
		w.logger.V(1).Info(msg)
		return len(p), nil
	}
	w.logger.Info(msg)
	return len(p), nil
}

// promErrorLog passes promhttp's gathering errors to the structured log.
type promErrorLog struct {
	logger logr.Logger
}

func (l promErrorLog) Println(v ...any) {
	l.logger.Error(nil, "Serving metrics", "detail", fmt.Sprint(v...))
}
