package fakenode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"
)

// A thread that made a pod's namespaces goes back to the host's and keeps
// running: were it to end, the kernel would SIGKILL every child it had
// forked with Pdeathsig, such as the control plane's processes.
func TestNamespaceThreadsOutliveTheirWork(t *testing.T) {
	var tid int
	var child *exec.Cmd
	err := onHostThread(unix.CLONE_NEWNET, func() error {
		tid = unix.Gettid()
		// Forked on this thread, as the runtime may have forked the API
		// server on it; but from the host's network, before the change.
		child = exec.Command("sleep", "300")
		child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := child.Start(); err != nil {
			return err
		}
		return unix.Unshare(unix.CLONE_NEWNET)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _, _ = child.Process.Wait() })

	task := fmt.Sprintf("/proc/self/task/%d", tid)
	// The thread would end, and its child die, right after the work; give
	// either 300ms to happen and fail if one does.
	gone := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 300*time.Millisecond, true, func(context.Context) (bool, error) {
		_, err := os.Stat(task)
		return err != nil || child.Process.Signal(syscall.Signal(0)) != nil, nil
	})
	if gone == nil {
		t.Fatalf("thread %d ended or its child died after the namespace work", tid)
	}
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	now, err := os.Readlink(task + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if now != host {
		t.Errorf("thread %d is in network namespace %s, not the host's %s", tid, now, host)
	}
}
