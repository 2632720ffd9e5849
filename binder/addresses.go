package binder

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// errTerminal marks a problem that retrying cannot fix; the pod needs a
// person (the event says what to do).
var errTerminal = errors.New("cannot be retried")

func owner(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

// obtain returns the pod's address: its reservation's, the one already
// allocated for it, or a new one.
func (b *Binder) obtain(ctx context.Context, pod *corev1.Pod) (Address, error) {
	if name := pod.Annotations[api.AnnotationReservation]; name != "" {
		return b.fromReservation(ctx, pod, name)
	}
	req, _, _ := api.ParseRequest(pod.Annotations)
	claim := pod.Annotations[api.AnnotationClaim]
	if req == nil || claim == "" {
		return Address{}, fmt.Errorf("the pod carries no kube-eip request or claim; it was not admitted by kube-eip: %w", errTerminal)
	}
	// The address recorded on the pod first: should EC2 ever hold two for
	// one claim (a lost answer, a Describe not yet showing the first), the
	// pod keeps the one it has and the sweep releases the other.
	if id := pod.Annotations[api.AnnotationAllocationID]; id != "" {
		if a, ok := b.inv.get(id); ok && a.Tags[api.TagCluster] == b.Cluster &&
			(a.Tags[api.TagClaim] == claim || a.Tags[api.TagMode] == string(api.ModeSticky) && a.Tags[api.TagOwner] == owner(pod)) {
			return a, nil
		}
	}
	if a, ok := b.inv.find(map[string]string{api.TagCluster: b.Cluster, api.TagClaim: claim}); ok {
		return a, nil
	}
	if req.Mode == api.ModeSticky {
		// Kept for this pod's name since an earlier incarnation.
		if a, ok := b.inv.find(map[string]string{api.TagCluster: b.Cluster, api.TagMode: string(api.ModeSticky), api.TagOwner: owner(pod)}); ok {
			return a, nil
		}
	}
	// An earlier AllocateAddress for this pod may have succeeded without
	// us hearing of it: look for its token first.
	if a, found, err := b.findUncertain(ctx, claim); err != nil || found {
		return a, err
	}
	return b.allocate(ctx, pod, req, claim)
}

// findUncertain looks in EC2 for the address of a claim whose allocation
// failed in a way that may still have allocated; it asks nothing when no
// such failure happened.
func (b *Binder) findUncertain(ctx context.Context, claim string) (Address, bool, error) {
	if !b.inv.isUncertain(claim) {
		return Address{}, false, nil
	}
	found, err := b.describe(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + api.TagClaim), Values: []string{claim}},
		{Name: aws.String("tag:" + api.TagCluster), Values: []string{b.Cluster}},
	}})
	if err != nil {
		return Address{}, false, fmt.Errorf("looking for an address allocated earlier for claim %s: %w", claim, err)
	}
	b.inv.setUncertain(claim, false)
	a, ok := firstOf(found)
	return a, ok, nil
}

func (b *Binder) allocate(ctx context.Context, pod *corev1.Pod, req *api.Request, claim string) (Address, error) {
	tags := map[string]string{
		api.TagCluster: b.Cluster,
		api.TagClaim:   claim,
		api.TagOwner:   owner(pod),
		api.TagMode:    string(req.Mode),
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && req.Mode == api.ModeSticky {
		tags[api.TagController] = ref.Kind + "/" + ref.Name
	}
	in := &ec2.AllocateAddressInput{
		Domain:            types.DomainTypeVpc,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeElasticIp, Tags: ec2Tags(tags)}},
	}
	if p := req.PublicIPv4Pool; p != "" && p != "amazon" {
		in.PublicIpv4Pool = aws.String(p)
	}
	out, err := b.EC2.AllocateAddress(ctx, in)
	if err != nil {
		if mayHaveApplied(err) {
			b.inv.setUncertain(claim, true)
		}
		if cloud.IsQuotaExceeded(err) {
			return Address{}, fmt.Errorf("allocating an address: the account's Elastic IP quota is used up; release unused addresses or request a higher quota: %w", err)
		}
		return Address{}, fmt.Errorf("allocating an address: %w", err)
	}
	a := Address{AllocationID: aws.ToString(out.AllocationId), PublicIP: aws.ToString(out.PublicIp), Tags: tags}
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

// fromReservation claims the pod's EIPReservation and returns its address.
func (b *Binder) fromReservation(ctx context.Context, pod *corev1.Pod, name string) (Address, error) {
	res := &v1alpha1.EIPReservation{}
	if err := b.Client.Get(ctx, client.ObjectKey{Name: name}, res); err != nil {
		return Address{}, fmt.Errorf("reading reservation %s: %w", name, err)
	}
	if uid := res.Status.PodUID; uid != string(pod.UID) {
		if uid != "" && b.podExists(ctx, uid) {
			return Address{}, fmt.Errorf("reservation %s is still held by pod %s, which is going away", name, res.Status.PodName)
		}
		base := res.DeepCopy()
		res.Status.PodUID, res.Status.PodName, res.Status.Phase = string(pod.UID), pod.Name, v1alpha1.ReservationClaimed
		if err := b.Client.Status().Patch(ctx, res, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return Address{}, fmt.Errorf("claiming reservation %s: %w", name, err)
		}
	}
	a, ok := b.inv.get(res.Spec.AllocationID)
	if !ok {
		found, err := b.describe(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{res.Spec.AllocationID}})
		if err != nil {
			return Address{}, fmt.Errorf("reading reserved address %s: %w", res.Spec.AllocationID, err)
		}
		if len(found) == 0 {
			return Address{}, fmt.Errorf("reserved address %s (%s) no longer exists in EC2: %w", res.Spec.PublicIP, res.Spec.AllocationID, errTerminal)
		}
		a = found[0]
	}
	if ownedElsewhere(a.Tags, b.Cluster) {
		return Address{}, fmt.Errorf("address %s is tagged for cluster %q; remove it from the pool: %w", a.PublicIP, a.Tags[api.TagCluster], errTerminal)
	}
	if a.AssociationID != "" && !a.On(Target{ENI: a.ENI, PrivateIP: pod.Status.PodIP}) && !b.ownsAssociation(ctx, pod, a) {
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

// associate puts addr on target. An address allocated for this pod may be
// moved off a stale association; a reserved pool address associated by
// someone else is never taken.
func (b *Binder) associate(ctx context.Context, pod *corev1.Pod, addr Address, target Target) (Address, error) {
	if addr.AssociationID != "" {
		if !b.ownsAssociation(ctx, pod, addr) {
			return addr, fmt.Errorf("address %s is associated with %s %s outside kube-eip; it is not taken: %w", addr.PublicIP, addr.ENI, addr.PrivateIP, errTerminal)
		}
		if err := b.disassociate(ctx, addr); err != nil {
			return addr, err
		}
		addr.AssociationID, addr.ENI, addr.PrivateIP = "", "", ""
	}
	out, err := b.EC2.AssociateAddress(ctx, &ec2.AssociateAddressInput{
		AllocationId:       aws.String(addr.AllocationID),
		NetworkInterfaceId: aws.String(target.ENI),
		PrivateIpAddress:   aws.String(target.PrivateIP),
		AllowReassociation: aws.Bool(false),
	})
	if err != nil {
		if cloud.IsAlreadyAssociated(err) || cloud.IsNotFound(err) {
			// Our view is stale: read the address again for the retry.
			if found, derr := b.describe(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{addr.AllocationID}}); derr == nil && len(found) == 1 {
				b.inv.put(found[0])
			}
		}
		return addr, fmt.Errorf("associating %s with %s %s: %w", addr.AllocationID, target.ENI, target.PrivateIP, err)
	}
	addr.AssociationID, addr.ENI, addr.PrivateIP = aws.ToString(out.AssociationId), target.ENI, target.PrivateIP
	b.inv.update(addr.AllocationID, func(a *Address) {
		a.AssociationID, a.ENI, a.PrivateIP = addr.AssociationID, addr.ENI, addr.PrivateIP
	})
	return addr, nil
}

// ownsAssociation tells whether an association of the pod's address was
// made by kube-eip: addresses it allocated are only ever associated by it,
// and a reserved address's association is ours when a managed pod
// recorded it.
func (b *Binder) ownsAssociation(ctx context.Context, pod *corev1.Pod, addr Address) bool {
	if addr.Tags[api.TagClaim] != "" && addr.Tags[api.TagCluster] == b.Cluster {
		return true
	}
	if addr.AssociationID == pod.Annotations[api.AnnotationAssociationID] {
		return true
	}
	var pods corev1.PodList
	if err := b.Client.List(ctx, &pods, client.MatchingFields{indexAssociation: addr.AssociationID}); err != nil {
		return false
	}
	return len(pods.Items) > 0
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

// podExists tells whether a pod with this UID is still in the cache.
func (b *Binder) podExists(ctx context.Context, uid string) bool {
	var pods corev1.PodList
	if err := b.Client.List(ctx, &pods, client.MatchingFields{indexUID: uid}); err != nil {
		return true // unsure: wait
	}
	return len(pods.Items) > 0
}
