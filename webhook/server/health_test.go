package server

import (
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/kube-eip/kube-eip/certs"
)

func TestReadyOnlyOnceCertificateAndChecksAreGood(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	var cachesSynced atomic.Bool
	srv := startServer(t, Options{
		Certs: certs.NewFileSource(certFile, keyFile, testr.New(t)),
		Readiness: []func() error{func() error {
			if !cachesSynced.Load() {
				return errors.New("informer caches not synced")
			}
			return nil
		}},
	})
	c := p.client(t)

	// No certificate yet: no handshake succeeds, so a probe fails.
	if code, body := get(c, srv.url+"/readyz"); code != -1 {
		t.Fatalf("readyz with no certificate answered %d %q, want a failed handshake", code, body)
	}

	certPEM, keyPEM := p.issuePEM(t, time.Hour)
	writeFile(t, certFile, certPEM)
	writeFile(t, keyFile, keyPEM)
	eventually(t, 10*time.Second, "the certificate to load", func() bool {
		code, _ := get(c, srv.url+"/healthz")
		return code == 200
	})

	code, body := get(c, srv.url+"/readyz")
	if code != 503 || !strings.Contains(body, "informer caches not synced") {
		t.Fatalf("readyz with a failing check = %d %q, want 503 naming the check", code, body)
	}
	if strings.Contains(body, "certificate") {
		t.Fatalf("readyz blames the certificate, which is fine: %q", body)
	}

	cachesSynced.Store(true)
	if code, body := get(c, srv.url+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("readyz when all is well = %d %q, want 200 ok", code, body)
	}
}

func TestNotReadyWithExpiredCertificate(t *testing.T) {
	p := newPKI(t)
	expired := p.issue(t, time.Millisecond)
	eventually(t, 5*time.Second, "the certificate to expire", func() bool { return time.Now().After(expired.Leaf.NotAfter) })
	srv := startServer(t, Options{Certs: certs.NewStatic(expired)})

	// A client whose clock says the certificate is still valid, so the
	// handshake succeeds and the answer can be read.
	cfg := p.clientTLS()
	cfg.Time = func() time.Time { return expired.Leaf.NotBefore.Add(time.Second) }
	c := clientWith(t, cfg)

	if code, body := get(c, srv.url+"/healthz"); code != 200 {
		t.Fatalf("healthz = %d %q, want 200: the process is alive", code, body)
	}
	code, body := get(c, srv.url+"/readyz")
	if code != 503 || !strings.Contains(body, "certificate:") || !strings.Contains(body, "expired") {
		t.Fatalf("readyz with an expired certificate = %d %q, want 503 saying it expired", code, body)
	}
}
