package binder

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/pools"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// DefaultSweepInterval is how often EC2 is compared with the cluster.
const DefaultSweepInterval = time.Minute

// runSweeps sweeps once at start, which loads the inventory and lets pods
// be bound, then every interval until ctx ends.
func (b *Binder) runSweeps(ctx context.Context, interval time.Duration) error {
	// A sweep that could not load the inventory is tried again sooner,
	// from 1 s doubling up to the interval.
	fresh := func() wait.Backoff {
		return wait.Backoff{Duration: time.Second, Factor: 2, Steps: math.MaxInt32, Cap: interval}
	}
	retry := fresh()
	for {
		next := interval
		loaded, err := b.sweep(ctx)
		if loaded {
			// Binding needs the inventory, not every repair to succeed.
			b.markReady()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			b.Log.Error(err, "sweep failed")
			if !loaded {
				next = min(retry.Step(), interval)
			}
		} else {
			retry = fresh()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		case <-b.sweepNow:
		}
	}
}

// requestSweep asks for a sweep soon; it never blocks.
func (b *Binder) requestSweep() {
	select {
	case b.sweepNow <- struct{}{}:
	default:
	}
}

// podIndex is the managed pods, by what kube-eip's records name them
// with: a reservation's pod UID or claim, an address's owner tag.
type podIndex struct {
	byName  map[string]*corev1.Pod // namespace/name
	byUID   map[string]*corev1.Pod
	byClaim map[string][]*corev1.Pod // namespace/claim
}

func indexPods(pods []corev1.Pod) podIndex {
	ix := podIndex{byName: map[string]*corev1.Pod{}, byUID: map[string]*corev1.Pod{}, byClaim: map[string][]*corev1.Pod{}}
	for i := range pods {
		p := &pods[i]
		ix.byName[ownerTag(p)] = p
		ix.byUID[string(p.UID)] = p
		if c := p.Annotations[api.AnnotationClaim]; c != "" {
			key := p.Namespace + "/" + c
			ix.byClaim[key] = append(ix.byClaim[key], p)
		}
	}
	return ix
}

// sweep compares EC2 with the cluster and repairs drift: addresses nobody
// owns are released, associations that no longer match their pod are
// removed, missing ones are restored, reservations of vanished pods are
// freed, and pool status is brought up to date. Its EC2 reads do not
// depend on the number of pods: one DescribeAddresses. loaded tells
// whether the inventory was refreshed, whatever failed after.
func (b *Binder) sweep(ctx context.Context) (loaded bool, err error) {
	start := b.Now()
	defer func() { sweepDuration.Observe(b.Now().Sub(start).Seconds()) }()

	poolList, accountTotal, err := b.loadInventory(ctx)
	if err != nil {
		return false, err
	}
	if err := b.countAccount(ctx, accountTotal); err != nil {
		// Only admission's quota warning goes without; binding goes on.
		b.Log.Error(err, "counting the account's addresses")
	}

	var pods corev1.PodList
	listed := b.Now()
	if err := b.Client.List(ctx, &pods); err != nil {
		return true, fmt.Errorf("listing managed pods: %w", err)
	}
	ix := indexPods(pods.Items)
	b.released.forgetGone(func(uid types.UID) bool { return ix.byUID[string(uid)] != nil }, listed)
	reserved, err := b.reservedByName(ctx)
	if err != nil {
		return true, err
	}

	live := map[string]bool{}
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	var nodeList corev1.NodeList
	if err := b.Client.List(ctx, &nodeList); err != nil {
		return true, fmt.Errorf("listing nodes: %w", err)
	}
	nodes := make(map[string]*corev1.Node, len(nodeList.Items))
	for i := range nodeList.Items {
		nodes[nodeList.Items[i].Name] = &nodeList.Items[i]
	}
	// Each address is decided by the room of the kind of holder kube-eip's
	// tags give it.
	for _, a := range b.inv.all() {
		if a.Tags[api.TagCluster] != b.Cluster {
			continue // a pool's address kube-eip never touched
		}
		live[a.AllocationID] = true
		switch holderKind(a.Tags, b.Cluster) {
		case api.HolderNode:
			keep(b.sweepNodeAddress(ctx, a, nodes, poolList.Items))
		case api.HolderPod, "":
			if owners := pools.Of(a.Tags, poolList.Items); len(owners) == 1 && owners[0].Spec.NodeSelector != nil {
				// A node pool's free address (a pod's is no pool's): kube-eip
				// associates those only once they are tagged for a holder,
				// so an association on one is someone else's, and stays.
				b.clearOrphan(a.AllocationID)
				continue
			}
			keep(b.sweepAddress(ctx, a, ix, reserved[a.AllocationID]))
		case api.HolderFloating:
			// The floating room keeps it placed; an address of a pool that
			// is gone or no longer floats comes back.
			b.clearOrphan(a.AllocationID)
			if p := poolNamed(poolList.Items, a.Tags[api.TagOwner]); p == nil || p.Spec.Floating == nil {
				keep(b.returnFloating(ctx, a.Tags[api.TagOwner], poolList.Items))
			}
		default:
			// A kind a newer binder wrote: not this binder's to decide, and
			// never an orphan.
			b.clearOrphan(a.AllocationID)
		}
	}
	keep(b.sweepBoundPods(ix))
	for i := range poolList.Items {
		// Nodes that joined while the binder was away, or wait for an
		// address: their reconcile takes one.
		for _, n := range b.waitingNodes(ctx, &poolList.Items[i]) {
			b.enqueueNode(n)
		}
	}
	for _, res := range reserved {
		keep(b.sweepReservation(ctx, res, ix))
	}
	for name := range reserved {
		live["reservation/"+name] = true
	}
	b.forgetOrphans(live)
	keep(b.syncPools(ctx, poolList.Items, reserved))
	return true, firstErr
}

// loadInventory replaces the inventory with EC2's addresses of this
// cluster and of its pools (those no other cluster owns), and returns the
// pools and how many addresses the account has in all.
func (b *Binder) loadInventory(ctx context.Context) (v1alpha1.EIPPoolList, int, error) {
	var poolList v1alpha1.EIPPoolList
	if err := b.Client.List(ctx, &poolList); err != nil {
		return poolList, 0, fmt.Errorf("listing pools: %w", err)
	}
	asked := b.Now()
	out, err := b.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	if err != nil {
		return poolList, 0, fmt.Errorf("describing addresses: %w", err)
	}
	var relevant []Address
	for _, x := range out.Addresses {
		a := addressFromEC2(x)
		if a.Tags[api.TagCluster] == b.Cluster || !ownedElsewhere(a.Tags, b.Cluster) && inAnyPool(a, poolList.Items) {
			relevant = append(relevant, a)
		}
	}
	b.inv.replace(relevant, asked)
	return poolList, len(out.Addresses), nil
}

// sweepAddress decides about one address of this cluster. Who holds it is
// read from kube-eip's own records (holderOf), never from what a pod says
// of itself.
func (b *Binder) sweepAddress(ctx context.Context, a Address, ix podIndex, res *v1alpha1.EIPReservation) error {
	holder := holderOf(a, res, ix, b.Cluster)
	switch {
	case holder != nil && holder.DeletionTimestamp == nil:
		b.clearOrphan(a.AllocationID)
		if ourAssociation(a, res, b.Cluster) && holder.Status.PodIP != "" && a.PrivateIP != holder.Status.PodIP {
			// Not on its pod's IP: never leave an address where another pod
			// may now be.
			sweepOrphans.WithLabelValues("stale_disassociated").Inc()
			if err := b.disassociate(ctx, a); err != nil {
				return err
			}
			b.enqueue(holder)
		}
		return nil
	case holder != nil:
		// Being released right now.
		b.clearOrphan(a.AllocationID)
		return nil
	case res != nil:
		// A pool's address, reserved for a pod that is not here (yet, or
		// any more for a sticky one): the reservation decides, and no
		// association may stay.
		b.clearOrphan(a.AllocationID)
		if a.AssociationID != "" && (res.Status.PodUID == "" || ix.byUID[res.Status.PodUID] == nil) {
			return b.afterGrace(ctx, a, false)
		}
		return nil
	case a.Tags[api.TagMode] == string(api.ModeSticky) && a.Tags[api.TagClaim] != "":
		if ix.byName[a.Tags[api.TagOwner]] != nil {
			b.clearOrphan(a.AllocationID)
			return nil
		}
		ns, _, _ := strings.Cut(a.Tags[api.TagOwner], "/")
		gone, err := b.controllerGone(ctx, ns, a.Tags[api.TagController])
		if err != nil {
			return err
		}
		if !gone {
			b.clearOrphan(a.AllocationID)
			if a.AssociationID != "" {
				return b.afterGrace(ctx, a, false)
			}
			return nil
		}
		return b.afterGrace(ctx, a, true)
	case a.Tags[api.TagClaim] != "":
		// Allocated for a pod that is gone, or a second address for one
		// pod, which holds another: an orphan.
		return b.afterGrace(ctx, a, true)
	default:
		// A pool address kube-eip used, free now: it must not stay on an IP
		// no managed pod holds.
		if a.AssociationID != "" {
			return b.afterGrace(ctx, a, false)
		}
		b.clearOrphan(a.AllocationID)
		return nil
	}
}

// afterGrace disassociates (and with release, releases) an address once it
// has been without an owner for OrphanGrace.
func (b *Binder) afterGrace(ctx context.Context, a Address, release bool) error {
	if b.orphanAge(a.AllocationID) < b.OrphanGrace {
		return nil
	}
	if a.AssociationID != "" {
		if err := b.disassociate(ctx, a); err != nil {
			return err
		}
		sweepOrphans.WithLabelValues("stale_disassociated").Inc()
	}
	if release {
		if err := b.releaseOwn(ctx, a); err != nil {
			return err
		}
		sweepOrphans.WithLabelValues("orphan_released").Inc()
		b.Log.Info("released an address no pod owns", "allocationID", a.AllocationID, "publicIP", a.PublicIP, "owner", a.Tags[api.TagOwner])
	}
	b.clearOrphan(a.AllocationID)
	return nil
}

// sweepBoundPods requeues pods whose address is not where it should be.
func (b *Binder) sweepBoundPods(ix podIndex) error {
	for _, p := range ix.byUID {
		id := p.Annotations[api.AnnotationAllocationID]
		if id == "" || p.DeletionTimestamp != nil || terminal(p) || p.Status.PodIP == "" {
			continue
		}
		if a, ok := b.inv.get(id); !ok || a.AssociationID == "" || a.PrivateIP != p.Status.PodIP {
			sweepOrphans.WithLabelValues("association_restored").Inc()
			b.enqueue(p)
		}
	}
	return nil
}

// sweepReservation frees what a vanished pod held: a pod removed without
// its finalizer running (force-deleted, the finalizer removed by hand).
func (b *Binder) sweepReservation(ctx context.Context, res *v1alpha1.EIPReservation, ix podIndex) error {
	key := "reservation/" + res.Name
	switch {
	case res.Status.PodUID == "" && res.Status.KeptFor != nil:
		return b.sweepKeptReservation(ctx, res, key)
	case res.Status.PodUID == "" || ix.byUID[res.Status.PodUID] != nil:
		b.clearOrphan(key)
		return nil
	}
	if b.orphanAge(key) < b.OrphanGrace {
		return nil
	}
	// Act as the vanished pod's release would have.
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name, pod.UID = res.Spec.PodNamespace, res.Status.PodName, types.UID(res.Status.PodUID)
	pod.Annotations = map[string]string{api.AnnotationReservation: res.Name, api.AnnotationClaim: res.Spec.Claim}
	addr, found := b.inv.get(res.Spec.AllocationID)
	if found && ourAssociation(addr, res, b.Cluster) {
		if err := b.disassociate(ctx, addr); err != nil {
			return err
		}
		addr.AssociationID, addr.ENI, addr.PrivateIP = "", "", ""
	}
	var err error
	if res.Spec.Mode == v1alpha1.ReservationModeSticky {
		// The vanished pod's controller is not known: the reservation
		// waits for its name until a person decides.
		err = b.keepReservationForName(ctx, res.Status.PodName, res, nil)
	} else {
		_, err = b.returnReservation(ctx, pod, res, addr, found)
	}
	if err != nil {
		return err
	}
	sweepOrphans.WithLabelValues("reservation_freed").Inc()
	b.clearOrphan(key)
	return nil
}

// sweepKeptReservation gives back a sticky reservation kept for a name
// that nothing brings back (controllerGone), once that has held for the
// orphan grace and no pod of its claim has come meanwhile: its address
// goes as a pool reservation's does.
func (b *Binder) sweepKeptReservation(ctx context.Context, res *v1alpha1.EIPReservation, key string) error {
	gone, err := b.controllerGone(ctx, res.Spec.PodNamespace, res.Status.KeptFor.Controller)
	if err != nil {
		return err
	}
	if !gone {
		b.clearOrphan(key)
		return nil
	}
	if b.orphanAge(key) < b.OrphanGrace {
		return nil
	}
	if pod, err := b.claimant(ctx, res); err != nil || pod != nil {
		return err // a pod of its name is here: the reservation controller claims it
	}
	addr, found := b.inv.get(res.Spec.AllocationID)
	done, err := b.giveBackReservation(ctx, res, addr, found, res.ResourceVersion)
	if err != nil {
		return err
	}
	why := "pod " + res.Spec.StickyOwner + " had no controller, so nothing brings its name back"
	if c := res.Status.KeptFor.Controller; c != "" {
		why = "nothing brings pod " + res.Spec.StickyOwner + " back under its name (its controller was " + c + ")"
	}
	b.Recorder.Eventf(res, nil, corev1.EventTypeNormal, api.EventReleased, "Release", "%s %s (%s): %s", done.says, res.Spec.PublicIP, res.Spec.AllocationID, why)
	sweepOrphans.WithLabelValues("sticky_reservation_freed").Inc()
	b.clearOrphan(key)
	return nil
}

// controllerGone tells whether a sticky address or reservation whose pod is
// gone has anything left to wait for; ref is the pod's controller as
// api.ControllerTag wrote it ("" for none), ns its namespace. A sticky
// address is kept for its pod's name,
// and of the built-in controllers only a StatefulSet brings a pod back
// under the name it had: the address waits while the StatefulSet exists.
// ReplicaSets, DaemonSets and Jobs name each new pod afresh, so an address
// one of them held goes with its pod, as does one with no controller. A
// StatefulSet whose name did not fit the tag (api.ControllerTag shortened
// it) cannot have made the pod either: its pods' labels, which carry its
// name, would be too long to create. Controllers of other kinds (an
// operator's) are trusted to come back: a person decides.
func (b *Binder) controllerGone(ctx context.Context, ns, ref string) (bool, error) {
	kind, name, ok := strings.Cut(ref, "/")
	switch {
	case !ok, kind == "ReplicaSet", kind == "DaemonSet", kind == "Job":
		return true, nil
	case kind != "StatefulSet":
		return false, nil
	case strings.Contains(name, "~"):
		return true, nil
	}
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("StatefulSet"))
	err := b.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	if err == nil {
		return false, nil
	}
	if client.IgnoreNotFound(err) == nil {
		return true, nil
	}
	return false, fmt.Errorf("looking up StatefulSet %s/%s: %w", ns, name, err)
}

func (b *Binder) enqueue(p *corev1.Pod) {
	select {
	case b.requeue <- event.GenericEvent{Object: p}:
	default: // full: the next sweep finds it again
	}
}

func (b *Binder) orphanAge(id string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	first, ok := b.orphans[id]
	if !ok {
		b.orphans[id] = b.Now()
		return 0
	}
	return b.Now().Sub(first)
}

func (b *Binder) clearOrphan(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.orphans, id)
}

// forgetOrphans drops candidates whose address or reservation is gone, so
// that a new one of the same name gets its full grace.
func (b *Binder) forgetOrphans(live map[string]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.orphans {
		if !live[id] {
			delete(b.orphans, id)
		}
	}
}

func countInventory(addrs []Address, cluster string) {
	var assoc, idle float64
	for _, a := range addrs {
		if a.Tags[api.TagCluster] != cluster {
			continue
		}
		if a.AssociationID != "" {
			assoc++
		} else {
			idle++
		}
	}
	inventorySize.WithLabelValues("associated").Set(assoc)
	inventorySize.WithLabelValues("idle").Set(idle)
}

func poolNamed(all []v1alpha1.EIPPool, name string) *v1alpha1.EIPPool {
	for i := range all {
		if all[i].Name == name {
			return &all[i]
		}
	}
	return nil
}

func inAnyPool(a Address, all []v1alpha1.EIPPool) bool {
	return len(pools.Of(a.Tags, all)) > 0
}
