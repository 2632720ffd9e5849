// Package stack assembles kube-eip's local test environment: a real control
// plane, the EC2 emulator and fake nodes that give pods VPC addresses through
// it. The dev stack (make dev) and the end-to-end suite both run it; they
// differ only in where the state lives and whether it is kept.
package stack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-eip/kube-eip/e2e/controlplane"
	"github.com/kube-eip/kube-eip/e2e/ec2sim"
	"github.com/kube-eip/kube-eip/e2e/egress"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
)

// Options configures a stack. The zero value is a throwaway stack.
type Options struct {
	// Dir keeps the stack's state; empty means temporary (removed by Stop).
	// A kept Dir resumes the same cluster, emulator state and nodes.
	Dir string
	// BinDir holds the control-plane binaries (bin/ by default).
	BinDir string
	// EC2Listen is the emulator's loopback address; empty reuses the one a
	// kept Dir used before, or picks a free port.
	EC2Listen string
	// EC2 tunes the emulator (quota, throttling, faults); Listen and
	// StateFile are set by the stack.
	EC2 ec2sim.Options
	// Nodes is the number of fake nodes; 0 means 3.
	Nodes int
	// PrefixDelegation makes the fake VPC CNI hand out addresses from
	// delegated /28 prefixes.
	PrefixDelegation bool
	// CNI tunes how the fake VPC CNI keeps freed addresses; the zero value
	// is the VPC CNI's warm pool with its 30s cooldown.
	CNI fakenode.CNIOptions
	// LocalImages maps image repositories to local binaries that the fake
	// nodes run for init containers of that image.
	LocalImages map[string]string
	// KubeEIPBinary is the kube-eip binary that serves the webhook and that
	// the fake nodes run for init containers of the kube-eip image (the
	// wait subcommand); empty means build one into the state directory.
	KubeEIPBinary string
	// WaitTimeout is the injected wait container's timeout (default 10m).
	WaitTimeout time.Duration
	// Binder tunes the binder (kube-eip binder), which runs unless
	// disabled.
	Binder BinderOptions
	// Pods runs kube-eip as pods of its image, installed from its chart
	// with the pinned Helm, its certificate from cert-manager (which the
	// stack runs then): the webhook behind a Service that the API server
	// reaches through the egress proxy, the binder as a Deployment. Without it the webhook and
	// the binder are processes on loopback, which tests can kill and
	// restart fast.
	Pods bool
	// ImageLayout is the OCI layout of the kube-eip image the pods run
	// (make image writes bin/image/oci); empty means build it into the
	// state directory.
	ImageLayout string
	// Audit writes an audit log of every request of kube-eip's service
	// accounts (AuditedRequests).
	Audit bool
	// Log receives the components' logs.
	Log logr.Logger
}

// Region and credentials the emulator is addressed with.
const (
	Region          = "us-east-1"
	accessKeyID     = "kube-eip-local"
	secretAccessKey = "kube-eip-local-secret" //nolint:gosec // the emulator accepts any credentials; these only name the caller
)

// Stack is a running environment.
type Stack struct {
	ControlPlane *controlplane.ControlPlane
	// CertManager runs with Options.Pods: its controllers and cainjector.
	CertManager *CertManager
	EC2         *ec2sim.Server
	Nodes       *fakenode.Kubelet
	// Kube and EC2Client are ready-made clients of the control plane and of
	// the emulator (the real SDK).
	Kube      kubernetes.Interface
	EC2Client *ec2.Client
	// WebhookURL is where the admission webhook serves.
	WebhookURL string
	// BinderMetricsURL serves the binder's metrics.
	BinderMetricsURL string
	// Egress is the proxy that carries the API server's traffic to the
	// cluster (Service-backed webhooks, kubelets): what it let through and
	// what it refused.
	Egress *egress.Server
	// Product is kube-eip installed as pods (Options.Pods).
	Product *Product

	dir        string
	tempDir    bool
	webhook    *controlplane.Child
	runWebhook func(context.Context) error
	// webhookClient trusts the webhook's serving certificate.
	webhookClient *http.Client
	binder        *controlplane.Child
	// kubeconfigs are the webhook's and the binder's, by component: each
	// runs as its own service account.
	kubeconfigs map[string]string
	opts        Options
	// auditDir holds the audit policy (Options.Audit), auditLog the log.
	auditDir, auditLog string
	resolver           *egress.ClusterResolver
	stopEgress         context.CancelFunc
}

// Start brings the stack up; on error nothing is left running.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	s := &Stack{dir: opts.Dir}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "kube-eip-stack-"); err != nil {
			return nil, fmt.Errorf("creating state directory: %w", err)
		}
		s.tempDir = true
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()

	// The proxy listens before the API server starts, so that nothing of
	// the API server's cluster traffic ever goes anywhere else; it refuses
	// everything until the cluster's Services are known.
	if s.Egress, err = egress.Listen(filepath.Join(s.dir, "egress.sock"), egress.Options{Log: opts.Log.WithName("egress")}); err != nil {
		return nil, fmt.Errorf("starting the egress proxy: %w", err)
	}
	cpOpts := controlplane.Options{BinDir: opts.BinDir, EgressSocket: s.Egress.SocketPath()}
	if !s.tempDir {
		cpOpts.Dir = filepath.Join(s.dir, "cluster")
	}
	if opts.Audit {
		s.auditDir = filepath.Join(s.dir, "audit")
		if err := os.MkdirAll(s.auditDir, 0o755); err != nil {
			return nil, err
		}
		if s.auditLog, err = auditLogPath(s.auditDir); err != nil {
			return nil, err
		}
		if cpOpts.ExtraAPIServerArgs, err = auditArgs(s.auditDir, s.auditLog, Namespace); err != nil {
			return nil, err
		}
	}
	if s.ControlPlane, err = controlplane.Start(ctx, cpOpts); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	if s.Kube, err = kubernetes.NewForConfig(s.ControlPlane.RESTConfig()); err != nil {
		return nil, err
	}

	if err := s.startResolver(ctx); err != nil {
		return nil, err
	}

	simOpts := opts.EC2
	simOpts.Listen = opts.EC2Listen
	addrFile := filepath.Join(s.dir, "ec2sim.addr")
	if !s.tempDir {
		simOpts.StateFile = filepath.Join(s.dir, "ec2sim.json")
		if simOpts.Listen == "" {
			if prev, err := os.ReadFile(addrFile); err == nil {
				simOpts.Listen = strings.TrimSpace(string(prev))
			}
		}
	}
	if s.EC2, err = ec2sim.Start(simOpts); err != nil && opts.EC2Listen == "" && simOpts.Listen != "" {
		// The port of the previous run is taken: any free one will do.
		simOpts.Listen = ""
		s.EC2, err = ec2sim.Start(simOpts)
	}
	if err != nil {
		return nil, fmt.Errorf("starting the EC2 emulator: %w", err)
	}
	if err := os.WriteFile(addrFile, []byte(strings.TrimPrefix(s.EC2.URL, "http://")+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("recording the emulator's address: %w", err)
	}
	s.EC2Client = NewEC2Client(s.EC2.URL)

	if err := installCRDs(ctx, s.ControlPlane.RESTConfig()); err != nil {
		return nil, err
	}
	if s.kubeconfigs, err = s.setUpIdentities(ctx); err != nil {
		return nil, err
	}
	if err := s.installAdmissionPolicies(ctx); err != nil {
		return nil, err
	}
	if opts.Pods {
		// The chart's default certificate comes from cert-manager.
		bin, err := CertManagerBinary()
		if err != nil {
			return nil, err
		}
		if s.CertManager, err = StartCertManager(ctx, bin, s.ControlPlane.KubeconfigPath, s.ControlPlane.LogDir); err != nil {
			return nil, err
		}
		if opts.ImageLayout == "" {
			if opts.ImageLayout, err = BuildImage(ctx, filepath.Join(s.dir, "image")); err != nil {
				return nil, err
			}
		}
	} else if opts.KubeEIPBinary == "" {
		if opts.KubeEIPBinary, err = BuildKubeEIP(ctx, filepath.Join(s.dir, "bin")); err != nil {
			return nil, err
		}
	}
	s.opts = opts
	if !opts.Pods {
		if err := s.startWebhook(ctx, opts); err != nil {
			return nil, err
		}
		if !opts.Binder.Disabled {
			if err := s.StartBinder(ctx); err != nil {
				return nil, err
			}
		}
	}

	nodeOpts, err := s.nodeOptions(opts.Nodes, opts.PrefixDelegation, opts.CNI, "fakenode")
	if err != nil {
		return nil, err
	}
	if !s.tempDir {
		nodeOpts.WorkDir = filepath.Join(s.dir, "fakenode")
	}
	if s.Nodes, err = s.startNodes(ctx, nodeOpts); err != nil {
		return nil, fmt.Errorf("starting the fake nodes: %w", err)
	}
	if opts.Pods {
		// A kept stack of an earlier version may still hold the process
		// mode's registration, pointing at nothing: it goes.
		if s.Product, err = s.DeployProduct(ctx, ProductOptions{ReplaceProcessMode: true}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// startResolver points the egress proxy at the cluster: from now on it
// maps Services, pods and nodes to loopback, and refuses the rest.
func (s *Stack) startResolver(ctx context.Context) error {
	r, err := egress.NewClusterResolver(s.Kube, egress.ClusterOptions{})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := r.Start(runCtx); err != nil {
		cancel()
		return fmt.Errorf("starting the egress proxy's resolver: %w", err)
	}
	s.resolver, s.stopEgress = r, cancel
	s.Egress.SetResolver(r)
	return nil
}

// startNodes starts a group of fake nodes and lets the egress proxy reach
// their pods and kubelet APIs.
func (s *Stack) startNodes(ctx context.Context, o fakenode.Options) (*fakenode.Kubelet, error) {
	k, err := fakenode.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	s.resolver.AddPods(k)
	s.resolver.AddNodes(k)
	return k, nil
}

// NewEC2Client returns the unmodified SDK client pointed at an emulator.
func NewEC2Client(endpoint string) *ec2.Client {
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, ""),
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// Env returns the environment variables that point the AWS SDK and CLI at
// the emulator, as KEY=value pairs.
func (s *Stack) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_EC2=" + s.EC2.URL,
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + accessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + secretAccessKey,
	}
}

// Running reports whether every part is still up.
func (s *Stack) Running() bool { return s.ControlPlane != nil && s.ControlPlane.Running() }

// Stop takes the stack down in reverse order. The emulator saves its state
// on the way, and fake nodes keep their instances, so a kept Dir resumes.
func (s *Stack) Stop() error {
	var errs []error
	if s.Nodes != nil {
		s.Nodes.Stop()
	}
	s.CertManager.Stop()
	s.StopBinder()
	s.StopWebhook()
	if s.EC2 != nil {
		errs = append(errs, s.EC2.Close())
	}
	if s.ControlPlane != nil {
		errs = append(errs, s.ControlPlane.Stop())
	}
	if s.stopEgress != nil {
		s.stopEgress()
	}
	if s.Egress != nil {
		errs = append(errs, s.Egress.Close())
	}
	if s.tempDir {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}

// NodeGroup describes an extra set of fake nodes.
type NodeGroup struct {
	// Name labels and tags the group's nodes.
	Name string
	// Nodes is how many; 0 means 1.
	Nodes int
	// PrefixDelegation gives pods addresses of delegated /28 prefixes.
	PrefixDelegation bool
	// CNI tunes how the fake VPC CNI keeps freed addresses; the zero value
	// is the VPC CNI's warm pool with its 30s cooldown.
	CNI fakenode.CNIOptions
	// Labels and Taints are the nodes' own as they register, as the
	// kubelet's --node-labels and --register-with-taints give them.
	Labels map[string]string
	Taints []corev1.Taint
	// LeaseInterval is how often the nodes renew their Leases (0: the
	// kubelet's 10 s); the Leases last four times as long, as the
	// kubelet's do.
	LeaseInterval time.Duration
	// Zones are the zones the nodes go to; empty means the region's
	// availability zones (never a Local Zone).
	Zones []string
}

// StartNodeGroup starts another set of fake nodes, like a second EKS node
// group. Stop it with its Stop.
func (s *Stack) StartNodeGroup(ctx context.Context, g NodeGroup) (*fakenode.Kubelet, error) {
	o, err := s.nodeOptions(max(g.Nodes, 1), g.PrefixDelegation, g.CNI, "fakenode-"+g.Name)
	if err != nil {
		return nil, err
	}
	o.Group, o.Labels, o.Taints, o.Zones = g.Name, g.Labels, g.Taints, g.Zones
	if g.LeaseInterval > 0 {
		o.LeaseInterval = g.LeaseInterval
	}
	return s.startNodes(ctx, o)
}

// nodeOptions are what every set of the stack's fake nodes shares: its
// clients, cluster, and images. kube-eip's own image runs from its OCI
// layout (Options.Pods), or else as its binary for the wait container.
// Pods reach the API server and the emulator at their loopback addresses,
// and the API server reaches the kubelets' logs through the proxy.
func (s *Stack) nodeOptions(nodes int, prefixDelegation bool, cni fakenode.CNIOptions, logName string) (fakenode.Options, error) {
	localImages := maps.Clone(s.opts.LocalImages)
	if localImages == nil {
		localImages = map[string]string{}
	}
	images := map[string]string{}
	repo := strings.SplitN(Image, ":", 2)[0]
	switch {
	case s.opts.Pods:
		images[repo] = s.opts.ImageLayout
	case s.opts.KubeEIPBinary != "":
		localImages[repo] = s.opts.KubeEIPBinary
	}
	api, err := netip.ParseAddrPort(strings.TrimPrefix(s.ControlPlane.APIServerURL, "https://"))
	if err != nil {
		return fakenode.Options{}, fmt.Errorf("the API server's address: %w", err)
	}
	ec2Addr, err := netip.ParseAddrPort(strings.TrimPrefix(s.EC2.URL, "http://"))
	if err != nil {
		return fakenode.Options{}, fmt.Errorf("the emulator's address: %w", err)
	}
	clientCA, err := os.ReadFile(s.ControlPlane.CACertFile())
	if err != nil {
		return fakenode.Options{}, err
	}
	return fakenode.Options{
		Client:             s.Kube,
		EC2:                s.EC2Client,
		Nodes:              nodes,
		ClusterName:        s.opts.EC2.ClusterName,
		PrefixDelegation:   prefixDelegation,
		CNI:                cni,
		LocalImages:        localImages,
		Images:             images,
		APIServer:          api,
		Relays:             []netip.AddrPort{ec2Addr},
		ClientCA:           clientCA,
		ServingCertificate: s.ControlPlane.IssueServingCertificate,
		Logger:             s.opts.Log.WithName(logName),
	}, nil
}
