package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// deadline bounds each run of the binary and each wait for its output; the
// machine may be busy, and a passing test never comes near it.
const deadline = 30 * time.Second

// TestBinary builds kube-eip and runs it as the kubelet runs the init
// container: against a downward-API directory it updates atomically.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kube-eip")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	args := append([]string{"build", "-ldflags=-X main.Version=v9.9.9-test", "-o", bin}, raceFlags...)
	build := exec.CommandContext(ctx, "go", append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("wait returns once the label appears", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "podinfo")
		publish(t, dir, `app="web"`)
		// An hourly poll leaves the directory watch to notice the swap.
		p := startBinary(t, bin, "wait", "--labels-file="+filepath.Join(dir, "labels"), "--poll-interval=1h", "-v=1")
		p.stderr.waitFor(t, "waiting for the Elastic IP label")
		publish(t, dir, `app="web"`+"\n"+`kube-eip.io/public-ip="3.4.5.6"`)
		if code := p.wait(t); code != exitOK {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", code, p.stderr)
		}
		if !regexp.MustCompile(`^kube-eip: public IP 3\.4\.5\.6 attached \(waited [0-9.]+[µm]?s\)\n$`).MatchString(p.stdout.String()) {
			t.Errorf("stdout %q, want the one line naming the address", p.stdout.String())
		}
	})

	t.Run("wait times out", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "podinfo")
		publish(t, dir, `app="web"`)
		p := startBinary(t, bin, "wait", "--labels-file="+filepath.Join(dir, "labels"), "--timeout=300ms")
		if code := p.wait(t); code != exitFailure {
			t.Fatalf("exit code %d, want 1; stderr:\n%s", code, p.stderr)
		}
		for _, want := range []string{"kube-eip wait: timed out after", "kube-eip.io/public-ip", "kubectl describe pod"} {
			if !strings.Contains(p.stderr.String(), want) {
				t.Errorf("stderr does not mention %q:\n%s", want, p.stderr)
			}
		}
		if p.stdout.Len() != 0 {
			t.Errorf("stdout %q, want nothing", p.stdout.String())
		}
	})

	t.Run("wait stops on SIGTERM", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "podinfo")
		publish(t, dir, `app="web"`)
		p := startBinary(t, bin, "wait", "--labels-file="+filepath.Join(dir, "labels"))
		p.stderr.waitFor(t, "waiting for the Elastic IP label")
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t); code != exitFailure || !strings.Contains(p.stderr.String(), "kube-eip wait: canceled after") {
			t.Fatalf("exit code %d, want 1 with a cancellation message; stderr:\n%s", code, p.stderr)
		}
	})

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "unknown command", args: []string{"nosuch"}, code: exitUsage, stderr: `unknown command "nosuch"`},
		{name: "no command", args: nil, code: exitUsage, stderr: "Usage: kube-eip <command>"},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: "Usage: kube-eip <command>"},
		{name: "help of a command", args: []string{"help", "wait"}, code: exitOK, stderr: "-labels-file"},
		{name: "bad flag", args: []string{"wait", "--nosuch"}, code: exitUsage, stderr: "flag provided but not defined: -nosuch"},
		{name: "negative verbosity", args: []string{"wait", "-v=-1"}, code: exitUsage, stderr: "want a number from 0 to 127"},
		{name: "stray argument", args: []string{"wait", "now"}, code: exitUsage, stderr: `unexpected arguments ["now"]`},
		{name: "version", args: []string{"version"}, code: exitOK, stdout: "kube-eip v9.9.9-test (go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startBinary(t, bin, tc.args...)
			if code := p.wait(t); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if !strings.Contains(p.stdout.String(), tc.stdout) || !strings.Contains(p.stderr.String(), tc.stderr) {
				t.Errorf("stdout %q, stderr %q; want them to contain %q and %q", p.stdout.String(), p.stderr, tc.stdout, tc.stderr)
			}
			if tc.code == exitUsage && tc.stderr != "" && !strings.Contains(p.stderr.String(), "Usage") {
				t.Errorf("stderr %q lacks the usage", p.stderr)
			}
		})
	}
}

// process is a running kube-eip.
type process struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer // read only after wait
	stderr *output
	done   chan error
}

func startBinary(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	p := &process{cmd: exec.CommandContext(ctx, bin, args...), stderr: newOutput(), done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		cancel() // kills it if still running
		p.done <- <-p.done
	})
	return p
}

// wait returns the exit code once the process has ended.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("running kube-eip: %v", err)
		}
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(deadline):
		t.Fatalf("kube-eip still running after %s; stderr:\n%s", deadline, p.stderr)
		return 0
	}
}

// output collects a process's stderr and lets a test wait for a line.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.changed)
	o.changed = make(chan struct{})
	return o.buf.Write(b)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *output) waitFor(t *testing.T, substr string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		o.mu.Lock()
		found, changed := strings.Contains(o.buf.String(), substr), o.changed
		o.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("no %q on stderr within %s:\n%s", substr, deadline, o)
		}
	}
}

// publish updates a downward-API directory as the kubelet's atomic writer
// does: a new timestamped directory, a ..data_tmp symlink to it renamed
// over ..data, the visible labels symlink, and the previous directory
// removed.
func publish(t *testing.T, dir, labels string) {
	t.Helper()
	if err := swap(dir, labels); err != nil {
		t.Fatalf("publishing labels: %v", err)
	}
}

func swap(dir, labels string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	old, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading ..data: %w", err)
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(ts, "labels"), []byte(labels), 0o644); err != nil {
		return fmt.Errorf("writing labels: %w", err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data_tmp")); err != nil {
		return fmt.Errorf("linking ..data_tmp: %w", err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		return fmt.Errorf("swapping ..data: %w", err)
	}
	if old == "" {
		if err := os.Symlink(filepath.Join("..data", "labels"), filepath.Join(dir, "labels")); err != nil {
			return fmt.Errorf("linking labels: %w", err)
		}
		return nil
	}
	if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
		return fmt.Errorf("removing the previous data directory: %w", err)
	}
	return nil
}
