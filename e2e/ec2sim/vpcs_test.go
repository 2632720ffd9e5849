package ec2sim

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The network is shaped like an EKS cluster's: one non-default VPC and one
// public subnet per zone, tagged for the cluster.
func TestDescribeVpcsAndSubnets(t *testing.T) {
	_, c, ctx := setup(t)
	vpcs, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	noErr(t, err)
	if len(vpcs.Vpcs) != 1 {
		t.Fatalf("got %d VPCs, want 1", len(vpcs.Vpcs))
	}
	vpc := vpcs.Vpcs[0]
	vpcCIDR := netip.MustParsePrefix(aws.ToString(vpc.CidrBlock))
	if aws.ToBool(vpc.IsDefault) || vpc.State != types.VpcStateAvailable || !strings.HasPrefix(aws.ToString(vpc.VpcId), "vpc-") ||
		tagMap(vpc.Tags)["kubernetes.io/cluster/kube-eip-dev"] != "shared" {
		t.Errorf("VPC %+v", vpc)
	}

	zones := map[string]bool{}
	for _, s := range subnets(t, ctx, c) {
		cidr := netip.MustParsePrefix(aws.ToString(s.CidrBlock))
		if aws.ToString(s.VpcId) != aws.ToString(vpc.VpcId) || !vpcCIDR.Contains(cidr.Addr()) || aws.ToBool(s.DefaultForAz) ||
			aws.ToInt32(s.AvailableIpAddressCount) != int32(1<<(32-cidr.Bits())-5) ||
			!strings.HasPrefix(aws.ToString(s.AvailabilityZoneId), "use1-az") || tagMap(s.Tags)["kubernetes.io/role/elb"] != "1" {
			t.Errorf("subnet %+v", s)
		}
		zones[aws.ToString(s.AvailabilityZone)] = true
	}
	if !zones["us-east-1a"] || !zones["us-east-1b"] || !zones["us-east-1c"] {
		t.Errorf("subnets cover zones %v, want us-east-1a/b/c", zones)
	}

	one, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{
		sdkFilter("availability-zone", "us-east-1b"), sdkFilter("vpc-id", aws.ToString(vpc.VpcId)),
	}})
	noErr(t, err)
	if len(one.Subnets) != 1 || aws.ToString(one.Subnets[0].AvailabilityZone) != "us-east-1b" {
		t.Errorf("zone filter got %+v", one.Subnets)
	}
	tagged, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{sdkFilter("tag:kubernetes.io/cluster/kube-eip-dev", "shared", "owned")}})
	noErr(t, err)
	if len(tagged.Subnets) != 3 {
		t.Errorf("cluster tag filter got %d subnets", len(tagged.Subnets))
	}
	byID, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{aws.ToString(one.Subnets[0].SubnetId)}})
	noErr(t, err)
	if len(byID.Subnets) != 1 {
		t.Errorf("by id got %d subnets", len(byID.Subnets))
	}
	nonDefault, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{sdkFilter("is-default", "true")}})
	noErr(t, err)
	if len(nonDefault.Vpcs) != 0 {
		t.Errorf("is-default=true found %d VPCs; the emulated VPC is not a default VPC", len(nonDefault.Vpcs))
	}

	_, err = c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-0123456789abcdef0"}})
	wantCode(t, err, "InvalidSubnetID.NotFound")
	_, err = c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{"vpc-0123456789abcdef0"}})
	wantCode(t, err, "InvalidVpcID.NotFound")
	_, err = c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{sdkFilter("nope", "x")}})
	wantCode(t, err, "InvalidParameterValue")
}
