package ec2sim

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestCreateNetworkInterface(t *testing.T) {
	_, c, ctx := setup(t)
	sub := subnetIn(t, ctx, c, "us-east-1a")
	out, err := c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{
		SubnetId:                       sub.SubnetId,
		Description:                    aws.String("aws-K8S-i-0123"),
		PrivateIpAddress:               aws.String("192.168.10.10"),
		SecondaryPrivateIpAddressCount: aws.Int32(2),
		Ipv4PrefixCount:                aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeNetworkInterface,
			Tags:         []types.Tag{{Key: aws.String("cluster.k8s.amazonaws.com/name"), Value: aws.String("dev")}},
		}},
	})
	noErr(t, err)
	eni := describeENI(t, ctx, c, aws.ToString(out.NetworkInterface.NetworkInterfaceId))
	if aws.ToString(eni.PrivateIpAddress) != "192.168.10.10" || len(eni.PrivateIpAddresses) != 3 ||
		!aws.ToBool(eni.PrivateIpAddresses[0].Primary) || aws.ToBool(eni.PrivateIpAddresses[1].Primary) {
		t.Errorf("addresses %s %+v", aws.ToString(eni.PrivateIpAddress), eni.PrivateIpAddresses)
	}
	if len(eni.Ipv4Prefixes) != 1 || eni.Status != types.NetworkInterfaceStatusAvailable ||
		aws.ToString(eni.VpcId) != aws.ToString(sub.VpcId) || aws.ToString(eni.AvailabilityZone) != "us-east-1a" ||
		aws.ToString(eni.MacAddress) == "" || aws.ToString(eni.Description) != "aws-K8S-i-0123" ||
		tagMap(eni.TagSet)["cluster.k8s.amazonaws.com/name"] != "dev" {
		t.Errorf("described ENI %+v", eni)
	}

	// The SDK fills in a ClientToken; the same token returns the same ENI.
	token := aws.String("token-1")
	first, err := c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sub.SubnetId, ClientToken: token})
	noErr(t, err)
	second, err := c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sub.SubnetId, ClientToken: token})
	noErr(t, err)
	if aws.ToString(first.NetworkInterface.NetworkInterfaceId) != aws.ToString(second.NetworkInterface.NetworkInterfaceId) {
		t.Errorf("retried create with one client token made two ENIs")
	}

	for _, tc := range []struct {
		name string
		in   ec2.CreateNetworkInterfaceInput
		code string
	}{
		{"unknown subnet", ec2.CreateNetworkInterfaceInput{SubnetId: aws.String("subnet-0123456789abcdef0")}, "InvalidSubnetID.NotFound"},
		{"address in use", ec2.CreateNetworkInterfaceInput{SubnetId: sub.SubnetId, PrivateIpAddress: aws.String("192.168.10.10")}, "InvalidIPAddress.InUse"},
		{"address outside subnet", ec2.CreateNetworkInterfaceInput{SubnetId: sub.SubnetId, PrivateIpAddress: aws.String("10.0.0.5")}, "InvalidParameterValue"},
		{"reserved address", ec2.CreateNetworkInterfaceInput{SubnetId: sub.SubnetId, PrivateIpAddress: aws.String("192.168.0.1")}, "InvalidParameterValue"},
		{"misaligned prefix", ec2.CreateNetworkInterfaceInput{SubnetId: sub.SubnetId,
			Ipv4Prefixes: []types.Ipv4PrefixSpecificationRequest{{Ipv4Prefix: aws.String("192.168.20.8/28")}}}, "InvalidParameterValue"},
		{"too many addresses", ec2.CreateNetworkInterfaceInput{SubnetId: sub.SubnetId, SecondaryPrivateIpAddressCount: aws.Int32(60)}, "PrivateIpAddressLimitExceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateNetworkInterface(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}
}

func TestAttachDetachDeleteNetworkInterface(t *testing.T) {
	_, c, ctx := setup(t)
	inst := launch(t, ctx, c, "us-east-1a")
	eni := createENI(t, ctx, c, aws.ToString(inst.SubnetId))
	elsewhere := createENI(t, ctx, c, aws.ToString(subnetIn(t, ctx, c, "us-east-1b").SubnetId))

	att, err := c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{
		NetworkInterfaceId: eni.NetworkInterfaceId, InstanceId: inst.InstanceId, DeviceIndex: aws.Int32(1),
	})
	noErr(t, err)
	if !attachIDPattern.MatchString(aws.ToString(att.AttachmentId)) {
		t.Errorf("attachment id %q is not in AWS's format", aws.ToString(att.AttachmentId))
	}
	got := describeENI(t, ctx, c, aws.ToString(eni.NetworkInterfaceId))
	if got.Status != types.NetworkInterfaceStatusInUse || aws.ToString(got.Attachment.InstanceId) != aws.ToString(inst.InstanceId) ||
		aws.ToInt32(got.Attachment.DeviceIndex) != 1 || aws.ToBool(got.Attachment.DeleteOnTermination) {
		t.Errorf("attached ENI %s %+v", got.Status, got.Attachment)
	}
	desc, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(inst.InstanceId)}})
	noErr(t, err)
	if n := len(desc.Reservations[0].Instances[0].NetworkInterfaces); n != 2 {
		t.Errorf("instance shows %d ENIs, want 2", n)
	}

	other := createENI(t, ctx, c, aws.ToString(inst.SubnetId))
	for _, tc := range []struct {
		name string
		in   ec2.AttachNetworkInterfaceInput
		code string
	}{
		{"already attached", ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: eni.NetworkInterfaceId, InstanceId: inst.InstanceId,
			DeviceIndex: aws.Int32(2)}, "InvalidNetworkInterface.InUse"},
		{"device index taken", ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: other.NetworkInterfaceId, InstanceId: inst.InstanceId,
			DeviceIndex: aws.Int32(1)}, "InvalidParameterValue"},
		{"other zone", ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: elsewhere.NetworkInterfaceId, InstanceId: inst.InstanceId,
			DeviceIndex: aws.Int32(2)}, "InvalidParameterCombination"},
		{"unknown instance", ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: other.NetworkInterfaceId,
			InstanceId: aws.String("i-0123456789abcdef0"), DeviceIndex: aws.Int32(2)}, "InvalidInstanceID.NotFound"},
		{"unknown ENI", ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: aws.String("eni-0123456789abcdef0"),
			InstanceId: inst.InstanceId, DeviceIndex: aws.Int32(2)}, "InvalidNetworkInterfaceID.NotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AttachNetworkInterface(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}
	// An m5.large takes three ENIs; the fourth is refused.
	_, err = c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: other.NetworkInterfaceId, InstanceId: inst.InstanceId, DeviceIndex: aws.Int32(2)})
	noErr(t, err)
	fourth := createENI(t, ctx, c, aws.ToString(inst.SubnetId))
	_, err = c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: fourth.NetworkInterfaceId, InstanceId: inst.InstanceId, DeviceIndex: aws.Int32(3)})
	wantCode(t, err, "AttachmentLimitExceeded")

	_, err = c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: eni.NetworkInterfaceId})
	wantCode(t, err, "InvalidNetworkInterface.InUse")
	_, err = c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: inst.NetworkInterfaces[0].Attachment.AttachmentId})
	wantCode(t, err, "OperationNotPermitted")
	_, err = c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: aws.String("eni-attach-0123456789abcdef0")})
	wantCode(t, err, "InvalidAttachmentID.NotFound")

	// Detaching keeps the ENI's Elastic IP; deleting the ENI drops it.
	alloc := aws.ToString(allocate(t, ctx, c).AllocationId)
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), NetworkInterfaceId: eni.NetworkInterfaceId})
	noErr(t, err)
	_, err = c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: att.AttachmentId})
	noErr(t, err)
	if got := describeENI(t, ctx, c, aws.ToString(eni.NetworkInterfaceId)); got.Status != types.NetworkInterfaceStatusAvailable || got.Association == nil {
		t.Errorf("detached ENI: status %s association %+v", got.Status, got.Association)
	}
	if a := describeAddress(t, ctx, c, alloc); a.InstanceId != nil || a.AssociationId == nil {
		t.Errorf("address after detach: %+v", a)
	}
	_, err = c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: eni.NetworkInterfaceId})
	noErr(t, err)
	if a := describeAddress(t, ctx, c, alloc); a.AssociationId != nil {
		t.Errorf("address still associated with a deleted ENI: %+v", a)
	}
	_, err = c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: eni.NetworkInterfaceId})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")
}

func TestDescribeNetworkInterfacesFiltersAndPaging(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)
	sub := aws.ToString(f.instance.SubnetId)
	loose := createENI(t, ctx, c, sub)
	_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(loose.NetworkInterfaceId)},
		Tags: []types.Tag{{Key: aws.String("purpose"), Value: aws.String("spare")}}})
	noErr(t, err)
	eniID := aws.ToString(f.eni.NetworkInterfaceId)
	vpc := aws.ToString(f.eni.VpcId)

	ids := func(filters ...types.Filter) []string {
		out, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: filters})
		noErr(t, err)
		var got []string
		for _, n := range out.NetworkInterfaces {
			got = append(got, aws.ToString(n.NetworkInterfaceId))
		}
		return got
	}
	for _, tc := range []struct {
		name   string
		filter types.Filter
		want   []string
	}{
		{"secondary address", sdkFilter("addresses.private-ip-address", f.secondary), []string{eniID}},
		{"private-ip-address", sdkFilter("private-ip-address", aws.ToString(f.instance.PrivateIpAddress)), []string{eniID}},
		{"attachment.instance-id", sdkFilter("attachment.instance-id", aws.ToString(f.instance.InstanceId)), []string{eniID}},
		{"network-interface-id", sdkFilter("network-interface-id", eniID), []string{eniID}},
		{"subnet-id", sdkFilter("subnet-id", sub), sortedIDs(eniID, aws.ToString(loose.NetworkInterfaceId))},
		{"vpc-id", sdkFilter("vpc-id", vpc), sortedIDs(eniID, aws.ToString(loose.NetworkInterfaceId), aws.ToString(f.other.NetworkInterfaces[0].NetworkInterfaceId))},
		{"tag", sdkFilter("tag:purpose", "spare"), []string{aws.ToString(loose.NetworkInterfaceId)}},
		{"tag-key", sdkFilter("tag-key", "purpose"), []string{aws.ToString(loose.NetworkInterfaceId)}},
		{"status", sdkFilter("status", "available"), []string{aws.ToString(loose.NetworkInterfaceId)}},
		{"no match", sdkFilter("addresses.private-ip-address", "192.168.99.99"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(tc.filter); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	_, err = c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{sdkFilter("colour", "red")}})
	wantCode(t, err, "InvalidParameterValue")

	for range 9 {
		createENI(t, ctx, c, sub)
	}
	var all []string
	pages := ec2.NewDescribeNetworkInterfacesPaginator(c, &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(5)})
	for n := 0; pages.HasMorePages(); n++ {
		out, err := pages.NextPage(ctx)
		noErr(t, err)
		if len(out.NetworkInterfaces) > 5 {
			t.Errorf("page %d has %d ENIs, over MaxResults", n, len(out.NetworkInterfaces))
		}
		for _, e := range out.NetworkInterfaces {
			all = append(all, aws.ToString(e.NetworkInterfaceId))
		}
	}
	if len(all) != 12 || !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != 12 {
		t.Errorf("paging returned %d ENIs (%v), want 12 distinct", len(all), all)
	}
	_, err = c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(2)})
	wantCode(t, err, "InvalidParameterValue")
	_, err = c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NextToken: aws.String("garbage")})
	wantCode(t, err, "InvalidPaginationToken")
	_, err = c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eniID}, MaxResults: aws.Int32(5)})
	wantCode(t, err, "InvalidParameterCombination")
	_, err = c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-0123456789abcdef0"}})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")
}
