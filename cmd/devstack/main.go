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
	"github.com/kube-eip/kube-eip/e2e/fakenode"
)

func main() {
	opts := devstack.Options{Log: zap.New()}
	flag.StringVar(&opts.Dir, "dir", ".dev", "state directory of the stack")
	flag.StringVar(&opts.BinDir, "bin-dir", "", "directory of the control-plane binaries (default: bin/ of this repository)")
	flag.IntVar(&opts.EIPQuota, "eip-quota", devstack.DefaultEIPQuota, "Elastic IP quota of the EC2 emulator (AWS's default is 5)")
	flag.DurationVar(&opts.CNI.Cooldown, "ip-cooldown", fakenode.DefaultIPCooldown,
		"how long a deleted pod's IP stays on its node's ENI, keeping any Elastic IP associated with it, before the fake VPC CNI gives it to another pod; models ipamd's IP cooldown (0: the default; negative: none)")
	flag.IntVar(&opts.CNI.WarmIPTarget, "warm-ip-target", fakenode.DefaultWarmIPTarget,
		"free IPs the fake VPC CNI keeps assigned to each node's ENI; models the VPC CNI's WARM_IP_TARGET (0: the default; negative: none)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := devstack.Run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}
