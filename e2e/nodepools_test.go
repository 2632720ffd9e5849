package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/e2e/ec2sim"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// onPrimaryIPs reads, from the emulator, the Elastic IP on each node's
// primary ENI and primary private IP.
func onPrimaryIPs(nodes []fakenode.NodeInfo) map[string]ec2sim.Address {
	return stack.OnPrimaryIPs(env.EC2.Snapshot(), nodes)
}

func addressByID(state ec2sim.State, id string) (ec2sim.Address, bool) {
	for _, a := range state.Addresses {
		if a.AllocationID == id {
			return a, true
		}
	}
	return ec2sim.Address{}, false
}

// nodeEvents lists the reasons and notes of the events about a node.
func nodeEvents(ctx context.Context, name string) ([]string, error) {
	list, err := kube.EventsV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "regarding.kind=Node,regarding.name=" + name})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Type+" "+e.Reason+": "+e.Note)
	}
	return out, nil
}

// The node pool story: a group of three gets three distinct addresses of
// its pool on their primary IPs, each node losing its startup taint only
// once its address is there; a fourth node finds the pool exhausted and
// is told, until an address is added; a deleted node gives its address
// back; and a binder restart moves nothing.
func TestANodePoolGivesEveryNodeOfItsGroupAnAddress(t *testing.T) {
	ctx := t.Context()
	id := strings.ToLower(rand.Text()[:6])
	tags := map[string]string{"e2e.kube-eip.io/pool": "egress-" + id}
	ids := allocateTagged(t, tags, 3)
	groupLabel := map[string]string{"e2e.kube-eip.io/egress": id}
	taint := corev1.Taint{Key: "e2e.kube-eip.io/egress-pending", Value: "true", Effect: corev1.TaintEffectNoSchedule}

	pool := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "egress-" + id},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: tags, NodeSelector: &metav1.LabelSelector{MatchLabels: groupLabel},
			StartupTaint: taint.Key, ReleasePolicy: v1alpha1.ReleasePolicyRetain},
	}
	if err := crClient.Create(ctx, pool); err != nil {
		t.Fatalf("creating the node pool: %v", err)
	}
	group, err := env.StartNodeGroup(ctx, stack.NodeGroup{Name: "egress-" + id, Nodes: 3, Labels: groupLabel, Taints: []corev1.Taint{taint}})
	if err != nil {
		t.Fatalf("starting the node group: %v", err)
	}
	var extra *fakenode.Kubelet
	t.Cleanup(func() { cleanUpNodePool(t, pool, ids, group, extra) })

	// Three nodes, three distinct addresses of the pool, each on its own
	// primary IP; a node's taint gone only where the address is.
	var bound map[string]ec2sim.Address
	eventually(t, time.Minute, "every node of the group bound", func(ctx context.Context) (bool, string, error) {
		// The nodes first, then EC2: a taint seen gone must have its
		// address in the later snapshot, since the binder removes it only
		// after the association.
		nodes := map[string]*corev1.Node{}
		for _, n := range group.Nodes() {
			node, err := kube.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			nodes[n.Name] = node
		}
		bound = onPrimaryIPs(group.Nodes())
		for _, n := range group.Nodes() {
			node := nodes[n.Name]
			tainted := slices.ContainsFunc(node.Spec.Taints, func(x corev1.Taint) bool { return x.Key == taint.Key })
			h, ok := bound[n.Name]
			if !tainted && !ok {
				return false, "", fmt.Errorf("node %s lost its startup taint with no address on its primary IP %s", n.Name, n.PrivateIP)
			}
			if !ok || tainted || node.Labels[api.LabelPublicIP] != h.PublicIP {
				return false, fmt.Sprintf("node %s: address %+v, tainted %v, labels %v", n.Name, h, tainted, node.Labels), nil
			}
		}
		return true, "", nil
	})
	seen := map[string]string{}
	for name, h := range bound {
		if other, dup := seen[h.AllocationID]; dup {
			t.Fatalf("nodes %s and %s both hold %s", other, name, h.AllocationID)
		}
		seen[h.AllocationID] = name
		if !slices.Contains(ids, h.AllocationID) || h.Tags[api.TagHolder] != api.HolderNode || h.Tags[api.TagOwner] != name {
			t.Errorf("node %s holds %s with tags %v; want one of the pool's, tagged for the node", name, h.AllocationID, h.Tags)
		}
	}
	waitPoolStatus(t, pool.Name, "shows the three nodes", func(st v1alpha1.EIPPoolStatus) bool {
		return st.Total == 3 && st.Bound == 3 && st.Free == 0
	})

	// A restarted binder reads the holders back: nothing moves.
	env.KillBinder()
	if err := env.StartBinder(ctx); err != nil {
		t.Fatalf("restarting the binder: %v", err)
	}
	afterSweeps(t, 2)
	if got := onPrimaryIPs(group.Nodes()); !maps.EqualFunc(got, bound, func(a, b ec2sim.Address) bool { return a.AssociationID == b.AssociationID }) {
		t.Fatalf("a binder restart moved node addresses: before %v, after %v", bound, got)
	}

	// A fourth node: the pool has nothing for it, and says so.
	extra, err = env.StartNodeGroup(ctx, stack.NodeGroup{Name: "egress-more-" + id, Nodes: 1, Labels: groupLabel, Taints: []corev1.Taint{taint}})
	if err != nil {
		t.Fatalf("starting a fourth node: %v", err)
	}
	fourth := extra.Nodes()[0]
	eventually(t, time.Minute, "the fourth node told the pool is exhausted", func(ctx context.Context) (bool, string, error) {
		evs, err := nodeEvents(ctx, fourth.Name)
		if err != nil {
			return false, "", err
		}
		p := getPool(t, pool.Name)
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PoolConditionExhausted)
		told := slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, "Warning EIPPoolExhausted: pool "+pool.Name) })
		flagged := c != nil && c.Status == metav1.ConditionTrue && c.Reason == "NodesWithoutAddress" && strings.Contains(c.Message, fourth.Name)
		return told && flagged, fmt.Sprintf("events %q, condition %+v", evs, c), nil
	})
	if got := onPrimaryIPs(extra.Nodes()); len(got) != 0 {
		t.Fatalf("the fourth node holds %v from a pool of three", got)
	}

	// Adding an address to the pool gives the fourth node one.
	ids = append(ids, allocateTagged(t, tags, 1)...)
	eventually(t, time.Minute, "the fourth node bound once the pool grew", func(ctx context.Context) (bool, string, error) {
		got := onPrimaryIPs(extra.Nodes())
		return got[fourth.Name].AllocationID == ids[3], fmt.Sprintf("%v", got), nil
	})

	// Deleting a node returns its address to the pool.
	gone := group.Nodes()[0]
	freed := bound[gone.Name].AllocationID
	if err := kube.CoreV1().Nodes().Delete(ctx, gone.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting node %s: %v", gone.Name, err)
	}
	eventually(t, time.Minute, "the deleted node's address back in the pool", func(ctx context.Context) (bool, string, error) {
		a, ok := addressByID(env.EC2.Snapshot(), freed)
		if !ok {
			return false, "", fmt.Errorf("the pool's address %s was released", freed)
		}
		return a.AssociationID == "" && a.Tags[api.TagHolder] == "" && a.Tags[api.TagOwner] == "", fmt.Sprintf("%+v", a), nil
	})
	waitPoolStatus(t, pool.Name, "shows one free address", func(st v1alpha1.EIPPoolStatus) bool {
		return st.Total == 4 && st.Bound == 3 && st.Free == 1
	})
	for name, h := range onPrimaryIPs(append(group.Nodes(), extra.Nodes()...)) {
		if before, ok := bound[name]; ok && before.AssociationID != h.AssociationID {
			t.Errorf("node %s's address moved while another node went", name)
		}
	}
}

// cleanUpNodePool deletes the pool, waits for the binder to take every
// address back from the nodes, then removes the nodes and the addresses.
func cleanUpNodePool(t *testing.T, pool *v1alpha1.EIPPool, ids []string, groups ...*fakenode.Kubelet) {
	ctx := context.Background()
	_ = crClient.Delete(ctx, pool)
	// t.Context() has ended by now: the wait has its own deadline.
	var held string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		state := env.EC2.Snapshot()
		for _, id := range ids {
			if a, ok := addressByID(state, id); ok && (a.AssociationID != "" || a.Tags[api.TagHolder] != "") {
				held = fmt.Sprintf("%+v", a)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("the deleted node pool's addresses were not taken back from the nodes: %v (last: %s)", err, held)
	}
	for _, g := range groups {
		if g == nil {
			continue
		}
		names := g.NodeNames()
		g.Stop()
		for _, n := range names {
			_ = kube.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{})
		}
	}
}

// holdersOf lists the nodes of nodes whose primary IP holds allocID in
// state: never more than one, for a floating address.
func holdersOf(state ec2sim.State, nodes []fakenode.NodeInfo, allocID string) []string {
	var out []string
	for name, a := range stack.OnPrimaryIPs(state, nodes) {
		if a.AllocationID == allocID {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// A floating address stays on one healthy node of its group and moves when
// the holder stops its heartbeats, is cordoned, is deleted, or has its
// instance stopped; a watch on
// the emulator's state checks that no two nodes ever hold it.
func TestAFloatingAddressMovesOffFailedNodes(t *testing.T) {
	ctx := t.Context()
	id := strings.ToLower(rand.Text()[:6])
	tags := map[string]string{"e2e.kube-eip.io/pool": "vip-" + id}
	alloc := allocateTagged(t, tags, 1)[0]
	groupLabel := map[string]string{"e2e.kube-eip.io/edge": id}
	pool := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "vip-" + id},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: tags, NodeSelector: &metav1.LabelSelector{MatchLabels: groupLabel},
			Floating: &v1alpha1.FloatingSpec{MissedRenewals: 2}, ReleasePolicy: v1alpha1.ReleasePolicyRetain},
	}
	if err := crClient.Create(ctx, pool); err != nil {
		t.Fatalf("creating the floating pool: %v", err)
	}
	// Renewals every second, Leases of 4 s: two missed is 2 s.
	group, err := env.StartNodeGroup(ctx, stack.NodeGroup{Name: "edge-" + id, Nodes: 3, Labels: groupLabel, LeaseInterval: time.Second})
	if err != nil {
		t.Fatalf("starting the node group: %v", err)
	}
	t.Cleanup(func() { cleanUpNodePool(t, pool, []string{alloc}, group) })
	nodes := group.Nodes()

	watchCtx, stopWatch := context.WithCancel(ctx)
	doubly := make(chan string, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			if h := holdersOf(env.EC2.Snapshot(), nodes, alloc); len(h) > 1 {
				select {
				case doubly <- strings.Join(h, ", "):
				default:
				}
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	defer func() {
		stopWatch()
		<-watched
		select {
		case h := <-doubly:
			t.Errorf("nodes %s held the floating address at once", h)
		default:
		}
	}()

	holder := func(what string, not ...string) string {
		t.Helper()
		var on string
		eventually(t, time.Minute, what, func(context.Context) (bool, string, error) {
			h := holdersOf(env.EC2.Snapshot(), nodes, alloc)
			if len(h) != 1 || slices.Contains(not, h[0]) {
				return false, fmt.Sprintf("held by %v", h), nil
			}
			on = h[0]
			return true, "", nil
		})
		return on
	}
	first := holder("the floating address on one node")

	// Heartbeats stop: the address moves within a few seconds.
	if err := group.StopHeartbeats(first); err != nil {
		t.Fatal(err)
	}
	second := holder("the address off the silent node", first)
	if err := group.ResumeHeartbeats(first); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the pool told of the move", func(ctx context.Context) (bool, string, error) {
		evs, err := nodeEvents(ctx, first)
		return slices.ContainsFunc(evs, func(e string) bool {
			return strings.HasPrefix(e, "Warning EIPFloatingLeft: ") && strings.Contains(e, "to node "+second)
		}), fmt.Sprintf("%q", evs), err
	})

	// Cordoned: it moves.
	if _, err := kube.CoreV1().Nodes().Patch(ctx, second, types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("cordoning %s: %v", second, err)
	}
	third := holder("the address off the cordoned node", second)

	// Deleted: it moves to the one healthy node left.
	if err := kube.CoreV1().Nodes().Delete(ctx, third, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting %s: %v", third, err)
	}
	fourth := holder("the address off the deleted node", second, third)

	// Its instance stopped: it moves to the node cordoned before, now
	// uncordoned.
	if _, err := kube.CoreV1().Nodes().Patch(ctx, second, types.MergePatchType, []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("uncordoning %s: %v", second, err)
	}
	if err := group.StopInstance(ctx, fourth); err != nil {
		t.Fatal(err)
	}
	last := holder("the address off the stopped instance", third, fourth)
	if last != second {
		t.Errorf("the address went to %s, want %s, the one healthy node left", last, second)
	}
	// The tags record a move just after it is made.
	eventually(t, 30*time.Second, "the floating address's tags record its holder", func(context.Context) (bool, string, error) {
		a, _ := addressByID(env.EC2.Snapshot(), alloc)
		return a.Tags[api.TagHolder] == api.HolderFloating && a.Tags[api.TagNode] == last && a.Tags[api.TagAssociation] == a.AssociationID,
			fmt.Sprintf("tags %v, association %s, holder %s", a.Tags, a.AssociationID, last), nil
	})
	waitPoolStatus(t, pool.Name, "shows the holder", func(st v1alpha1.EIPPoolStatus) bool {
		return st.Total == 1 && st.Bound == 1 && len(st.Addresses) == 1 && st.Addresses[0].Node == last
	})
}
