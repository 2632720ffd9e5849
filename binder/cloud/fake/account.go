package fake

import (
	"context"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// accountAttributes are the account attributes the fake knows, in the
// order it answers them. EC2 has a few more (default-vpc, max-instances…);
// the binder reads only the quota, and a name the fake does not know is
// refused as EC2 refuses a name it does not know, so a binder that starts
// reading another attribute fails its tests instead of reading nothing.
var accountAttributes = []string{"supported-platforms", "vpc-max-elastic-ips"}

// DescribeAccountAttributes answers vpc-max-elastic-ips with the quota
// SetQuota set (AWS's default of 5 until then) and supported-platforms
// with VPC, or both when no names are asked for.
//
// An account without a limit (a negative quota) has no number to report:
// vpc-max-elastic-ips is then left out of the answer, even when asked for
// by name, so a caller sees "not reported" rather than a number it would
// take for a real quota.
func (f *EC2) DescribeAccountAttributes(ctx context.Context, in *ec2.DescribeAccountAttributesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAccountAttributesOutput, error) {
	return run(ctx, f, "DescribeAccountAttributes", in, f.describeAccountAttributes)
}

func (f *EC2) describeAccountAttributes(in *ec2.DescribeAccountAttributesInput) (*ec2.DescribeAccountAttributesOutput, error) {
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	asked := map[string]bool{}
	for _, name := range in.AttributeNames {
		if !slices.Contains(accountAttributes, string(name)) {
			return nil, invalidValue("Value (%s) for parameter attributeName is invalid. Unknown attribute.", name)
		}
		asked[string(name)] = true
	}
	out := &ec2.DescribeAccountAttributesOutput{}
	for _, name := range accountAttributes {
		if len(asked) > 0 && !asked[name] {
			continue
		}
		values := f.accountAttribute(name)
		if len(values) == 0 {
			continue
		}
		attr := types.AccountAttribute{AttributeName: aws.String(name)}
		for _, v := range values {
			attr.AttributeValues = append(attr.AttributeValues, types.AccountAttributeValue{AttributeValue: aws.String(v)})
		}
		out.AccountAttributes = append(out.AccountAttributes, attr)
	}
	return out, nil
}

// accountAttribute is the values of one known attribute; none leaves it
// out of the answer.
func (f *EC2) accountAttribute(name string) []string {
	switch name {
	case "supported-platforms":
		return []string{"VPC"}
	case "vpc-max-elastic-ips":
		if f.quota < 0 {
			return nil
		}
		return []string{strconv.Itoa(f.quota)}
	}
	return nil
}

// fakeRegion is the one region the fake models: its three availability
// zones share the region's network border group. Local Zones, and the
// refusal across border groups, are e2e/ec2sim's.
const fakeRegion = "us-east-1"

// DescribeAvailabilityZones answers the region's three availability zones.
func (f *EC2) DescribeAvailabilityZones(ctx context.Context, in *ec2.DescribeAvailabilityZonesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error) {
	return run(ctx, f, "DescribeAvailabilityZones", in, func(in *ec2.DescribeAvailabilityZonesInput) (*ec2.DescribeAvailabilityZonesOutput, error) {
		if err := dryRun(in.DryRun); err != nil {
			return nil, err
		}
		out := &ec2.DescribeAvailabilityZonesOutput{}
		for i, letter := range []string{"a", "b", "c"} {
			out.AvailabilityZones = append(out.AvailabilityZones, types.AvailabilityZone{
				ZoneName: aws.String(fakeRegion + letter), ZoneId: aws.String("use1-az" + strconv.Itoa(i+1)),
				ZoneType: aws.String("availability-zone"), RegionName: aws.String(fakeRegion),
				GroupName: aws.String(fakeRegion), NetworkBorderGroup: aws.String(fakeRegion),
				OptInStatus: types.AvailabilityZoneOptInStatusOptInNotRequired, State: types.AvailabilityZoneStateAvailable,
			})
		}
		return out, nil
	})
}
