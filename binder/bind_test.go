package binder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// An auto pod with a node and an IP gets a new address, allocated with its
// ownership tags in the same call and associated with the ENI and private
// IP that hold the pod's IP, without taking it from anyone. The pod says
// so in its label, annotations, condition and an event. Reconciling again
// costs no EC2 call at all.
func TestBindAutoPod(t *testing.T) {
	e := newEnv(t)
	e.start()
	pod := e.bind(managedPod("web-0", "10.0.1.11"))

	if n := e.ec2.Calls("AllocateAddress"); n != 1 {
		t.Fatalf("AllocateAddress called %d times, want 1", n)
	}
	alloc := e.ec2.Inputs("AllocateAddress")[0].(*ec2.AllocateAddressInput)
	if len(alloc.TagSpecifications) != 1 || alloc.TagSpecifications[0].ResourceType != ec2types.ResourceTypeElasticIp {
		t.Errorf("AllocateAddress TagSpecifications = %+v, want one for elastic-ip", alloc.TagSpecifications)
	}
	wantTags := map[string]string{
		api.TagCluster: cluster, api.TagClaim: "claim-web-0", api.TagOwner: "default/web-0", api.TagMode: "auto",
	}
	for k, v := range wantTags {
		if got := tagsOf(alloc)[k]; got != v {
			t.Errorf("allocation tag %s = %q, want %q", k, got, v)
		}
	}
	if alloc.Domain != ec2types.DomainTypeVpc {
		t.Errorf("AllocateAddress Domain = %q, want vpc", alloc.Domain)
	}

	if n := e.ec2.Calls("AssociateAddress"); n != 1 {
		t.Fatalf("AssociateAddress called %d times, want 1", n)
	}
	assoc := e.ec2.Inputs("AssociateAddress")[0].(*ec2.AssociateAddressInput)
	if assoc.AllowReassociation == nil || *assoc.AllowReassociation {
		t.Errorf("AllowReassociation = %v, want explicitly false", assoc.AllowReassociation)
	}
	if got := aws.ToString(assoc.NetworkInterfaceId); got != e.eni {
		t.Errorf("associated with ENI %s, want %s", got, e.eni)
	}
	if got := aws.ToString(assoc.PrivateIpAddress); got != "10.0.1.11" {
		t.Errorf("associated with private IP %s, want the pod's 10.0.1.11", got)
	}

	allocID := pod.Annotations[api.AnnotationAllocationID]
	a := e.address(allocID)
	if a.NetworkInterfaceID != e.eni || a.PrivateIP != "10.0.1.11" {
		t.Errorf("EC2 has %s on %s %s, want %s 10.0.1.11", allocID, a.NetworkInterfaceID, a.PrivateIP, e.eni)
	}
	if got := pod.Labels[api.LabelPublicIP]; got != a.PublicIP {
		t.Errorf("label %s = %q, want %q", api.LabelPublicIP, got, a.PublicIP)
	}
	if got := pod.Annotations[api.AnnotationAssociationID]; got != a.AssociationID {
		t.Errorf("annotation %s = %q, want %q", api.AnnotationAssociationID, got, a.AssociationID)
	}
	if c := condition(pod, api.ConditionEIPReady); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("condition %s = %+v, want True", api.ConditionEIPReady, c)
	}
	wantEvent(t, e.events(), "Normal "+api.EventAssociated)

	before := e.calls()
	for range 3 {
		e.mustReconcile("web-0")
	}
	if got := e.callsSince(before); len(got) != 0 {
		t.Errorf("reconciling a bound pod again called EC2: %v", got)
	}
	if evs := e.events(); len(evs) != 0 {
		t.Errorf("reconciling a bound pod again emitted %q", evs)
	}
	if again := e.pod("web-0"); again.ResourceVersion != pod.ResourceVersion {
		t.Errorf("reconciling a bound pod again wrote it (resourceVersion %s → %s)", pod.ResourceVersion, again.ResourceVersion)
	}
}

// Until the binder's first sweep has loaded what EC2 holds, it binds
// nothing: it could allocate an address a previous run already holds.
func TestBindWaitsForTheFirstSweep(t *testing.T) {
	e := newEnv(t, managedPod("web-0", "10.0.1.11"))
	ctx, cancel := context.WithCancel(e.ctx)
	cancel() // Reconcile waits for the sweep as long as its context lets it
	if _, err := e.b.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: "web-0"}}); err == nil {
		t.Fatal("Reconcile before the first sweep succeeded")
	}
	if got := e.callsSince(nil); len(got) != 0 {
		t.Errorf("Reconcile before the first sweep called EC2: %v", got)
	}
	if err := e.b.readyErr(); err == nil {
		t.Error("readyErr() = nil before the first sweep")
	}
}

// A pod the binder must wait for (no node or IP yet) or leave alone (not
// managed) costs no EC2 call; one admitted before the webhook set the
// finalizer gets it first.
func TestReconcileWithoutBinding(t *testing.T) {
	tests := []struct {
		name          string
		pod           *corev1.Pod
		wantFinalizer bool
	}{
		{
			name:          "no IP yet",
			pod:           managedPod("web-0", ""),
			wantFinalizer: true,
		},
		{
			name:          "not scheduled yet",
			pod:           managedPod("web-0", "", onNode("")),
			wantFinalizer: true,
		},
		{
			name: "no finalizer yet",
			pod: managedPod("web-0", "", func(p *corev1.Pod) {
				p.Finalizers = nil
			}),
			wantFinalizer: true,
		},
		{
			name: "not managed",
			pod: managedPod("web-0", "10.0.1.11", func(p *corev1.Pod) {
				p.Labels = nil
				p.Finalizers = nil
			}),
			wantFinalizer: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.pod)
			e.start()
			before := e.calls()
			res, err := e.reconcile("web-0")
			if err != nil || !res.IsZero() {
				t.Fatalf("Reconcile = %+v, %v; want nothing to do", res, err)
			}
			if got := e.callsSince(before); len(got) != 0 {
				t.Errorf("EC2 calls: %v, want none", got)
			}
			p := e.pod("web-0")
			if has := len(p.Finalizers) == 1 && p.Finalizers[0] == api.FinalizerRelease; has != tc.wantFinalizer {
				t.Errorf("finalizers = %v, want the release finalizer: %v", p.Finalizers, tc.wantFinalizer)
			}
			if _, ok := p.Labels[api.LabelPublicIP]; ok {
				t.Errorf("pod labelled %v without an address", p.Labels)
			}
		})
	}
}

// The target of a pod is the ENI holding its IP: a secondary IP, an IP
// inside a prefix delegated to the ENI, or the branch ENI the VPC CNI
// names in the pod's annotation (which needs no EC2 read at all).
func TestBindFindsTheENIOfThePodIP(t *testing.T) {
	tests := []struct {
		name string
		// setup adds ENIs to the account and returns the pod to bind and
		// the ENI expected to receive its address.
		setup     func(e *env) (*corev1.Pod, string)
		wantIP    string
		wantReads int // DescribeNetworkInterfaces calls
	}{
		{
			name: "secondary IP",
			setup: func(e *env) (*corev1.Pod, string) {
				return managedPod("web-0", "10.0.1.20"), e.eni
			},
			wantIP: "10.0.1.20", wantReads: 1,
		},
		{
			name: "second ENI of the instance",
			setup: func(e *env) (*corev1.Pod, string) {
				eni := e.ec2.AddInterface(instanceA, []string{"10.0.2.10", "10.0.2.11"}, nil)
				return managedPod("web-0", "10.0.2.11"), eni
			},
			wantIP: "10.0.2.11", wantReads: 1,
		},
		{
			name: "prefix delegation",
			setup: func(e *env) (*corev1.Pod, string) {
				eni := e.ec2.AddInterface(instanceA, []string{"10.0.3.4"}, []string{"10.0.3.16/28"})
				return managedPod("web-0", "10.0.3.21"), eni
			},
			wantIP: "10.0.3.21", wantReads: 1,
		},
		{
			name: "branch ENI",
			setup: func(e *env) (*corev1.Pod, string) {
				branch := e.ec2.AddBranchInterface("10.0.5.7")
				pod := managedPod("web-0", "10.0.5.7", withAnnotations(api.AnnotationPodENI,
					fmt.Sprintf(`[{"eniId":%q,"ifAddress":"02:34:a5:20:c1:01","privateIp":"10.0.5.7","vlanId":1,"subnetCidr":"10.0.5.0/24"}]`, branch)))
				return pod, branch
			},
			wantIP: "10.0.5.7", wantReads: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.start()
			pod, wantENI := tc.setup(e)
			p := e.bind(pod)

			a := e.address(p.Annotations[api.AnnotationAllocationID])
			if a.NetworkInterfaceID != wantENI || a.PrivateIP != tc.wantIP {
				t.Errorf("address on %s %s, want %s %s", a.NetworkInterfaceID, a.PrivateIP, wantENI, tc.wantIP)
			}
			if n := e.ec2.Calls("DescribeNetworkInterfaces"); n != tc.wantReads {
				t.Errorf("DescribeNetworkInterfaces called %d times, want %d", n, tc.wantReads)
			}
		})
	}
}

// An IP no ENI of the instance holds yet (the CNI is still at work) is
// looked for again shortly, without an error and without an address.
func TestBindWaitsForTheCNI(t *testing.T) {
	e := newEnv(t, managedPod("web-0", "10.0.9.9"))
	e.start()
	res, err := e.reconcile("web-0")
	if err != nil || res.RequeueAfter == 0 {
		t.Fatalf("Reconcile = %+v, %v; want a requeue after a while and no error", res, err)
	}
	if n := e.ec2.Calls("AllocateAddress"); n != 0 {
		t.Errorf("AllocateAddress called %d times before the IP was found", n)
	}

	// The CNI assigns it: the next look asks EC2 again and binds.
	if !e.ec2.AssignIP(e.eni, "10.0.9.9") {
		t.Fatal("AssignIP failed")
	}
	e.mustReconcile("web-0")
	if ip := e.pod("web-0").Labels[api.LabelPublicIP]; ip == "" {
		t.Error("pod not bound once its IP appeared on the ENI")
	}
}

// A burst of pods on a few nodes costs one DescribeNetworkInterfaces for
// all of them, not one per pod.
func TestBindBatchesENIReads(t *testing.T) {
	const instanceB = "i-0fedcba9876543210"
	e := newEnv(t, node("node-b", "aws:///us-east-1b/"+instanceB))
	e.ec2.SetQuota(-1)
	ipsB := []string{}
	for i := 10; i <= 30; i++ {
		ipsB = append(ipsB, fmt.Sprintf("10.0.8.%d", i))
	}
	e.ec2.AddInterface(instanceB, ipsB, nil)
	e.start()

	const perNode = 10
	var names []string
	for i := range perNode {
		for _, n := range []struct{ node, ip string }{{nodeName, fmt.Sprintf("10.0.1.%d", 11+i)}, {"node-b", fmt.Sprintf("10.0.8.%d", 11+i)}} {
			name := fmt.Sprintf("%s-%d", n.node, i)
			e.create(managedPod(name, n.ip, onNode(n.node)))
			names = append(names, name)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, name := range names {
		wg.Go(func() {
			if _, err := e.reconcile(name); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if n := e.ec2.Calls("DescribeNetworkInterfaces"); n > 2 {
		t.Errorf("DescribeNetworkInterfaces called %d times for %d pods on 2 nodes, want at most 2", n, len(names))
	}
	for _, in := range e.ec2.Inputs("DescribeNetworkInterfaces") {
		for _, f := range in.(*ec2.DescribeNetworkInterfacesInput).Filters {
			if aws.ToString(f.Name) == "attachment.instance-id" && len(f.Values) > 2 {
				t.Errorf("a batch asked for instances %v: duplicates were not merged", f.Values)
			}
		}
	}
	for _, name := range names {
		p := e.pod(name)
		a := e.address(p.Annotations[api.AnnotationAllocationID])
		if a.PrivateIP != p.Status.PodIP {
			t.Errorf("%s: address on %s, want the pod's %s", name, a.PrivateIP, p.Status.PodIP)
		}
	}
}

// A pool pod takes the address its reservation holds: it claims the
// reservation, tags the address as this cluster's, and associates it; it
// never allocates.
func TestBindPoolPodTakesItsReservedAddress(t *testing.T) {
	pool := eipPool("payments", map[string]string{"team": "payments"}, v1alpha1.ReleasePolicyRetain)
	e := newEnv(t, pool)
	allocID, publicIP := e.ec2.AddAddress(map[string]string{"team": "payments"})
	pod := poolPod("pay-0", "10.0.1.12", "payments", allocID, api.ModePool)
	e.create(reservationFor(pod, "payments", allocID, publicIP, v1alpha1.ReservationModePool))
	e.start()

	p := e.bind(pod)
	if n := e.ec2.Calls("AllocateAddress"); n != 0 {
		t.Errorf("AllocateAddress called %d times for a pool pod", n)
	}
	if got := p.Labels[api.LabelPublicIP]; got != publicIP {
		t.Errorf("pod labelled %q, want its reserved %s", got, publicIP)
	}
	a := e.address(allocID)
	if a.PrivateIP != "10.0.1.12" || a.NetworkInterfaceID != e.eni {
		t.Errorf("reserved address on %s %s, want %s 10.0.1.12", a.NetworkInterfaceID, a.PrivateIP, e.eni)
	}
	if a.Tags[api.TagCluster] != cluster {
		t.Errorf("reserved address tags = %v, want %s=%s", a.Tags, api.TagCluster, cluster)
	}
	res := e.reservation(allocID)
	if res.Status.PodUID != string(pod.UID) || res.Status.Phase != v1alpha1.ReservationBound || res.Status.AssociationID != a.AssociationID {
		t.Errorf("reservation status = %+v, want bound to %s by %s", res.Status, pod.UID, a.AssociationID)
	}
}

// withPoolAddressAssociatedElsewhere starts a binder with pod pay-0 holding
// the reservation of a pool address that someone outside kube-eip has
// associated with their own interface (association theirs).
func withPoolAddressAssociatedElsewhere(t *testing.T) (e *env, allocID, theirs string) {
	t.Helper()
	e = newEnv(t, eipPool("payments", map[string]string{"team": "payments"}, v1alpha1.ReleasePolicyRetain))
	allocID, publicIP := e.ec2.AddAddress(map[string]string{"team": "payments"})
	other := e.ec2.AddInterface("i-0aaaaaaaaaaaaaaaa", []string{"10.0.7.7"}, nil)
	theirs = e.associate(allocID, other, "10.0.7.7")
	pod := poolPod("pay-0", "10.0.1.12", "payments", allocID, api.ModePool)
	e.create(reservationFor(pod, "payments", allocID, publicIP, v1alpha1.ReservationModePool))
	e.start()
	e.create(pod)
	return e, allocID, theirs
}

// A reserved pool address that someone outside kube-eip associated is
// never taken from them: the bind fails and says why.
func TestBindNeverTakesAPoolAddressAssociatedElsewhere(t *testing.T) {
	e, allocID, theirs := withPoolAddressAssociatedElsewhere(t)

	before := e.calls()
	if _, err := e.reconcile("pay-0"); err == nil {
		t.Fatal("Reconcile took an address associated outside kube-eip")
	}
	if a := e.address(allocID); a.AssociationID != theirs {
		t.Errorf("association %s replaced by %q", theirs, a.AssociationID)
	}
	// Tagging is left to TestPoolAddressAssociatedElsewhereIsNeverDisassociated.
	got := slices.DeleteFunc(e.mutationsOf(before, allocID, theirs), func(c string) bool { return c == "CreateTags" })
	if len(got) != 0 {
		t.Errorf("calls against the address: %v, want none", got)
	}
	wantEvent(t, e.events(), "Warning "+api.EventBindFailed)
}

// An error retrying cannot fix (a reserved address that is gone) is
// returned as a reconcile.TerminalError, so the workqueue does not retry it
// forever.
func TestUnfixableBindErrorsAreTerminal(t *testing.T) {
	pod := poolPod("pay-0", "10.0.1.11", "partners", "eipalloc-0000000000000dead", api.ModePool)
	e := newEnv(t, eipPool("partners", payments, v1alpha1.ReleasePolicyRetain), pod,
		reservationFor(pod, "partners", "eipalloc-0000000000000dead", "3.0.0.9", v1alpha1.ReservationModePool))
	e.start()
	_, err := e.reconcile("pay-0")
	if err == nil || !strings.Contains(err.Error(), "no longer exists in EC2") {
		t.Fatalf("Reconcile error = %v, want one about the address that is gone", err)
	}
	if !errors.Is(err, reconcile.TerminalError(nil)) {
		t.Errorf("Reconcile error %v is not a reconcile.TerminalError", err)
	}
}

// A pool address someone outside kube-eip associated stays theirs even
// after the pod that had reserved it is gone and the orphan grace passed.
func TestPoolAddressAssociatedElsewhereIsNeverDisassociated(t *testing.T) {
	e, allocID, theirs := withPoolAddressAssociatedElsewhere(t)
	if _, err := e.reconcile("pay-0"); err == nil {
		t.Fatal("Reconcile took an address associated outside kube-eip")
	}

	e.delete("pay-0")
	e.mustReconcile("pay-0")
	if !e.podGone("pay-0") {
		t.Fatal("the deleted pod is still there")
	}
	e.sweep()
	e.clock.Step(testGrace + time.Second)
	e.sweep()

	if a := e.address(allocID); a.AssociationID != theirs {
		t.Errorf("association %s of an address kube-eip never bound was removed (now %q)", theirs, a.AssociationID)
	}
	if tags := e.address(allocID).Tags; tags[api.TagCluster] != "" {
		t.Errorf("an address kube-eip could not use was tagged %s=%s", api.TagCluster, tags[api.TagCluster])
	}
}

// The ENIs of an instance are remembered between pods. When the CNI has
// moved an IP to another ENI since, EC2 refuses the stale target; the
// binder forgets what it knew of the instance and the retry finds the new
// ENI, with the address already allocated for the pod.
func TestBindRecoversFromAStaleENICache(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.bind(managedPod("web-0", "10.0.1.20"))

	// The CNI moves 10.0.1.20 to a new ENI of the same instance.
	if !e.ec2.UnassignIP(e.eni, "10.0.1.20") {
		t.Fatal("UnassignIP failed")
	}
	moved := e.ec2.AddInterface(instanceA, []string{"10.0.4.10", "10.0.1.20"}, nil)
	e.create(managedPod("web-1", "10.0.1.20"))

	if _, err := e.reconcile("web-1"); err == nil {
		t.Log("bound on the first attempt: the ENIs were read again")
	}
	e.mustReconcile("web-1")
	p := e.pod("web-1")
	a := e.address(p.Annotations[api.AnnotationAllocationID])
	if a.NetworkInterfaceID != moved || a.PrivateIP != "10.0.1.20" {
		t.Errorf("address on %s %s, want %s 10.0.1.20", a.NetworkInterfaceID, a.PrivateIP, moved)
	}
	if n := e.ec2.Calls("AllocateAddress"); n != 2 {
		t.Errorf("AllocateAddress called %d times for two pods, want 2", n)
	}
}

// A node that is not an EC2 instance gets no address: nothing is
// allocated that could not be associated.
func TestBindRefusesANodeWithoutAnEC2ProviderID(t *testing.T) {
	e := newEnv(t, node("kind-worker", "kind://docker/kind/kind-worker"), managedPod("web-0", "10.0.1.11", onNode("kind-worker")))
	e.start()
	if _, err := e.reconcile("web-0"); err == nil || !strings.Contains(err.Error(), "provider ID") {
		t.Errorf("Reconcile = %v, want an error naming the provider ID", err)
	}
	if n := e.ec2.Calls("AllocateAddress"); n != 0 {
		t.Errorf("AllocateAddress called %d times for a pod that cannot be bound", n)
	}
}

// Sweeps running while a burst of pods is bound (with the orphan grace
// passing between them) release nothing and leave every pod bound to one
// address of its own.
func TestSweepDuringABurst(t *testing.T) {
	e := newEnv(t)
	e.ec2.SetQuota(-1)
	e.start()
	var names []string
	for i := range 15 {
		name := fmt.Sprintf("web-%d", i)
		e.create(managedPod(name, fmt.Sprintf("10.0.1.%d", 11+i)))
		names = append(names, name)
	}

	stop := make(chan struct{})
	swept := make(chan error, 1)
	go func() {
		defer close(swept)
		for {
			select {
			case <-stop:
				return
			default:
			}
			e.clock.Step(testGrace)
			if _, err := e.b.sweep(e.ctx); err != nil {
				swept <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			// Conflicts with the sweep's requeues are retried, as the
			// workqueue would.
			for range 5 {
				if _, err := e.reconcile(name); err == nil {
					return
				}
			}
			t.Errorf("%s was not bound in 5 attempts", name)
		})
	}
	wg.Wait()
	close(stop)
	if err := <-swept; err != nil {
		t.Fatalf("sweep: %v", err)
	}
	e.clock.Step(time.Second)
	e.sweep()
	for _, name := range e.requeued() {
		e.mustReconcile(name)
	}

	if n := e.ec2.Calls("ReleaseAddress"); n != 0 {
		t.Errorf("ReleaseAddress called %d times while pods were being bound", n)
	}
	if n := len(e.ec2.Addresses()); n != len(names) {
		t.Errorf("EC2 holds %d addresses for %d pods", n, len(names))
	}
	for _, name := range names {
		p := e.pod(name)
		a, ok := e.ec2.Address(p.Annotations[api.AnnotationAllocationID])
		if !ok || a.PrivateIP != p.Status.PodIP || a.PublicIP != p.Labels[api.LabelPublicIP] {
			t.Errorf("%s: address %+v, want on %s and labelled", name, a, p.Status.PodIP)
		}
	}
}

// The longest legal namespace and pod name bind: their owner tag is
// shortened to fit EC2, and found again by a binder that restarted. The
// pod names a StatefulSet of the longest name as its controller, which
// only a hand-made pod can (such a StatefulSet cannot create pods: their
// labels carry its name, and would be too long). So nothing brings the
// pod's name back, and its sticky address goes with it, StatefulSet or not.
func TestTheLongestNamesBind(t *testing.T) {
	ns := strings.Repeat("n", 63)
	name := strings.Repeat("p", 253)
	set := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: strings.Repeat("s", 253), UID: "uid-set"}}
	pod := managedPod(name, "10.0.1.11", inNamespace(ns), withAnnotations(api.AnnotationMode, string(api.ModeSticky), api.AnnotationClaim, "0123456789abcdef01234567"), func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: set.Name, UID: set.UID, Controller: ptr.To(true)}}
	})
	e := newEnv(t, servedNamespace(ns), set)
	e.start()
	e.create(pod)
	e.mustReconcileAt(ns, name)
	bound := e.podAt(ns, name)
	allocID := bound.Annotations[api.AnnotationAllocationID]
	if allocID == "" {
		t.Fatalf("not bound: %v", e.events())
	}
	tags := e.address(allocID).Tags
	if tags[api.TagOwner] != api.OwnerTag(ns, name) || len(tags[api.TagController]) > api.MaxTagValue {
		t.Errorf("tags %v", tags)
	}

	// A new binder knows nothing but what EC2 and the API server say.
	e.b = New(e.b.Config)
	e.start()
	before := e.calls()
	e.mustReconcileAt(ns, name)
	if calls := e.callsSince(before); calls["AllocateAddress"] != 0 || calls["AssociateAddress"] != 0 {
		t.Errorf("a restarted binder did not find the address again: %v", calls)
	}
	e.deleteAt(ns, name)
	e.mustReconcileAt(ns, name)
	e.sweep()
	e.clock.Step(2 * testGrace)
	e.sweep()
	if e.addressExists(allocID) {
		t.Error("the sticky address outlived its pod, waiting for a StatefulSet that cannot bring it back")
	}
}
