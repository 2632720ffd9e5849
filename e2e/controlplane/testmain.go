package controlplane

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RunTests is a TestMain body for packages that need a control plane: it
// starts one, calls setup with it, runs the tests and stops it. An interrupt
// or termination signal at any point also stops the components and removes
// the state directory before the process exits.
//
//	func TestMain(m *testing.M) {
//		os.Exit(controlplane.RunTests(m, controlplane.Options{}, func(cp *controlplane.ControlPlane) error { ... }))
//	}
func RunTests(m *testing.M, opts Options, setup func(*ControlPlane) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var running atomic.Pointer[ControlPlane]
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	go func() {
		if _, ok := <-signals; !ok {
			return
		}
		cancel() // a Start in progress gives up and cleans after itself
		if cp := running.Load(); cp != nil {
			_ = cp.Stop()
			os.Exit(1)
		}
	}()

	start := time.Now()
	cp, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the control plane: %v\n", err)
		return 1
	}
	running.Store(cp)
	defer func() { _ = cp.Stop() }()
	fmt.Printf("control plane ready in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), cp.LogDir)

	if setup != nil {
		if err := setup(cp); err != nil {
			fmt.Fprintf(os.Stderr, "setting up the test environment: %v\n", err)
			return 1
		}
	}
	return m.Run()
}
