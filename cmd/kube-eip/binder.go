package main

import (
	"context"
	"flag"
	"io"

	"github.com/go-logr/logr"

	"github.com/kube-eip/kube-eip/binder"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// binderFlags is the binder's command line.
func binderFlags(fs *flag.FlagSet) runFunc {
	var o binder.Options
	fs.StringVar(&o.ClusterName, "cluster-name", "", "cluster name, tagged on every address the binder owns (required)")
	newEC2 := ec2Flags(fs)
	fs.IntVar(&o.Workers, "workers", binder.DefaultWorkers, "concurrent pod reconciles")
	fs.DurationVar(&o.SweepInterval, "sweep-interval", binder.DefaultSweepInterval, "how often EC2 is compared with the cluster")
	fs.DurationVar(&o.OrphanGrace, "orphan-grace", binder.DefaultOrphanGrace, "how long an address must be without owner before the sweep releases it")
	fs.DurationVar(&o.ClaimTTL, "claim-ttl", binder.DefaultClaimTTL, "how long a reservation waits for the pod admission made it for before it is reclaimed")
	fs.BoolVar(&o.LeaderElection, "leader-elect", true, "let one replica of several do the work")
	fs.StringVar(&o.Namespace, "namespace", podNamespace(), "kube-eip's own namespace: its leader election lease and the account's address count (default: the pod's)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "address serving /metrics; 0 turns it off")
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", ":8081", "address serving /healthz and /readyz; 0 turns it off")
	return func(ctx context.Context, _ io.Writer) error {
		cfg, err := apiConfig()
		if err != nil {
			return err
		}
		if o.EC2, err = newEC2(ctx); err != nil {
			return err
		}
		o.Config, o.Log = cfg, logr.FromContextOrDiscard(ctx)
		return binder.Run(ctx, o)
	}
}

// ec2Flags registers the flags that reach EC2, for the binder and for
// uninstall, and returns what makes the client once they are parsed.
func ec2Flags(fs *flag.FlagSet) func(context.Context) (cloud.API, error) {
	var c cloud.ClientOptions
	rateScale := 1.0
	fs.StringVar(&c.Region, "region", "", "AWS region (default: the SDK's environment, then us-east-1)")
	fs.StringVar(&c.Endpoint, "ec2-endpoint", "", "EC2 endpoint URL (default: the SDK's resolution; AWS_ENDPOINT_URL_EC2 works)")
	fs.Float64Var(&rateScale, "ec2-rate-scale", 1, "multiply AWS's per-action rate limits (only for an account with raised limits, or an emulator)")
	return func(ctx context.Context) (cloud.API, error) {
		c.Limits = cloud.AWSLimits().Scaled(rateScale).Headroom(1)
		return cloud.NewClient(ctx, c)
	}
}
