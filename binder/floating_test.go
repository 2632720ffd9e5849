package binder

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

var vip = map[string]string{"vip": "nodeport"}

func floatingPool() *v1alpha1.EIPPool {
	return &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "nodeport", Generation: 1},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: vip, ReleasePolicy: v1alpha1.ReleasePolicyRetain,
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": "edge"}},
			Floating:     &v1alpha1.FloatingSpec{MissedRenewals: 2}},
	}
}

// edgeNode is a Ready node of the floating group, renewing a Lease of 4 s
// (a renewal every second) at the env's clock; its primary IP is ip.
func (e *env) edgeNode(name, instance, ip string) {
	e.t.Helper()
	e.ec2.AddInterface(instance, []string{ip}, nil)
	n := node(name, "aws:///us-east-1a/"+instance)
	n.Labels = map[string]string{"group": "edge"}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	e.create(n)
	if err := e.client.Status().Update(e.ctx, n); err != nil {
		e.t.Fatal(err)
	}
	e.create(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: corev1.NamespaceNodeLease, Name: name},
		Spec:       coordinationv1.LeaseSpec{LeaseDurationSeconds: ptr.To[int32](4), RenewTime: &metav1.MicroTime{Time: e.clock.Now()}},
	})
}

// renew renews the Leases of the named nodes at the env's clock.
func (e *env) renew(names ...string) {
	e.t.Helper()
	for _, name := range names {
		l := &coordinationv1.Lease{}
		if err := e.client.Get(e.ctx, client.ObjectKey{Namespace: corev1.NamespaceNodeLease, Name: name}, l); err != nil {
			e.t.Fatal(err)
		}
		l.Spec.RenewTime = &metav1.MicroTime{Time: e.clock.Now()}
		if err := e.client.Update(e.ctx, l); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) reconcileFloating() reconcile.Result {
	e.t.Helper()
	r, err := floatingReconciler{e.b}.Reconcile(e.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: "nodeport"}})
	if err != nil {
		e.t.Fatalf("reconciling the floating pool: %v", err)
	}
	return r
}

// holderIP is the private IP the floating address is on, or "".
func (e *env) holderIP(id string) string {
	if a := e.address(id); a.AssociationID != "" {
		return a.PrivateIP
	}
	return ""
}

func floatingEnv(t *testing.T) (*env, string) {
	e := newEnv(t)
	id, _ := e.ec2.AddAddress(vip)
	e.create(floatingPool())
	e.edgeNode("edge-a", "i-0000000000000000a", "10.0.8.10")
	e.edgeNode("edge-b", "i-0000000000000000b", "10.0.8.20")
	e.edgeNode("edge-c", "i-0000000000000000c", "10.0.8.30")
	e.start()
	return e, id
}

// One node of the group holds the address; when its Lease lapses for the
// missed renewals, the address moves in one AssociateAddress to another
// healthy node, and never back when the first one recovers.
func TestAFloatingAddressFollowsTheLease(t *testing.T) {
	e, id := floatingEnv(t)
	r := e.reconcileFloating()
	if got := e.holderIP(id); got != "10.0.8.10" {
		t.Fatalf("the floating address is on %q, want edge-a's 10.0.8.10", got)
	}
	a := e.address(id)
	if a.Tags[api.TagHolder] != api.HolderFloating || a.Tags[api.TagOwner] != "nodeport" || a.Tags[api.TagNode] != "edge-a" || a.Tags[api.TagAssociation] != a.AssociationID {
		t.Fatalf("tags %v do not record the holder", a.Tags)
	}
	// Lease of 4 s: a renewal a second; two missed is 2 s.
	if r.RequeueAfter <= 0 || r.RequeueAfter > 2100*time.Millisecond {
		t.Errorf("requeue after %v, want at the holder's Lease deadline (about 2 s)", r.RequeueAfter)
	}
	e.events()

	// Renewed in time: nothing moves.
	e.clock.Step(1500 * time.Millisecond)
	e.renew("edge-a", "edge-b", "edge-c")
	e.clock.Step(1500 * time.Millisecond)
	before := e.calls()
	e.reconcileFloating()
	if got := e.callsSince(before); len(got) != 0 || e.holderIP(id) != "10.0.8.10" {
		t.Fatalf("a holder renewing its Lease lost the address, or it cost %v", got)
	}

	// edge-a stops renewing; the others go on.
	e.clock.Step(1500 * time.Millisecond)
	e.renew("edge-b", "edge-c")
	e.clock.Step(100 * time.Millisecond)
	before = e.calls()
	e.reconcileFloating()
	if got := e.holderIP(id); got != "10.0.8.20" {
		t.Fatalf("after edge-a's Lease lapsed the address is on %q, want edge-b's", got)
	}
	calls := e.callsSince(before)
	if calls["AssociateAddress"] != 1 || calls["DisassociateAddress"] != 0 {
		t.Errorf("the move cost %v, want one AssociateAddress and no DisassociateAddress", calls)
	}
	in := e.ec2.Inputs("AssociateAddress")
	if last := in[len(in)-1].(*ec2.AssociateAddressInput); !aws.ToBool(last.AllowReassociation) {
		t.Error("the move did not allow reassociation from the recorded holder")
	}
	evs := e.events()
	wantEvent(t, evs, "Normal "+EventFloatingMoved)
	wantEvent(t, evs, "Warning "+EventFloatingLost)
	if !slices.ContainsFunc(evs, func(ev string) bool { return strings.Contains(ev, "from node edge-a to node edge-b") }) {
		t.Errorf("no event names both nodes: %q", evs)
	}

	// edge-a recovers: the address stays where it is.
	e.renew("edge-a", "edge-b", "edge-c")
	e.reconcileFloating()
	if got := e.holderIP(id); got != "10.0.8.20" {
		t.Errorf("the address went back to the recovered node: on %q", got)
	}
}

// Cordoned, NotReady and deleted holders lose the address too.
func TestAFloatingAddressLeavesACordonedNotReadyOrDeletedHolder(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(e *env, n *corev1.Node)
	}{
		{"cordoned", func(e *env, n *corev1.Node) {
			n.Spec.Unschedulable = true
			if err := e.client.Update(e.ctx, n); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"not ready", func(e *env, n *corev1.Node) {
			n.Status.Conditions[0].Status = corev1.ConditionUnknown
			if err := e.client.Status().Update(e.ctx, n); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"deleted", func(e *env, n *corev1.Node) {
			if err := e.client.Delete(e.ctx, n); err != nil {
				e.t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, id := floatingEnv(t)
			e.reconcileFloating()
			n := &corev1.Node{}
			if err := e.client.Get(e.ctx, client.ObjectKey{Name: "edge-a"}, n); err != nil {
				t.Fatal(err)
			}
			tc.fail(e, n)
			e.reconcileFloating()
			if got := e.holderIP(id); got != "10.0.8.20" {
				t.Errorf("the address is on %q, want edge-b's", got)
			}
		})
	}
}

// Without a healthy node to go to, the address stays on its failed holder
// (and the pool says why); an association someone else made is never
// moved.
func TestAFloatingAddressNeverMovesToNothingOrFromAnOutsider(t *testing.T) {
	e, id := floatingEnv(t)
	e.reconcileFloating()
	e.events()
	e.clock.Step(3 * time.Second) // nobody renewed
	e.reconcileFloating()
	if got := e.holderIP(id); got != "10.0.8.10" {
		t.Fatalf("with no healthy node the address moved to %q", got)
	}
	wantEvent(t, e.events(), "Warning "+EventNoHealthyNode)

	// Someone moves it by hand: kube-eip does not take it back.
	other := e.ec2.AddInterface("i-0ffffffffffffffff", []string{"10.0.7.7"}, nil)
	if _, err := e.ec2.AssociateAddress(e.ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(id), NetworkInterfaceId: aws.String(other),
		PrivateIpAddress: aws.String("10.0.7.7"), AllowReassociation: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	e.sweep()
	e.renew("edge-a", "edge-b", "edge-c")
	e.reconcileFloating()
	if a := e.address(id); a.NetworkInterfaceID != other {
		t.Errorf("an association made outside kube-eip was moved to %s %s", a.NetworkInterfaceID, a.PrivateIP)
	}
}

// Two addresses of one floating pool go to two nodes; a deleted pool's
// addresses come back, off their nodes.
func TestAFloatingPoolSpreadsAndComesBack(t *testing.T) {
	e, first := floatingEnv(t)
	second, _ := e.ec2.AddAddress(vip)
	e.sweep()
	e.reconcileFloating()
	if a, b := e.holderIP(first), e.holderIP(second); a == "" || b == "" || a == b {
		t.Fatalf("two floating addresses on %q and %q, want two nodes", a, b)
	}
	if err := e.client.Delete(e.ctx, e.pool("nodeport")); err != nil {
		t.Fatal(err)
	}
	e.reconcileFloating()
	for _, id := range []string{first, second} {
		if a := e.address(id); a.AssociationID != "" || a.Tags[api.TagHolder] != "" || a.Tags[api.TagNode] != "" {
			t.Errorf("the deleted pool's address %s is still held: %+v", id, a)
		}
	}
}
