package ec2sim

import (
	"net/netip"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

func TestAssignPrivateIPAddresses(t *testing.T) {
	_, c, ctx := setup(t)
	inst := launch(t, ctx, c, "us-east-1a")
	eniID := inst.NetworkInterfaces[0].NetworkInterfaceId
	cidr := netip.MustParsePrefix(aws.ToString(subnetIn(t, ctx, c, "us-east-1a").CidrBlock))

	byCount, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, SecondaryPrivateIpAddressCount: aws.Int32(3)})
	noErr(t, err)
	if len(byCount.AssignedPrivateIpAddresses) != 3 || aws.ToString(byCount.NetworkInterfaceId) != aws.ToString(eniID) {
		t.Fatalf("assigned %+v", byCount.AssignedPrivateIpAddresses)
	}
	for _, a := range byCount.AssignedPrivateIpAddresses {
		if !cidr.Contains(netip.MustParseAddr(aws.ToString(a.PrivateIpAddress))) {
			t.Errorf("address %s outside %s", aws.ToString(a.PrivateIpAddress), cidr)
		}
	}
	explicit, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, PrivateIpAddresses: []string{"192.168.7.7"}})
	noErr(t, err)
	if got := aws.ToString(explicit.AssignedPrivateIpAddresses[0].PrivateIpAddress); got != "192.168.7.7" {
		t.Errorf("explicit assignment gave %s", got)
	}
	prefixes, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, Ipv4PrefixCount: aws.Int32(2)})
	noErr(t, err)
	for _, p := range prefixes.AssignedIpv4Prefixes {
		pfx := netip.MustParsePrefix(aws.ToString(p.Ipv4Prefix))
		if pfx.Bits() != 28 || pfx.Masked() != pfx || !cidr.Contains(pfx.Addr()) {
			t.Errorf("prefix %s is not an aligned /28 of %s", pfx, cidr)
		}
	}
	_, err = c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, Ipv4Prefixes: []string{"192.168.8.16/28"}})
	noErr(t, err)
	eni := describeENI(t, ctx, c, aws.ToString(eniID))
	if len(eni.PrivateIpAddresses) != 5 || len(eni.Ipv4Prefixes) != 3 {
		t.Errorf("ENI has %d addresses and %d prefixes, want 5 and 3", len(eni.PrivateIpAddresses), len(eni.Ipv4Prefixes))
	}

	// m5.large: ten slots per ENI, eight used (five addresses, three prefixes).
	_, err = c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, SecondaryPrivateIpAddressCount: aws.Int32(3)})
	wantCode(t, err, "PrivateIpAddressLimitExceeded")

	other := launch(t, ctx, c, "us-east-1a")
	otherENI := other.NetworkInterfaces[0].NetworkInterfaceId
	for _, tc := range []struct {
		name string
		in   ec2.AssignPrivateIpAddressesInput
		code string
	}{
		{"nothing asked", ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI}, "MissingParameter"},
		{"count and list", ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI, SecondaryPrivateIpAddressCount: aws.Int32(1),
			PrivateIpAddresses: []string{"192.168.9.9"}}, "InvalidParameterCombination"},
		{"addresses and prefixes", ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI, SecondaryPrivateIpAddressCount: aws.Int32(1),
			Ipv4PrefixCount: aws.Int32(1)}, "InvalidParameterCombination"},
		{"address of another ENI", ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI, PrivateIpAddresses: []string{"192.168.7.7"}}, "InvalidIPAddress.InUse"},
		{"primary of another ENI, reassignment allowed", ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI,
			PrivateIpAddresses: []string{aws.ToString(inst.PrivateIpAddress)}, AllowReassignment: aws.Bool(true)}, "InvalidIPAddress.InUse"},
		{"address inside another ENI's prefix", ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI, PrivateIpAddresses: []string{"192.168.8.20"}}, "InvalidIPAddress.InUse"},
		{"overlapping prefix", ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI, Ipv4Prefixes: []string{"192.168.8.16/28"}}, "InvalidIPAddress.InUse"},
		{"address outside subnet", ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI, PrivateIpAddresses: []string{"192.168.40.1"}}, "InvalidParameterValue"},
		{"unknown ENI", ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String("eni-0123456789abcdef0"),
			SecondaryPrivateIpAddressCount: aws.Int32(1)}, "InvalidNetworkInterfaceID.NotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AssignPrivateIpAddresses(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}

	// With AllowReassignment a secondary address moves, losing its Elastic IP.
	alloc := aws.ToString(allocate(t, ctx, c).AllocationId)
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), NetworkInterfaceId: eniID, PrivateIpAddress: aws.String("192.168.7.7")})
	noErr(t, err)
	_, err = c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI,
		PrivateIpAddresses: []string{"192.168.7.7"}, AllowReassignment: aws.Bool(true)})
	noErr(t, err)
	if a := describeAddress(t, ctx, c, alloc); a.AssociationId != nil {
		t.Errorf("address followed a reassigned private IP: %+v", a)
	}
	if got := describeENI(t, ctx, c, aws.ToString(otherENI)); len(got.PrivateIpAddresses) != 2 {
		t.Errorf("reassigned address not on the new ENI: %+v", got.PrivateIpAddresses)
	}
}

func TestUnassignPrivateIPAddressesDropsAssociation(t *testing.T) {
	_, c, ctx := setup(t)
	f := newEIPFixture(t, ctx, c)
	eniID := f.eni.NetworkInterfaceId
	_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID), NetworkInterfaceId: eniID, PrivateIpAddress: aws.String(f.secondary)})
	noErr(t, err)

	for _, tc := range []struct {
		name string
		in   ec2.UnassignPrivateIpAddressesInput
		code string
	}{
		{"primary", ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: eniID, PrivateIpAddresses: []string{aws.ToString(f.instance.PrivateIpAddress)}}, "InvalidParameterValue"},
		{"not assigned", ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: eniID, PrivateIpAddresses: []string{"192.168.30.30"}}, "InvalidParameterValue"},
		{"prefix not assigned", ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: eniID, Ipv4Prefixes: []string{"192.168.30.0/28"}}, "InvalidParameterValue"},
		{"nothing named", ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: eniID}, "MissingParameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.UnassignPrivateIpAddresses(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}

	_, err = c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: eniID, PrivateIpAddresses: []string{f.secondary}})
	noErr(t, err)
	if a := describeAddress(t, ctx, c, f.allocID); a.AssociationId != nil {
		t.Errorf("address still associated with an unassigned IP: %+v", a)
	}
	if got := describeENI(t, ctx, c, aws.ToString(eniID)); len(got.PrivateIpAddresses) != 1 {
		t.Errorf("ENI keeps %d addresses, want only the primary", len(got.PrivateIpAddresses))
	}

	// Prefix delegation: an Elastic IP on an address inside a prefix goes
	// when the prefix does.
	pfx, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, Ipv4PrefixCount: aws.Int32(1)})
	noErr(t, err)
	prefix := netip.MustParsePrefix(aws.ToString(pfx.AssignedIpv4Prefixes[0].Ipv4Prefix))
	podIP := prefix.Addr().Next().Next().String()
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(f.allocID), NetworkInterfaceId: eniID, PrivateIpAddress: aws.String(podIP)})
	noErr(t, err)
	if a := describeAddress(t, ctx, c, f.allocID); aws.ToString(a.PrivateIpAddress) != podIP {
		t.Fatalf("address on %s, want the prefix address %s", aws.ToString(a.PrivateIpAddress), podIP)
	}
	_, err = c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: eniID, Ipv4Prefixes: []string{prefix.String()}})
	noErr(t, err)
	if a := describeAddress(t, ctx, c, f.allocID); a.AssociationId != nil {
		t.Errorf("address still associated after its prefix went: %+v", a)
	}
}

// A warm pool gives back its unused prefixes in one call: they leave the
// ENI, free its address slots, and go back to the subnet, for any ENI to be
// delegated.
func TestUnassigningPrefixesReturnsThemToTheSubnet(t *testing.T) {
	_, c, ctx := setup(t)
	eniID := launch(t, ctx, c, "us-east-1a").NetworkInterfaces[0].NetworkInterfaceId
	out, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, Ipv4PrefixCount: aws.Int32(3)})
	noErr(t, err)
	var prefixes []string
	for _, p := range out.AssignedIpv4Prefixes {
		prefixes = append(prefixes, aws.ToString(p.Ipv4Prefix))
	}

	_, err = c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: eniID, Ipv4Prefixes: prefixes[1:]})
	noErr(t, err)
	eni := describeENI(t, ctx, c, aws.ToString(eniID))
	if len(eni.Ipv4Prefixes) != 1 || aws.ToString(eni.Ipv4Prefixes[0].Ipv4Prefix) != prefixes[0] {
		t.Errorf("ENI keeps prefixes %+v, want only %s", eni.Ipv4Prefixes, prefixes[0])
	}
	// m5.large: ten slots, the primary address and one prefix in use.
	_, err = c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, SecondaryPrivateIpAddressCount: aws.Int32(8)})
	noErr(t, err)
	_, err = c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: eniID, Ipv4Prefixes: prefixes[1:2]})
	wantCode(t, err, "InvalidParameterValue")

	otherENI := launch(t, ctx, c, "us-east-1a").NetworkInterfaces[0].NetworkInterfaceId
	_, err = c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: otherENI, Ipv4Prefixes: prefixes[1:]})
	noErr(t, err)
}

// TestPrivateIPsNeverHandedOutTwice fills a good part of a subnet through
// every path that takes addresses and checks no address has two owners.
func TestPrivateIPsNeverHandedOutTwice(t *testing.T) {
	_, c, ctx := setup(t)
	sub := subnetIn(t, ctx, c, "us-east-1c")
	before := aws.ToInt32(sub.AvailableIpAddressCount)
	owner := map[netip.Addr]string{}
	take := func(ip netip.Addr, eni string) {
		if prev, ok := owner[ip]; ok {
			t.Fatalf("address %s handed to %s and %s", ip, prev, eni)
		}
		owner[ip] = eni
	}
	for range 20 {
		out, err := c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{
			SubnetId: sub.SubnetId, SecondaryPrivateIpAddressCount: aws.Int32(20), Ipv4PrefixCount: aws.Int32(5),
		})
		noErr(t, err)
		eni := describeENI(t, ctx, c, aws.ToString(out.NetworkInterface.NetworkInterfaceId))
		for _, p := range eni.PrivateIpAddresses {
			take(netip.MustParseAddr(aws.ToString(p.PrivateIpAddress)), aws.ToString(eni.NetworkInterfaceId))
		}
		for _, p := range eni.Ipv4Prefixes {
			pfx := netip.MustParsePrefix(aws.ToString(p.Ipv4Prefix))
			for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
				take(a, aws.ToString(eni.NetworkInterfaceId))
			}
		}
	}
	after := aws.ToInt32(subnetIn(t, ctx, c, "us-east-1c").AvailableIpAddressCount)
	if int(before-after) != len(owner) {
		t.Errorf("available count fell by %d, but %d addresses were handed out", before-after, len(owner))
	}
}
