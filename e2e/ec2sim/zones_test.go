package ec2sim

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func zoneGroups(zones []types.AvailabilityZone) map[string]string {
	out := map[string]string{}
	for _, z := range zones {
		out[aws.ToString(z.ZoneName)] = aws.ToString(z.NetworkBorderGroup)
	}
	return out
}

func TestDescribeAvailabilityZones(t *testing.T) {
	t.Run("without the Local Zone", func(t *testing.T) {
		_, c, ctx := setup(t)
		opted, err := c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
		noErr(t, err)
		if got := zoneGroups(opted.AvailabilityZones); len(got) != 3 || got["us-east-1b"] != "us-east-1" {
			t.Errorf("zones %v, want the three availability zones of us-east-1", got)
		}
		all, err := c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{AllAvailabilityZones: aws.Bool(true)})
		noErr(t, err)
		if len(all.AvailabilityZones) != 4 || all.AvailabilityZones[3].OptInStatus != types.AvailabilityZoneOptInStatusNotOptedIn {
			t.Errorf("all zones %+v, want the Local Zone too, not opted in", zoneGroups(all.AvailabilityZones))
		}
		// Its border group takes no address while not opted in.
		_, err = c.AllocateAddress(ctx, &ec2.AllocateAddressInput{NetworkBorderGroup: aws.String("us-east-1-bos-1")})
		wantCode(t, err, "InvalidParameterValue")
	})

	_, c, ctx := setupWith(t, Options{Throttle: ThrottleOptions{Disabled: true}, LocalZone: true})
	out, err := c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{
		Filters: []types.Filter{{Name: aws.String("zone-type"), Values: []string{"local-zone"}}},
	})
	noErr(t, err)
	if len(out.AvailabilityZones) != 1 {
		t.Fatalf("Local Zones %+v, want one", out.AvailabilityZones)
	}
	lz := out.AvailabilityZones[0]
	if aws.ToString(lz.ZoneName) != "us-east-1-bos-1a" || aws.ToString(lz.NetworkBorderGroup) != "us-east-1-bos-1" ||
		aws.ToString(lz.GroupName) != "us-east-1-bos-1" || lz.OptInStatus != types.AvailabilityZoneOptInStatusOptedIn ||
		aws.ToString(lz.ParentZoneName) != "us-east-1a" || aws.ToString(lz.RegionName) != "us-east-1" {
		t.Errorf("Local Zone %+v", lz)
	}
	_, err = c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"us-east-1z"}})
	wantCode(t, err, "InvalidParameterValue")
}

// An Elastic IP reaches only interfaces of its own network border group,
// both ways round.
func TestBorderGroups(t *testing.T) {
	_, c, ctx := setupWith(t, Options{Throttle: ThrottleOptions{Disabled: true}, LocalZone: true})
	local := launch(t, ctx, c, "us-east-1-bos-1a")
	regional := launch(t, ctx, c, "us-east-1a")
	if aws.ToString(local.Placement.AvailabilityZone) != "us-east-1-bos-1a" {
		t.Fatalf("instance in %s", aws.ToString(local.Placement.AvailabilityZone))
	}
	localENI := aws.ToString(local.NetworkInterfaces[0].NetworkInterfaceId)
	regionalENI := aws.ToString(regional.NetworkInterfaces[0].NetworkInterfaceId)

	lzAddr, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{NetworkBorderGroup: aws.String("us-east-1-bos-1")})
	noErr(t, err)
	if aws.ToString(lzAddr.NetworkBorderGroup) != "us-east-1-bos-1" {
		t.Errorf("allocated in %s", aws.ToString(lzAddr.NetworkBorderGroup))
	}
	regionAddr, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	noErr(t, err)
	_, err = c.AllocateAddress(ctx, &ec2.AllocateAddressInput{NetworkBorderGroup: aws.String("us-west-2-lax-1")})
	wantCode(t, err, "InvalidParameterValue")

	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: lzAddr.AllocationId, NetworkInterfaceId: aws.String(regionalENI)})
	wantCode(t, err, "InvalidParameterCombination")
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: regionAddr.AllocationId, NetworkInterfaceId: aws.String(localENI)})
	wantCode(t, err, "InvalidParameterCombination")
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: lzAddr.AllocationId, NetworkInterfaceId: aws.String(localENI)})
	noErr(t, err)
	got, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{
		{Name: aws.String("network-border-group"), Values: []string{"us-east-1-bos-1"}},
	}})
	noErr(t, err)
	if len(got.Addresses) != 1 || aws.ToString(got.Addresses[0].NetworkInterfaceId) != localENI {
		t.Errorf("addresses of the Local Zone's group %+v, want the one on %s", got.Addresses, localENI)
	}

	// Released only from its own group; a wrong one reads as not found.
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: regionAddr.AllocationId, NetworkBorderGroup: aws.String("us-east-1-bos-1")})
	wantCode(t, err, "InvalidAddress.NotFound")
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: regionAddr.AllocationId, NetworkBorderGroup: aws.String("us-east-1")})
	noErr(t, err)
}
