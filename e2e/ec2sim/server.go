package ec2sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is a Sim listening on a loopback address.
type Server struct {
	*Sim
	// URL is the endpoint to give the SDK (BaseEndpoint or AWS_ENDPOINT_URL_EC2).
	URL string

	http *http.Server
	done chan error

	closeOnce sync.Once
	closeErr  error
}

// Start builds a Sim and serves it on Options.Listen, or on a free port of
// 127.0.0.1 when that is empty. Only loopback addresses are accepted: the
// emulator checks no credentials.
func Start(opts Options) (*Server, error) {
	addr := opts.Listen
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := requireLoopback(addr); err != nil {
		return nil, err
	}
	sim, err := New(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = sim.Close()
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	s := &Server{
		Sim:  sim,
		URL:  "http://" + ln.Addr().String(),
		http: &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.http.Serve(ln) }()
	return s, nil
}

func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parsing listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen address %q is not loopback: the emulator accepts any credentials, so it only listens on 127.0.0.1 or ::1", addr)
	}
	return nil
}

// Close stops serving, waiting up to five seconds for calls in flight, then
// closes the Sim, which writes its final state.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.http.Shutdown(ctx)
		if serveErr := <-s.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("serving: %w", serveErr))
		}
		s.closeErr = errors.Join(err, s.Sim.Close())
	})
	return s.closeErr
}

// Run serves until ctx ends, then shuts down and saves the state.
func Run(ctx context.Context, opts Options) error {
	s, err := Start(opts)
	if err != nil {
		return err
	}
	s.opts.Logf("ec2sim: serving EC2 for %s on %s (AWS_ENDPOINT_URL_EC2=%s)", s.opts.Region, s.URL, s.URL)
	select {
	case <-ctx.Done():
	case err := <-s.done:
		s.done <- err // let Close see it
	}
	return s.Close()
}
