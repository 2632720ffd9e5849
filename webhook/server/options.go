package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kube-eip/kube-eip/certs"
)

// defaultShutdownTimeout leaves room inside a pod's default 30 s
// terminationGracePeriodSeconds for the process to exit after draining.
const defaultShutdownTimeout = 20 * time.Second

// Options configure the webhook's HTTPS server.
type Options struct {
	// Addr is the TCP address to listen on: ":9443" in a pod, "127.0.0.1:0"
	// in a test (Server.Addr tells the port that was picked).
	Addr string

	// Certs supplies the serving certificate. The server runs Certs.Start
	// for as long as it runs itself, and is not ready while Certs.Healthy
	// fails.
	Certs certs.Source

	// Handlers maps each path to its handler, e.g. "/mutate-pods" to a
	// controller-runtime *admission.Webhook. /healthz, /readyz and /metrics
	// are the server's own.
	Handlers map[string]http.Handler

	// Readiness are extra checks for /readyz, such as "informer caches
	// synced". Each error's text is shown in the answer, so it should say
	// what is not ready.
	Readiness []func() error

	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// once ctx ends; those still running then are cut off. Default 20s.
	ShutdownTimeout time.Duration

	// EnableHTTP2 offers HTTP/2 in ALPN. It is off by default, as in
	// controller-runtime, because of the HTTP/2 stream-reset and
	// rapid-reset attacks (CVE-2023-44487, CVE-2023-39325); the API server
	// talks HTTP/1.1 to webhooks just as well.
	EnableHTTP2 bool

	// Log receives the server's own log lines and is put into each
	// request's context. The zero Logger means the one in Start's ctx.
	Log logr.Logger

	// MetricsRegistry is where the server registers its metrics and what
	// /metrics serves. Nil means controller-runtime's metrics.Registry, so
	// controller-runtime's and client-go's metrics are served too.
	MetricsRegistry ctrlmetrics.RegistererGatherer
}

// reservedPaths are served by the server itself.
var reservedPaths = map[string]bool{healthzPath: true, readyzPath: true, metricsPath: true}

// complete validates o and fills in its defaults.
func (o Options) complete(ctx context.Context) (Options, error) {
	if o.Addr == "" {
		return o, errors.New("no listen address")
	}
	if o.Certs == nil {
		return o, errors.New("no certificate source")
	}
	for path, h := range o.Handlers {
		switch {
		case !strings.HasPrefix(path, "/"):
			return o, fmt.Errorf("handler path %q does not start with /", path)
		case reservedPaths[path]:
			return o, fmt.Errorf("handler path %s is reserved for the server", path)
		case h == nil:
			return o, fmt.Errorf("handler for %s is nil", path)
		}
	}
	for i, check := range o.Readiness {
		if check == nil {
			return o, fmt.Errorf("readiness check %d is nil", i)
		}
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = defaultShutdownTimeout
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.FromContextOrDiscard(ctx)
	}
	if o.MetricsRegistry == nil {
		o.MetricsRegistry = ctrlmetrics.Registry
	}
	return o, nil
}
