package ec2sim

import (
	"net/netip"
	"regexp"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

var (
	instanceIDPattern = regexp.MustCompile(`^i-[0-9a-f]{17}$`)
	eniIDPattern      = regexp.MustCompile(`^eni-[0-9a-f]{17}$`)
	attachIDPattern   = regexp.MustCompile(`^eni-attach-[0-9a-f]{17}$`)
)

func TestRunInstances(t *testing.T) {
	_, c, ctx := setup(t)
	sub := subnetIn(t, ctx, c, "us-east-1b")
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId:      aws.String("ami-0abcdef1234567890"),
		InstanceType: types.InstanceTypeM5Large,
		MinCount:     aws.Int32(2),
		MaxCount:     aws.Int32(3),
		SubnetId:     sub.SubnetId,
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("node")}}},
			{ResourceType: types.ResourceTypeNetworkInterface, Tags: []types.Tag{{Key: aws.String("node.k8s.amazonaws.com/instance_id"), Value: aws.String("x")}}},
		},
	})
	noErr(t, err)
	if len(out.Instances) != 3 || aws.ToString(out.OwnerId) == "" || aws.ToString(out.ReservationId) == "" {
		t.Fatalf("reservation %+v, want 3 instances", out)
	}
	cidr := netip.MustParsePrefix(aws.ToString(sub.CidrBlock))
	for i, inst := range out.Instances {
		if !instanceIDPattern.MatchString(aws.ToString(inst.InstanceId)) {
			t.Errorf("instance id %q is not in AWS's format", aws.ToString(inst.InstanceId))
		}
		if inst.State.Name != types.InstanceStateNamePending || aws.ToInt32(inst.AmiLaunchIndex) != int32(i) {
			t.Errorf("instance %d state %s launch index %d", i, inst.State.Name, aws.ToInt32(inst.AmiLaunchIndex))
		}
		if aws.ToString(inst.SubnetId) != aws.ToString(sub.SubnetId) || aws.ToString(inst.Placement.AvailabilityZone) != "us-east-1b" {
			t.Errorf("instance in %s/%s", aws.ToString(inst.SubnetId), aws.ToString(inst.Placement.AvailabilityZone))
		}
		if len(inst.NetworkInterfaces) != 1 {
			t.Fatalf("instance has %d ENIs, want its primary", len(inst.NetworkInterfaces))
		}
		eni := inst.NetworkInterfaces[0]
		if !eniIDPattern.MatchString(aws.ToString(eni.NetworkInterfaceId)) || !attachIDPattern.MatchString(aws.ToString(eni.Attachment.AttachmentId)) ||
			aws.ToInt32(eni.Attachment.DeviceIndex) != 0 || !aws.ToBool(eni.Attachment.DeleteOnTermination) {
			t.Errorf("primary ENI %+v attachment %+v", eni, eni.Attachment)
		}
		if ip := netip.MustParseAddr(aws.ToString(inst.PrivateIpAddress)); !cidr.Contains(ip) || aws.ToString(eni.PrivateIpAddress) != ip.String() {
			t.Errorf("private IP %s not the ENI's (%s) in %s", ip, aws.ToString(eni.PrivateIpAddress), cidr)
		}
		if tagMap(inst.Tags)["Name"] != "node" {
			t.Errorf("instance tags %v", tagMap(inst.Tags))
		}
		if got := describeENI(t, ctx, c, aws.ToString(eni.NetworkInterfaceId)); tagMap(got.TagSet)["node.k8s.amazonaws.com/instance_id"] != "x" {
			t.Errorf("ENI tags %v", tagMap(got.TagSet))
		}
	}

	described, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(out.Instances[0].InstanceId)}})
	noErr(t, err)
	if got := described.Reservations[0].Instances[0]; got.State.Name != types.InstanceStateNameRunning || aws.ToInt32(got.State.Code) != 16 ||
		got.LaunchTime == nil || aws.ToString(described.Reservations[0].ReservationId) != aws.ToString(out.ReservationId) {
		t.Errorf("described instance %+v", got)
	}

	for _, tc := range []struct {
		name string
		in   ec2.RunInstancesInput
		code string
	}{
		{"no image", ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: sub.SubnetId}, "MissingParameter"},
		{"min above max", ec2.RunInstancesInput{ImageId: aws.String("ami-1"), MinCount: aws.Int32(3), MaxCount: aws.Int32(1), SubnetId: sub.SubnetId}, "InvalidParameterValue"},
		{"no subnet or zone", ec2.RunInstancesInput{ImageId: aws.String("ami-1"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}, "VPCIdNotSpecified"},
		{"unknown subnet", ec2.RunInstancesInput{ImageId: aws.String("ami-1"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			SubnetId: aws.String("subnet-0123456789abcdef0")}, "InvalidSubnetID.NotFound"},
		{"unknown zone", ec2.RunInstancesInput{ImageId: aws.String("ami-1"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1z")}}, "InvalidParameterValue"},
		{"private IP in use", ec2.RunInstancesInput{ImageId: aws.String("ami-1"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			SubnetId: sub.SubnetId, PrivateIpAddress: out.Instances[0].PrivateIpAddress}, "InvalidIPAddress.InUse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.RunInstances(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}
}

func TestTerminateInstancesDisassociatesAddresses(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)
	_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID), InstanceId: f.instance.InstanceId})
	noErr(t, err)
	// An ENI attached later is not deleted on termination: it comes back
	// detached with its own Elastic IP, as in EC2.
	extra := createENI(t, ctx, c, aws.ToString(f.instance.SubnetId))
	_, err = c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{
		NetworkInterfaceId: extra.NetworkInterfaceId, InstanceId: f.instance.InstanceId, DeviceIndex: aws.Int32(1),
	})
	noErr(t, err)
	onExtra := aws.ToString(allocate(t, ctx, c).AllocationId)
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(onExtra), NetworkInterfaceId: extra.NetworkInterfaceId})
	noErr(t, err)

	out, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(f.instance.InstanceId)}})
	noErr(t, err)
	if ch := out.TerminatingInstances[0]; ch.PreviousState.Name != types.InstanceStateNameRunning || ch.CurrentState.Name != types.InstanceStateNameShuttingDown {
		t.Errorf("state change %s -> %s", ch.PreviousState.Name, ch.CurrentState.Name)
	}
	if a := describeAddress(t, ctx, c, f.allocID); a.AssociationId != nil {
		t.Errorf("address still associated after termination: %+v", a)
	}
	_, err = c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{aws.ToString(f.eni.NetworkInterfaceId)}})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")
	if got := describeENI(t, ctx, c, aws.ToString(extra.NetworkInterfaceId)); got.Status != types.NetworkInterfaceStatusAvailable || got.Attachment != nil {
		t.Errorf("extra ENI after termination: status %s attachment %+v", got.Status, got.Attachment)
	}
	if a := describeAddress(t, ctx, c, onExtra); aws.ToString(a.NetworkInterfaceId) != aws.ToString(extra.NetworkInterfaceId) || a.InstanceId != nil {
		t.Errorf("address on the surviving ENI: %+v", a)
	}

	desc, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(f.instance.InstanceId)}})
	noErr(t, err)
	if got := desc.Reservations[0].Instances[0]; got.State.Name != types.InstanceStateNameTerminated || len(got.NetworkInterfaces) != 0 {
		t.Errorf("terminated instance described as %s with %d ENIs", got.State.Name, len(got.NetworkInterfaces))
	}
	again, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(f.instance.InstanceId)}})
	noErr(t, err)
	if ch := again.TerminatingInstances[0]; ch.CurrentState.Name != types.InstanceStateNameTerminated {
		t.Errorf("terminating twice: %s", ch.CurrentState.Name)
	}
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(f.other.InstanceId), "i-0123456789abcdef0"}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"instance-1"}})
	wantCode(t, err, "InvalidInstanceID.Malformed")
	// A refused call terminates nothing.
	desc, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(f.other.InstanceId)}})
	noErr(t, err)
	if got := desc.Reservations[0].Instances[0].State.Name; got != types.InstanceStateNameRunning {
		t.Errorf("other instance is %s after a refused terminate", got)
	}
}

func TestDescribeInstancesFiltersAndPaging(t *testing.T) {
	_, c, ctx := setup(t)
	var ids []string
	for _, zone := range []string{"us-east-1a", "us-east-1a", "us-east-1b", "us-east-1c", "us-east-1c", "us-east-1c", "us-east-1b"} {
		ids = append(ids, aws.ToString(launch(t, ctx, c, zone).InstanceId))
	}
	_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids[:2], Tags: []types.Tag{{Key: aws.String("role"), Value: aws.String("edge")}}})
	noErr(t, err)
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids[6:]})
	noErr(t, err)

	count := func(filters ...types.Filter) int {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: filters})
		noErr(t, err)
		n := 0
		for _, r := range out.Reservations {
			n += len(r.Instances)
		}
		return n
	}
	for _, tc := range []struct {
		name    string
		filters []types.Filter
		want    int
	}{
		{"all", nil, 7},
		{"zone", []types.Filter{sdkFilter("availability-zone", "us-east-1c")}, 3},
		{"running", []types.Filter{sdkFilter("instance-state-name", "running")}, 6},
		{"tag", []types.Filter{sdkFilter("tag:role", "edge")}, 2},
		{"tag and zone", []types.Filter{sdkFilter("tag:role", "edge"), sdkFilter("availability-zone", "us-east-1b")}, 0},
		{"instance id", []types.Filter{sdkFilter("instance-id", ids[3], ids[4])}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := count(tc.filters...); got != tc.want {
				t.Errorf("got %d instances, want %d", got, tc.want)
			}
		})
	}

	seen := map[string]bool{}
	pages := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		noErr(t, err)
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				if seen[aws.ToString(i.InstanceId)] {
					t.Errorf("instance %s on two pages", aws.ToString(i.InstanceId))
				}
				seen[aws.ToString(i.InstanceId)] = true
			}
		}
	}
	if len(seen) != 7 {
		t.Errorf("paging saw %d instances, want 7", len(seen))
	}
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids[:1], MaxResults: aws.Int32(5)})
	wantCode(t, err, "InvalidParameterCombination")
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
}

// A stopped instance keeps its interface and the Elastic IP on it, refuses
// a new association by instance, and starts again.
func TestStopAndStartInstances(t *testing.T) {
	_, c, ctx := setup(t)
	inst := launch(t, ctx, c, "us-east-1b")
	eni := inst.NetworkInterfaces[0].NetworkInterfaceId
	addr, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	noErr(t, err)
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: addr.AllocationId, NetworkInterfaceId: eni})
	noErr(t, err)

	out, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{aws.ToString(inst.InstanceId)}})
	noErr(t, err)
	if len(out.StoppingInstances) != 1 || out.StoppingInstances[0].CurrentState.Name != types.InstanceStateNameStopping ||
		out.StoppingInstances[0].PreviousState.Name != types.InstanceStateNameRunning {
		t.Fatalf("stop answered %+v", out.StoppingInstances)
	}
	desc, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(inst.InstanceId)}})
	noErr(t, err)
	if got := desc.Reservations[0].Instances[0]; got.State.Name != types.InstanceStateNameStopped || len(got.NetworkInterfaces) != 1 {
		t.Fatalf("stopped instance %+v", got)
	}
	if a := describeAddress(t, ctx, c, aws.ToString(addr.AllocationId)); aws.ToString(a.NetworkInterfaceId) != aws.ToString(eni) {
		t.Errorf("the address left the stopped instance's interface: %+v", a)
	}
	other, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	noErr(t, err)
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: other.AllocationId, InstanceId: inst.InstanceId})
	wantCode(t, err, "IncorrectInstanceState")
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{aws.ToString(inst.InstanceId)}})
	noErr(t, err) // stopping a stopped instance changes nothing

	started, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{aws.ToString(inst.InstanceId)}})
	noErr(t, err)
	if started.StartingInstances[0].CurrentState.Name != types.InstanceStateNamePending {
		t.Errorf("start answered %+v", started.StartingInstances)
	}
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: other.AllocationId, InstanceId: inst.InstanceId})
	noErr(t, err)
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(inst.InstanceId)}})
	noErr(t, err)
	_, err = c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{aws.ToString(inst.InstanceId)}})
	wantCode(t, err, "IncorrectInstanceState")
}
