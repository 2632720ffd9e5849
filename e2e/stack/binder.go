package stack

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kube-eip/kube-eip/e2e/controlplane"
)

// BinderOptions tunes the stack's binder.
type BinderOptions struct {
	// Disabled leaves the binder out; StartBinder starts it later.
	Disabled bool
	// SweepInterval and OrphanGrace are the binder's flags; zero keeps its
	// defaults.
	SweepInterval time.Duration
	OrphanGrace   time.Duration
	// ClaimTTL is how long a reservation waits for its pod; zero keeps the
	// default.
	ClaimTTL time.Duration
	// RateScale multiplies AWS's rate limits in the binder's client; set it
	// to the emulator's throttle scale.
	RateScale float64
	// Workers is the number of concurrent reconciles; zero keeps the
	// default.
	Workers int
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// ClusterName is the cluster the stack's binder tags its addresses for.
const ClusterName = "kube-eip-local"

// StartBinder runs `kube-eip binder` against the stack and waits until it
// has loaded EC2's addresses (ready). Starting it twice is an error.
func (s *Stack) StartBinder(ctx context.Context) error {
	if s.binder != nil && !s.binder.Exited() {
		return fmt.Errorf("the binder is already running")
	}
	o := s.opts.Binder
	health, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	metrics, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	args := []string{"binder",
		"--cluster-name=" + ClusterName,
		"--ec2-endpoint=" + s.EC2.URL,
		"--region=" + Region,
		"--leader-elect=false",
		"--namespace=" + Namespace,
		"--health-probe-bind-address=" + health,
		"--metrics-bind-address=" + metrics,
	}
	args = append(args, binderTuning(o)...)
	env := append([]string{"KUBECONFIG=" + s.kubeconfigs["binder"]}, s.awsCredentials()...)
	child, err := controlplane.StartChild("kube-eip-binder", s.opts.KubeEIPBinary, s.ControlPlane.LogDir, args, env)
	if err != nil {
		return fmt.Errorf("starting the binder: %w", err)
	}
	s.binder, s.BinderMetricsURL = child, "http://"+metrics+"/metrics"
	if err := waitOK(ctx, &http.Client{Timeout: 2 * time.Second}, "http://"+health+"/readyz", child); err != nil {
		child.Stop(5 * time.Second)
		return fmt.Errorf("waiting for the binder: %w", err)
	}
	return nil
}

// RestartBinder stops the binder and starts it again with o.
func (s *Stack) RestartBinder(ctx context.Context, o BinderOptions) error {
	s.StopBinder()
	s.opts.Binder = o
	return s.StartBinder(ctx)
}

// StopBinder stops the binder gracefully (SIGTERM).
func (s *Stack) StopBinder() {
	if s.binder != nil {
		s.binder.Stop(10 * time.Second)
	}
}

// KillBinder kills the binder with SIGKILL: no cleanup, no lease release.
func (s *Stack) KillBinder() {
	if s.binder != nil {
		s.binder.Kill()
	}
}

// BinderPID is the binder's process id (0 when not running).
func (s *Stack) BinderPID() int {
	if !s.BinderRunning() {
		return 0
	}
	return s.binder.PID()
}

// BinderRunning reports whether the binder process is up.
func (s *Stack) BinderRunning() bool { return s.binder != nil && !s.binder.Exited() }

func (s *Stack) awsCredentials() []string {
	var out []string
	for _, kv := range s.Env() {
		if !strings.HasPrefix(kv, "AWS_ENDPOINT_URL") {
			out = append(out, kv)
		}
	}
	return out
}
