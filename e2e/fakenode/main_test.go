package fakenode_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-eip/kube-eip/e2e/controlplane"
	"github.com/kube-eip/kube-eip/e2e/ec2sim"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
)

// The package's tests share one control plane, one emulator and one group
// of fake nodes ("main"); tests that need their own nodes start a Kubelet
// with another group, whose pods they pin there with a node selector.
var (
	cluster *controlplane.ControlPlane
	kube    kubernetes.Interface
	sim     *ec2sim.Server
	ec2api  *ec2.Client
	nodes   *fakenode.Kubelet
	// helperBin is the test's stand-in for the project's image.
	helperBin string
	logger    logr.Logger
)

// localImage is the image repository the tests map to helperBin.
const localImage = "registry.example.com/kube-eip"

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The Kubelets log only under -v: a zero logger would mean klog's.
	logger = funcr.New(func(prefix, args string) {
		if testing.Verbose() {
			fmt.Fprintln(os.Stderr, prefix, args)
		}
	}, funcr.Options{Verbosity: 2})

	tmp, err := os.MkdirTemp("", "fakenode-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a temporary directory:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	helperBin = filepath.Join(tmp, "waithelper")
	build := exec.CommandContext(ctx, "go", "build", "-o", helperBin, "./testdata/waithelper")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the test helper: %v\n%s", err, out)
		return 1
	}

	start := time.Now()
	cluster, err = controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane:", err)
		return 1
	}
	defer func() { _ = cluster.Stop() }()
	if kube, err = kubernetes.NewForConfig(cluster.RESTConfig()); err != nil {
		fmt.Fprintln(os.Stderr, "building a client:", err)
		return 1
	}
	if sim, err = ec2sim.Start(ec2sim.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "starting the EC2 emulator:", err)
		return 1
	}
	defer func() { _ = sim.Close() }()
	ec2api = ec2.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDFAKENODE", "fakenode-secret", ""),
	}, func(o *ec2.Options) { o.BaseEndpoint = aws.String(sim.URL) })

	nodes, err = fakenode.Start(ctx, kubeletOptions("main"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the fake nodes:", err)
		return 1
	}
	defer nodes.Stop()
	fmt.Printf("control plane, emulator and fake nodes ready in %s\n", time.Since(start).Round(time.Millisecond))
	return m.Run()
}

// kubeletOptions are the tests' settings for a group of fake nodes.
func kubeletOptions(group string) fakenode.Options {
	return fakenode.Options{
		Config:           cluster.RESTConfig(),
		EC2:              ec2api,
		Group:            group,
		LocalImages:      map[string]string{localImage: helperBin},
		Logger:           logger,
		CrashLoopBackOff: fakenode.Backoff{Initial: 200 * time.Millisecond, Max: time.Second},
	}
}

// startGroup runs a Kubelet of its own for one test.
func startGroup(t *testing.T, opts fakenode.Options) *fakenode.Kubelet {
	t.Helper()
	k, err := fakenode.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("starting fake nodes of group %s: %v", opts.Group, err)
	}
	t.Cleanup(k.Stop)
	return k
}
