package binder

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// orphanTags are the tags of an address this cluster allocated for a pod
// that no longer exists (deleted while the binder was down and its
// finalizer removed by hand, say).
func orphanTags(claim string) map[string]string {
	return map[string]string{api.TagCluster: cluster, api.TagClaim: claim, api.TagOwner: "default/gone", api.TagMode: "auto"}
}

// An address of this cluster that no pod claims is released, but only once
// it has been without an owner for the orphan grace: the binder may still
// be working on its pod.
func TestSweepReleasesOrphansAfterTheGrace(t *testing.T) {
	tests := []struct {
		name       string
		associated bool
	}{
		{name: "idle", associated: false},
		{name: "still associated", associated: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			allocID, _ := e.ec2.AddAddress(orphanTags("claim-gone"))
			if tc.associated {
				e.associate(allocID, e.eni, "10.0.1.25")
			}
			e.start() // first seen without an owner now

			e.clock.Step(testGrace - time.Second)
			e.sweep()
			if !e.addressExists(allocID) {
				t.Fatal("orphan released before the grace passed")
			}
			if a := e.address(allocID); tc.associated && a.AssociationID == "" {
				t.Error("orphan disassociated before the grace passed")
			}

			e.clock.Step(2 * time.Second)
			order := e.recordOrder()
			e.sweep()
			if e.addressExists(allocID) {
				t.Errorf("orphan still allocated after the grace")
			}
			want := []string{"DescribeAddresses", "ReleaseAddress"}
			if tc.associated {
				want = []string{"DescribeAddresses", "DisassociateAddress", "ReleaseAddress"}
			}
			if got := order(); !slices.Equal(got, want) {
				t.Errorf("EC2 calls of the sweep = %v, want %v", got, want)
			}
		})
	}
}

// An orphan candidate that finds an owner again starts its grace anew.
func TestSweepForgetsAnOrphanThatFoundItsPod(t *testing.T) {
	e := newEnv(t)
	tags := orphanTags("claim-web-0")
	tags[api.TagOwner] = "default/web-0"
	allocID, _ := e.ec2.AddAddress(tags)
	e.start()

	// The pod carrying the claim shows up (the cache was late).
	e.create(managedPod("web-0", ""))
	e.clock.Step(testGrace + time.Second)
	e.sweep()
	if !e.addressExists(allocID) {
		t.Fatal("released the address of a pod that exists")
	}
}

// Addresses of another cluster, or of nobody, are never touched: no call
// names them, however long they look unowned.
func TestSweepNeverTouchesAnotherClustersAddresses(t *testing.T) {
	e := newEnv(t, eipPool("payments", map[string]string{"team": "payments"}, v1alpha1.ReleasePolicyRelease))
	other := e.ec2.AddInterface("i-0bbbbbbbbbbbbbbbb", []string{"10.0.6.10", "10.0.6.11"}, nil)
	type theirs struct{ alloc, assoc string }
	var all []theirs
	for _, tags := range []map[string]string{
		{api.TagCluster: "other", api.TagClaim: "claim-x", api.TagOwner: "default/x", api.TagMode: "auto"},
		{api.TagCluster: "other", "team": "payments"}, // in our pool's selector
		{"team": "someone-else"},
	} {
		alloc, _ := e.ec2.AddAddress(tags)
		all = append(all, theirs{alloc: alloc})
	}
	all[0].assoc = e.associate(all[0].alloc, other, "10.0.6.10")
	all[1].assoc = e.associate(all[1].alloc, other, "10.0.6.11")
	before := e.calls()
	want := e.ec2.Addresses()

	e.start()
	for range 3 {
		e.clock.Step(testGrace)
		e.sweep()
	}

	for _, a := range all {
		if got := e.mutationsOf(before, a.alloc, a.assoc); len(got) != 0 {
			t.Errorf("calls against %s: %v, want none", a.alloc, got)
		}
	}
	if got := e.ec2.Addresses(); !slices.EqualFunc(got, want, func(x, y fakeAddress) bool {
		return x.AllocationID == y.AllocationID && x.AssociationID == y.AssociationID && len(x.Tags) == len(y.Tags)
	}) {
		t.Errorf("addresses changed: %+v, want %+v", got, want)
	}
	if st := e.pool("payments").Status; st.Total != 0 {
		t.Errorf("pool counts %d addresses of another cluster", st.Total)
	}
}

// A bound pod whose address was taken off its IP behind the binder's back
// is sent back to the controller by the sweep, and its reconcile puts the
// address back.
func TestSweepRestoresAMissingAssociation(t *testing.T) {
	e := newEnv(t)
	e.start()
	pod := e.bind(managedPod("web-0", "10.0.1.11"))
	e.disassociate(pod.Annotations[api.AnnotationAssociationID])

	// The sweep's snapshot is newer than the binder's own last change.
	e.clock.Step(time.Second)
	e.sweep()
	if got := e.requeued(); !slices.Contains(got, "web-0") {
		t.Fatalf("requeued %v, want web-0", got)
	}

	e.mustReconcile("web-0")
	a := e.address(pod.Annotations[api.AnnotationAllocationID])
	if a.NetworkInterfaceID != e.eni || a.PrivateIP != "10.0.1.11" {
		t.Errorf("address on %q %q after the repair, want %s 10.0.1.11", a.NetworkInterfaceID, a.PrivateIP, e.eni)
	}
	if got := e.pod("web-0").Annotations[api.AnnotationAssociationID]; got != a.AssociationID {
		t.Errorf("pod records association %s, want the new %s", got, a.AssociationID)
	}
	if n := e.ec2.Calls("AllocateAddress"); n != 1 {
		t.Errorf("AllocateAddress called %d times, want 1: the repair reuses the pod's address", n)
	}
}

// An address found on an IP that is not its pod's is taken off at once:
// another pod may hold that IP now. The pod is sent back to be bound again.
func TestSweepRemovesAnAssociationWithTheWrongIP(t *testing.T) {
	e := newEnv(t)
	e.start()
	pod := e.bind(managedPod("web-0", "10.0.1.11"))
	allocID := pod.Annotations[api.AnnotationAllocationID]
	wrong := e.associate(allocID, e.eni, "10.0.1.26") // moved behind the binder's back

	e.clock.Step(time.Second)
	before := e.calls()
	e.sweep()
	if got := e.mutationsOf(before, allocID, wrong); !slices.Equal(got, []string{"DisassociateAddress"}) {
		t.Errorf("sweep calls against the address: %v, want one DisassociateAddress of %s", got, wrong)
	}
	if a := e.address(allocID); a.PrivateIP == "10.0.1.26" {
		t.Error("the address is still on another pod's IP")
	}
	if got := e.requeued(); !slices.Contains(got, "web-0") {
		t.Errorf("requeued %v, want web-0", got)
	}
	e.mustReconcile("web-0")
	if a := e.address(allocID); a.PrivateIP != "10.0.1.11" {
		t.Errorf("address on %q after the repair, want 10.0.1.11", a.PrivateIP)
	}
}

// A sticky address is kept while the controller it was allocated for
// exists, even with no pod of its name; once the controller is gone it is
// an orphan like any other.
func TestSweepKeepsStickyAddressesWhileTheirControllerExists(t *testing.T) {
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db", UID: "uid-sts"}}
	e := newEnv(t, sts)
	e.start()
	pod := e.bind(managedPod("db-0", "10.0.1.13", func(p *corev1.Pod) {
		p.Annotations[api.AnnotationMode] = string(api.ModeSticky)
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: sts.UID, Controller: ptr.To(true)}}
	}))
	allocID := pod.Annotations[api.AnnotationAllocationID]
	e.delete("db-0")
	e.mustReconcile("db-0")

	for range 3 {
		e.clock.Step(testGrace)
		e.sweep()
	}
	if !e.addressExists(allocID) {
		t.Fatal("released a sticky address whose StatefulSet exists")
	}

	if err := e.client.Delete(e.ctx, sts); err != nil {
		t.Fatal(err)
	}
	e.sweep()
	if !e.addressExists(allocID) {
		t.Fatal("released a sticky address before the grace")
	}
	e.clock.Step(testGrace + time.Second)
	e.sweep()
	if e.addressExists(allocID) {
		t.Error("a sticky address whose StatefulSet is gone is still allocated after the grace")
	}
}

// A reservation whose pod vanished without its finalizer running (force
// deletion) is freed by the sweep after the grace, as the pod's release
// would have: address off the IP, reservation deleted.
func TestSweepFreesTheReservationOfAVanishedPod(t *testing.T) {
	e := newEnv(t, eipPool("payments", map[string]string{"team": "payments"}, v1alpha1.ReleasePolicyRetain))
	allocID, publicIP := e.ec2.AddAddress(map[string]string{"team": "payments"})
	pod := poolPod("pay-0", "10.0.1.12", "payments", allocID, api.ModePool)
	e.create(reservationFor(pod, "payments", allocID, publicIP, v1alpha1.ReservationModePool))
	e.start()
	e.bind(pod)

	// Force-deleted: the finalizer is dropped by hand, so the binder's
	// release never ran.
	p := e.pod("pay-0")
	p.Finalizers = nil
	if err := e.client.Update(e.ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Delete(e.ctx, p); err != nil {
		t.Fatal(err)
	}

	e.clock.Step(time.Second)
	e.sweep()
	if e.reservation(allocID) == nil {
		t.Fatal("the reservation was freed before the grace")
	}
	e.clock.Step(testGrace + time.Second)
	e.sweep()
	if e.reservation(allocID) != nil {
		t.Error("the reservation of the vanished pod is still there after the grace")
	}
	a := e.address(allocID)
	if a.AssociationID != "" {
		t.Errorf("the vanished pod's address is still on %s %s", a.NetworkInterfaceID, a.PrivateIP)
	}
}

// A pool address that went back to its pool from a finished pod (which
// stays, with its reservation annotation) and was then bound to a new pod
// stays on the new pod: the finished pod no longer holds it.
func TestSweepLeavesAReusedPoolAddressOnItsNewPod(t *testing.T) {
	e := newEnv(t, eipPool("payments", map[string]string{"team": "payments"}, v1alpha1.ReleasePolicyRetain))
	allocID, publicIP := e.ec2.AddAddress(map[string]string{"team": "payments"})
	job := poolPod("z-job", "10.0.1.12", "payments", allocID, api.ModePool)
	e.create(reservationFor(job, "payments", allocID, publicIP, v1alpha1.ReservationModePool))
	e.start()
	e.bind(job)

	// The Job's pod finishes: its address goes back to the pool.
	e.setStatus("z-job", func(s *corev1.PodStatus) { s.Phase = corev1.PodSucceeded })
	e.mustReconcile("z-job")
	if e.reservation(allocID) != nil {
		t.Fatal("the finished pod's reservation is still there")
	}

	// The webhook hands the address to a new pod, which is bound.
	web := poolPod("a-web", "10.0.1.14", "payments", allocID, api.ModePool)
	e.create(reservationFor(web, "payments", allocID, publicIP, v1alpha1.ReservationModePool))
	e.bind(web)
	assoc := e.address(allocID).AssociationID

	e.clock.Step(time.Second)
	before := e.calls()
	e.sweep()
	if got := e.mutationsOf(before, allocID, assoc); len(got) != 0 {
		t.Errorf("sweep calls against the new pod's address: %v, want none", got)
	}
	if a := e.address(allocID); a.PrivateIP != "10.0.1.14" {
		t.Errorf("the new pod's address is on %q, want 10.0.1.14", a.PrivateIP)
	}
}

// The binder is ready (binds pods) once the first sweep has loaded the
// inventory, even if repairing something it found failed: one pool that
// cannot grow must not stop every pod of the cluster from being bound.
func TestBinderIsReadyOnceTheInventoryIsLoaded(t *testing.T) {
	pool := eipPool("payments", map[string]string{"team": "payments"}, v1alpha1.ReleasePolicyRetain)
	// A BYOIP pool the account does not have: the pool cannot grow, and
	// that repair fails every time.
	pool.Spec.Growth = &v1alpha1.PoolGrowth{MaxAddresses: 3, Warm: 1, PublicIPv4Pool: "ipv4pool-ec2-0123456789abcdef9"}
	e := newEnv(t, pool)

	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- e.b.runSweeps(ctx, time.Hour) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runSweeps: %v", err)
		}
	})
	waitFor(t, "the binder ready despite the failing growth", func() bool { return e.b.readyErr() == nil })
	if n := e.ec2.Calls("AllocateAddress"); n == 0 {
		t.Errorf("the growth was never tried, so the test proves nothing")
	}
}

// The grace of a reservation whose pod vanished starts when the sweep
// first sees that reservation, not an earlier one of the same address.
func TestSweepGraceStartsAnewForANewReservation(t *testing.T) {
	e := newEnv(t, eipPool("payments", payments, v1alpha1.ReleasePolicyRetain))
	allocID, publicIP := e.ec2.AddAddress(payments)
	vanished := func(uid string) *v1alpha1.EIPReservation {
		r := reservationFor(managedPod("pay-0", ""), "payments", allocID, publicIP, v1alpha1.ReservationModePool)
		r.Status = v1alpha1.EIPReservationStatus{Phase: v1alpha1.ReservationClaimed, PodUID: uid, PodName: "pay-0"}
		return r
	}
	e.create(vanished("uid-first"))
	e.start() // first seen without its pod

	// Someone deletes it by hand before the grace passed.
	if err := e.client.Delete(e.ctx, e.reservation(allocID)); err != nil {
		t.Fatal(err)
	}
	e.clock.Step(10 * time.Minute)
	e.sweep()

	// Much later the address is reserved again, and that pod vanishes too.
	e.create(vanished("uid-second"))
	e.sweep()
	if e.reservation(allocID) == nil {
		t.Error("a reservation was freed the first time the sweep saw it, without the grace")
	}
}

// Should EC2 hold two addresses for one pod's claim (a lost answer, then a
// Describe that did not show the first yet), the pod keeps the one it is
// bound to, reconciles do not flip between them, and the sweep releases
// the other after the grace.
func TestSweepReleasesASecondAddressAllocatedForOnePod(t *testing.T) {
	e := newEnv(t)
	e.start()
	pod := e.bind(managedPod("web-0", "10.0.1.12"))
	kept := pod.Annotations[api.AnnotationAllocationID]
	claim := pod.Annotations[api.AnnotationClaim]
	extra, _ := e.ec2.AddAddress(map[string]string{api.TagCluster: cluster, api.TagClaim: claim, api.TagOwner: "default/web-0", api.TagMode: "auto"})
	e.clock.Step(time.Second)
	e.sweep() // the extra one is seen, without an owner of its own
	for range 3 {
		e.mustReconcile("web-0")
	}
	if got := e.pod("web-0").Annotations[api.AnnotationAllocationID]; got != kept {
		t.Fatalf("the pod moved to %s from its address %s", got, kept)
	}
	if a := e.address(kept); a.PrivateIP != "10.0.1.12" {
		t.Fatalf("the pod's address left its IP: %+v", a)
	}

	e.clock.Step(testGrace + time.Second)
	e.sweep()
	if e.addressExists(extra) {
		t.Error("the second address of the pod's claim is still allocated after the grace")
	}
	if !e.addressExists(kept) || e.address(kept).PrivateIP != "10.0.1.12" {
		t.Error("the pod's own address was touched")
	}
}

// A sweep over a settled cluster reads EC2 once, whatever the number of
// pods: one DescribeAddresses, and nothing else.
func TestSweepCallsDoNotGrowWithPods(t *testing.T) {
	for _, pods := range []int{0, 1, 20} {
		e := newEnv(t)
		e.ec2.SetQuota(-1)
		e.start()
		for i := range pods {
			e.bind(managedPod(fmt.Sprintf("web-%d", i), fmt.Sprintf("10.0.1.%d", 10+i)))
		}
		before := e.calls()
		e.clock.Step(time.Second)
		e.sweep()
		if got := e.callsSince(before); !maps.Equal(got, map[string]int{"DescribeAddresses": 1}) {
			t.Errorf("with %d bound pods a sweep made %v, want one DescribeAddresses", pods, got)
		}
	}
}

// A pool address that kube-eip used before (so it carries the cluster
// tag), associated by someone else since, and reserved by a new pod: the
// sweep does not take the outsider's association off, though the pod
// waits for that address.
func TestSweepLeavesAnOutsidersAssociationOfAReservedAddress(t *testing.T) {
	e := newEnv(t, eipPool("payments", payments, v1alpha1.ReleasePolicyRetain))
	allocID, publicIP := e.ec2.AddAddress(map[string]string{"team": "payments", api.TagCluster: cluster})
	other := e.ec2.AddInterface("i-0dddddddddddddddd", []string{"10.0.6.10"}, nil)
	theirs := e.associate(allocID, other, "10.0.6.10")
	pod := poolPod("pay-0", "10.0.1.12", "payments", allocID, api.ModePool)
	e.create(reservationFor(pod, "payments", allocID, publicIP, v1alpha1.ReservationModePool))
	e.create(pod)
	e.start()
	_, _ = e.reconcile("pay-0") // refused: associated outside kube-eip

	for range 2 {
		e.clock.Step(testGrace + time.Second)
		e.sweep()
	}
	if a := e.address(allocID); a.AssociationID != theirs {
		t.Errorf("the outsider's association %s was replaced by %q", theirs, a.AssociationID)
	}
}

// A sticky address whose pod is gone waits only for what can bring a pod
// of that name back: a StatefulSet that still exists, or a controller of a
// kind kube-eip does not know. What a ReplicaSet, DaemonSet or Job held, or
// no controller, or a StatefulSet too long to have made the pod, goes
// after the grace, though the controller is there.
func TestSweepKeepsAStickyAddressOnlyForWhatBringsItsPodBack(t *testing.T) {
	long := strings.Repeat("s", api.MaxTagValue)
	controllers := []client.Object{
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db"}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: long}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web-7d9c"}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "agent"}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "nightly"}},
	}
	tests := []struct {
		name, controller string
		kept             bool
	}{
		{name: "a StatefulSet", controller: "StatefulSet/db", kept: true},
		{name: "a StatefulSet gone", controller: "StatefulSet/gone"},
		{name: "a StatefulSet too long", controller: api.ControllerTag("StatefulSet", long)},
		{name: "a ReplicaSet", controller: "ReplicaSet/web-7d9c"},
		{name: "a DaemonSet", controller: "DaemonSet/agent"},
		{name: "a Job", controller: "Job/nightly"},
		{name: "an operator's", controller: "GameServer/match-1", kept: true},
		{name: "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, controllers...)
			tags := map[string]string{api.TagCluster: cluster, api.TagClaim: "claim-gone", api.TagOwner: namespace + "/gone-0", api.TagMode: string(api.ModeSticky)}
			if tc.controller != "" {
				tags[api.TagController] = tc.controller
			}
			allocID, _ := e.ec2.AddAddress(tags)
			e.start()
			e.clock.Step(testGrace + time.Second)
			e.sweep()
			if got := e.addressExists(allocID); got != tc.kept {
				t.Errorf("controller %.40q: the address is allocated %v after the grace, want %v", tc.controller, got, tc.kept)
			}
		})
	}
}
