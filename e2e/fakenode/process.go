package fakenode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a local process standing in for a container. It runs in its
// own process group, so stopping it also stops whatever it started.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once it exited and exitCode is set

	exitCode int32

	mu       sync.Mutex
	stopping bool
	kill     *time.Timer
}

type processSpec struct {
	binary  string
	args    []string
	env     []string
	dir     string
	logPath string
}

// startProcess runs spec with its output going to spec.logPath; onExit is
// called, from the goroutine that waits for it, once it has exited.
func startProcess(spec processSpec, onExit func()) (*process, error) {
	logFile, err := openLog(spec.logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(spec.binary, spec.args...)
	cmd.Env = spec.env
	cmd.Dir = spec.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.binary, err)
	}
	p := &process{cmd: cmd, logPath: spec.logPath, done: make(chan struct{})}
	go p.wait(onExit)
	return p, nil
}

// openLog creates a run's log file; the process writes it directly, so
// what it printed survives the fake kubelet.
func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating log file: %w", err)
	}
	return f, nil
}

// wait waits for the process to exit and records how.
func (p *process) wait(onExit func()) {
	_ = p.cmd.Wait()
	p.exitCode = exitCode(p.cmd.ProcessState)
	p.mu.Lock()
	if p.kill != nil {
		p.kill.Stop()
	}
	p.mu.Unlock()
	close(p.done)
	onExit()
}

// exitCode reports a death by signal the way container runtimes do.
func exitCode(ps *os.ProcessState) int32 {
	code := ps.ExitCode()
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code < 0 || code > 255 {
		return -1
	}
	return int32(code)
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group and SIGKILL after grace; with
// no grace, SIGKILL at once. Calling it again changes nothing.
func (p *process) stop(grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping || p.exited() {
		return
	}
	p.stopping = true
	pgid := -p.cmd.Process.Pid
	if grace <= 0 {
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		return
	}
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	p.kill = time.AfterFunc(grace, func() { _ = syscall.Kill(pgid, syscall.SIGKILL) })
}

// Bounds of the output kept as a failed container's message, like the
// kubelet's FallbackToLogsOnError.
const (
	tailMaxLines = 20
	tailMaxBytes = 2048
)

// tail is the end of the process's output.
func (p *process) tail() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	if info, err := f.Stat(); err == nil && info.Size() > tailMaxBytes {
		if _, err := f.Seek(-tailMaxBytes, io.SeekEnd); err != nil {
			return ""
		}
	}
	data, err := io.ReadAll(f)
	if err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	return lastLines(data, tailMaxLines)
}

func lastLines(data []byte, n int) string {
	data = bytes.TrimRight(data, "\n")
	lines := strings.Split(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
