package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-eip/kube-eip/certs"
)

func TestStartRefusesBadOptions(t *testing.T) {
	p := newPKI(t)
	src := certs.NewStatic(p.issue(t, time.Hour))
	ok := http.NotFoundHandler()
	for name, opts := range map[string]Options{
		"no address":           {Certs: src},
		"no certificates":      {Addr: "127.0.0.1:0"},
		"relative path":        {Addr: "127.0.0.1:0", Certs: src, Handlers: map[string]http.Handler{"mutate": ok}},
		"reserved path":        {Addr: "127.0.0.1:0", Certs: src, Handlers: map[string]http.Handler{"/readyz": ok}},
		"nil handler":          {Addr: "127.0.0.1:0", Certs: src, Handlers: map[string]http.Handler{"/mutate": nil}},
		"nil readiness check":  {Addr: "127.0.0.1:0", Certs: src, Readiness: []func() error{nil}},
		"unusable listen addr": {Addr: "127.0.0.1:99999", Certs: src},
	} {
		t.Run(name, func(t *testing.T) {
			opts.MetricsRegistry = prometheus.NewRegistry()
			if s, err := Start(t.Context(), opts); err == nil {
				_ = s.Wait()
				t.Fatal("Start succeeded")
			}
		})
	}
}

func TestGracefulShutdownFinishesInFlightRequest(t *testing.T) {
	p := newPKI(t)
	started, release := make(chan struct{}), make(chan struct{})
	srv := startServer(t, Options{
		Certs: certs.NewStatic(p.issue(t, time.Hour)),
		Handlers: map[string]http.Handler{"/slow": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			select {
			case <-release:
				_, _ = io.WriteString(w, "finished")
			case <-r.Context().Done():
				http.Error(w, "cancelled", http.StatusServiceUnavailable)
			}
		})},
		ShutdownTimeout: 30 * time.Second,
	})
	c := p.client(t)

	type answer struct {
		code int
		body string
	}
	answered := make(chan answer, 1)
	go func() {
		code, body := get(c, srv.url+"/slow")
		answered <- answer{code, body}
	}()
	<-started

	srv.cancel()
	// New connections are refused while the slow request is still running.
	eventually(t, 10*time.Second, "the listener to close", func() bool {
		conn, err := net.Dial("tcp", srv.Addr())
		if err == nil {
			_ = conn.Close()
		}
		return err != nil
	})
	select {
	case a := <-answered:
		t.Fatalf("in-flight request ended before it was released: %d %q", a.code, a.body)
	default:
	}

	close(release)
	if a := <-answered; a.code != 200 || a.body != "finished" {
		t.Fatalf("in-flight request got %d %q, want 200 finished", a.code, a.body)
	}
	if err := waitStopped(t, srv.Server); err != nil {
		t.Fatalf("Wait after a clean shutdown = %v", err)
	}
}

func TestShutdownCutsOffRequestsPastTimeout(t *testing.T) {
	p := newPKI(t)
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	srv := startServer(t, Options{
		Certs: certs.NewStatic(p.issue(t, time.Hour)),
		Handlers: map[string]http.Handler{"/stuck": http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			close(started)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})},
		ShutdownTimeout: 100 * time.Millisecond,
	})
	c := p.client(t)
	answered := make(chan int, 1)
	go func() {
		code, _ := get(c, srv.url+"/stuck")
		answered <- code
	}()
	<-started

	srv.cancel()
	err := waitStopped(t, srv.Server)
	if err == nil || !strings.Contains(err.Error(), "in-flight") {
		t.Fatalf("Wait = %v, want an error about the request still in flight", err)
	}
	if code := <-answered; code != -1 {
		t.Fatalf("stuck request got an answer %d, want its connection cut", code)
	}
}

func TestServerStopsWhenCertificateSourceFails(t *testing.T) {
	p := newPKI(t)
	srv := startServer(t, Options{Certs: failingSource{certs.NewStatic(p.issue(t, time.Hour))}})
	if err := waitStopped(t, srv.Server); err == nil || !strings.Contains(err.Error(), "certificate source") {
		t.Fatalf("Wait = %v, want the certificate source's error", err)
	}
}

// failingSource serves a certificate but cannot keep it fresh.
type failingSource struct{ certs.Source }

func (failingSource) Start(context.Context) error { return errors.New("secret deleted") }

func TestRequestBodiesAreCapped(t *testing.T) {
	p := newPKI(t)
	srv := startServer(t, Options{
		Certs: certs.NewStatic(p.issue(t, time.Hour)),
		Handlers: map[string]http.Handler{"/echo-size": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
					return
				}
				http.Error(w, err.Error(), http.StatusBadRequest)
			}
		})},
	})
	c := p.client(t)
	for size, want := range map[int]int{maxRequestBytes: 200, maxRequestBytes + 1: 413} {
		resp, err := c.Post(srv.url+"/echo-size", "application/octet-stream", bytes.NewReader(make([]byte, size)))
		if err != nil {
			t.Fatalf("POST %d bytes: %v", size, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %d bytes = %d, want %d", size, resp.StatusCode, want)
		}
	}
}

func TestRunReturnsNilAfterCleanShutdown(t *testing.T) {
	p := newPKI(t)
	ctx, cancel := context.WithCancel(context.Background())
	src := &startSignal{Source: certs.NewStatic(p.issue(t, time.Hour)), started: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Addr: "127.0.0.1:0", Certs: src, MetricsRegistry: prometheus.NewRegistry()})
	}()
	<-src.started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}

// startSignal tells when the server has started its certificate source,
// which it does once it is listening.
type startSignal struct {
	certs.Source
	started chan struct{}
}

func (s *startSignal) Start(ctx context.Context) error {
	close(s.started)
	return s.Source.Start(ctx)
}

func clientWith(t *testing.T, cfg *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}
