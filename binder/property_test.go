package binder

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/pools"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

var (
	propertyCases = flag.Int("property.cases", 40, "random worlds TestAddressesGoOnlyToAuthorizedPods plays")
	propertySteps = flag.Int("property.steps", 80, "steps in each world")
)

// TestAddressesGoOnlyToAuthorizedPods plays random worlds: pods admitted as
// the webhook admits them, beside pods that never passed admission and
// carry random subsets of kube-eip's keys (copied claims, reservations,
// allocation and association ids of other pods), in namespaces that opted
// in or not, with pools open to them or not, pools whose selectors overlap
// and one that selects kube-eip's own tags; created, deleted and recreated
// in random order, with the sweep running and the binder restarted at
// random. After every step, whatever the binder did:
//   - an associated address is on the IP of a pod that exists;
//   - that pod's namespace opted in;
//   - a pool's address is associated only with a pod of a namespace the
//     pool is open to, through the reservation made for that pod;
//   - an address kube-eip allocated is associated only with the pod its
//     tags name (and, for auto, carrying its claim);
//   - no address is labelled on two pods;
//   - no address a Retain pool selects is ever released.
//
// Once everything is deleted, no address kube-eip allocated is left.
func TestAddressesGoOnlyToAuthorizedPods(t *testing.T) {
	for c := range *propertyCases {
		seed := uint64(c)
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			w := newWorld(t, seed)
			for step := range *propertySteps {
				op := w.step()
				if err := w.check(); err != nil {
					t.Fatalf("step %d (%s): %v\nhistory:\n%s", step, op, err, strings.Join(w.history, "\n"))
				}
			}
			w.drain()
			if err := w.check(); err != nil {
				t.Fatalf("after deleting everything: %v\nhistory:\n%s", err, strings.Join(w.history, "\n"))
			}
			for _, a := range w.e.ec2.Addresses() {
				if a.Tags[api.TagClaim] != "" {
					t.Errorf("address %s (%v) allocated for a pod is left after every pod is gone\nhistory:\n%s", a.AllocationID, a.Tags, strings.Join(w.history, "\n"))
				}
				if a.AssociationID != "" {
					t.Errorf("address %s still associated with %s after every pod is gone", a.AllocationID, a.PrivateIP)
				}
			}
		})
	}
}

// world is one random play: the namespaces, pools and pods, and the IPs
// of node-a's ENI that pods may take.
type world struct {
	t       *testing.T
	e       *env
	rng     *rand.Rand
	pools   []*v1alpha1.EIPPool
	ns      map[string]*corev1.Namespace
	freeIPs []string
	serial  int
	history []string
	// retained are the addresses a Retain pool selects: they are never
	// released, whatever other pool selects them too.
	retained []string
}

// The namespaces: a and b opted in (b capped at two addresses), c not.
var worldNamespaces = []string{"a", "b", "c"}

func newWorld(t *testing.T, seed uint64) *world {
	// A seeded generator, so that a failing world can be played again.
	w := &world{t: t, rng: rand.New(rand.NewPCG(seed, 0x6b75626565697021)), ns: map[string]*corev1.Namespace{}} //nolint:gosec // not for secrets
	var objs []client.Object
	for _, name := range worldNamespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tenant": name}}}
		if name != "c" {
			ns.Labels[api.LabelInjection] = api.InjectionEnabled
		}
		if name == "b" {
			ns.Annotations = map[string]string{authz.AnnotationMaxAddresses: "2"}
		}
		w.ns[name] = ns
		objs = append(objs, ns)
	}
	// pa keeps its addresses, pb gives them back to AWS. px selects by
	// another key, which some of pa's addresses carry too; self selects
	// every address kube-eip tagged (its own tags: the CRD refuses such a
	// selector, an old pool may still have one).
	for _, p := range []struct {
		name, tenant string
		selector     map[string]string
		policy       v1alpha1.ReleasePolicy
	}{
		{"pa", "a", map[string]string{"team": "pa"}, v1alpha1.ReleasePolicyRetain},
		{"pb", "b", map[string]string{"team": "pb"}, v1alpha1.ReleasePolicyRelease},
		{"pc", "c", map[string]string{"team": "pc"}, v1alpha1.ReleasePolicyRetain},
		{"px", "a", map[string]string{"env": "shared"}, v1alpha1.ReleasePolicyRelease},
		{"self", "b", map[string]string{api.TagCluster: ""}, v1alpha1.ReleasePolicyRelease},
	} {
		if p.name == "self" && seed%2 == 0 {
			continue
		}
		pool := eipPool(p.name, p.selector, p.policy)
		pool.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": p.tenant}}
		w.pools = append(w.pools, pool)
		objs = append(objs, pool)
	}
	w.e = newEnv(t, objs...)
	w.e.ec2.SetQuota(-1)
	for _, tags := range []map[string]string{
		{"team": "pa"}, {"team": "pa"}, {"team": "pa", "env": "shared"},
		{"team": "pb"}, {"team": "pb"}, {"team": "pc"}, {"env": "shared"}, {"env": "shared"},
	} {
		id, _ := w.e.ec2.AddAddress(tags)
		if tags["team"] == "pa" || tags["team"] == "pc" {
			w.retained = append(w.retained, id)
		}
	}
	for i := 11; i <= 30; i++ {
		w.freeIPs = append(w.freeIPs, "10.0.1."+strconv.Itoa(i))
	}
	w.e.start()
	return w
}

func (w *world) logf(format string, args ...any) string {
	s := fmt.Sprintf(format, args...)
	w.history = append(w.history, s)
	return s
}

// step does one random thing and says what.
func (w *world) step() string {
	switch n := w.rng.IntN(100); {
	case n < 20:
		return w.admit()
	case n < 40:
		return w.forge()
	case n < 70:
		return w.reconcileSome()
	case n < 85:
		return w.deleteOne()
	case n < 95:
		w.e.clock.Step(time.Duration(w.rng.IntN(2)) * (testGrace + time.Second))
		w.sweep()
		return w.logf("sweep")
	default:
		w.restart()
		return w.logf("restart the binder")
	}
}

func (w *world) pods() []corev1.Pod {
	var list corev1.PodList
	if err := w.e.client.List(w.e.ctx, &list); err != nil {
		w.t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return strings.Compare(owner(&a), owner(&b)) })
	return list.Items
}

func (w *world) reservations() []v1alpha1.EIPReservation {
	var list v1alpha1.EIPReservationList
	if err := w.e.client.List(w.e.ctx, &list); err != nil {
		w.t.Fatal(err)
	}
	return list.Items
}

func pick[T any](rng *rand.Rand, items []T) (T, bool) {
	var zero T
	if len(items) == 0 {
		return zero, false
	}
	return items[rng.IntN(len(items))], true
}

// newPod is a pod scheduled on node-a with a free IP, or nil when none is
// left.
func (w *world) newPod(ns, name string) *corev1.Pod {
	if len(w.freeIPs) == 0 || w.exists(ns, name) {
		return nil
	}
	ip := w.freeIPs[0]
	w.freeIPs = w.freeIPs[1:]
	w.serial++
	p := managedPod(name, ip, inNamespace(ns))
	p.UID = types.UID(fmt.Sprintf("uid-%d", w.serial))
	p.Annotations = map[string]string{}
	return p
}

func (w *world) exists(ns, name string) bool {
	err := w.e.client.Get(w.e.ctx, types.NamespacedName{Namespace: ns, Name: name}, &corev1.Pod{})
	return err == nil
}

// admit creates a pod as the webhook would have admitted it in an
// opted-in namespace: a fresh claim, a reservation for pool-drawn modes.
func (w *world) admit() string {
	ns, _ := pick(w.rng, []string{"a", "b"})
	mode, _ := pick(w.rng, []api.Mode{api.ModeAuto, api.ModePool, api.ModeSticky, api.ModeSticky})
	name := fmt.Sprintf("p%d", w.serial)
	if mode == api.ModeSticky {
		name = fmt.Sprintf("s-%d", w.rng.IntN(3))
	}
	pod := w.newPod(ns, name)
	if pod == nil {
		return w.logf("admit: no IP or name left")
	}
	pod.Annotations[api.AnnotationMode] = string(mode)
	pod.Annotations[api.AnnotationClaim] = fmt.Sprintf("claim-%d", w.serial)
	withPool := mode == api.ModePool || mode == api.ModeSticky && w.rng.IntN(2) == 0
	if withPool {
		pool := "p" + ns
		if w.rng.IntN(3) == 0 {
			pool = map[string]string{"a": "px", "b": "self"}[ns]
		}
		pod.Annotations[api.AnnotationPool] = pool
		res := w.reserve(pod, pool, mode)
		if res == nil {
			w.freeIPs = append(w.freeIPs, pod.Status.PodIP)
			return w.logf("admit %s/%s %s: pool %s exhausted", ns, name, mode, pool)
		}
		pod.Annotations[api.AnnotationReservation] = res.Name
		pod.Annotations[api.AnnotationClaim] = res.Spec.Claim
	}
	w.e.create(pod)
	return w.logf("admit %s/%s %s claim=%s reservation=%s ip=%s", ns, name, mode, pod.Annotations[api.AnnotationClaim], pod.Annotations[api.AnnotationReservation], pod.Status.PodIP)
}

// reserve does what the webhook's reservation does: the sticky one kept
// for the pod's name, or a new one of a free address of the pool.
func (w *world) reserve(pod *corev1.Pod, pool string, mode api.Mode) *v1alpha1.EIPReservation {
	rmode := v1alpha1.ReservationModePool
	if mode == api.ModeSticky {
		rmode = v1alpha1.ReservationModeSticky
	}
	taken := map[string]bool{}
	for _, r := range w.reservations() {
		if rmode == v1alpha1.ReservationModeSticky && r.Spec.Pool == pool && r.Spec.StickyOwner == owner(pod) {
			return &r
		}
		taken[r.Name] = true
	}
	p := w.poolNamed(pool)
	if p == nil {
		return nil
	}
	// The webhook reserves from the pool's status, which the binder writes.
	listed := map[string]bool{}
	for _, a := range w.e.pool(pool).Status.Addresses {
		if !a.AssociatedElsewhere {
			listed[a.AllocationID] = true
		}
	}
	for _, a := range w.e.ec2.Addresses() {
		if !listed[a.AllocationID] || taken[a.AllocationID] || a.AssociationID != "" {
			continue
		}
		res := reservationFor(pod, pool, a.AllocationID, a.PublicIP, rmode)
		res.UID = types.UID(fmt.Sprintf("res-%d", w.serial))
		w.e.create(res)
		return res
	}
	return nil
}

// forge creates a pod that never passed admission, with a random subset of
// kube-eip's keys, some copied from other pods, reservations and
// addresses.
func (w *world) forge() string {
	ns, _ := pick(w.rng, worldNamespaces)
	name := fmt.Sprintf("x%d", w.serial)
	if w.rng.IntN(3) == 0 {
		// Another pod's name: a sticky identity, in its namespace or not.
		if p, ok := pick(w.rng, w.pods()); ok {
			name = p.Name
		}
	}
	pod := w.newPod(ns, name)
	if pod == nil {
		return w.logf("forge: no IP or name left")
	}
	if w.rng.IntN(2) == 0 {
		pod.Finalizers = nil
	}
	others := w.pods()
	reservations := w.reservations()
	addrs := w.e.ec2.Addresses()
	coin := func() bool { return w.rng.IntN(2) == 0 }
	// A request that looks admitted...
	mode, _ := pick(w.rng, []string{"auto", "pool", "sticky", "sticky", "autoo"})
	pod.Annotations[api.AnnotationMode] = mode
	if mode == "pool" || mode == "sticky" && coin() {
		pod.Annotations[api.AnnotationPool], _ = pick(w.rng, []string{"pa", "pb", "pc", "nope"})
	}
	if mode == "auto" && w.rng.IntN(4) == 0 {
		pod.Annotations[api.AnnotationPublicIPv4Pool], _ = pick(w.rng, []string{"amazon", "ipv4pool-ec2-0123456789abcdef0"})
	}
	// ...with a claim, reservation, allocation and association of its
	// own, or copied from another pod, reservation or address.
	pod.Annotations[api.AnnotationClaim] = fmt.Sprintf("forged-%d", w.serial)
	var claims []string
	for _, p := range others {
		claims = append(claims, p.Annotations[api.AnnotationClaim])
	}
	for _, r := range reservations {
		claims = append(claims, r.Spec.Claim)
	}
	if c, ok := pick(w.rng, claims); ok && c != "" && coin() {
		pod.Annotations[api.AnnotationClaim] = c
	}
	if r, ok := pick(w.rng, reservations); ok && coin() {
		pod.Annotations[api.AnnotationReservation] = r.Name
	}
	if a, ok := pick(w.rng, addrs); ok && coin() {
		pod.Annotations[api.AnnotationAllocationID] = a.AllocationID
		if a.AssociationID != "" {
			pod.Annotations[api.AnnotationAssociationID] = a.AssociationID
		}
	}
	if w.rng.IntN(8) == 0 {
		delete(pod.Annotations, api.AnnotationClaim)
	}
	w.e.create(pod)
	keys := slices.Sorted(maps.Keys(pod.Annotations))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", strings.TrimPrefix(k, api.Prefix), pod.Annotations[k])
	}
	return w.logf("forge %s/%s ip=%s finalizer=%t%s", ns, name, pod.Status.PodIP, len(pod.Finalizers) > 0, b.String())
}

func (w *world) reconcileSome() string {
	pods := w.pods()
	w.rng.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
	n := min(len(pods), 1+w.rng.IntN(6))
	var names []string
	for _, p := range pods[:n] {
		names = append(names, owner(&p))
		w.reconcile(p.Namespace, p.Name)
	}
	w.reclaimIPs()
	return w.logf("reconcile %v", names)
}

func (w *world) reconcile(ns, name string) {
	if _, err := w.e.reconcileAt(ns, name); err != nil {
		// Retried by the workqueue in the binder; here, by a later step.
		w.logf("  reconcile %s/%s: %v", ns, name, err)
	}
	w.e.events()
	w.e.requeued()
}

// deleteOne deletes a random pod; with the finalizer it stays until a
// reconcile lets it go. A pod's IP goes back to the CNI only once the pod
// is gone.
func (w *world) deleteOne() string {
	p, ok := pick(w.rng, slices.DeleteFunc(w.pods(), func(p corev1.Pod) bool { return p.DeletionTimestamp != nil }))
	if !ok {
		return w.logf("delete: no pod")
	}
	if err := w.e.client.Delete(w.e.ctx, &p); err != nil {
		w.t.Fatal(err)
	}
	w.reclaimIPs()
	return w.logf("delete %s", owner(&p))
}

// reclaimIPs returns the IPs of pods that are gone to the free list.
func (w *world) reclaimIPs() {
	used := map[string]bool{}
	for _, p := range w.pods() {
		used[p.Status.PodIP] = true
	}
	var all []string
	for i := 11; i <= 30; i++ {
		all = append(all, "10.0.1."+strconv.Itoa(i))
	}
	w.freeIPs = slices.DeleteFunc(all, func(ip string) bool { return used[ip] })
	// The CNI hands out the IP freed last first, as a warm pool does.
	slices.Reverse(w.freeIPs)
}

func (w *world) sweep() {
	if _, err := w.e.b.sweep(w.e.ctx); err != nil {
		w.logf("  sweep: %v", err)
	}
	w.e.requeued()
}

// restart replaces the binder by a new one, which knows nothing but what
// the API server and EC2 say.
func (w *world) restart() {
	w.e.b = New(w.e.b.Config)
	w.e.start()
}

// drain deletes every pod and lets the binder finish.
func (w *world) drain() {
	for _, p := range w.pods() {
		if err := w.e.client.Delete(w.e.ctx, &p); client.IgnoreNotFound(err) != nil {
			w.t.Fatal(err)
		}
	}
	for range 3 {
		for _, p := range w.pods() {
			w.reconcile(p.Namespace, p.Name)
		}
		w.e.clock.Step(testGrace + time.Second)
		w.sweep()
	}
	if left := w.pods(); len(left) > 0 {
		w.t.Fatalf("pods left after the drain: %s", podNames(left))
	}
}

func podNames(pods []corev1.Pod) string {
	names := make([]string, len(pods))
	for i := range pods {
		names[i] = owner(&pods[i])
	}
	return strings.Join(names, ", ")
}

// check verifies the invariants against EC2 as it is now.
func (w *world) check() error {
	byIP := map[string]*corev1.Pod{}
	pods := w.pods()
	for i := range pods {
		byIP[pods[i].Status.PodIP] = &pods[i]
	}
	reserved := map[string]v1alpha1.EIPReservation{}
	for _, r := range w.reservations() {
		reserved[r.Name] = r
	}
	for _, a := range w.e.ec2.Addresses() {
		if a.AssociationID == "" {
			continue
		}
		p := byIP[a.PrivateIP]
		if p == nil {
			return fmt.Errorf("address %s is associated with %s, which no pod has", a.AllocationID, a.PrivateIP)
		}
		who := fmt.Sprintf("address %s (tags %v) is on %s", a.AllocationID, a.Tags, owner(p))
		if !authz.Served(w.ns[p.Namespace]) {
			return fmt.Errorf("%s, of a namespace that did not opt in", who)
		}
		if a.Tags[api.TagClaim] == "" {
			// A pool's address: through the reservation made for this pod,
			// of a pool that selects it and is open to the pod's namespace.
			r, ok := reserved[a.AllocationID]
			if !ok {
				return fmt.Errorf("%s without a reservation", who)
			}
			pool := w.poolNamed(r.Spec.Pool)
			switch {
			case pool == nil || !pools.Selects(pool.Spec.TagSelector, a.Tags):
				return fmt.Errorf("%s, through pool %s, which does not select it", who, r.Spec.Pool)
			case !authz.OpenTo(pool, w.ns[p.Namespace]):
				return fmt.Errorf("%s, of a namespace pool %s is not open to", who, r.Spec.Pool)
			case r.Spec.PodNamespace != p.Namespace || r.Spec.Claim != p.Annotations[api.AnnotationClaim] || r.Status.PodUID != string(p.UID):
				return fmt.Errorf("%s, but reserved for %s claim %s uid %s", who, r.Spec.PodNamespace, r.Spec.Claim, r.Status.PodUID)
			case r.Spec.Mode == v1alpha1.ReservationModeSticky && r.Spec.StickyOwner != owner(p):
				return fmt.Errorf("%s, but kept for %s", who, r.Spec.StickyOwner)
			}
			continue
		}
		if a.Tags[api.TagOwner] != owner(p) {
			return fmt.Errorf("%s, but was allocated for %s", who, a.Tags[api.TagOwner])
		}
		if a.Tags[api.TagMode] != string(api.ModeSticky) && a.Tags[api.TagClaim] != p.Annotations[api.AnnotationClaim] {
			return fmt.Errorf("%s, whose claim %s is not the address's %s", who, p.Annotations[api.AnnotationClaim], a.Tags[api.TagClaim])
		}
	}
	// No address is held by two pods: the binder's label says whose it is.
	labelled := map[string]string{}
	for i := range pods {
		ip := pods[i].Labels[api.LabelPublicIP]
		if ip == "" {
			continue
		}
		if other, ok := labelled[ip]; ok {
			return fmt.Errorf("%s is on both %s and %s", ip, other, owner(&pods[i]))
		}
		labelled[ip] = owner(&pods[i])
	}
	// An address a Retain pool selects is never released.
	for _, id := range w.retained {
		if !w.e.addressExists(id) {
			return fmt.Errorf("address %s of a Retain pool was released", id)
		}
	}
	return nil
}

func (w *world) poolNamed(name string) *v1alpha1.EIPPool {
	for _, p := range w.pools {
		if p.Name == name {
			return p
		}
	}
	return nil
}
