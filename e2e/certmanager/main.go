// Command cert-manager-harness runs cert-manager's controllers (Issuers,
// ClusterIssuers, the SelfSigned and CA issuers, the approver and the
// Certificate loops) and its cainjector in one process against the API
// server of a kubeconfig, after installing cert-manager's CRDs. kube-eip's
// test environment starts it as a child process (e2e/stack/certmanager.go).
// It serves nothing but its health on loopback and dials nothing but that
// API server; it is the only instance, so it elects no leader.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

func main() {
	var o options
	// Its own flag set: controller-runtime registers --kubeconfig on the
	// global one when imported.
	flags := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	flags.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig of the API server to run against (required)")
	flags.StringVar(&o.HealthzAddr, "healthz-addr", "", "loopback address (127.0.0.1:port) serving /healthz and /readyz; empty serves none")
	flags.StringVar(&o.ClusterResourceNamespace, "cluster-resource-namespace", "cert-manager", "namespace of the Secrets that ClusterIssuers refer to")
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", "2") // cert-manager's info level
	flags.Var(klogFlags.Lookup("v").Value, "v", "log verbosity (2: cert-manager's info, 4: debug)")
	_ = flags.Parse(os.Args[1:])

	logf.InitLogs()
	defer logf.FlushLogs()
	log := logf.Log.WithName("harness")
	ctrl.SetLogger(klog.Background())
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		flags.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(logf.NewContext(ctx, logf.Log), o); err != nil {
		log.Error(err, "exiting")
		logf.FlushLogs()
		os.Exit(1)
	}
	log.Info("stopped")
}
