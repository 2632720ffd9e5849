package binder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// errTerminal marks a problem that retrying cannot fix; the pod needs a
// person (the event says what to do).
var errTerminal = errors.New("cannot be retried")

// owner is the pod's identity, "<namespace>/<name>", as reservations
// record it; ownerTag is the same as EC2 tags take it (api.OwnerTag).
func owner(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

func ownerTag(pod *corev1.Pod) string { return api.OwnerTag(pod.Namespace, pod.Name) }

// obtain returns the address of a pod authorize granted: its reservation's,
// the one allocated for it already, or a new one within the namespace's
// cap, in the network border group of the pod's zone (group; "" when it
// is not known).
func (b *Binder) obtain(ctx context.Context, pod *corev1.Pod, g grant, group string) (Address, error) {
	if g.res != nil {
		return b.fromReservation(ctx, pod, g.res)
	}
	claim := pod.Annotations[api.AnnotationClaim]
	// The address recorded on the pod first: should EC2 ever hold two for
	// one claim (a lost answer, a Describe not yet showing the first), the
	// pod keeps the one it has and the sweep releases the other.
	if id := pod.Annotations[api.AnnotationAllocationID]; id != "" {
		if a, ok := b.inv.get(id); ok && holds(a, pod, nil, b.Cluster) {
			return a, nil
		}
	}
	// Found by claim only together with the pod's name: a claim copied from
	// another pod finds nothing of that pod's.
	if a, ok := b.inv.find(map[string]string{api.TagCluster: b.Cluster, api.TagClaim: claim, api.TagOwner: ownerTag(pod)}); ok {
		return a, nil
	}
	if g.req.Mode == api.ModeSticky {
		// Kept for this pod's name since an earlier incarnation.
		if a, ok := b.inv.find(map[string]string{api.TagCluster: b.Cluster, api.TagMode: string(api.ModeSticky), api.TagOwner: ownerTag(pod)}); ok {
			return a, nil
		}
	}
	// An earlier AllocateAddress for this pod may have succeeded without
	// us hearing of it: look for its token first.
	if a, found, err := b.findUncertain(ctx, pod); err != nil || found {
		return a, err
	}
	return b.allocateWithinCap(ctx, pod, g, claim, group)
}

// allocateWithinCap allocates for the pod unless its namespace holds as
// many addresses as a cluster admin capped it at. The count and the
// allocation are one step per namespace, so concurrent binds cannot both
// take the last one.
func (b *Binder) allocateWithinCap(ctx context.Context, pod *corev1.Pod, g grant, claim, group string) (Address, error) {
	if _, capped, _ := authz.Cap(g.ns); capped {
		unlock := b.lockNamespace(pod.Namespace)
		defer unlock()
		held, err := b.held(ctx, pod.Namespace)
		if err != nil {
			return Address{}, err
		}
		if problem := authz.OverCap(g.ns, held); problem != nil {
			return Address{}, &refusal{msg: problem.Error(), retry: capRecheck}
		}
	}
	return b.allocate(ctx, pod, g.req, claim, group)
}

// capRecheck is how often a pod over its namespace's cap looks again.
const capRecheck = 30 * time.Second

// held counts the addresses a namespace holds: those kube-eip allocated for
// its pods (kept sticky ones too), and those reserved for them.
func (b *Binder) held(ctx context.Context, namespace string) (int, error) {
	var reservations v1alpha1.EIPReservationList
	if err := b.Client.List(ctx, &reservations, client.MatchingFields{indexPodNamespace: namespace}); err != nil {
		return 0, fmt.Errorf("counting the reservations of namespace %s: %w", namespace, err)
	}
	ids := map[string]bool{}
	for _, r := range reservations.Items {
		ids[r.Name] = true
	}
	for _, a := range b.inv.all() {
		if ns, _, _ := strings.Cut(a.Tags[api.TagOwner], "/"); ns == namespace && a.Tags[api.TagCluster] == b.Cluster {
			ids[a.AllocationID] = true
		}
	}
	return len(ids), nil
}

// lockNamespace serializes allocations within one namespace.
func (b *Binder) lockNamespace(namespace string) func() { return b.lockKey("namespace/" + namespace) }

// lockKey serializes what is done under one key: a namespace's
// allocations, a node pool's takes.
func (b *Binder) lockKey(key string) func() {
	b.mu.Lock()
	l, ok := b.nsLocks[key]
	if !ok {
		l = &sync.Mutex{}
		b.nsLocks[key] = l
	}
	b.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// findUncertain looks in EC2 for the address of a claim whose allocation
// failed in a way that may still have allocated; it asks nothing when no
// such failure happened.
func (b *Binder) findUncertain(ctx context.Context, pod *corev1.Pod) (Address, bool, error) {
	claim := pod.Annotations[api.AnnotationClaim]
	if claim == "" || !b.inv.isUncertain(claim) {
		return Address{}, false, nil
	}
	found, err := b.describe(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + api.TagClaim), Values: []string{claim}},
		{Name: aws.String("tag:" + api.TagOwner), Values: []string{ownerTag(pod)}},
		{Name: aws.String("tag:" + api.TagCluster), Values: []string{b.Cluster}},
	}})
	if err != nil {
		return Address{}, false, fmt.Errorf("looking for an address allocated earlier for claim %s: %w", claim, err)
	}
	b.inv.setUncertain(claim, false)
	a, ok := firstOf(found)
	return a, ok, nil
}

// controllerOf is the pod's controller as a sticky address or reservation
// records it (api.ControllerTag), "" for none; controllerGone reads it.
func controllerOf(pod *corev1.Pod) string {
	if ref := metav1.GetControllerOf(pod); ref != nil {
		return api.ControllerTag(ref.Kind, ref.Name)
	}
	return ""
}

func (b *Binder) allocate(ctx context.Context, pod *corev1.Pod, req *api.Request, claim, group string) (Address, error) {
	tags := map[string]string{
		api.TagCluster: b.Cluster,
		api.TagHolder:  api.HolderPod,
		api.TagClaim:   claim,
		api.TagOwner:   ownerTag(pod),
		api.TagMode:    string(req.Mode),
	}
	if c := controllerOf(pod); c != "" && req.Mode == api.ModeSticky {
		tags[api.TagController] = c
	}
	in := &ec2.AllocateAddressInput{
		Domain:            types.DomainTypeVpc,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeElasticIp, Tags: ec2Tags(tags)}},
	}
	if p := req.PublicIPv4Pool; p != "" && p != "amazon" {
		in.PublicIpv4Pool = aws.String(p)
	}
	if group != "" {
		in.NetworkBorderGroup = aws.String(group)
	}
	key := client.ObjectKeyFromObject(pod)
	if ok, tell := b.quota.admit(key); !ok {
		return Address{}, &quotaWait{tell: tell}
	}
	out, err := b.EC2.AllocateAddress(ctx, in)
	b.wakeAll(b.quota.done(key, err == nil, cloud.IsQuotaExceeded(err)))
	if err != nil {
		if mayHaveApplied(err) {
			b.inv.setUncertain(claim, true)
		}
		if cloud.IsQuotaExceeded(err) {
			return Address{}, &quotaWait{tell: true}
		}
		return Address{}, fmt.Errorf("allocating an address: %w", err)
	}
	a := Address{AllocationID: aws.ToString(out.AllocationId), PublicIP: aws.ToString(out.PublicIp), BorderGroup: aws.ToString(out.NetworkBorderGroup), Tags: tags}
	b.inv.put(a)
	return a, nil
}

// mayHaveApplied tells whether a failed call may still have taken effect:
// only an error EC2 answered before acting (throttled, refused) proves it
// did not.
func mayHaveApplied(err error) bool {
	switch cloud.Classify(err) {
	case cloud.ClassThrottled, cloud.ClassQuota, cloud.ClassFatal, cloud.ClassNotFound, cloud.ClassConflict:
		return false
	}
	// Transport errors, 5xx and a context ended mid-call: the request may
	// have reached EC2. A look for the claim's tag costs one call.
	return true
}

// fromReservation claims the reservation authorize found to be the pod's,
// and returns its address.
func (b *Binder) fromReservation(ctx context.Context, pod *corev1.Pod, res *v1alpha1.EIPReservation) (Address, error) {
	// authorize saw that no live pod but this one holds it.
	if err := b.claimReservation(ctx, res, pod); err != nil {
		return Address{}, err
	}
	a, found, err := b.lookup(ctx, res.Spec.AllocationID)
	if err != nil {
		return Address{}, err
	}
	if !found {
		return Address{}, fmt.Errorf("reserved address %s (%s) no longer exists in EC2: %w", res.Spec.PublicIP, res.Spec.AllocationID, errTerminal)
	}
	if ownedElsewhere(a.Tags, b.Cluster) {
		return Address{}, fmt.Errorf("address %s is tagged for cluster %q; remove it from the pool: %w", a.PublicIP, a.Tags[api.TagCluster], errTerminal)
	}
	if a.AssociationID != "" && !a.On(Target{ENI: a.ENI, PrivateIP: pod.Status.PodIP}) && !ourAssociation(a, res, b.Cluster) {
		// Checked before the address is tagged as ours: once tagged, the
		// sweep would count the association as a stale one of its own.
		return Address{}, fmt.Errorf("reserved address %s is associated with %s %s outside kube-eip; it is not taken: %w", a.PublicIP, a.ENI, a.PrivateIP, errTerminal)
	}
	if a.Tags[api.TagCluster] != b.Cluster {
		// Every address the binder touches says whose it is.
		if _, err := b.EC2.CreateTags(ctx, &ec2.CreateTagsInput{
			Resources: []string{a.AllocationID}, Tags: ec2Tags(map[string]string{api.TagCluster: b.Cluster}),
		}); err != nil {
			return Address{}, fmt.Errorf("tagging %s as this cluster's: %w", a.AllocationID, err)
		}
		a.Tags = maps.Clone(a.Tags)
		if a.Tags == nil {
			a.Tags = map[string]string{}
		}
		a.Tags[api.TagCluster] = b.Cluster
		b.inv.put(a)
	}
	return a, nil
}

// associate puts addr on target. Only an association kube-eip made may be
// moved off first (ourAssociation); one made by someone else is never
// taken.
func (b *Binder) associate(ctx context.Context, addr Address, res *v1alpha1.EIPReservation, target Target) (Address, error) {
	if addr.AssociationID != "" {
		if !ourAssociation(addr, res, b.Cluster) {
			return addr, fmt.Errorf("address %s is associated with %s %s outside kube-eip; it is not taken: %w", addr.PublicIP, addr.ENI, addr.PrivateIP, errTerminal)
		}
		if err := b.disassociate(ctx, addr); err != nil {
			return addr, err
		}
		addr.AssociationID, addr.ENI, addr.PrivateIP = "", "", ""
	}
	return b.associateCall(ctx, addr, target, false)
}

// associateCall is the one AssociateAddress of a bind or a floating move,
// with the inventory kept up to date: with the new association, or, where
// the answer says or may mean that our view is stale, read afresh for the
// retry. Reassociation is allowed only when the caller has made sure the
// association it replaces is kube-eip's.
func (b *Binder) associateCall(ctx context.Context, addr Address, target Target, reassociate bool) (Address, error) {
	out, err := b.EC2.AssociateAddress(ctx, &ec2.AssociateAddressInput{
		AllocationId:       aws.String(addr.AllocationID),
		NetworkInterfaceId: aws.String(target.ENI),
		PrivateIpAddress:   aws.String(target.PrivateIP),
		AllowReassociation: aws.Bool(reassociate),
	})
	if err != nil {
		if cloud.IsAlreadyAssociated(err) || cloud.IsNotFound(err) || reassociate && mayHaveApplied(err) {
			_, _ = b.describe(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{addr.AllocationID}})
		}
		return addr, fmt.Errorf("associating %s with %s %s: %w", addr.AllocationID, target.ENI, target.PrivateIP, err)
	}
	addr.AssociationID, addr.ENI, addr.PrivateIP = aws.ToString(out.AssociationId), target.ENI, target.PrivateIP
	b.inv.update(addr.AllocationID, func(a *Address) {
		a.AssociationID, a.ENI, a.PrivateIP = addr.AssociationID, addr.ENI, addr.PrivateIP
	})
	return addr, nil
}

func (b *Binder) disassociate(ctx context.Context, addr Address) error {
	_, err := b.EC2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(addr.AssociationID)})
	if err != nil && !cloud.IsNotFound(err) {
		return fmt.Errorf("disassociating %s (%s) from %s %s: %w", addr.PublicIP, addr.AssociationID, addr.ENI, addr.PrivateIP, err)
	}
	b.inv.update(addr.AllocationID, func(a *Address) {
		if a.AssociationID == addr.AssociationID {
			a.AssociationID, a.ENI, a.PrivateIP = "", "", ""
		}
	})
	return nil
}

func (b *Binder) releaseAddress(ctx context.Context, addr Address) error {
	_, err := b.EC2.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(addr.AllocationID)})
	if err != nil && !cloud.IsNotFound(err) {
		return fmt.Errorf("releasing %s (%s): %w", addr.PublicIP, addr.AllocationID, err)
	}
	b.inv.remove(addr.AllocationID)
	if err == nil {
		// Room in the account's quota: a waiting pod takes it.
		b.wakeAll(b.quota.freed(1))
	}
	return nil
}

// describe reads addresses from EC2 into the inventory. Unknown allocation
// ids are not an error: the answer is simply empty.
func (b *Binder) describe(ctx context.Context, in *ec2.DescribeAddressesInput) ([]Address, error) {
	out, err := b.EC2.DescribeAddresses(ctx, in)
	if err != nil {
		if cloud.IsNotFound(err) {
			for _, id := range in.AllocationIds {
				b.inv.remove(id)
			}
			return nil, nil
		}
		return nil, err
	}
	addrs := make([]Address, 0, len(out.Addresses))
	for _, x := range out.Addresses {
		a := addressFromEC2(x)
		b.inv.put(a)
		addrs = append(addrs, a)
	}
	return addrs, nil
}

func ec2Tags(m map[string]string) []types.Tag {
	tags := make([]types.Tag, 0, len(m))
	for k, v := range m {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return tags
}

func isTargetGone(err error) bool {
	return cloud.IsNotFound(err) || cloud.Code(err) == "InvalidParameterValue"
}
