// Command ec2sim serves the EC2 emulator on a loopback address, so a local
// stack can point AWS_ENDPOINT_URL_EC2 at it instead of at AWS.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/kube-eip/kube-eip/e2e/ec2sim"
)

func main() {
	var o ec2sim.Options
	throttle := flag.Bool("throttle", true, "apply AWS's documented per-action token buckets")
	flag.StringVar(&o.Listen, "listen", "127.0.0.1:4750", "loopback address to serve on")
	flag.StringVar(&o.StateFile, "state", "", "JSON file to load the state from and save it to")
	flag.StringVar(&o.Region, "region", "us-east-1", "emulated region")
	flag.BoolVar(&o.LocalZone, "local-zone", false, "opt in to the region's Boston Local Zone and give the VPC a subnet there")
	flag.StringVar(&o.ClusterName, "cluster-name", "kube-eip-dev", "cluster the VPC and subnets are tagged for")
	flag.IntVar(&o.EIPQuota, "eip-quota", 5, "Elastic IPs the account may hold (0: AWS default of 5, -1: unlimited)")
	flag.Float64Var(&o.Throttle.Scale, "throttle-scale", 1, "multiply token bucket sizes and refill rates")
	flag.Var(&o.Faults, "faults", `faults as JSON: {"default":{...},"actions":{"AssociateAddress":{"internalErrorRate":0.1,"unavailableRate":0.05,"latency":"50ms","afterApply":true}}}`)
	flag.Float64Var(&o.Faults.Default.InternalErrorRate, "error-rate", 0, "fraction of calls of any action answered 500 InternalError")
	flag.Float64Var(&o.Faults.Default.UnavailableRate, "unavailable-rate", 0, "fraction of calls of any action answered 503 Unavailable")
	flag.DurationVar(&o.Faults.Default.Latency, "latency", 0, "latency added to calls of any action")
	flag.Var(&o.PublicIPv4Pools, "public-ipv4-pool", "BYOIP pool as ipv4pool-ec2-…=CIDR (repeatable)")
	flag.Uint64Var(&o.Seed, "seed", 0, "seed for ids, addresses and fault draws (0: random)")
	flag.Parse()
	o.Throttle.Disabled = !*throttle
	o.Logf = log.Printf

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := ec2sim.Run(ctx, o); err != nil {
		log.Fatalf("ec2sim: %v", err)
	}
}
