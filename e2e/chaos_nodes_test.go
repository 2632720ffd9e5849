package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// nodeChaos is the chaos test's share of nodes: a node pool of three
// addresses over two steady nodes and one that joins and leaves again and
// again, and a floating address over three nodes whose holder keeps
// losing its heartbeats.
type nodeChaos struct {
	id                 string
	egress, vip        *v1alpha1.EIPPool
	egressIDs, vipIDs  []string
	steady, edge       *fakenode.Kubelet
	egressLabel, edgeL map[string]string

	mu              sync.Mutex
	transient       *fakenode.Kubelet // the joining node's
	joins, silences int
}

func startNodeChaos(ctx context.Context, t *testing.T) *nodeChaos {
	t.Helper()
	c := &nodeChaos{id: strings.ToLower(rand.Text()[:6])}
	c.egressLabel = map[string]string{"e2e.kube-eip.io/chaos-egress": c.id}
	c.edgeL = map[string]string{"e2e.kube-eip.io/chaos-edge": c.id}
	egressTags := map[string]string{"e2e.kube-eip.io/pool": "chaos-egress-" + c.id}
	vipTags := map[string]string{"e2e.kube-eip.io/pool": "chaos-vip-" + c.id}
	c.egressIDs = allocateTagged(t, egressTags, 3)
	c.vipIDs = allocateTagged(t, vipTags, 1)
	c.egress = &v1alpha1.EIPPool{ObjectMeta: metav1.ObjectMeta{Name: "chaos-egress-" + c.id},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: egressTags, NodeSelector: &metav1.LabelSelector{MatchLabels: c.egressLabel}}}
	c.vip = &v1alpha1.EIPPool{ObjectMeta: metav1.ObjectMeta{Name: "chaos-vip-" + c.id},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: vipTags, NodeSelector: &metav1.LabelSelector{MatchLabels: c.edgeL},
			Floating: &v1alpha1.FloatingSpec{MissedRenewals: 2}}}
	for _, p := range []*v1alpha1.EIPPool{c.egress, c.vip} {
		if err := crClient.Create(ctx, p); err != nil {
			t.Fatalf("creating pool %s: %v", p.Name, err)
		}
	}
	var err error
	if c.steady, err = env.StartNodeGroup(ctx, stack.NodeGroup{Name: "chaos-egress-" + c.id, Nodes: 2, Labels: c.egressLabel}); err != nil {
		t.Fatal(err)
	}
	if c.edge, err = env.StartNodeGroup(ctx, stack.NodeGroup{Name: "chaos-edge-" + c.id, Nodes: 3, Labels: c.edgeL, LeaseInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		transient := c.transient
		c.mu.Unlock()
		cleanUpNodePool(t, c.vip, c.vipIDs, c.edge)
		cleanUpNodePool(t, c.egress, c.egressIDs, c.steady, transient)
	})
	return c
}

// run makes nodes join and leave, and holders fall silent, until ctx ends.
func (c *nodeChaos) run(ctx context.Context, t *testing.T) {
	var wg sync.WaitGroup
	wg.Go(func() { // a third egress node joins and leaves
		for i := 0; ctx.Err() == nil; i++ {
			g, err := env.StartNodeGroup(context.Background(), stack.NodeGroup{Name: fmt.Sprintf("chaos-join-%s-%d", c.id, i), Nodes: 1, Labels: c.egressLabel})
			if err != nil {
				t.Errorf("starting a joining node: %v", err)
				return
			}
			c.mu.Lock()
			c.transient, c.joins = g, c.joins+1
			c.mu.Unlock()
			if sleepCtx(ctx, 3*time.Second) != nil {
				return // the last one stays, and must be bound
			}
			left := g.Nodes()
			for _, n := range left {
				_ = kube.CoreV1().Nodes().Delete(context.Background(), n.Name, metav1.DeleteOptions{})
			}
			// Its kubelet terminates the instance once it sees the deletion.
			_ = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
				for _, inst := range env.EC2.Snapshot().Instances {
					for _, n := range left {
						if inst.ID == n.InstanceID && inst.State != "terminated" {
							return false, nil
						}
					}
				}
				return true, nil
			})
			g.Stop()
		}
	})
	wg.Go(func() { // the floating address's holder falls silent for a while
		for ctx.Err() == nil {
			if sleepCtx(ctx, 2*time.Second) != nil {
				return
			}
			h := holdersOf(env.EC2.Snapshot(), c.edge.Nodes(), c.vipIDs[0])
			if len(h) != 1 {
				continue
			}
			_ = c.edge.StopHeartbeats(h[0])
			c.mu.Lock()
			c.silences++
			c.mu.Unlock()
			_ = sleepCtx(ctx, 4*time.Second)
			_ = c.edge.ResumeHeartbeats(h[0])
		}
	})
	wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// audit says what is wrong with the nodes' addresses once settled: a node
// of the egress pool (which has enough addresses) without its own on its
// primary IP, one address on two nodes, an address held for a node that
// is gone, or the floating address not on exactly one node of its group.
func (c *nodeChaos) audit() []string {
	nodes := c.steady.Nodes()
	c.mu.Lock()
	if c.transient != nil {
		nodes = append(nodes, c.transient.Nodes()...)
	}
	c.mu.Unlock()
	state := env.EC2.Snapshot()
	var problems []string
	names := map[string]bool{}
	for _, n := range nodes {
		names[n.Name] = true
	}
	held := map[string]string{}
	for _, n := range nodes {
		var on []string
		for _, id := range c.egressIDs {
			if len(holdersOf(state, []fakenode.NodeInfo{n}, id)) > 0 {
				on = append(on, id)
			}
		}
		if len(on) != 1 {
			problems = append(problems, fmt.Sprintf("egress node %s holds %v", n.Name, on))
		}
		for _, id := range on {
			if other, ok := held[id]; ok {
				problems = append(problems, fmt.Sprintf("%s on nodes %s and %s", id, other, n.Name))
			}
			held[id] = n.Name
		}
	}
	for _, id := range c.egressIDs {
		a, ok := addressByID(state, id)
		switch {
		case !ok:
			problems = append(problems, "egress address "+id+" was released")
		case a.Tags[api.TagHolder] == api.HolderNode && !names[a.Tags[api.TagOwner]]:
			problems = append(problems, fmt.Sprintf("%s is held for node %s, which is gone", id, a.Tags[api.TagOwner]))
		case a.AssociationID != "" && held[id] == "":
			problems = append(problems, fmt.Sprintf("%s is associated with %s %s, no egress node", id, a.NetworkInterfaceID, a.PrivateIPAddress))
		}
	}
	if h := holdersOf(state, c.edge.Nodes(), c.vipIDs[0]); len(h) != 1 {
		problems = append(problems, fmt.Sprintf("the floating address is on %v", h))
	}
	return problems
}
