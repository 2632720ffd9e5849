package server

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/kube-eip/kube-eip/certs"
)

// handshake opens a fresh TLS connection and returns what was negotiated.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState(), nil
}

func TestRotatedCertificateReachesNewConnections(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certPEM, keyPEM := p.issuePEM(t, time.Hour)
	replaceFile(t, certFile, certPEM)
	replaceFile(t, keyFile, keyPEM)
	srv := startServer(t, Options{Certs: certs.NewFileSource(certFile, keyFile, testr.New(t))})

	servedSerial := func() string {
		state, err := handshake(srv.Addr(), p.clientTLS())
		if err != nil {
			return ""
		}
		return state.PeerCertificates[0].SerialNumber.String()
	}
	eventually(t, 10*time.Second, "the first certificate to be served", func() bool { return servedSerial() != "" })
	before := servedSerial()

	// A keep-alive connection opened before the rotation keeps working.
	c := p.client(t)
	if code, body := get(c, srv.url+"/healthz"); code != 200 {
		t.Fatalf("healthz before rotation = %d %q", code, body)
	}

	nextPEM, nextKeyPEM := p.issuePEM(t, time.Hour)
	replaceFile(t, certFile, nextPEM)
	replaceFile(t, keyFile, nextKeyPEM)
	eventually(t, 15*time.Second, "new connections to see the rotated certificate", func() bool {
		s := servedSerial()
		return s != "" && s != before
	})
	if code, body := get(c, srv.url+"/healthz"); code != 200 {
		t.Fatalf("healthz after rotation = %d %q", code, body)
	}
	if code, body := get(clientWith(t, p.clientTLS()), srv.url+"/readyz"); code != 200 {
		t.Fatalf("readyz after rotation = %d %q", code, body)
	}
}

func TestHTTP2IsOffUnlessEnabled(t *testing.T) {
	p := newPKI(t)
	for _, enable := range []bool{false, true} {
		srv := startServer(t, Options{Certs: certs.NewStatic(p.issue(t, time.Hour)), EnableHTTP2: enable})
		cfg := p.clientTLS()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		state, err := handshake(srv.Addr(), cfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		want := "http/1.1"
		if enable {
			want = "h2"
		}
		if state.NegotiatedProtocol != want {
			t.Errorf("EnableHTTP2=%t negotiated %q, want %q", enable, state.NegotiatedProtocol, want)
		}
	}
}

func TestOldTLSVersionsAreRefused(t *testing.T) {
	p := newPKI(t)
	srv := startServer(t, Options{Certs: certs.NewStatic(p.issue(t, time.Hour))})
	cfg := p.clientTLS()
	cfg.MinVersion = tls.VersionTLS10
	cfg.MaxVersion = tls.VersionTLS11
	if _, err := handshake(srv.Addr(), cfg); err == nil {
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	cfg.MaxVersion = tls.VersionTLS12
	state, err := handshake(srv.Addr(), cfg)
	if err != nil || state.Version != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2 handshake: version %x, %v", state.Version, err)
	}
}

// replaceFile swaps in new contents with a rename, as cert-manager's csi
// driver and most config tools do, so readers never see half a file.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("renaming %s: %v", tmp, err)
	}
}
