// Package bench measures the binder against the figures of the design,
// with the EC2 emulator throttling as AWS does (make bench):
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./e2e/bench/
//
// Without -bench it starts nothing: it holds no tests.
package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-eip/kube-eip/e2e/ec2sim"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/e2e/testmain"
)

var (
	env  *stack.Stack
	kube kubernetes.Interface
	// nodes hold the benchmarks' pods: prefix delegation gives each of
	// them room for its 110 pods.
	nodes *fakenode.Kubelet
)

// benchNodes is enough capacity for the memory benchmark's 1,000 pods.
const benchNodes = 10

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	start := func(ctx context.Context) (*benchStack, error) {
		s, err := stack.Start(ctx, stack.Options{
			// AWS's own buckets (scale 1), and room for a thousand addresses.
			EC2:    ec2sim.Options{EIPQuota: 5000},
			Binder: stack.BinderOptions{RateScale: 1},
			Log:    logr.Discard(),
		})
		if err != nil {
			return nil, err
		}
		if nodes, err = s.StartNodeGroup(ctx, stack.NodeGroup{Name: "bench", Nodes: benchNodes, PrefixDelegation: true}); err != nil {
			_ = s.Stop()
			return nil, fmt.Errorf("starting the bench nodes: %w", err)
		}
		return &benchStack{Stack: s, nodes: nodes}, nil
	}
	os.Exit(testmain.Run(m, start, func(s *benchStack) error {
		env, kube = s.Stack, s.Kube
		return nil
	}))
}

// benchStack stops its extra nodes before the stack under them.
type benchStack struct {
	*stack.Stack
	nodes *fakenode.Kubelet
}

func (s *benchStack) Stop() error {
	s.nodes.Stop()
	return s.Stack.Stop()
}
