// Command kube-eip is the project's one binary, each component a
// subcommand, so that the webhook can inject an init container running the
// very image it runs itself.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the subcommand and its flags, runs it until it returns or a
// signal cancels it, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd, args, code := lookup(args, stdout, stderr)
	if cmd == nil {
		return code
	}
	start, verbosity, code := cmd.parse(args, stderr)
	if start == nil {
		return code
	}
	// SIGTERM is how the kubelet stops the containers of a deleted pod.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := crzap.New(crzap.WriteTo(stderr), crzap.Level(zapcore.Level(-verbosity)))
	if err := start(logr.NewContext(ctx, log), stdout); err != nil {
		printf(stderr, "kube-eip %s: %v\n", cmd.name, err)
		return exitFailure
	}
	return exitOK
}
