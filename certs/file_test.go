package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
)

// logRecorder keeps the source's log lines so a test can wait for one,
// and passes them on to the test's log.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func newTestFileSource(t *testing.T, certFile, keyFile string) (*FileSource, *logRecorder) {
	t.Helper()
	rec := &logRecorder{}
	log := funcr.New(func(prefix, args string) {
		rec.mu.Lock()
		rec.lines = append(rec.lines, args)
		rec.mu.Unlock()
		t.Log(prefix, args)
	}, funcr.Options{Verbosity: 2})
	s := NewFileSource(certFile, keyFile, log)
	s.waitInterval = 20 * time.Millisecond
	// Once a pair is loaded, events alone must carry rotations: the
	// periodic re-read would hide a broken watch.
	s.pollInterval = time.Hour
	return s, rec
}

const refusedMsg = "Refused new certificate files"

func TestFileSourceNotHealthyBeforeFirstLoad(t *testing.T) {
	ca := newTestCA(t)
	vol := newSecretVolume(t)
	src, rec := newTestFileSource(t, vol.path("tls.crt"), vol.path("tls.key"))

	if err := src.Healthy(); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("Healthy before Start = %v, want ErrNoCertificate", err)
	}
	if _, err := src.GetCertificate(&tls.ClientHelloInfo{}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("GetCertificate before Start = %v, want ErrNoCertificate", err)
	}

	start(t, src)
	// The Secret is not there yet: the source keeps waiting, still unhealthy.
	eventually(t, 5*time.Second, "a log line saying what is missing", func() bool { return rec.count("Waiting for serving certificate") > 0 })
	if err := src.Healthy(); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("Healthy with no files = %v, want ErrNoCertificate", err)
	}

	certPEM, keyPEM := issue(t, ca, time.Hour)
	vol.writeTLS(t, certPEM, keyPEM)
	eventually(t, 5*time.Second, "the first pair to load", func() bool { return src.Healthy() == nil })
	if got, want := servedSerial(src), serialOfPEM(t, certPEM); got != want {
		t.Fatalf("serving serial %s, want %s", got, want)
	}
}

func TestFileSourcePicksUpSecretVolumeRotation(t *testing.T) {
	ca := newTestCA(t)
	vol := newSecretVolume(t)
	first, firstKey := issue(t, ca, time.Hour)
	vol.writeTLS(t, first, firstKey)

	src, _ := newTestFileSource(t, vol.path("tls.crt"), vol.path("tls.key"))
	start(t, src)
	eventually(t, 5*time.Second, "the first pair to load", func() bool { return src.Healthy() == nil })

	// cert-manager rotates the key too (rotationPolicy: Always), and the
	// kubelet projects the new Secret with one ..data swap. Do it twice: the
	// watch must survive the deletion of the files it was first put on.
	for range 2 {
		next, nextKey := issue(t, ca, time.Hour)
		want := serialOfPEM(t, next)
		vol.writeTLS(t, next, nextKey)
		eventually(t, 10*time.Second, "serial "+want+" to be served", func() bool { return servedSerial(src) == want })
		if err := src.Healthy(); err != nil {
			t.Fatalf("Healthy after rotation: %v", err)
		}
	}
}

func TestFileSourcePicksUpInPlaceRewrite(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, firstKey := issue(t, ca, time.Hour)
	writeFile(t, certFile, first)
	writeFile(t, keyFile, firstKey)

	src, _ := newTestFileSource(t, certFile, keyFile)
	start(t, src)
	eventually(t, 5*time.Second, "the first pair to load", func() bool { return src.Healthy() == nil })

	// Plain files rewritten one after the other: in between, the new
	// certificate sits beside the old key, which must not be served.
	next, nextKey := issue(t, ca, time.Hour)
	want := serialOfPEM(t, next)
	writeFile(t, certFile, next)
	writeFile(t, keyFile, nextKey)
	eventually(t, 10*time.Second, "serial "+want+" to be served", func() bool { return servedSerial(src) == want })
	if err := src.Healthy(); err != nil {
		t.Fatalf("Healthy after rewrite: %v", err)
	}
}

func TestFileSourceKeepsGoodPairWhenNewOneIsBroken(t *testing.T) {
	ca := newTestCA(t)
	vol := newSecretVolume(t)
	good, goodKey := issue(t, ca, time.Hour)
	vol.writeTLS(t, good, goodKey)
	goodSerial := serialOfPEM(t, good)

	src, rec := newTestFileSource(t, vol.path("tls.crt"), vol.path("tls.key"))
	start(t, src)
	eventually(t, 5*time.Second, "the good pair to load", func() bool { return servedSerial(src) == goodSerial })

	other, _ := issue(t, ca, time.Hour)
	expired, expiredKey := issue(t, ca, time.Millisecond)
	eventually(t, 5*time.Second, "the short-lived certificate to expire", func() bool { return certExpired(t, expired) })
	broken := []struct {
		name      string
		cert, key []byte
	}{
		{"key of another certificate", other, goodKey},
		{"truncated certificate", good[:len(good)/2], goodKey},
		{"empty key", other, nil},
		{"expired certificate", expired, expiredKey},
	}
	for _, b := range broken {
		name := b.name
		before := rec.count(refusedMsg)
		vol.writeTLS(t, b.cert, b.key)
		eventually(t, 10*time.Second, "the "+name+" to be read and refused", func() bool { return rec.count(refusedMsg) > before })
		if got := servedSerial(src); got != goodSerial {
			t.Fatalf("after %s: serving %q, want the previous good %s", name, got, goodSerial)
		}
		if err := src.Healthy(); err != nil {
			t.Fatalf("after %s: Healthy = %v, want nil (the good pair is still served)", name, err)
		}
	}

	// And the watch is still alive for the next good pair.
	fixed, fixedKey := issue(t, ca, time.Hour)
	want := serialOfPEM(t, fixed)
	vol.writeTLS(t, fixed, fixedKey)
	eventually(t, 10*time.Second, "the repaired pair to be served", func() bool { return servedSerial(src) == want })
}

func TestFileSourceUnhealthyAfterExpiry(t *testing.T) {
	ca := newTestCA(t)
	vol := newSecretVolume(t)
	certPEM, keyPEM := issue(t, ca, 1500*time.Millisecond)
	vol.writeTLS(t, certPEM, keyPEM)

	src, _ := newTestFileSource(t, vol.path("tls.crt"), vol.path("tls.key"))
	start(t, src)
	eventually(t, 5*time.Second, "the pair to load", func() bool { return servedSerial(src) != "" })

	eventually(t, 10*time.Second, "Healthy to report expiry", func() bool {
		err := src.Healthy()
		return err != nil && strings.Contains(err.Error(), "expired")
	})
	// Still served: an expired certificate fails the handshake on the
	// client's side with a clear reason, which beats no certificate at all.
	if servedSerial(src) == "" {
		t.Fatal("expired certificate no longer served")
	}
}

func TestFileSourceWaitsForItsDirectory(t *testing.T) {
	ca := newTestCA(t)
	dir := filepath.Join(t.TempDir(), "not-mounted-yet")
	src, _ := newTestFileSource(t, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	start(t, src)

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := issue(t, ca, time.Hour)
	writeFile(t, filepath.Join(dir, "tls.crt"), certPEM)
	writeFile(t, filepath.Join(dir, "tls.key"), keyPEM)
	eventually(t, 5*time.Second, "the pair to load", func() bool { return src.Healthy() == nil })

	// The directory is watched from now on, polling is off: events do it.
	next, nextKey := issue(t, ca, time.Hour)
	want := serialOfPEM(t, next)
	writeFile(t, filepath.Join(dir, "tls.crt"), next)
	writeFile(t, filepath.Join(dir, "tls.key"), nextKey)
	eventually(t, 10*time.Second, "serial "+want+" to be served", func() bool { return servedSerial(src) == want })
}

func TestFileSourceStartsOnce(t *testing.T) {
	dir := t.TempDir()
	src, _ := newTestFileSource(t, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	start(t, src)
	eventually(t, 5*time.Second, "the first Start to begin", src.started.Load)
	if err := src.Start(t.Context()); err == nil {
		t.Fatal("second Start returned nil, want an error")
	}
}

func certExpired(t *testing.T, certPEM []byte) bool {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parsing certificate: %v", err)
	}
	return time.Now().After(leaf.NotAfter)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}
