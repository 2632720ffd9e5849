// Package server runs the webhook's HTTPS endpoint: the admission handlers
// on a chi router, behind TLS from a certs.Source, with health, readiness,
// metrics, request logging and a graceful shutdown around them.
package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
)

const (
	// readHeaderTimeout stops clients that open connections and send
	// headers slowly from holding them (Slowloris).
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds a whole request read; the API server gives a
	// webhook call at most 30 s in all.
	readTimeout = 30 * time.Second
	// idleTimeout keeps the API server's pooled connections warm between
	// bursts without holding dead ones forever.
	idleTimeout = 90 * time.Second
)

// Server is a running webhook server.
type Server struct {
	opts         Options
	addr         net.Addr
	shuttingDown atomic.Bool

	done chan struct{}
	err  error
}

// Run serves until ctx ends, then shuts down gracefully. It returns nil after
// a clean shutdown.
func Run(ctx context.Context, opts Options) error {
	s, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	return s.Wait()
}

// Start listens on opts.Addr and serves in the background until ctx ends.
// When it returns without error the port is bound, so a client may connect
// to Addr at once.
func Start(ctx context.Context, opts Options) (*Server, error) {
	opts, err := opts.complete(ctx)
	if err != nil {
		return nil, fmt.Errorf("configuring webhook server: %w", err)
	}
	m, err := newMetrics(opts.MetricsRegistry)
	if err != nil {
		return nil, fmt.Errorf("registering webhook server metrics: %w", err)
	}
	s := &Server{opts: opts, done: make(chan struct{})}
	handler := s.routes(m)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", opts.Addr, err)
	}
	s.addr = ln.Addr()
	logger := opts.Log.WithValues("addr", s.addr.String())

	// In-flight requests must outlive ctx, which is what lets them finish
	// during shutdown; their contexts carry the logger, not the cancellation.
	base := logr.NewContext(context.WithoutCancel(ctx), logger)
	hs := &http.Server{
		Handler:           handler,
		TLSConfig:         newTLSConfig(opts.Certs),
		Protocols:         protocols(opts.EnableHTTP2),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          newErrorLog(logger.WithName("http")),
	}
	logger.Info("Serving webhook", "paths", slices.Sorted(maps.Keys(opts.Handlers)), "http2", opts.EnableHTTP2)
	go s.run(ctx, hs, ln, logger)
	return s, nil
}

// Addr is the address the server listens on, with the port it was given.
func (s *Server) Addr() string {
	return s.addr.String()
}

// Wait blocks until the server has shut down and its certificate source has
// stopped, and returns why it stopped if that was not ctx ending cleanly.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

func (s *Server) run(ctx context.Context, hs *http.Server, ln net.Listener, logger logr.Logger) {
	defer close(s.done)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.opts.Certs.Start(gctx); err != nil {
			return fmt.Errorf("running certificate source: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := hs.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving on %s: %w", s.addr, err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		return s.shutdown(ctx, hs, logger)
	})
	s.err = g.Wait()
	if s.err != nil {
		logger.Error(s.err, "Webhook server stopped")
		return
	}
	logger.Info("Webhook server stopped")
}

// shutdown stops accepting connections and lets in-flight requests finish
// within ShutdownTimeout, then cuts off whatever is left.
func (s *Server) shutdown(ctx context.Context, hs *http.Server, logger logr.Logger) error {
	s.shuttingDown.Store(true)
	timeout := s.opts.ShutdownTimeout
	logger.Info("Shutting down webhook server", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		closeErr := hs.Close()
		return errors.Join(fmt.Errorf("shutting down: in-flight requests still running after %s: %w", timeout, err), closeErr)
	}
	return nil
}
