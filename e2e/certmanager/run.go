package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/tools/clientcmd"
)

// run installs the CRDs, then runs the controllers and the cainjector until
// ctx ends or one of them fails.
func run(ctx context.Context, o options) error {
	log := logf.FromContext(ctx, "harness")
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", o.Kubeconfig, err)
	}
	var ready atomic.Bool
	if o.HealthzAddr != "" {
		// Listening first lets the stack poll from the start and see a
		// process that is up but not yet ready.
		stop, err := serveHealth(o.HealthzAddr, &ready)
		if err != nil {
			return err
		}
		defer stop()
	}

	start := time.Now()
	if err := installCRDs(ctx, cfg); err != nil {
		return err
	}
	log.Info("CRDs established", "took", time.Since(start).Round(time.Millisecond))

	g, ctx := errgroup.WithContext(ctx)
	cm, err := newControllers(ctx, o)
	if err != nil {
		return err
	}
	injector, err := newCAInjector(ctx, cfg)
	if err != nil {
		return err
	}
	g.Go(func() error { return cm.run(ctx) })
	g.Go(func() error {
		if err := injector.Start(ctx); err != nil {
			return fmt.Errorf("running the cainjector: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-cm.synced:
		case <-ctx.Done():
			return nil
		}
		if injector.GetCache().WaitForCacheSync(ctx) {
			ready.Store(true)
			log.Info("ready", "took", time.Since(start).Round(time.Millisecond))
		}
		return nil
	})
	return g.Wait()
}

// serveHealth answers /healthz while the process runs and /readyz once
// ready is set; stop shuts the server down.
func serveHealth(addr string, ready *atomic.Bool) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf.Log.Error(err, "serving health", "address", addr)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
