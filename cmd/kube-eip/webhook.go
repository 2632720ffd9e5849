package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook"
)

// webhookFlags is the admission webhook's command line.
func webhookFlags(fs *flag.FlagSet) runFunc {
	var o webhook.Options
	var c certFlags
	fs.StringVar(&o.Addr, "listen", ":9443", "HTTPS address serving admission, /healthz, /readyz and /metrics")
	c.register(fs)
	fs.StringVar(&o.Inject.Image, "wait-image", "", "kube-eip image injected as the wait init container (required)")
	fs.DurationVar(&o.Inject.WaitTimeout, "wait-timeout", 0, "how long the injected container waits for the address before failing (default 10m)")
	claimTTL := deprecatedFlag(fs, "claim-ttl", "the binder reclaims reservations now: set kube-eip binder --claim-ttl")
	fs.BoolVar(&o.LeaderElection, "leader-elect", true, "run the self-signed certificate's issuer on one replica only")
	fs.StringVar(&o.Namespace, "namespace", podNamespace(), "kube-eip's own namespace: its leader election lease, the account's address count and the self-signed Secret (default: the pod's)")
	return func(ctx context.Context, _ io.Writer) error {
		cfg, err := apiConfig()
		if err != nil {
			return err
		}
		o.Config, o.Log = cfg, logr.FromContextOrDiscard(ctx)
		claimTTL.warn(o.Log)
		if o.Certs, o.Runnables, err = c.source(cfg, o.Namespace, o.Log.WithName("certs")); err != nil {
			return err
		}
		return webhook.Run(ctx, o)
	}
}

// Values of --cert-source.
const (
	certSourceFile       = "file"
	certSourceSelfSigned = "self-signed"
)

// certFlags say where the serving certificate comes from.
type certFlags struct {
	kind              certSourceKind
	certFile, keyFile string
	// Of the self-signed source.
	secret, service, configuration string
}

func (c *certFlags) register(fs *flag.FlagSet) {
	c.kind = certSourceFile
	fs.Var(&c.kind, "cert-source", "where the serving certificate comes from: "+certSourceFile+" (--tls-cert-file and --tls-key-file, e.g. cert-manager's Secret mounted) or "+
		certSourceSelfSigned+" (kube-eip keeps its own CA in --self-signed-secret and patches the caBundle of --webhook-configuration)")
	fs.StringVar(&c.certFile, "tls-cert-file", "/etc/kube-eip/tls/tls.crt", "serving certificate (reloaded when it changes), with --cert-source=file")
	fs.StringVar(&c.keyFile, "tls-key-file", "/etc/kube-eip/tls/tls.key", "serving key (reloaded when it changes), with --cert-source=file")
	fs.StringVar(&c.secret, "self-signed-secret", "kube-eip-webhook-self-signed", "Secret in --namespace holding the self-signed CA and serving certificate")
	fs.StringVar(&c.service, "service-name", "kube-eip-webhook", "the webhook's Service in --namespace, whose DNS names the self-signed certificate carries")
	fs.StringVar(&c.configuration, "webhook-configuration", "kube-eip-webhook", "name of the Mutating- and ValidatingWebhookConfiguration whose caBundle the self-signed source keeps")
}

// source builds the certificate source and what the manager must run for
// it: the self-signed source's issuer, on the leader.
func (c *certFlags) source(cfg *rest.Config, namespace string, log logr.Logger) (certs.Source, []manager.Runnable, error) {
	if c.kind == certSourceFile {
		return certs.NewFileSource(c.certFile, c.keyFile, log), nil, nil
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the API client of the self-signed certificate source: %w", err)
	}
	src, err := certs.NewSelfSigned(certs.SelfSignedOptions{
		Client:               client,
		Namespace:            namespace,
		SecretName:           c.secret,
		ServiceName:          c.service,
		WebhookConfiguration: c.configuration,
		Log:                  log,
	})
	if err != nil {
		return nil, nil, err
	}
	return src, []manager.Runnable{src.Issuer()}, nil
}

// certSourceKind is --cert-source, checked as it is parsed so that a typo
// is a usage error, not a webhook that starts and then fails.
type certSourceKind string

func (k *certSourceKind) String() string { return string(*k) }

func (k *certSourceKind) Set(s string) error {
	switch s {
	case certSourceFile, certSourceSelfSigned:
		*k = certSourceKind(s)
		return nil
	}
	return fmt.Errorf("unknown certificate source %q: want %s or %s", s, certSourceFile, certSourceSelfSigned)
}
