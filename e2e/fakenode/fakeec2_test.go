package fakenode

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// fakeEC2 is a small stateful stand-in for the address calls on one ENI,
// for the ipam's unit tests: secondary IPs from 10.0.1.1 up and prefixes
// from 10.0.16.0/28 up, within slots (secondary IPs plus prefixes, 0 for
// no limit). It records each call in a short form.
type fakeEC2 struct {
	EC2API // the calls the ipam does not make; they panic

	mu         sync.Mutex
	slots      int
	nextIP     netip.Addr
	nextPrefix netip.Addr
	ips        []string
	prefixes   []string
	calls      []string
}

func newFakeEC2(slots int) *fakeEC2 {
	return &fakeEC2{
		slots:      slots,
		nextIP:     netip.MustParseAddr("10.0.1.1"),
		nextPrefix: netip.MustParseAddr("10.0.16.0"),
	}
}

func apiError(code, msg string) error {
	return &smithy.GenericAPIError{Code: code, Message: msg}
}

func (f *fakeEC2) AssignPrivateIpAddresses(_ context.Context, in *ec2.AssignPrivateIpAddressesInput, _ ...func(*ec2.Options)) (*ec2.AssignPrivateIpAddressesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ips, prefixes := int(aws.ToInt32(in.SecondaryPrivateIpAddressCount)), int(aws.ToInt32(in.Ipv4PrefixCount))
	if ips > 0 {
		f.calls = append(f.calls, fmt.Sprintf("assign %d ips", ips))
	} else {
		f.calls = append(f.calls, fmt.Sprintf("assign %d prefixes", prefixes))
	}
	if f.slots > 0 && len(f.ips)+len(f.prefixes)+ips+prefixes > f.slots {
		return nil, apiError("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.")
	}
	out := &ec2.AssignPrivateIpAddressesOutput{NetworkInterfaceId: in.NetworkInterfaceId}
	for range ips {
		f.ips = append(f.ips, f.nextIP.String())
		out.AssignedPrivateIpAddresses = append(out.AssignedPrivateIpAddresses, ec2types.AssignedPrivateIpAddress{PrivateIpAddress: aws.String(f.nextIP.String())})
		f.nextIP = f.nextIP.Next()
	}
	for range prefixes {
		pfx := netip.PrefixFrom(f.nextPrefix, 28)
		f.prefixes = append(f.prefixes, pfx.String())
		out.AssignedIpv4Prefixes = append(out.AssignedIpv4Prefixes, ec2types.Ipv4PrefixSpecification{Ipv4Prefix: aws.String(pfx.String())})
		for range prefixSize {
			f.nextPrefix = f.nextPrefix.Next()
		}
	}
	return out, nil
}

func (f *fakeEC2) UnassignPrivateIpAddresses(_ context.Context, in *ec2.UnassignPrivateIpAddressesInput, _ ...func(*ec2.Options)) (*ec2.UnassignPrivateIpAddressesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "unassign "+strings.Join(slices.Concat(in.PrivateIpAddresses, in.Ipv4Prefixes), " "))
	for _, ip := range in.PrivateIpAddresses {
		if !slices.Contains(f.ips, ip) {
			return nil, apiError("InvalidParameterValue", "Some of the specified addresses are not assigned to interface")
		}
	}
	for _, p := range in.Ipv4Prefixes {
		if !slices.Contains(f.prefixes, p) {
			return nil, apiError("InvalidParameterValue", "Some of the specified prefixes are not assigned to interface")
		}
	}
	f.ips = slices.DeleteFunc(f.ips, func(ip string) bool { return slices.Contains(in.PrivateIpAddresses, ip) })
	f.prefixes = slices.DeleteFunc(f.prefixes, func(p string) bool { return slices.Contains(in.Ipv4Prefixes, p) })
	return &ec2.UnassignPrivateIpAddressesOutput{}, nil
}

// takeCalls returns the calls made since the last look.
func (f *fakeEC2) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := f.calls
	f.calls = nil
	return calls
}

// eni is what the ENI holds now, as DescribeNetworkInterfaces shows it.
func (f *fakeEC2) eni() ec2types.NetworkInterface {
	f.mu.Lock()
	defer f.mu.Unlock()
	eni := ec2types.NetworkInterface{PrivateIpAddresses: []ec2types.NetworkInterfacePrivateIpAddress{
		{PrivateIpAddress: aws.String("10.0.0.10"), Primary: aws.Bool(true)},
	}}
	for _, ip := range f.ips {
		eni.PrivateIpAddresses = append(eni.PrivateIpAddresses, ec2types.NetworkInterfacePrivateIpAddress{PrivateIpAddress: aws.String(ip), Primary: aws.Bool(false)})
	}
	for _, p := range f.prefixes {
		eni.Ipv4Prefixes = append(eni.Ipv4Prefixes, ec2types.Ipv4PrefixSpecification{Ipv4Prefix: aws.String(p)})
	}
	return eni
}

func ec2AssignIPs(n int32) *ec2.AssignPrivateIpAddressesInput {
	return &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String("eni-test"), SecondaryPrivateIpAddressCount: aws.Int32(n)}
}

func ec2AssignPrefixes(n int32) *ec2.AssignPrivateIpAddressesInput {
	return &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String("eni-test"), Ipv4PrefixCount: aws.Int32(n)}
}
