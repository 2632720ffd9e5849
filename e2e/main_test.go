// Package e2e holds kube-eip's end-to-end suite: each test tells one user
// story against a real control plane, the EC2 emulator through the real AWS
// SDK, and fake nodes, all started for the package.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/e2e/ec2sim"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/e2e/testmain"
	"github.com/kube-eip/kube-eip/webhook"
)

var (
	env      *stack.Stack
	kube     kubernetes.Interface
	crClient client.Client
	ec2api   *ec2.Client
)

// The account's BYOIP pool: a company's own range.
const (
	byoipPool = "ipv4pool-ec2-0123456789abcdef0"
	byoipCIDR = "198.51.100.0/24"
)

// accountQuota is the emulated account's Elastic IP quota: room for the
// suite's addresses.
const accountQuota = 500

// claimTTL is short so that the suite sees orphaned reservations reclaimed.
const claimTTL = 3 * time.Second

// The binder's sweep runs often and its grace is short, so that the suite
// sees drift repaired within seconds.
const (
	sweepInterval = 2 * time.Second
	orphanGrace   = 2 * time.Second
	throttleScale = 10
)

func TestMain(m *testing.M) {
	start := func(ctx context.Context) (*stack.Stack, error) {
		return stack.Start(ctx, stack.Options{
			Log: testLogger(),
			// For make test's check of the generated roles (hack/rbaccheck);
			// benchmarks run without.
			Audit: os.Getenv(stack.AuditDirEnv) != "",
			// Room for the suite's addresses; AWS's buckets, ten times
			// faster, with the binder's client limited to match.
			// With the Local Zone of localzones_test.go, which no node
			// group uses unless asked to.
			EC2: ec2sim.Options{EIPQuota: accountQuota, Throttle: ec2sim.ThrottleOptions{Scale: throttleScale},
				PublicIPv4Pools: ec2sim.PublicIPv4Pools{byoipPool: byoipCIDR}, LocalZone: true},
			Binder: stack.BinderOptions{RateScale: throttleScale, SweepInterval: sweepInterval, OrphanGrace: orphanGrace, ClaimTTL: claimTTL},
		})
	}
	os.Exit(testmain.Run(m, start, func(s *stack.Stack) error {
		env, kube, ec2api = s, s.Kube, s.EC2Client
		var err error
		crClient, err = client.New(s.ControlPlane.RESTConfig(), client.Options{Scheme: webhook.Scheme()})
		return err
	}))
}

// testLogger writes the stack's logs to stderr under go test -v only.
func testLogger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		if testing.Verbose() {
			fmt.Fprintln(os.Stderr, prefix, args)
		}
	}, funcr.Options{})
}
