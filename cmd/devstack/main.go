// Command devstack runs the local kube-eip stack in the foreground until
// interrupted. `make dev` starts it in the background; `make dev-down` stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kube-eip/kube-eip/e2e/devstack"
)

func main() {
	opts := devstack.Options{Log: zap.New()}
	flag.StringVar(&opts.Dir, "dir", ".dev", "state directory of the stack")
	flag.StringVar(&opts.BinDir, "bin-dir", "", "directory of the control-plane binaries (default: bin/ of this repository)")
	flag.IntVar(&opts.EIPQuota, "eip-quota", devstack.DefaultEIPQuota, "Elastic IP quota of the EC2 emulator (AWS's default is 5)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := devstack.Run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}
