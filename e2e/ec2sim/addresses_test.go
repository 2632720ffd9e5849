package ec2sim

import (
	"context"
	"net/netip"
	"regexp"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

var (
	allocIDPattern = regexp.MustCompile(`^eipalloc-[0-9a-f]{17}$`)
	assocIDPattern = regexp.MustCompile(`^eipassoc-[0-9a-f]{17}$`)
)

func TestAllocateAddress(t *testing.T) {
	opts := unthrottled()
	opts.PublicIPv4Pools = PublicIPv4Pools{"ipv4pool-ec2-0123456789abcdef0": "198.51.100.0/24"}
	_, c, ctx := setupWith(t, opts)

	out, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{
		Domain: types.DomainTypeVpc,
		TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeElasticIp,
			Tags:         []types.Tag{{Key: aws.String("kube-eip.io/cluster"), Value: aws.String("dev")}},
		}},
	})
	noErr(t, err)
	if !allocIDPattern.MatchString(aws.ToString(out.AllocationId)) {
		t.Errorf("allocation id %q is not in AWS's format", aws.ToString(out.AllocationId))
	}
	ip := netip.MustParseAddr(aws.ToString(out.PublicIp))
	if !slices.ContainsFunc(amazonRanges, func(p netip.Prefix) bool { return p.Contains(ip) }) {
		t.Errorf("public IP %s is outside Amazon's ranges", ip)
	}
	if out.Domain != types.DomainTypeVpc || aws.ToString(out.PublicIpv4Pool) != "amazon" || aws.ToString(out.NetworkBorderGroup) != "us-east-1" {
		t.Errorf("got domain %q pool %q border group %q", out.Domain, aws.ToString(out.PublicIpv4Pool), aws.ToString(out.NetworkBorderGroup))
	}
	got := describeAddress(t, ctx, c, aws.ToString(out.AllocationId))
	if tagMap(got.Tags)["kube-eip.io/cluster"] != "dev" || got.AssociationId != nil {
		t.Errorf("described address %+v, want the tag and no association", got)
	}

	byoip, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{PublicIpv4Pool: aws.String("ipv4pool-ec2-0123456789abcdef0")})
	noErr(t, err)
	if !netip.MustParsePrefix("198.51.100.0/24").Contains(netip.MustParseAddr(aws.ToString(byoip.PublicIp))) ||
		aws.ToString(byoip.PublicIpv4Pool) != "ipv4pool-ec2-0123456789abcdef0" {
		t.Errorf("BYOIP allocation %s from %s, want 198.51.100.0/24", aws.ToString(byoip.PublicIp), aws.ToString(byoip.PublicIpv4Pool))
	}

	for _, tc := range []struct {
		name string
		in   ec2.AllocateAddressInput
		code string
	}{
		{"classic domain", ec2.AllocateAddressInput{Domain: types.DomainTypeStandard}, "InvalidParameterValue"},
		{"unknown pool", ec2.AllocateAddressInput{PublicIpv4Pool: aws.String("ipv4pool-ec2-0fffffffffffffff0")}, "InvalidPublicIpv4PoolID.NotFound"},
		{"malformed pool", ec2.AllocateAddressInput{PublicIpv4Pool: aws.String("mine")}, "InvalidParameterValue"},
		{"wrong tag resource type", ec2.AllocateAddressInput{TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}},
		}}}, "InvalidParameterValue"},
		{"reserved tag key", ec2.AllocateAddressInput{TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeElasticIp, Tags: []types.Tag{{Key: aws.String("aws:owner"), Value: aws.String("b")}},
		}}}, "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AllocateAddress(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}
}

func TestAddressQuota(t *testing.T) {
	_, c, ctx := setup(t)
	seen := map[string]bool{}
	var ids []string
	for range 5 {
		out := allocate(t, ctx, c)
		if seen[aws.ToString(out.PublicIp)] {
			t.Fatalf("public IP %s handed out twice", aws.ToString(out.PublicIp))
		}
		seen[aws.ToString(out.PublicIp)] = true
		ids = append(ids, aws.ToString(out.AllocationId))
	}
	_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	wantCode(t, err, "AddressLimitExceeded")

	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(ids[0])})
	noErr(t, err)
	allocate(t, ctx, c)
}

func TestAddressQuotaIsConfigurable(t *testing.T) {
	opts := unthrottled()
	opts.EIPQuota = 2
	_, c, ctx := setupWith(t, opts)
	allocate(t, ctx, c)
	allocate(t, ctx, c)
	_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	wantCode(t, err, "AddressLimitExceeded")
}

// eipFixture is an instance with a secondary IP, a second ENI-less instance
// and an Elastic IP, the usual cast of the association tests.
type eipFixture struct {
	instance, other types.Instance
	eni             types.NetworkInterface
	secondary       string
	allocID         string
}

func newEIPFixture(t *testing.T, ctx context.Context, c *ec2.Client) eipFixture {
	t.Helper()
	var f eipFixture
	f.instance = launch(t, ctx, c, "us-east-1a")
	f.other = launch(t, ctx, c, "us-east-1b")
	eniID := aws.ToString(f.instance.NetworkInterfaces[0].NetworkInterfaceId)
	assigned, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{
		NetworkInterfaceId: aws.String(eniID), SecondaryPrivateIpAddressCount: aws.Int32(1),
	})
	noErr(t, err)
	f.secondary = aws.ToString(assigned.AssignedPrivateIpAddresses[0].PrivateIpAddress)
	f.eni = describeENI(t, ctx, c, eniID)
	f.allocID = aws.ToString(allocate(t, ctx, c).AllocationId)
	return f
}

func TestAssociateAddressWithPrivateIP(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)

	out, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{
		AllocationId:       aws.String(f.allocID),
		NetworkInterfaceId: f.eni.NetworkInterfaceId,
		PrivateIpAddress:   aws.String(f.secondary),
		AllowReassociation: aws.Bool(false),
	})
	noErr(t, err)
	if !assocIDPattern.MatchString(aws.ToString(out.AssociationId)) {
		t.Errorf("association id %q is not in AWS's format", aws.ToString(out.AssociationId))
	}
	a := describeAddress(t, ctx, c, f.allocID)
	if aws.ToString(a.AssociationId) != aws.ToString(out.AssociationId) ||
		aws.ToString(a.NetworkInterfaceId) != aws.ToString(f.eni.NetworkInterfaceId) ||
		aws.ToString(a.PrivateIpAddress) != f.secondary ||
		aws.ToString(a.InstanceId) != aws.ToString(f.instance.InstanceId) ||
		aws.ToString(a.NetworkInterfaceOwnerId) == "" {
		t.Errorf("described address %+v does not show the association", a)
	}
	eni := describeENI(t, ctx, c, aws.ToString(f.eni.NetworkInterfaceId))
	for _, p := range eni.PrivateIpAddresses {
		onSecondary := aws.ToString(p.PrivateIpAddress) == f.secondary
		if hasAssoc := p.Association != nil; hasAssoc != onSecondary {
			t.Errorf("private IP %s association %+v", aws.ToString(p.PrivateIpAddress), p.Association)
		}
		if onSecondary && aws.ToString(p.Association.PublicIp) != aws.ToString(a.PublicIp) {
			t.Errorf("ENI shows public IP %s, want %s", aws.ToString(p.Association.PublicIp), aws.ToString(a.PublicIp))
		}
	}

	// The same target again, even with reassociation refused, changes nothing.
	again, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{
		AllocationId: aws.String(f.allocID), NetworkInterfaceId: f.eni.NetworkInterfaceId,
		PrivateIpAddress: aws.String(f.secondary), AllowReassociation: aws.Bool(false),
	})
	noErr(t, err)
	if aws.ToString(again.AssociationId) != aws.ToString(out.AssociationId) {
		t.Errorf("re-associating to the same target gave %s, want %s", aws.ToString(again.AssociationId), aws.ToString(out.AssociationId))
	}
}

func TestAssociateAddressWithInstance(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)
	_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID), InstanceId: f.instance.InstanceId})
	noErr(t, err)
	a := describeAddress(t, ctx, c, f.allocID)
	if aws.ToString(a.PrivateIpAddress) != aws.ToString(f.instance.PrivateIpAddress) ||
		aws.ToString(a.NetworkInterfaceId) != aws.ToString(f.eni.NetworkInterfaceId) {
		t.Errorf("instance association went to %s on %s, want the primary IP %s",
			aws.ToString(a.PrivateIpAddress), aws.ToString(a.NetworkInterfaceId), aws.ToString(f.instance.PrivateIpAddress))
	}
	inst, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(f.instance.InstanceId)}})
	noErr(t, err)
	if got := aws.ToString(inst.Reservations[0].Instances[0].PublicIpAddress); got != aws.ToString(a.PublicIp) {
		t.Errorf("instance public IP = %q, want %s", got, aws.ToString(a.PublicIp))
	}
}

func TestReassociation(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)
	first, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID), InstanceId: f.instance.InstanceId})
	noErr(t, err)

	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{
		AllocationId: aws.String(f.allocID), InstanceId: f.other.InstanceId, AllowReassociation: aws.Bool(false),
	})
	wantCode(t, err, "Resource.AlreadyAssociated")
	if a := describeAddress(t, ctx, c, f.allocID); aws.ToString(a.InstanceId) != aws.ToString(f.instance.InstanceId) {
		t.Fatalf("refused reassociation moved the address to %s", aws.ToString(a.InstanceId))
	}

	for _, allow := range []*bool{nil, aws.Bool(true)} {
		target := f.other
		if allow != nil {
			target = f.instance
		}
		moved, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{
			AllocationId: aws.String(f.allocID), InstanceId: target.InstanceId, AllowReassociation: allow,
		})
		noErr(t, err)
		if a := describeAddress(t, ctx, c, f.allocID); aws.ToString(a.InstanceId) != aws.ToString(target.InstanceId) ||
			aws.ToString(a.AssociationId) != aws.ToString(moved.AssociationId) {
			t.Fatalf("address on %s (%s), want it moved to %s (%s)", aws.ToString(a.InstanceId), aws.ToString(a.AssociationId),
				aws.ToString(target.InstanceId), aws.ToString(moved.AssociationId))
		}
	}
	_, err = c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: first.AssociationId})
	wantCode(t, err, "InvalidAssociationID.NotFound")
}

func TestAssociatingSecondAddressDisplacesFirst(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)
	second := aws.ToString(allocate(t, ctx, c).AllocationId)
	for _, id := range []string{f.allocID, second} {
		_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(id), InstanceId: f.instance.InstanceId})
		noErr(t, err)
	}
	if a := describeAddress(t, ctx, c, f.allocID); a.AssociationId != nil {
		t.Errorf("first address still associated: %+v", a)
	}
	if a := describeAddress(t, ctx, c, second); aws.ToString(a.InstanceId) != aws.ToString(f.instance.InstanceId) {
		t.Errorf("second address not on the instance: %+v", a)
	}
}

func TestAssociateAddressErrors(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)
	// A second ENI on the instance makes InstanceId ambiguous.
	multi := launch(t, ctx, c, "us-east-1c")
	extra := createENI(t, ctx, c, aws.ToString(multi.SubnetId))
	_, err := c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{
		NetworkInterfaceId: extra.NetworkInterfaceId, InstanceId: multi.InstanceId, DeviceIndex: aws.Int32(1),
	})
	noErr(t, err)
	gone := launch(t, ctx, c, "us-east-1c")
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(gone.InstanceId)}})
	noErr(t, err)

	for _, tc := range []struct {
		name string
		in   ec2.AssociateAddressInput
		code string
	}{
		{"no address", ec2.AssociateAddressInput{InstanceId: f.instance.InstanceId}, "MissingParameter"},
		{"no target", ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID)}, "MissingParameter"},
		{"instance and ENI", ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID), InstanceId: f.instance.InstanceId,
			NetworkInterfaceId: f.eni.NetworkInterfaceId}, "InvalidParameterCombination"},
		{"unknown allocation", ec2.AssociateAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0"),
			InstanceId: f.instance.InstanceId}, "InvalidAllocationID.NotFound"},
		{"unknown ENI", ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID),
			NetworkInterfaceId: aws.String("eni-0123456789abcdef0")}, "InvalidNetworkInterfaceID.NotFound"},
		{"malformed ENI", ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID),
			NetworkInterfaceId: aws.String("eni-xyz")}, "InvalidNetworkInterfaceID.Malformed"},
		{"unknown instance", ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID),
			InstanceId: aws.String("i-0123456789abcdef0")}, "InvalidInstanceID.NotFound"},
		{"terminated instance", ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID),
			InstanceId: gone.InstanceId}, "IncorrectInstanceState"},
		{"instance with two ENIs", ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID),
			InstanceId: multi.InstanceId}, "InvalidInstanceID"},
		{"private IP not on the ENI", ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID),
			NetworkInterfaceId: f.eni.NetworkInterfaceId, PrivateIpAddress: aws.String("192.168.31.200")}, "InvalidParameterValue"},
		{"private IP of another ENI", ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID),
			NetworkInterfaceId: f.eni.NetworkInterfaceId, PrivateIpAddress: f.other.PrivateIpAddress}, "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AssociateAddress(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}
	if a := describeAddress(t, ctx, c, f.allocID); a.AssociationId != nil {
		t.Errorf("a refused association left %+v", a)
	}
}

func TestDisassociateAndReleaseAddress(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)
	assoc, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID), InstanceId: f.instance.InstanceId})
	noErr(t, err)
	publicIP := describeAddress(t, ctx, c, f.allocID).PublicIp

	// Outside a default VPC, EC2 refuses to release an associated address.
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(f.allocID)})
	wantCode(t, err, "InvalidIPAddress.InUse")

	for _, tc := range []struct {
		name string
		in   ec2.DisassociateAddressInput
		code string
	}{
		{"nothing named", ec2.DisassociateAddressInput{}, "MissingParameter"},
		{"unknown association", ec2.DisassociateAddressInput{AssociationId: aws.String("eipassoc-0123456789abcdef0")}, "InvalidAssociationID.NotFound"},
		{"public IP of a VPC address", ec2.DisassociateAddressInput{PublicIp: publicIP}, "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.DisassociateAddress(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}

	_, err = c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: assoc.AssociationId})
	noErr(t, err)
	if a := describeAddress(t, ctx, c, f.allocID); a.AssociationId != nil || a.InstanceId != nil || a.PrivateIpAddress != nil {
		t.Errorf("disassociated address still shows %+v", a)
	}
	_, err = c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: assoc.AssociationId})
	wantCode(t, err, "InvalidAssociationID.NotFound")

	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{PublicIp: publicIP})
	wantCode(t, err, "InvalidParameterValue")
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{})
	wantCode(t, err, "MissingParameter")
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(f.allocID)})
	noErr(t, err)
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(f.allocID)})
	wantCode(t, err, "InvalidAllocationID.NotFound")
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{f.allocID}})
	wantCode(t, err, "InvalidAllocationID.NotFound")
}

func TestDescribeAddressesFilters(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)
	tagged, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{TagSpecifications: []types.TagSpecification{{
		ResourceType: types.ResourceTypeElasticIp,
		Tags:         []types.Tag{{Key: aws.String("team"), Value: aws.String("payments")}},
	}}})
	noErr(t, err)
	assoc, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{
		AllocationId: aws.String(f.allocID), NetworkInterfaceId: f.eni.NetworkInterfaceId, PrivateIpAddress: aws.String(f.secondary),
	})
	noErr(t, err)
	bound := describeAddress(t, ctx, c, f.allocID)
	taggedID := aws.ToString(tagged.AllocationId)

	for _, tc := range []struct {
		name   string
		filter types.Filter
		want   []string
	}{
		{"allocation-id", sdkFilter("allocation-id", taggedID), []string{taggedID}},
		{"association-id", sdkFilter("association-id", aws.ToString(assoc.AssociationId)), []string{f.allocID}},
		{"instance-id", sdkFilter("instance-id", aws.ToString(f.instance.InstanceId)), []string{f.allocID}},
		{"network-interface-id", sdkFilter("network-interface-id", aws.ToString(f.eni.NetworkInterfaceId)), []string{f.allocID}},
		{"private-ip-address", sdkFilter("private-ip-address", f.secondary), []string{f.allocID}},
		{"public-ip", sdkFilter("public-ip", aws.ToString(tagged.PublicIp)), []string{taggedID}},
		{"tag value", sdkFilter("tag:team", "payments"), []string{taggedID}},
		{"tag wildcard", sdkFilter("tag:team", "pay*"), []string{taggedID}},
		{"tag value mismatch", sdkFilter("tag:team", "billing"), nil},
		{"tag-key", sdkFilter("tag-key", "team"), []string{taggedID}},
		{"domain", sdkFilter("domain", "vpc"), sortedIDs(f.allocID, taggedID)},
		{"values are ORed", sdkFilter("public-ip", aws.ToString(tagged.PublicIp), aws.ToString(bound.PublicIp)), sortedIDs(f.allocID, taggedID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{tc.filter}})
			noErr(t, err)
			var got []string
			for _, a := range out.Addresses {
				got = append(got, aws.ToString(a.AllocationId))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	byIP, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{aws.ToString(tagged.PublicIp)}})
	noErr(t, err)
	if len(byIP.Addresses) != 1 || aws.ToString(byIP.Addresses[0].AllocationId) != taggedID {
		t.Errorf("by public IP got %+v", byIP.Addresses)
	}
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{"203.0.113.9"}})
	wantCode(t, err, "InvalidAddress.NotFound")
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{sdkFilter("colour", "red")}})
	wantCode(t, err, "InvalidParameterValue")
}

func sdkFilter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
