package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook/server/loadgen"
)

// pki is a test CA and what a client needs to trust it.
type pki struct {
	ca    *certs.CA
	roots *x509.CertPool
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, err := certs.NewCA("kube-eip webhook test CA")
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	return &pki{ca: ca, roots: roots}
}

// issuePEM issues a certificate for loopback, valid for validity.
func (p *pki) issuePEM(t testing.TB, validity time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := p.ca.Issue([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, validity)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return certPEM, keyPEM
}

func (p *pki) issue(t testing.TB, validity time.Duration) tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(p.issuePEM(t, validity))
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	return pair
}

// clientTLS trusts the test CA only, as the API server trusts its caBundle.
func (p *pki) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

func (p *pki) client(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: p.clientTLS()}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// testServer is a running server whose shutdown the test can trigger and
// whose Wait result is checked, at the latest, when the test ends.
type testServer struct {
	*Server
	url    string
	cancel context.CancelFunc
}

// startServer starts a server on a free loopback port with a fresh metrics
// registry and the test's logger at V(1), so request logging runs too.
func startServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	if opts.MetricsRegistry == nil {
		opts.MetricsRegistry = prometheus.NewRegistry()
	}
	opts.Log = testr.NewWithOptions(t, testr.Options{Verbosity: 1})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	ts := &testServer{Server: s, url: "https://" + s.Addr(), cancel: cancel}
	// The server logs through t until Wait returns, so the test must not end
	// before that.
	t.Cleanup(func() {
		cancel()
		// Tests that care how the server stopped check Wait themselves.
		_ = waitStopped(t, ts.Server)
	})
	return ts
}

// waitStopped waits for the server to stop and returns what Wait returned.
func waitStopped(t *testing.T, s *Server) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
		return nil
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// get fetches url and returns the status code and body, or -1 and the error
// text when no HTTP answer came.
func get(c *http.Client, url string) (int, string) {
	resp, err := c.Get(url)
	if err != nil {
		return -1, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, err.Error()
	}
	return resp.StatusCode, string(body)
}

// podReview is loadgen's realistic review, failing the test if it cannot be built.
func podReview(t testing.TB, uid string, pod *corev1.Pod) []byte {
	t.Helper()
	body, err := loadgen.Review(uid, pod)
	if err != nil {
		t.Fatalf("building review: %v", err)
	}
	return body
}
