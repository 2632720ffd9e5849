package wait

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// deadline bounds every wait of these tests. It is generous because the
// machine may be busy; a passing test never comes near it.
const deadline = 10 * time.Second

// logRecorder keeps Run's log lines, so a test can wait for Run to reach a
// state (it logs "waiting for the Elastic IP label" once it has read the
// file and armed its watch) instead of sleeping.
type logRecorder struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLogRecorder() (*logRecorder, logr.Logger) {
	r := &logRecorder{changed: make(chan struct{})}
	return r, funcr.New(r.add, funcr.Options{Verbosity: 1})
}

func (r *logRecorder) add(prefix, args string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, prefix+args)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// count tells how many lines hold substr, and gives the channel that the
// next line closes.
func (r *logRecorder) count(substr string) (int, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n, r.changed
}

// waitFor blocks until a line holds substr.
func (r *logRecorder) waitFor(t *testing.T, substr string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		n, changed := r.count(substr)
		if n > 0 {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("no log line with %q within %s; log:\n%s", substr, deadline, r)
		}
	}
}

// running is a Run in a goroutine.
type running struct {
	log    *logRecorder
	out    *bytes.Buffer // read only after done delivered
	cancel context.CancelFunc
	done   chan error
}

// start runs Run with opts (Log and Out filled in) until it returns or the
// test ends.
func start(t *testing.T, opts Options) *running {
	t.Helper()
	rec, log := newLogRecorder()
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{log: rec, out: &bytes.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	opts.Log, opts.Out = log, r.out
	go func() { r.done <- Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		// No goroutine outlives its test.
		if err := <-r.done; err != nil {
			t.Logf("Run ended with: %v", err)
		}
	})
	return r
}

// result waits for Run to return.
func (r *running) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // keep it for the cleanup
		return err
	case <-time.After(deadline):
		t.Fatalf("Run did not return within %s; log:\n%s", deadline, r.log)
		return nil
	}
}

// assertWaiting fails if Run has returned.
func (r *running) assertWaiting(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run returned %v (output %q), want it still waiting; log:\n%s", err, r.out, r.log)
	default:
	}
}
