package certs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

const (
	// defaultPollInterval backs up the file events: whatever they miss (a
	// symlink target outside the watched directory, an overflowed event
	// queue, a directory that appeared late) is read at most this late.
	defaultPollInterval = 10 * time.Second

	// defaultWaitInterval is the re-read interval before the first pair has
	// loaded; readiness waits on it, so it is short.
	defaultWaitInterval = time.Second

	// settleDelay lets a burst of events (a ..data swap is half a dozen; a
	// tool that writes the certificate and then the key is two) settle
	// into one re-read, so the half-written state between them is not
	// read, refused and logged for nothing.
	settleDelay = 100 * time.Millisecond
)

// FileSource serves a certificate and key read from PEM files, typically a
// kubernetes.io/tls Secret mounted as a volume and kept by cert-manager.
//
// It watches the directories that hold the files rather than the files: the
// kubelet updates a Secret volume by swapping its ..data symlink and deleting
// the old files, and a directory watch sees that without re-arming. The
// watch is set before the first read, so no change falls between the two.
// A new pair replaces the served one only if it parses, its key matches,
// and it is valid now (unless the served one is not); otherwise the
// previous pair stays in service and the refusal is logged.
//
// controller-runtime's certwatcher does most of this, but it cannot start
// before the files exist (a Secret not yet issued), reads before it watches
// (a rotation in between waits for the next poll), accepts an expired
// replacement, and logs through controller-runtime's global logger.
type FileSource struct {
	certFile, keyFile string
	log               logr.Logger

	pollInterval time.Duration
	waitInterval time.Duration

	started atomic.Bool
	current atomic.Pointer[loadedPair]

	// lastRefusal identifies the last refused content, so that a broken
	// pair left in place is logged once, not at every poll. Only Start's
	// goroutine touches it.
	lastRefusal [sha256.Size]byte
}

// loadedPair is a parsed pair and the bytes it came from, to tell a real
// change from an event that changed nothing.
type loadedPair struct {
	cert            *tls.Certificate
	certPEM, keyPEM []byte
}

var _ Source = (*FileSource)(nil)

// NewFileSource returns a Source for the PEM pair in certFile and keyFile.
// Nothing is read until Start.
func NewFileSource(certFile, keyFile string, log logr.Logger) *FileSource {
	return &FileSource{
		certFile:     certFile,
		keyFile:      keyFile,
		log:          log.WithValues("certFile", certFile, "keyFile", keyFile),
		pollInterval: defaultPollInterval,
		waitInterval: defaultWaitInterval,
	}
}

// GetCertificate returns the most recently accepted pair.
func (s *FileSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p := s.current.Load()
	if p == nil {
		return nil, ErrNoCertificate
	}
	return p.cert, nil
}

// Healthy returns nil while the served pair is valid now.
func (s *FileSource) Healthy() error {
	p := s.current.Load()
	if p == nil {
		return fmt.Errorf("%w from %s and %s", ErrNoCertificate, s.certFile, s.keyFile)
	}
	return checkUsable(p.cert, time.Now())
}

// Start watches and re-reads the files until ctx ends.
func (s *FileSource) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("file certificate source started twice")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("creating watcher for %s and %s: %w", s.certFile, s.keyFile, err)
	}
	defer func() { _ = w.Close() }()

	s.watchDirs(w)
	s.reload()

	poll := time.NewTimer(s.nextPoll())
	defer poll.Stop()
	// settle fires settleDelay after the first event of a burst; later
	// events in the burst do not push it back, so a directory that never
	// goes quiet still gets read.
	settle := time.NewTimer(settleDelay)
	settle.Stop()
	defer settle.Stop()
	settling := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed unexpectedly")
			}
			s.log.V(2).Info("Certificate directory changed", "event", ev.String())
			if !settling {
				settle.Reset(settleDelay)
				settling = true
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher closed unexpectedly")
			}
			// An overflowed queue means events were dropped: read now.
			s.log.Error(err, "Watching certificate files; re-reading them now")
			s.reload()
		case <-settle.C:
			settling = false
			s.reload()
		case <-poll.C:
			s.watchDirs(w)
			s.reload()
			poll.Reset(s.nextPoll())
		}
	}
}

// nextPoll is short until a first pair has loaded.
func (s *FileSource) nextPoll() time.Duration {
	if s.current.Load() == nil {
		return s.waitInterval
	}
	return s.pollInterval
}

// watchDirs (re-)adds the watches that are missing: a directory that did not
// exist yet, or one that was deleted and created again.
func (s *FileSource) watchDirs(w *fsnotify.Watcher) {
	watching := w.WatchList()
	for _, dir := range []string{filepath.Dir(s.certFile), filepath.Dir(s.keyFile)} {
		if slices.Contains(watching, dir) {
			continue
		}
		if err := w.Add(dir); err != nil {
			s.log.V(1).Info("Cannot watch certificate directory yet; polling", "dir", dir, "reason", err.Error())
			continue
		}
		watching = append(watching, dir)
	}
}

// reload reads the files and serves the pair they hold if it is acceptable.
func (s *FileSource) reload() {
	cur := s.current.Load()
	next, err := s.read()
	if err == nil && cur != nil && bytes.Equal(next.certPEM, cur.certPEM) && bytes.Equal(next.keyPEM, cur.keyPEM) {
		return
	}
	if err == nil {
		err = acceptable(next, cur, time.Now())
	}
	if err != nil {
		s.refused(err, next, cur)
		return
	}
	s.current.Store(next)
	s.lastRefusal = [sha256.Size]byte{}
	kv := describe(next.cert)
	if err := checkUsable(next.cert, time.Now()); err != nil {
		// Only when nothing better was served: clients get a clear
		// handshake error instead of none at all, and readiness fails.
		s.log.Error(err, "Serving a certificate that is not usable", kv...)
		return
	}
	s.log.Info("Loaded serving certificate", kv...)
}

// read returns the files' contents and, if they parse, the pair; the bytes
// come back even on error, to recognise the same refusal next time.
func (s *FileSource) read() (*loadedPair, error) {
	p := &loadedPair{}
	var err error
	if p.certPEM, err = os.ReadFile(s.certFile); err != nil {
		return p, fmt.Errorf("reading certificate: %w", err)
	}
	if p.keyPEM, err = os.ReadFile(s.keyFile); err != nil {
		return p, fmt.Errorf("reading key: %w", err)
	}
	cert, err := tls.X509KeyPair(p.certPEM, p.keyPEM)
	if err != nil {
		return p, fmt.Errorf("parsing certificate and key: %w", err)
	}
	p.cert = &cert
	return p, nil
}

// acceptable refuses to replace a usable pair with one that is not (expired,
// not yet valid): that would turn a working webhook into a broken one.
func acceptable(next, cur *loadedPair, now time.Time) error {
	if cur == nil || checkUsable(cur.cert, now) != nil {
		return nil
	}
	if err := checkUsable(next.cert, now); err != nil {
		return fmt.Errorf("new certificate is not usable: %w", err)
	}
	return nil
}

// refused logs why the files were not loaded, once per distinct content.
func (s *FileSource) refused(err error, next, cur *loadedPair) {
	h := sha256.New()
	h.Write(next.certPEM)
	h.Write(next.keyPEM)
	h.Write([]byte(err.Error()))
	var id [sha256.Size]byte
	h.Sum(id[:0])
	repeated := id == s.lastRefusal
	s.lastRefusal = id

	switch {
	case repeated:
		// Already said; logr's Error ignores verbosity, so this is Info.
		s.log.V(1).Info("Still refusing certificate files", "reason", err.Error())
	case cur == nil:
		s.log.Info("Waiting for serving certificate", "reason", err.Error())
	default:
		s.log.Error(err, "Refused new certificate files; still serving the previous pair", describe(cur.cert)...)
	}
}
