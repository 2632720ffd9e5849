package binder

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// egress is the tag selector of the node pools the tests use.
var egress = map[string]string{"pool": "egress"}

const startupTaint = "kube-eip.io/egress-pending"

func nodePool(name string, selector map[string]string) *v1alpha1.EIPPool {
	return &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: selector, ReleasePolicy: v1alpha1.ReleasePolicyRetain, StartupTaint: startupTaint,
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": "egress"}}},
	}
}

// egressNode is a node of the egress group on instance, tainted until it
// has its address, with its own primary ENI at ip.
func (e *env) egressNode(name, instance, ip string) *corev1.Node {
	e.t.Helper()
	e.ec2.AddInterface(instance, []string{ip, ip + "1"}, nil)
	n := node(name, "aws:///us-east-1a/"+instance)
	n.Labels = map[string]string{"group": "egress"}
	n.Spec.Taints = []corev1.Taint{{Key: startupTaint, Effect: corev1.TaintEffectNoSchedule}, {Key: "other", Effect: corev1.TaintEffectNoSchedule}}
	e.create(n)
	return n
}

func (e *env) reconcileNode(name string) (reconcile.Result, error) {
	return nodeReconciler{e.b}.Reconcile(e.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
}

func (e *env) mustReconcileNode(name string) {
	e.t.Helper()
	if _, err := e.reconcileNode(name); err != nil {
		e.t.Fatalf("reconciling node %s: %v", name, err)
	}
}

func (e *env) getNode(name string) *corev1.Node {
	e.t.Helper()
	n := &corev1.Node{}
	if err := e.client.Get(e.ctx, client.ObjectKey{Name: name}, n); err != nil {
		e.t.Fatalf("reading node %s: %v", name, err)
	}
	return n
}

// onIP returns the address the fake shows associated with ip, or "".
func (e *env) onIP(ip string) string {
	for _, a := range e.ec2.Addresses() {
		if a.PrivateIP == ip && a.AssociationID != "" {
			return a.AllocationID
		}
	}
	return ""
}

func hasTaint(n *corev1.Node, key string) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == key })
}

func TestANodeGetsAPoolAddressOnItsPrimaryIP(t *testing.T) {
	e := newEnv(t)
	first, firstIP := e.ec2.AddAddress(egress)
	e.ec2.AddAddress(egress)
	e.create(nodePool("egress", egress))
	e.egressNode("n1", "i-0000000000000000a", "10.0.9.10")
	e.start()

	// The association fails first: the taint stays.
	e.ec2.FailNext("AssociateAddress", "InternalError", 1)
	if _, err := e.reconcileNode("n1"); err == nil {
		t.Fatal("the reconcile succeeded although AssociateAddress failed")
	}
	if n := e.getNode("n1"); !hasTaint(n, startupTaint) || n.Labels[api.LabelPublicIP] != "" {
		t.Fatalf("the node lost its startup taint or was labelled before its address was associated: %+v", n)
	}
	e.mustReconcileNode("n1")
	if got := e.onIP("10.0.9.10"); got != first {
		t.Fatalf("the node's primary IP holds %q, want the pool's first address %s", got, first)
	}
	a := e.address(first)
	if a.Tags[api.TagHolder] != api.HolderNode || a.Tags[api.TagOwner] != "n1" || a.Tags[api.TagAssociation] != a.AssociationID || a.Tags[api.TagCluster] != cluster {
		t.Errorf("the address does not record its node and association: %v", a.Tags)
	}
	n := e.getNode("n1")
	if n.Labels[api.LabelPublicIP] != firstIP || n.Annotations[api.AnnotationAllocationID] != first {
		t.Errorf("node labels %v, annotations %v; want %s, %s", n.Labels, n.Annotations, firstIP, first)
	}
	if hasTaint(n, startupTaint) || !hasTaint(n, "other") {
		t.Errorf("taints after association: %v; want only the startup taint gone", n.Spec.Taints)
	}
	wantEvent(t, e.events(), "Normal EIPAssociated")

	// Another pass, and a sweep, change nothing.
	before := e.calls()
	e.mustReconcileNode("n1")
	e.clock.Step(testGrace + time.Second)
	e.sweep()
	e.clock.Step(testGrace + time.Second)
	e.sweep()
	if got := e.callsSince(before); got["AssociateAddress"]+got["DisassociateAddress"]+got["CreateTags"]+got["DeleteTags"]+got["ReleaseAddress"] != 0 {
		t.Errorf("a settled node cost %v", got)
	}
	if got := e.onIP("10.0.9.10"); got != first {
		t.Errorf("after sweeps the node's IP holds %q, want %s", got, first)
	}
	st := e.pool("egress").Status
	if st.Total != 2 || st.Free != 1 || st.Bound != 1 || !slices.ContainsFunc(st.Addresses, func(p v1alpha1.PoolAddress) bool { return p.Node == "n1" && p.AllocationID == first }) {
		t.Errorf("pool status %+v; want 2 addresses, 1 free, 1 bound to n1", st)
	}
}

// Nodes that join at once never take the same address, and a node beyond
// the pool's size is told, as is the pool.
func TestNodesJoiningAtOnceTakeDistinctAddresses(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.ec2.AddAddress(egress)
	}
	e.create(nodePool("egress", egress))
	for i := range 4 {
		e.egressNode(fmt.Sprintf("n%d", i), fmt.Sprintf("i-000000000000000%02d", i), fmt.Sprintf("10.0.9.%d", 10+i))
	}
	e.start()
	var wg sync.WaitGroup
	results := make([]reconcile.Result, 4)
	for i := range 4 {
		wg.Go(func() {
			r, err := e.reconcileNode(fmt.Sprintf("n%d", i))
			if err != nil {
				t.Errorf("reconciling n%d: %v", i, err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	held := map[string]string{}
	waiting := ""
	for i := range 4 {
		name := fmt.Sprintf("n%d", i)
		id := e.onIP(fmt.Sprintf("10.0.9.%d", 10+i))
		if id == "" {
			if waiting != "" {
				t.Errorf("nodes %s and %s both have no address", waiting, name)
			}
			waiting = name
			if results[i].RequeueAfter == 0 {
				t.Errorf("node %s without an address is not looked at again", name)
			}
			continue
		}
		if other, ok := held[id]; ok {
			t.Fatalf("nodes %s and %s both hold %s", other, name, id)
		}
		held[id] = name
	}
	if len(held) != 3 || waiting == "" {
		t.Fatalf("held %v, waiting %q; want 3 distinct addresses and one node waiting", held, waiting)
	}
	wantEvent(t, e.events(), "Warning "+EventNodeNoAddress)
	if err := e.b.syncStatuses(e.ctx); err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(e.pool("egress").Status.Conditions, v1alpha1.PoolConditionExhausted)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "NodesWithoutAddress" || !strings.Contains(c.Message, waiting) {
		t.Errorf("Exhausted condition %+v; want true, NodesWithoutAddress, naming %s", c, waiting)
	}

	// A node that goes gives its address back, and the waiting one gets it.
	var gone, freed string
	for id, name := range held {
		gone, freed = name, id
		break
	}
	if err := e.client.Delete(e.ctx, e.getNode(gone)); err != nil {
		t.Fatal(err)
	}
	e.mustReconcileNode(gone)
	if a := e.address(freed); a.AssociationID != "" || a.Tags[api.TagHolder] != "" || a.Tags[api.TagOwner] != "" {
		t.Fatalf("the gone node's address was not returned to the pool: %+v", a)
	}
	woken := false
	for len(e.b.nodeRequeue) > 0 {
		if ev := <-e.b.nodeRequeue; ev.Object.GetName() == waiting {
			woken = true
		}
	}
	if !woken {
		t.Errorf("the waiting node %s was not woken by the freed address", waiting)
	}
	e.mustReconcileNode(waiting)
	if e.address(freed).Tags[api.TagOwner] != waiting || e.address(freed).AssociationID == "" {
		t.Errorf("the freed address went to %q, want the waiting node %s", e.address(freed).Tags[api.TagOwner], waiting)
	}
}

// A binder that restarts reads every node's address back from EC2's tags:
// nothing is reshuffled, whatever order the nodes come in.
func TestARestartedBinderKeepsEveryNodesAddress(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.ec2.AddAddress(egress)
	}
	e.create(nodePool("egress", egress))
	for i := range 3 {
		e.egressNode(fmt.Sprintf("n%d", i), fmt.Sprintf("i-000000000000000%02d", i), fmt.Sprintf("10.0.9.%d", 10+i))
	}
	e.start()
	before := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("n%d", i)
		e.mustReconcileNode(name)
		before[name] = e.getNode(name).Annotations[api.AnnotationAllocationID]
	}
	e.b = New(e.b.Config)
	e.start()
	for i := 2; i >= 0; i-- {
		e.mustReconcileNode(fmt.Sprintf("n%d", i))
	}
	for name, id := range before {
		if got := e.getNode(name).Annotations[api.AnnotationAllocationID]; got != id {
			t.Errorf("node %s moved from %s to %s across a restart", name, id, got)
		}
	}
}

// The sweep returns the address of a node deleted while the binder was
// away, and restores one taken off behind its back; it never releases or
// strips a node's address as a pod's orphan.
func TestSweepRepairsNodeAddressesBothWays(t *testing.T) {
	e := newEnv(t)
	id, _ := e.ec2.AddAddress(egress)
	other, _ := e.ec2.AddAddress(egress)
	e.create(nodePool("egress", egress))
	e.egressNode("n1", "i-0000000000000000a", "10.0.9.10")
	e.egressNode("n2", "i-0000000000000000b", "10.0.9.20")
	e.start()
	e.mustReconcileNode("n1")
	e.mustReconcileNode("n2")
	e.clock.Step(testGrace + time.Second)
	e.sweep()
	if !e.addressExists(id) || e.onIP("10.0.9.10") != id {
		t.Fatalf("the sweep released or stripped a node's address: %+v", e.address(id))
	}

	// Taken off behind kube-eip's back: the sweep sends the node back.
	e.disassociate(e.address(id).AssociationID)
	e.clock.Step(time.Second)
	e.sweep()
	requeued := false
	for len(e.b.nodeRequeue) > 0 {
		if ev := <-e.b.nodeRequeue; ev.Object.GetName() == "n1" {
			requeued = true
		}
	}
	if !requeued {
		t.Fatal("the sweep did not requeue the node whose address was taken off")
	}
	e.mustReconcileNode("n1")
	if e.onIP("10.0.9.10") != id {
		t.Fatalf("the node did not get its own address back: %+v", e.address(id))
	}

	// Deleted while the binder was away: returned after the grace.
	if err := e.client.Delete(e.ctx, e.getNode("n2")); err != nil {
		t.Fatal(err)
	}
	e.clock.Step(time.Second)
	e.sweep()
	if e.address(other).Tags[api.TagOwner] != "n2" {
		t.Fatal("the address of a node just gone was returned before the grace")
	}
	e.clock.Step(testGrace + time.Second)
	e.sweep()
	if a := e.address(other); a.AssociationID != "" || a.Tags[api.TagHolder] != "" {
		t.Errorf("the address of a deleted node is still held: %+v", a)
	}
}

// What someone outside kube-eip did is never undone: a pool address they
// associated is not taken, and an Elastic IP on the node's own IP is not
// displaced.
func TestNodesNeverTakeWhatIsAssociatedOutsideKubeEIP(t *testing.T) {
	e := newEnv(t)
	busy, _ := e.ec2.AddAddress(egress)
	elsewhere := e.ec2.AddInterface("i-0cccccccccccccccc", []string{"10.0.6.10"}, nil)
	e.associate(busy, elsewhere, "10.0.6.10")
	e.create(nodePool("egress", egress))
	e.egressNode("n1", "i-0000000000000000a", "10.0.9.10")
	e.start()
	if r, err := e.reconcileNode("n1"); err != nil || r.RequeueAfter == 0 {
		t.Fatalf("reconcile = %v, %v; want a wait for an address", r, err)
	}
	if a := e.address(busy); a.NetworkInterfaceID != elsewhere {
		t.Fatalf("the address associated outside kube-eip was moved: %+v", a)
	}

	e.ec2.AddAddress(egress) // free: n2 would take it
	outsider, _ := e.ec2.AddAddress(map[string]string{"team": "ops"})
	eni := e.ec2.AddInterface("i-0000000000000000b", []string{"10.0.9.20"}, nil)
	n := node("n2", "aws:///us-east-1a/i-0000000000000000b")
	n.Labels = map[string]string{"group": "egress"}
	e.create(n)
	e.associate(outsider, eni, "10.0.9.20")
	e.sweep()
	if _, err := e.reconcileNode("n2"); err == nil {
		t.Fatal("the node took its primary IP from another Elastic IP")
	}
	if e.onIP("10.0.9.20") != outsider {
		t.Errorf("the outsider's Elastic IP was displaced from the node's IP")
	}

	// A node's address back in its pool, then associated by someone else:
	// the sweep leaves that association alone.
	e.mustReconcileNode("n1") // still nothing free for n1
	if err := e.client.Delete(e.ctx, e.getNode("n1")); err != nil {
		t.Fatal(err)
	}
	held, _ := e.ec2.AddAddress(egress)
	e.sweep()
	e.create(func() *corev1.Node {
		n := node("n3", "aws:///us-east-1a/i-0000000000000000a")
		n.Labels = map[string]string{"group": "egress"}
		return n
	}())
	e.mustReconcileNode("n3")
	if err := e.client.Delete(e.ctx, e.getNode("n3")); err != nil {
		t.Fatal(err)
	}
	e.mustReconcileNode("n3")
	theirs := e.associate(held, elsewhere, "10.0.6.10")
	for range 2 {
		e.clock.Step(testGrace + time.Second)
		e.sweep()
	}
	if a := e.address(held); a.AssociationID != theirs {
		t.Errorf("the sweep removed an outsider's association of a node pool's free address: %+v", a)
	}
}

// A pod is never bound to its node's own IP, where a node pool's address
// goes.
func TestAPodOnTheNodesOwnIPIsNotBound(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.create(managedPod("web", nodeIP))
	r, err := e.reconcile("web")
	if err != nil || r.RequeueAfter == 0 {
		t.Fatalf("reconcile = %v, %v; want a wait", r, err)
	}
	if e.onIP(nodeIP) != "" {
		t.Error("a pod's address went onto the node's own IP")
	}
}

// A lost answer to the CreateTags that records the association, then the
// binder killed and the node deleted before a retry: the address still
// comes off the node's IP, since it sits where the binder tagged it would
// go.
func TestANodesAddressComesOffWhenItsAssociationWasNeverRecorded(t *testing.T) {
	e := newEnv(t)
	id, _ := e.ec2.AddAddress(egress)
	e.create(nodePool("egress", egress))
	e.egressNode("n1", "i-0000000000000000a", "10.0.9.10")
	e.start()
	// Holder tags, then the target, then (after AssociateAddress) the
	// association: the third CreateTags fails.
	fail := 0
	e.ec2.SetHook(func(action string) error {
		if action == "CreateTags" {
			if fail++; fail == 3 {
				return &smithy.GenericAPIError{Code: "InternalError", Message: "lost"}
			}
		}
		return nil
	})
	if _, err := e.reconcileNode("n1"); err == nil {
		t.Fatal("the reconcile succeeded although recording the association failed")
	}
	e.ec2.SetHook(nil)
	if a := e.address(id); a.AssociationID == "" || a.Tags[api.TagAssociation] == a.AssociationID {
		t.Fatalf("want an association left unrecorded, have %+v", a)
	}
	// The binder is killed before it retries; the node goes meanwhile.
	e.b = New(e.b.Config)
	e.start()
	if err := e.client.Delete(e.ctx, e.getNode("n1")); err != nil {
		t.Fatal(err)
	}
	e.mustReconcileNode("n1")
	if a := e.address(id); a.AssociationID != "" || a.Tags[api.TagHolder] != "" || a.Tags[api.TagTarget] != "" {
		t.Errorf("the gone node's address stays: %+v", a)
	}
}
