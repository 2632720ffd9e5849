package main

import (
	"context"
	"flag"
	"io"

	"github.com/go-logr/logr"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook"
)

// webhookFlags is the admission webhook's command line.
func webhookFlags(fs *flag.FlagSet) runFunc {
	var o webhook.Options
	var certFile, keyFile string
	fs.StringVar(&o.Addr, "listen", ":9443", "HTTPS address serving admission, /healthz, /readyz and /metrics")
	fs.StringVar(&certFile, "tls-cert-file", "/etc/kube-eip/tls/tls.crt", "serving certificate (reloaded when it changes)")
	fs.StringVar(&keyFile, "tls-key-file", "/etc/kube-eip/tls/tls.key", "serving key (reloaded when it changes)")
	fs.StringVar(&o.Inject.Image, "wait-image", "", "kube-eip image injected as the wait init container (required)")
	fs.DurationVar(&o.Inject.WaitTimeout, "wait-timeout", 0, "how long the injected container waits for the address before failing (default 10m)")
	fs.DurationVar(&o.ClaimTTL, "claim-ttl", webhook.DefaultClaimTTL, "how long a reservation waits for its pod before it is reclaimed")
	fs.BoolVar(&o.LeaderElection, "leader-elect", true, "run the reservation reclaimer on one replica only")
	fs.StringVar(&o.Namespace, "namespace", podNamespace(), "kube-eip's own namespace: its leader election lease and the account's address count (default: the pod's)")
	return func(ctx context.Context, _ io.Writer) error {
		cfg, err := apiConfig()
		if err != nil {
			return err
		}
		o.Config, o.Log = cfg, logr.FromContextOrDiscard(ctx)
		o.Certs = certs.NewFileSource(certFile, keyFile, o.Log.WithName("certs"))
		return webhook.Run(ctx, o)
	}
}
