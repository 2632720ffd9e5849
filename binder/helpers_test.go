package binder

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlfake "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/binder/cloud/fake"
)

// The account and cluster every test starts from: one node whose instance
// has one ENI holding the IPs pods get.
const (
	cluster    = "test"
	nodeName   = "node-a"
	nodeIP     = "10.0.1.5"
	instanceA  = "i-0123456789abcdef0"
	providerA  = "aws:///us-east-1a/" + instanceA
	namespace  = "default"
	testGrace  = 30 * time.Second
	testEvents = 1000
)

// payments is the tag selector of the pools the tests use.
var payments = map[string]string{"team": "payments"}

// actions are every EC2 call the binder may make.
var actions = []string{
	"DescribeAddresses", "AllocateAddress", "AssociateAddress", "DisassociateAddress",
	"ReleaseAddress", "DescribeNetworkInterfaces", "CreateTags", "DescribeAccountAttributes", "DescribeAvailabilityZones",
}

// env is a binder wired to a fake EC2 account and a fake API server.
type env struct {
	t      *testing.T
	ctx    context.Context
	ec2    *fake.EC2
	client client.WithWatch
	rec    *events.FakeRecorder
	clock  *clocktesting.FakeClock
	b      *Binder
	// eni is node-a's ENI, holding nodeIP (primary) and 10.0.1.10 to
	// 10.0.1.30.
	eni string
}

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// newEnv starts a binder over objs (node-a is always there). The binder is
// not ready yet: call e.start (or e.sweep and b.markReady) first.
func newEnv(t *testing.T, objs ...client.Object) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, ec2: fake.New(), rec: events.NewFakeRecorder(testEvents),
		clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	ips := []string{nodeIP} // the node's own, primary IP; the pods' follow
	for i := 10; i <= 30; i++ {
		ips = append(ips, "10.0.1."+strconv.Itoa(i))
	}
	e.eni = e.ec2.AddInterface(instanceA, ips, nil)
	objs = append(objs, node(nodeName, providerA))
	if !slices.ContainsFunc(objs, func(o client.Object) bool { _, ok := o.(*corev1.Namespace); return ok && o.GetName() == namespace }) {
		objs = append(objs, servedNamespace(namespace))
	}
	builder := ctrlfake.NewClientBuilder().
		WithScheme(testScheme(t)).
		WithObjects(objs...).
		WithStatusSubresource(&corev1.Pod{}, &v1alpha1.EIPPool{}, &v1alpha1.EIPReservation{})
	for _, ix := range cacheIndexes { // the manager's cache's
		builder = builder.WithIndex(ix.obj, ix.field, ix.extract)
	}
	e.client = builder.Build()
	e.b = New(Config{
		Client: e.client, APIReader: e.client, EC2: e.ec2, Recorder: e.rec,
		Cluster: cluster, OrphanGrace: testGrace, Now: e.clock.Now, Log: logr.Discard(),
	})
	return e
}

// start runs the first sweep, which loads the inventory, and lets pods be
// bound, as runSweeps does.
func (e *env) start() {
	e.t.Helper()
	e.sweep()
	e.b.markReady()
}

func (e *env) sweep() {
	e.t.Helper()
	if _, err := e.b.sweep(e.ctx); err != nil {
		e.t.Fatalf("sweep: %v", err)
	}
}

// reconcile runs one reconcile of the pod named name.
func (e *env) reconcile(name string) (reconcile.Result, error) {
	return e.b.Reconcile(e.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}})
}

func (e *env) mustReconcile(name string) {
	e.t.Helper()
	if _, err := e.reconcile(name); err != nil {
		e.t.Fatalf("reconciling %s: %v", name, err)
	}
}

// bind creates pod and reconciles it until bound, returning the pod as the
// API server has it.
func (e *env) bind(pod *corev1.Pod) *corev1.Pod {
	e.t.Helper()
	e.create(pod)
	e.mustReconcile(pod.Name)
	p := e.pod(pod.Name)
	if p.Labels[api.LabelPublicIP] == "" {
		e.t.Fatalf("pod %s is not labelled with its address after a reconcile: %v", pod.Name, p.Labels)
	}
	return p
}

// create stores obj, then its status: Create alone leaves the status of a
// kind with a status subresource behind.
func (e *env) create(obj client.Object) {
	e.t.Helper()
	want := obj.DeepCopyObject().(client.Object)
	if err := e.client.Create(e.ctx, obj); err != nil {
		e.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	switch w := want.(type) {
	case *corev1.Pod:
		o := obj.(*corev1.Pod)
		o.Status = w.Status
	case *v1alpha1.EIPPool:
		o := obj.(*v1alpha1.EIPPool)
		o.Status = w.Status
	case *v1alpha1.EIPReservation:
		o := obj.(*v1alpha1.EIPReservation)
		o.Status = w.Status
	default:
		return
	}
	if err := e.client.Status().Update(e.ctx, obj); err != nil {
		e.t.Fatalf("writing the status of %T %s: %v", obj, obj.GetName(), err)
	}
}

func (e *env) pod(name string) *corev1.Pod {
	e.t.Helper()
	p := &corev1.Pod{}
	if err := e.client.Get(e.ctx, types.NamespacedName{Namespace: namespace, Name: name}, p); err != nil {
		e.t.Fatalf("reading pod %s: %v", name, err)
	}
	return p
}

func (e *env) podGone(name string) bool {
	e.t.Helper()
	err := e.client.Get(e.ctx, types.NamespacedName{Namespace: namespace, Name: name}, &corev1.Pod{})
	if err != nil && client.IgnoreNotFound(err) != nil {
		e.t.Fatalf("reading pod %s: %v", name, err)
	}
	return err != nil
}

// delete deletes the pod as kubectl does: with the finalizer on, it stays
// with a deletion timestamp until the binder lets it go.
func (e *env) delete(name string) {
	e.t.Helper()
	if err := e.client.Delete(e.ctx, e.pod(name)); err != nil {
		e.t.Fatalf("deleting pod %s: %v", name, err)
	}
}

// setStatus rewrites a pod's status, as the kubelet does.
func (e *env) setStatus(name string, f func(*corev1.PodStatus)) {
	e.t.Helper()
	p := e.pod(name)
	f(&p.Status)
	if err := e.client.Status().Update(e.ctx, p); err != nil {
		e.t.Fatalf("updating the status of pod %s: %v", name, err)
	}
}

func (e *env) pool(name string) *v1alpha1.EIPPool {
	e.t.Helper()
	p := &v1alpha1.EIPPool{}
	if err := e.client.Get(e.ctx, client.ObjectKey{Name: name}, p); err != nil {
		e.t.Fatalf("reading pool %s: %v", name, err)
	}
	return p
}

// reservation returns the reservation named name, or nil if there is none.
func (e *env) reservation(name string) *v1alpha1.EIPReservation {
	e.t.Helper()
	r := &v1alpha1.EIPReservation{}
	if err := e.client.Get(e.ctx, client.ObjectKey{Name: name}, r); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil
		}
		e.t.Fatalf("reading reservation %s: %v", name, err)
	}
	return r
}

// address returns the fake's address, failing if it does not exist.
func (e *env) address(allocID string) fake.Address {
	e.t.Helper()
	a, ok := e.ec2.Address(allocID)
	if !ok {
		e.t.Fatalf("address %s does not exist in EC2", allocID)
	}
	return a
}

func (e *env) addressExists(allocID string) bool {
	_, ok := e.ec2.Address(allocID)
	return ok
}

// associate maps an address behind the binder's back, as a person with the
// console would; it returns the association id.
func (e *env) associate(allocID, eni, ip string) string {
	e.t.Helper()
	out, err := e.ec2.AssociateAddress(context.Background(), &ec2.AssociateAddressInput{
		AllocationId: aws.String(allocID), NetworkInterfaceId: aws.String(eni), PrivateIpAddress: aws.String(ip),
	})
	if err != nil {
		e.t.Fatalf("associating %s with %s %s: %v", allocID, eni, ip, err)
	}
	return aws.ToString(out.AssociationId)
}

func (e *env) disassociate(assocID string) {
	e.t.Helper()
	if _, err := e.ec2.DisassociateAddress(context.Background(), &ec2.DisassociateAddressInput{AssociationId: aws.String(assocID)}); err != nil {
		e.t.Fatalf("disassociating %s: %v", assocID, err)
	}
}

// calls counts every EC2 call so far, by action.
func (e *env) calls() map[string]int {
	out := map[string]int{}
	for _, a := range actions {
		out[a] = e.ec2.Calls(a)
	}
	return out
}

// callsSince is what was called after before was taken, by action; zero
// counts are left out, so an empty map means no call.
func (e *env) callsSince(before map[string]int) map[string]int {
	out := map[string]int{}
	for a, n := range e.calls() {
		if d := n - before[a]; d != 0 {
			out[a] = d
		}
	}
	return out
}

// recordOrder records the order of the EC2 calls from now on.
func (e *env) recordOrder() func() []string {
	var mu sync.Mutex
	var order []string
	e.ec2.SetHook(func(action string) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, action)
		return nil
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(order)
	}
}

// mutationsOf lists the mutating calls made after before (from e.calls)
// that named allocID, or its association assocID.
func (e *env) mutationsOf(before map[string]int, allocID, assocID string) []string {
	inputs := func(action string) []any { return e.ec2.Inputs(action)[before[action]:] }
	var out []string
	for _, in := range inputs("AssociateAddress") {
		if aws.ToString(in.(*ec2.AssociateAddressInput).AllocationId) == allocID {
			out = append(out, "AssociateAddress")
		}
	}
	for _, in := range inputs("DisassociateAddress") {
		if id := aws.ToString(in.(*ec2.DisassociateAddressInput).AssociationId); assocID != "" && id == assocID {
			out = append(out, "DisassociateAddress")
		}
	}
	for _, in := range inputs("ReleaseAddress") {
		if aws.ToString(in.(*ec2.ReleaseAddressInput).AllocationId) == allocID {
			out = append(out, "ReleaseAddress")
		}
	}
	for _, in := range inputs("CreateTags") {
		if slices.Contains(in.(*ec2.CreateTagsInput).Resources, allocID) {
			out = append(out, "CreateTags")
		}
	}
	return out
}

// events drains the events emitted so far.
func (e *env) events() []string {
	var out []string
	for {
		select {
		case ev := <-e.rec.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// wantEvent fails unless one of evs starts with prefix ("Normal EIPAssociated").
func wantEvent(t *testing.T, evs []string, prefix string) {
	t.Helper()
	if !slices.ContainsFunc(evs, func(ev string) bool { return strings.HasPrefix(ev, prefix) }) {
		t.Errorf("no %q event among %q", prefix, evs)
	}
}

// requeued drains the pods sent back to the controller: by the sweep, or
// woken by the quota gate.
func (e *env) requeued() []string {
	var out []string
	for {
		select {
		case ev := <-e.b.requeue:
			out = append(out, ev.Object.GetName())
		default:
			return out
		}
	}
}

// servedNamespace is a namespace that opted in to kube-eip.
func servedNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{api.LabelInjection: api.InjectionEnabled}}}
}

func node(name, providerID string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{ProviderID: providerID}}
}

// managedPod is a pod as the webhook admits it in mode auto, scheduled on
// node-a with ip; opts adjust it.
func managedPod(name, ip string, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name, UID: types.UID("uid-" + name),
			Labels:      map[string]string{api.LabelManaged: "true"},
			Annotations: map[string]string{api.AnnotationMode: string(api.ModeAuto), api.AnnotationClaim: "claim-" + name},
			Finalizers:  []string{api.FinalizerRelease},
		},
		Spec:   corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withAnnotations(kv ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		for i := 0; i+1 < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func onNode(name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.NodeName = name }
}

// poolPod is a pod the webhook admitted in mode pool (or sticky) with a
// reservation of allocID.
func poolPod(name, ip, pool, allocID string, mode api.Mode, opts ...func(*corev1.Pod)) *corev1.Pod {
	return managedPod(name, ip, append([]func(*corev1.Pod){withAnnotations(
		api.AnnotationMode, string(mode), api.AnnotationPool, pool, api.AnnotationReservation, allocID)}, opts...)...)
}

// reservedPod adds an address of the pool (whose selector is payments) and
// the reservation admission makes of it for a pod named name in mode, and
// returns that pod (not created yet) with the address.
func (e *env) reservedPod(name, ip, pool string, mode api.Mode) (pod *corev1.Pod, allocID, publicIP string) {
	e.t.Helper()
	allocID, publicIP = e.ec2.AddAddress(payments)
	pod = poolPod(name, ip, pool, allocID, mode)
	rmode := v1alpha1.ReservationModePool
	if mode == api.ModeSticky {
		rmode = v1alpha1.ReservationModeSticky
	}
	e.create(reservationFor(pod, pool, allocID, publicIP, rmode))
	return pod, allocID, publicIP
}

func eipPool(name string, selector map[string]string, policy v1alpha1.ReleasePolicy) *v1alpha1.EIPPool {
	return &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec:       v1alpha1.EIPPoolSpec{TagSelector: selector, ReleasePolicy: policy, NamespaceSelector: &metav1.LabelSelector{}},
	}
}

// reservationFor is what the webhook creates when it reserves allocID of
// pool for pod.
func reservationFor(pod *corev1.Pod, pool, allocID, publicIP string, mode v1alpha1.ReservationMode) *v1alpha1.EIPReservation {
	r := &v1alpha1.EIPReservation{
		ObjectMeta: metav1.ObjectMeta{Name: allocID, UID: types.UID("res-" + allocID)},
		Spec: v1alpha1.EIPReservationSpec{
			Pool: pool, AllocationID: allocID, PublicIP: publicIP, Mode: mode,
			PodNamespace: pod.Namespace, PodName: pod.Name, Claim: pod.Annotations[api.AnnotationClaim],
		},
		Status: v1alpha1.EIPReservationStatus{Phase: v1alpha1.ReservationReserved},
	}
	if mode == v1alpha1.ReservationModeSticky {
		r.Spec.StickyOwner = pod.Namespace + "/" + pod.Name
	}
	return r
}

func condition(pod *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == typ {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// tagsOf reads the tags of an AllocateAddress input.
func tagsOf(in *ec2.AllocateAddressInput) map[string]string {
	out := map[string]string{}
	for _, s := range in.TagSpecifications {
		for _, tag := range s.Tags {
			out[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
	}
	return out
}

type fakeAddress = fake.Address

// waitFor polls cond until it holds, failing the test at the deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting until %s: %v", what, err)
	}
}
