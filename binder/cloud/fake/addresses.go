package fake

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// AllocateAddress allocates an address with the tags of its
// TagSpecifications in the same step, so no untagged address ever exists.
func (f *EC2) AllocateAddress(ctx context.Context, in *ec2.AllocateAddressInput, _ ...func(*ec2.Options)) (*ec2.AllocateAddressOutput, error) {
	return run(ctx, f, "AllocateAddress", in, f.allocateAddress)
}

func (f *EC2) allocateAddress(in *ec2.AllocateAddressInput) (*ec2.AllocateAddressOutput, error) {
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	if in.Address != nil {
		return nil, invalidValue("The fake cannot recover address %s.", *in.Address)
	}
	tags, err := specTags(in.TagSpecifications, types.ResourceTypeElasticIp)
	if err != nil {
		return nil, err
	}
	if f.quota >= 0 && len(f.addresses) >= f.quota {
		return nil, apiError("AddressLimitExceeded", "The maximum number of addresses has been reached.")
	}
	if g := aws.ToString(in.NetworkBorderGroup); g != "" && g != fakeRegion {
		return nil, invalidValue("Invalid value '%s' for NetworkBorderGroup.", g)
	}
	pool := aws.ToString(in.PublicIpv4Pool)
	if pool == "" {
		pool = amazonPool
	} else if !f.pools[pool] {
		return nil, apiError("InvalidPublicIpv4PoolID.NotFound", "The public IPv4 pool ID '%s' does not exist", pool)
	}
	ip, err := f.newPublicIP()
	if err != nil {
		return nil, err
	}
	a := &Address{AllocationID: f.newID("eipalloc"), PublicIP: ip, PublicIPv4Pool: pool, Tags: tags}
	f.addresses[a.AllocationID] = a
	return &ec2.AllocateAddressOutput{
		AllocationId:       aws.String(a.AllocationID),
		PublicIp:           aws.String(a.PublicIP),
		PublicIpv4Pool:     aws.String(a.PublicIPv4Pool),
		NetworkBorderGroup: aws.String(fakeRegion),
		Domain:             types.DomainTypeVpc,
	}, nil
}

// specTags collects the tags of the TagSpecifications, refusing resource
// types the action does not create, as EC2 does.
func specTags(specs []types.TagSpecification, want types.ResourceType) (map[string]string, error) {
	var tags map[string]string
	for _, s := range specs {
		if s.ResourceType != want {
			return nil, invalidValue("'%s' is not a valid taggable resource type for this operation.", s.ResourceType)
		}
		t, err := tagMap(s.Tags)
		if err != nil {
			return nil, err
		}
		if tags == nil {
			tags = map[string]string{}
		}
		maps.Copy(tags, t)
	}
	return tags, nil
}

func tagMap(tags []types.Tag) (map[string]string, error) {
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		k := aws.ToString(t.Key)
		switch {
		case k == "":
			return nil, invalidValue("Tag key must not be empty")
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, invalidValue("Tag keys starting with 'aws:' are reserved for internal use")
		case len(k) > 128:
			return nil, invalidValue("Tag key exceeds the maximum length of 128 characters")
		case len(aws.ToString(t.Value)) > 256:
			return nil, invalidValue("Tag value exceeds the maximum length of 256 characters")
		}
		out[k] = aws.ToString(t.Value)
	}
	return out, nil
}

// AssociateAddress maps an address to one private IP of an ENI, moving it
// from wherever it was unless AllowReassociation is explicitly false, and
// displacing any other address on that IP, as EC2 does.
func (f *EC2) AssociateAddress(ctx context.Context, in *ec2.AssociateAddressInput, _ ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error) {
	return run(ctx, f, "AssociateAddress", in, f.associateAddress)
}

func (f *EC2) associateAddress(in *ec2.AssociateAddressInput) (*ec2.AssociateAddressOutput, error) {
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	// EC2 also accepts PublicIp and InstanceId; the binder names both ends
	// precisely, and so must every caller of the fake.
	if in.AllocationId == nil {
		return nil, missingParameter("AllocationId")
	}
	if in.NetworkInterfaceId == nil {
		return nil, missingParameter("NetworkInterfaceId")
	}
	a := f.addresses[*in.AllocationId]
	if a == nil {
		return nil, allocationNotFound(*in.AllocationId)
	}
	eni := f.enis[*in.NetworkInterfaceId]
	if eni == nil {
		return nil, eniNotFound(*in.NetworkInterfaceId)
	}
	ip := aws.ToString(in.PrivateIpAddress)
	if ip == "" {
		ip = eni.privateIPs[0]
	} else if !eni.holds(ip) {
		return nil, invalidValue("The private IP address %s is not assigned to network interface %s.", ip, eni.id)
	}
	if a.AssociationID != "" {
		if a.NetworkInterfaceID == eni.id && a.PrivateIP == ip {
			// Already where the caller wants it: nothing moves.
			return &ec2.AssociateAddressOutput{AssociationId: aws.String(a.AssociationID)}, nil
		}
		// Unset means "reassociate" in a VPC; only an explicit false refuses.
		if in.AllowReassociation != nil && !*in.AllowReassociation {
			return nil, apiError("Resource.AlreadyAssociated",
				"resource %s is already associated with associate-id %s", a.AllocationID, a.AssociationID)
		}
	}
	if other := f.addressOn(eni.id, ip); other != nil {
		disassociate(other)
	}
	a.AssociationID, a.NetworkInterfaceID, a.PrivateIP = f.newID("eipassoc"), eni.id, ip
	return &ec2.AssociateAddressOutput{AssociationId: aws.String(a.AssociationID)}, nil
}

// DisassociateAddress unmaps an address by its association id.
func (f *EC2) DisassociateAddress(ctx context.Context, in *ec2.DisassociateAddressInput, _ ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error) {
	return run(ctx, f, "DisassociateAddress", in, f.disassociateAddress)
}

func (f *EC2) disassociateAddress(in *ec2.DisassociateAddressInput) (*ec2.DisassociateAddressOutput, error) {
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	if in.AssociationId == nil {
		return nil, missingParameter("AssociationId")
	}
	for _, a := range f.addresses {
		if a.AssociationID == *in.AssociationId {
			disassociate(a)
			return &ec2.DisassociateAddressOutput{}, nil
		}
	}
	return nil, apiError("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", *in.AssociationId)
}

// ReleaseAddress gives an address back. Outside the default VPC EC2
// refuses to release an associated address rather than unmap it silently.
func (f *EC2) ReleaseAddress(ctx context.Context, in *ec2.ReleaseAddressInput, _ ...func(*ec2.Options)) (*ec2.ReleaseAddressOutput, error) {
	return run(ctx, f, "ReleaseAddress", in, f.releaseAddress)
}

func (f *EC2) releaseAddress(in *ec2.ReleaseAddressInput) (*ec2.ReleaseAddressOutput, error) {
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	if in.AllocationId == nil {
		return nil, missingParameter("AllocationId")
	}
	a := f.addresses[*in.AllocationId]
	switch {
	case a == nil:
		return nil, allocationNotFound(*in.AllocationId)
	case a.AssociationID != "":
		return nil, apiError("InvalidIPAddress.InUse", "Address %s is in use.", a.PublicIP)
	}
	delete(f.addresses, a.AllocationID)
	return &ec2.ReleaseAddressOutput{}, nil
}

var addressFilters = map[string]bool{
	"allocation-id": true, "association-id": true, "instance-id": true, "network-interface-id": true,
	"private-ip-address": true, "public-ip": true, "public-ipv4-pool": true,
}

// DescribeAddresses lists addresses by id, public IP and filters. Naming an
// address that does not exist fails the whole call, as in EC2.
func (f *EC2) DescribeAddresses(ctx context.Context, in *ec2.DescribeAddressesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error) {
	return run(ctx, f, "DescribeAddresses", in, f.describeAddresses)
}

func (f *EC2) describeAddresses(in *ec2.DescribeAddressesInput) (*ec2.DescribeAddressesOutput, error) {
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, addressFilters, true); err != nil {
		return nil, err
	}
	ids := slices.Sorted(maps.Keys(f.addresses))
	if len(in.AllocationIds)+len(in.PublicIps) > 0 {
		wanted := map[string]bool{}
		for _, id := range in.AllocationIds {
			if f.addresses[id] == nil {
				return nil, allocationNotFound(id)
			}
			wanted[id] = true
		}
		for _, ip := range in.PublicIps {
			i := slices.IndexFunc(ids, func(id string) bool { return f.addresses[id].PublicIP == ip })
			if i < 0 {
				return nil, apiError("InvalidAddress.NotFound", "Address '%s' not found.", ip)
			}
			wanted[ids[i]] = true
		}
		ids = slices.Sorted(maps.Keys(wanted))
	}
	out := &ec2.DescribeAddressesOutput{}
	for _, id := range ids {
		a := f.copyOf(f.addresses[id])
		if matchFilters(in.Filters, func(name string) []string { return addressValues(&a, name) }) {
			out.Addresses = append(out.Addresses, render(&a))
		}
	}
	return out, nil
}

func addressValues(a *Address, name string) []string {
	switch name {
	case "allocation-id":
		return nonEmpty(a.AllocationID)
	case "association-id":
		return nonEmpty(a.AssociationID)
	case "instance-id":
		return nonEmpty(a.InstanceID)
	case "network-interface-id":
		return nonEmpty(a.NetworkInterfaceID)
	case "private-ip-address":
		return nonEmpty(a.PrivateIP)
	case "public-ip":
		return nonEmpty(a.PublicIP)
	case "public-ipv4-pool":
		return nonEmpty(a.PublicIPv4Pool)
	}
	return tagValues(name, a.Tags)
}

// render builds the SDK's view of a copy, so nothing it holds is shared.
func render(a *Address) types.Address {
	out := types.Address{
		AllocationId:       aws.String(a.AllocationID),
		PublicIp:           aws.String(a.PublicIP),
		PublicIpv4Pool:     aws.String(a.PublicIPv4Pool),
		NetworkBorderGroup: aws.String(fakeRegion),
		Domain:             types.DomainTypeVpc,
		AssociationId:      optional(a.AssociationID),
		NetworkInterfaceId: optional(a.NetworkInterfaceID),
		PrivateIpAddress:   optional(a.PrivateIP),
		InstanceId:         optional(a.InstanceID),
	}
	for _, k := range slices.Sorted(maps.Keys(a.Tags)) {
		out.Tags = append(out.Tags, types.Tag{Key: aws.String(k), Value: aws.String(a.Tags[k])})
	}
	return out
}

// CreateTags adds or overwrites tags on addresses. Every resource is
// checked before any is touched: EC2 applies all or nothing.
func (f *EC2) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	return run(ctx, f, "CreateTags", in, f.createTags)
}

func (f *EC2) createTags(in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	switch {
	case len(in.Resources) == 0:
		return nil, missingParameter("ResourceId")
	case len(in.Tags) == 0:
		return nil, missingParameter("Tag")
	}
	tags, err := tagMap(in.Tags)
	if err != nil {
		return nil, err
	}
	targets := make([]*Address, 0, len(in.Resources))
	for _, id := range in.Resources {
		if !strings.HasPrefix(id, "eipalloc-") {
			// The binder tags nothing else; the fake keeps no other tags.
			return nil, apiError("InvalidID", "The ID '%s' is not valid", id)
		}
		a := f.addresses[id]
		if a == nil {
			return nil, allocationNotFound(id)
		}
		targets = append(targets, a)
	}
	for _, a := range targets {
		if a.Tags == nil {
			a.Tags = map[string]string{}
		}
		maps.Copy(a.Tags, tags)
	}
	return &ec2.CreateTagsOutput{}, nil
}

// DeleteTags removes tags from addresses: a tag given with a value only
// where the value matches, one given without a value whatever it is.
func (f *EC2) DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, _ ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error) {
	return run(ctx, f, "DeleteTags", in, f.deleteTags)
}

func (f *EC2) deleteTags(in *ec2.DeleteTagsInput) (*ec2.DeleteTagsOutput, error) {
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	if len(in.Resources) == 0 {
		return nil, missingParameter("ResourceId")
	}
	targets := make([]*Address, 0, len(in.Resources))
	for _, id := range in.Resources {
		a := f.addresses[id]
		if !strings.HasPrefix(id, "eipalloc-") || a == nil {
			return nil, allocationNotFound(id)
		}
		targets = append(targets, a)
	}
	for _, a := range targets {
		if len(in.Tags) == 0 {
			a.Tags = nil
		}
		for _, t := range in.Tags {
			k := aws.ToString(t.Key)
			if t.Value == nil || a.Tags[k] == aws.ToString(t.Value) {
				delete(a.Tags, k)
			}
		}
	}
	return &ec2.DeleteTagsOutput{}, nil
}
