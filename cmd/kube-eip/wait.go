package main

import (
	"context"
	"flag"
	"io"

	"github.com/go-logr/logr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/webhook/wait"
)

// waitFlags is the kube-eip-wait init container's command line. The webhook
// passes --labels-file explicitly, so that a runtime mounting the volume
// elsewhere only has to rewrite the arguments.
func waitFlags(fs *flag.FlagSet) runFunc {
	var o wait.Options
	fs.StringVar(&o.LabelsFile, "labels-file", wait.DefaultLabelsFile, "downward-API file of the pod's labels")
	fs.StringVar(&o.Label, "label", api.LabelPublicIP, "label that must hold the pod's public IPv4 address")
	fs.DurationVar(&o.Timeout, "timeout", wait.DefaultTimeout, "give up (exit 1) after this long; 0 means the default, there is no waiting forever")
	fs.DurationVar(&o.PollInterval, "poll-interval", wait.DefaultPollInterval, "re-read the file this often besides watching it")
	return func(ctx context.Context, stdout io.Writer) error {
		o.Log, o.Out = logr.FromContextOrDiscard(ctx), stdout
		return wait.Run(ctx, o)
	}
}
