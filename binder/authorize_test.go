package binder

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// These tests play pods that never passed admission: written straight into
// the API server, as if the webhook and the admission policy were not
// there. The binder must refuse them on its own, before any EC2 call.

func inNamespace(ns string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Namespace = ns }
}

func (e *env) reconcileAt(ns, name string) (reconcile.Result, error) {
	return e.b.Reconcile(e.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
}

func (e *env) mustReconcileAt(ns, name string) {
	e.t.Helper()
	if _, err := e.reconcileAt(ns, name); err != nil {
		e.t.Fatalf("reconciling %s/%s: %v", ns, name, err)
	}
}

func (e *env) deleteAt(ns, name string) {
	e.t.Helper()
	if err := e.client.Delete(e.ctx, e.podAt(ns, name)); err != nil {
		e.t.Fatalf("deleting pod %s/%s: %v", ns, name, err)
	}
}

func (e *env) podAt(ns, name string) *corev1.Pod {
	e.t.Helper()
	p := &corev1.Pod{}
	if err := e.client.Get(e.ctx, types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
		e.t.Fatalf("reading pod %s/%s: %v", ns, name, err)
	}
	return p
}

// wantRefused reconciles the pod and checks that it was refused with msg,
// with no EC2 call and no error for the workqueue.
func (e *env) wantRefused(ns, name, msg string) {
	e.t.Helper()
	labelled := e.podAt(ns, name).Labels[api.LabelPublicIP] != ""
	before := e.calls()
	if _, err := e.reconcileAt(ns, name); err != nil {
		e.t.Fatalf("reconciling %s/%s: %v, want a refusal and no error", ns, name, err)
	}
	if calls := e.callsSince(before); len(calls) != 0 {
		e.t.Errorf("EC2 calls for a refused pod: %v", calls)
	}
	evs := e.events()
	wantEvent(e.t, evs, "Warning "+api.EventRefused)
	if !eventsContain(evs, msg) {
		e.t.Errorf("events %q, want one saying %q", evs, msg)
	}
	if p := e.podAt(ns, name); !labelled && p.Labels[api.LabelPublicIP] != "" {
		e.t.Errorf("refused pod labelled with %s", p.Labels[api.LabelPublicIP])
	}
}

func eventsContain(evs []string, msg string) bool {
	for _, ev := range evs {
		if strings.Contains(ev, msg) {
			return true
		}
	}
	return false
}

// A pod in a namespace that never opted in, carrying kube-eip's label,
// mode and a claim of its choosing, gets nothing: no address, no finalizer.
func TestPodOfANamespaceThatDidNotOptInIsRefused(t *testing.T) {
	e := newEnv(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-b"}},
		managedPod("sneaky", "10.0.1.11", inNamespace("tenant-b"), func(p *corev1.Pod) { p.Finalizers = nil }))
	e.start()
	e.wantRefused("tenant-b", "sneaky", `namespace "tenant-b" has not opted in to kube-eip`)
	if p := e.podAt("tenant-b", "sneaky"); len(p.Finalizers) != 0 {
		t.Errorf("finalizers %v added to a refused pod", p.Finalizers)
	}
}

// Another tenant's reservation, named by a pod of a namespace the pool is
// not open to, or by one the pool is open to but the reservation was not
// made for, is never claimed, and its address never moves.
func TestAReservationServesOnlyThePodItWasMadeFor(t *testing.T) {
	pool := eipPool("hijack", payments, v1alpha1.ReleasePolicyRetain)
	pool.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "victim"}}
	victimNS := servedNamespace(namespace)
	victimNS.Labels["tenant"] = "victim"
	e := newEnv(t, pool, victimNS, servedNamespace("tenant-b"))
	allocID, ip := e.ec2.AddAddress(payments)
	victim := poolPod("pdb-0", "10.0.1.11", "hijack", allocID, api.ModeSticky)
	res := reservationFor(victim, "hijack", allocID, ip, v1alpha1.ReservationModeSticky)
	e.create(res)
	e.start()

	for _, tc := range []struct {
		name, ns, msg string
		labels        map[string]string
	}{
		{"from a namespace the pool is not open to", "tenant-b", `EIPPool "hijack" is not open to namespace "tenant-b"`, nil},
		{"from a namespace the pool is open to", "tenant-c", "reservation " + allocID + " of " + ip + ` was not made for this pod (it is for namespace "default", its claim is another pod's, it is kept for default/pdb-0)`,
			map[string]string{"tenant": "victim"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.labels != nil {
				ns := servedNamespace(tc.ns)
				ns.Labels["tenant"] = "victim"
				e.create(ns)
			}
			e.create(poolPod("zzz", "10.0.1.20", "hijack", allocID, api.ModeSticky, inNamespace(tc.ns)))
			e.wantRefused(tc.ns, "zzz", tc.msg)
			if got := e.reservation(allocID); got.Status.PodUID != "" || got.Status.Phase != v1alpha1.ReservationReserved {
				t.Errorf("reservation claimed: %+v", got.Status)
			}
		})
	}

	// The victim comes back, and gets its address.
	e.bind(victim)
	if got := e.address(allocID); got.PrivateIP != "10.0.1.11" {
		t.Errorf("victim's address on %q, want 10.0.1.11", got.PrivateIP)
	}
}

// A pod that copies another pod's claim (any reader of a namespace sees
// them) gets an address of its own, never the other pod's.
func TestACopiedClaimTakesNothing(t *testing.T) {
	e := newEnv(t, servedNamespace("tenant-b"))
	e.start()
	victim := e.bind(managedPod("web-0", "10.0.1.11"))
	victimAlloc, victimAssoc := victim.Annotations[api.AnnotationAllocationID], victim.Annotations[api.AnnotationAssociationID]

	for _, thief := range []*corev1.Pod{
		managedPod("thief", "10.0.1.12", withAnnotations(api.AnnotationClaim, "claim-web-0")),
		managedPod("web-0", "10.0.1.13", withAnnotations(api.AnnotationClaim, "claim-web-0"), inNamespace("tenant-b")),
	} {
		e.create(thief)
		e.mustReconcileAt(thief.Namespace, thief.Name)
		got := e.podAt(thief.Namespace, thief.Name)
		if got.Annotations[api.AnnotationAllocationID] == victimAlloc {
			t.Fatalf("%s/%s took the address of the pod whose claim it copied", thief.Namespace, thief.Name)
		}
		if a := e.address(victimAlloc); a.AssociationID != victimAssoc || a.PrivateIP != "10.0.1.11" {
			t.Errorf("victim's address moved to %q (%s)", a.PrivateIP, a.AssociationID)
		}
		// Deleting the copy releases its own address only.
		e.deleteAt(thief.Namespace, thief.Name)
		e.mustReconcileAt(thief.Namespace, thief.Name)
		if a := e.address(victimAlloc); a.AssociationID != victimAssoc {
			t.Errorf("deleting %s/%s disassociated the victim's address", thief.Namespace, thief.Name)
		}
	}
}

// A pod that never binds, annotated with another pod's claim, allocation,
// association and reservation, does not make the sweep take that pod's
// address away, nor its deletion release it.
func TestForgedAllocationAndAssociationIDsMoveNothing(t *testing.T) {
	e := newEnv(t, servedNamespace("tenant-b"))
	e.start()
	victim := e.bind(managedPod("web-0", "10.0.1.11"))
	victimAlloc, victimAssoc := victim.Annotations[api.AnnotationAllocationID], victim.Annotations[api.AnnotationAssociationID]
	// A pool victim too: its reservation's address, named by the forger.
	pool := eipPool("partners", payments, v1alpha1.ReleasePolicyRelease)
	e.create(pool)
	poolVictim, poolAlloc, _ := e.reservedPod("pay-0", "10.0.1.14", "partners", api.ModePool)
	e.sweep()
	poolVictim = e.bind(poolVictim)
	poolAssoc := poolVictim.Annotations[api.AnnotationAssociationID]

	// Each forger copies its victim's claim too, and its name in another
	// namespace.
	for i, forged := range []struct{ alloc, assoc, claim string }{
		{victimAlloc, victimAssoc, "claim-web-0"}, {poolAlloc, poolAssoc, "claim-pay-0"},
	} {
		name := "stuck-" + string(rune('a'+i))
		e.create(managedPod(name, "10.0.1.2"+string(rune('0'+i)), inNamespace("tenant-b"),
			withAnnotations(api.AnnotationMode, "auto", api.AnnotationPublicIPv4Pool, "ipv4pool-ec2-0000000000000dead", api.AnnotationClaim, forged.claim,
				api.AnnotationAllocationID, forged.alloc, api.AnnotationAssociationID, forged.assoc, api.AnnotationReservation, forged.alloc)))
		e.wantRefused("tenant-b", name, `BYOIP pool "ipv4pool-ec2-0000000000000dead" is not open to namespace "tenant-b"`)
	}
	for range 3 {
		e.clock.Step(testGrace + time.Second)
		e.sweep()
	}
	for _, name := range []string{"stuck-a", "stuck-b"} {
		e.deleteAt("tenant-b", name)
		e.mustReconcileAt("tenant-b", name)
	}
	e.sweep()
	if a := e.address(victimAlloc); a.AssociationID != victimAssoc {
		t.Errorf("the auto victim's association %s became %q", victimAssoc, a.AssociationID)
	}
	if a := e.address(poolAlloc); a.AssociationID != poolAssoc {
		t.Errorf("the pool victim's association %s became %q", poolAssoc, a.AssociationID)
	}
	if r := e.reservation(poolAlloc); r == nil || r.Status.PodUID != string(poolVictim.UID) {
		t.Errorf("the pool victim's reservation is now %+v", r)
	}
}

// A pod whose reservation another live pod still holds is told which.
func TestAReservationHeldByAnotherPodNamesTheHolder(t *testing.T) {
	e := newEnv(t, eipPool("partners", payments, v1alpha1.ReleasePolicyRetain))
	first, allocID, ip := e.reservedPod("db-0", "10.0.1.11", "partners", api.ModeSticky)
	e.start()
	e.bind(first)

	// A second pod with the same name and claim cannot exist at once in
	// one namespace; one of another UID written with the same reservation
	// stands for a pod whose predecessor is still terminating.
	e.delete("db-0")
	next := poolPod("db-0", "10.0.1.12", "partners", allocID, api.ModeSticky)
	next.UID = "uid-db-0-next"
	_, err := e.b.authorize(e.ctx, next)
	if err == nil || !strings.Contains(err.Error(), "reservation "+allocID+" of "+ip+" is held by pod default/db-0; this pod gets it once that pod is gone") {
		t.Fatalf("authorize = %v; want a refusal naming the holder", err)
	}
}

// A BYOIP range is a company's own: only a namespace an EIPPool that grows
// from it is open to may allocate from it.
func TestBYOIPOnlyWhereAnOpenPoolGrowsFromIt(t *testing.T) {
	const source = "ipv4pool-ec2-0123456789abcdef0"
	growing := eipPool("byoip", payments, v1alpha1.ReleasePolicyRelease)
	growing.Spec.Growth = &v1alpha1.PoolGrowth{PublicIPv4Pool: source, MaxAddresses: 3}
	growing.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"byoip": "yes"}}
	e := newEnv(t, growing)
	e.start()
	pod := managedPod("web-0", "10.0.1.11", withAnnotations(api.AnnotationPublicIPv4Pool, source))
	e.create(pod)
	e.wantRefused(namespace, "web-0", `BYOIP pool "`+source+`" is not open to namespace "default"`)

	// The admin opens the pool to the namespace: the pod is bound from it.
	ns := &corev1.Namespace{}
	if err := e.client.Get(e.ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Labels["byoip"] = "yes"
	if err := e.client.Update(e.ctx, ns); err != nil {
		t.Fatal(err)
	}
	e.ec2.AddPublicIPv4Pool(source)
	e.mustReconcile("web-0")
	if got := e.pod("web-0"); got.Labels[api.LabelPublicIP] == "" {
		t.Fatal("not bound once the pool was open to its namespace")
	}
}

// A namespace capped by a cluster admin holds no more than the cap, however
// many pods ask at once; a pod over it waits until one goes.
func TestANamespaceHoldsNoMoreThanItsCap(t *testing.T) {
	ns := servedNamespace(namespace)
	ns.Annotations = map[string]string{authz.AnnotationMaxAddresses: "2"}
	e := newEnv(t, ns)
	e.start()
	e.bind(managedPod("web-0", "10.0.1.11"))
	e.bind(managedPod("web-1", "10.0.1.12"))
	e.create(managedPod("web-2", "10.0.1.13"))
	res, err := e.reconcile("web-2")
	if err != nil || res.RequeueAfter == 0 {
		t.Fatalf("reconcile over the cap = %+v, %v; want a refusal looked at again later", res, err)
	}
	wantEvent(t, e.events(), "Warning "+api.EventRefused+" kube-eip.io/mode: namespace \"default\" holds 2 of its 2 addresses")

	e.delete("web-0")
	e.mustReconcile("web-0")
	e.mustReconcile("web-2")
	if got := e.pod("web-2"); got.Labels[api.LabelPublicIP] == "" {
		t.Fatal("not bound once a pod of the namespace gave its address back")
	}
}

// A namespace that stops opting in keeps the addresses of pods bound
// before, says so, and gets nothing new; opted in again, it is served.
func TestANamespaceThatOptsOutKeepsWhatItHoldsAndGetsNothingNew(t *testing.T) {
	e := newEnv(t)
	e.start()
	bound := e.bind(managedPod("web-0", "10.0.1.11"))
	e.create(managedPod("web-1", "10.0.1.12"))

	ns := &corev1.Namespace{}
	if err := e.client.Get(e.ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		t.Fatal(err)
	}
	delete(ns.Labels, api.LabelInjection)
	if err := e.client.Update(e.ctx, ns); err != nil {
		t.Fatal(err)
	}
	e.wantRefused(namespace, "web-0", "the pod keeps "+bound.Labels[api.LabelPublicIP]+" until it goes")
	if a := e.address(bound.Annotations[api.AnnotationAllocationID]); a.AssociationID != bound.Annotations[api.AnnotationAssociationID] {
		t.Errorf("the bound pod's association changed to %q", a.AssociationID)
	}
	e.wantRefused(namespace, "web-1", `namespace "default" has not opted in to kube-eip`)

	// Deleting a pod still releases its address.
	e.delete("web-0")
	e.mustReconcile("web-0")
	if e.addressExists(bound.Annotations[api.AnnotationAllocationID]) {
		t.Error("the opted-out namespace's deleted pod kept its address")
	}

	ns.Labels = map[string]string{api.LabelInjection: api.InjectionEnabled}
	if err := e.client.Update(e.ctx, ns); err != nil {
		t.Fatal(err)
	}
	e.mustReconcile("web-1")
	if got := e.pod("web-1"); got.Labels[api.LabelPublicIP] == "" {
		t.Fatal("not bound once the namespace opted in again")
	}
}

// sink records the refusals reported for the workload behind a pod.
type sink struct{ notes []string }

func (s *sink) Report(pod metav1.Object, reason, action, note string) {
	owner := metav1.GetControllerOf(pod)
	s.notes = append(s.notes, owner.Kind+"/"+owner.Name+" "+reason+" "+action+" "+note)
}

// A Deployment's pod the binder refuses (its pool was deleted after
// admission) is reported for its workload too: its users look at the
// Deployment, not at each pod.
func TestARefusalIsReportedForTheWorkload(t *testing.T) {
	e := newEnv(t, managedPod("web-7d9c-x2x", "10.0.1.11", func(p *corev1.Pod) {
		p.Annotations[api.AnnotationMode], p.Annotations[api.AnnotationPool] = string(api.ModePool), "deleted"
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9c", UID: "rs", Controller: ptr.To(true)}}
	}))
	s := &sink{}
	e.b.Refusals = s
	e.start()
	e.wantRefused(namespace, "web-7d9c-x2x", `EIPPool "deleted" does not exist`)
	if len(s.notes) != 1 || !strings.HasPrefix(s.notes[0], `ReplicaSet/web-7d9c EIPRefused Authorize pod web-7d9c-x2x is refused: kube-eip.io/pool: EIPPool "deleted" does not exist`) {
		t.Errorf("reported %q", s.notes)
	}
}
