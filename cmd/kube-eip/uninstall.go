package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/go-logr/logr"

	"github.com/kube-eip/kube-eip/binder"
)

// uninstallFlags is the command line of the chart's pre-delete hook.
func uninstallFlags(fs *flag.FlagSet) runFunc {
	var o binder.UninstallOptions
	fs.StringVar(&o.ClusterName, "cluster-name", "", "the binder's cluster name: only addresses tagged with it are touched (required)")
	newEC2 := ec2Flags(fs)
	fs.StringVar(&o.Namespace, "namespace", podNamespace(), "kube-eip's own namespace (default: the pod's)")
	fs.StringVar(&o.BinderDeployment, "binder-deployment", "kube-eip-binder", "the binder's Deployment, scaled to zero first")
	fs.StringVar(&o.WebhookConfiguration, "webhook-configuration", "kube-eip-webhook", "kube-eip's mutating and validating webhook configurations, deleted first")
	fs.DurationVar(&o.StopTimeout, "stop-timeout", 2*time.Minute, "how long to wait for the binder's pods to go")
	return func(ctx context.Context, stdout io.Writer) error {
		cfg, err := apiConfig()
		if err != nil {
			return err
		}
		if o.EC2, err = newEC2(ctx); err != nil {
			return err
		}
		o.Config, o.Log = cfg, logr.FromContextOrDiscard(ctx)
		r, err := binder.Uninstall(ctx, o)
		printf(stdout, "kube-eip uninstall: %d pods let go, %d addresses released to AWS, %d pool addresses disassociated (still allocated, in their pools), %d reservations deleted\n",
			r.Pods, r.Released, r.Disassociated, r.Reservations)
		return err
	}
}
