// Package testmain runs a package's tests around an environment (a control
// plane, a whole stack) that must not outlive them, even when interrupted,
// and holds what waiting on that environment takes in every package.
package testmain

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Stopper is an environment that can be taken down.
type Stopper interface{ Stop() error }

// StartTimeout bounds the start of the environment.
const StartTimeout = 3 * time.Minute

// Run is a TestMain body: it starts the environment, calls setup with it,
// runs the tests and stops it. An interrupt or termination signal at any
// point also stops the environment before the process exits.
//
//	func TestMain(m *testing.M) {
//		os.Exit(testmain.Run(m, startStack, func(s *stack.Stack) error { ... }))
//	}
func Run[T Stopper](m *testing.M, start func(context.Context) (T, error), setup func(T) error) int {
	if !flag.Parsed() {
		flag.Parse() // so that start may consult testing.Verbose and flags
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()

	var running atomic.Pointer[T]
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	go func() {
		if _, ok := <-signals; !ok {
			return
		}
		cancel() // a start in progress gives up and cleans after itself
		if env := running.Load(); env != nil {
			_ = (*env).Stop()
			os.Exit(1)
		}
	}()

	began := time.Now()
	env, err := start(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the test environment: %v\n", err)
		return 1
	}
	running.Store(&env)
	defer func() { _ = env.Stop() }()
	fmt.Printf("test environment ready in %s\n", time.Since(began).Round(time.Millisecond))

	if setup != nil {
		if err := setup(env); err != nil {
			fmt.Fprintf(os.Stderr, "setting up the test environment: %v\n", err)
			return 1
		}
	}
	return m.Run()
}

// Eventually polls cond every 100ms until it holds or timeout passes, then
// fails the test with the last reason cond gave.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	var reason string
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, why, err := cond(ctx)
		if err != nil && ctx.Err() != nil {
			// The deadline cut this poll short: keep the reason of the
			// one before.
			return false, nil
		}
		reason = why
		return ok, err
	})
	if err != nil {
		t.Fatalf("%s: %v (last: %s)", what, err, reason)
	}
}
