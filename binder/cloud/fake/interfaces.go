package fake

import (
	"context"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

var interfaceFilters = map[string]bool{
	"attachment.instance-id": true, "addresses.private-ip-address": true, "private-ip-address": true,
	"network-interface-id": true, "interface-type": true,
}

// DescribeNetworkInterfaces lists ENIs with their private IPs, prefixes and
// the Elastic IP on each private IP. MaxResults pages as EC2 does, with a
// token that is the last id returned, so pages stay correct while ENIs
// come and go.
func (f *EC2) DescribeNetworkInterfaces(ctx context.Context, in *ec2.DescribeNetworkInterfacesInput, _ ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error) {
	return run(ctx, f, "DescribeNetworkInterfaces", in, f.describeNetworkInterfaces)
}

func (f *EC2) describeNetworkInterfaces(in *ec2.DescribeNetworkInterfacesInput) (*ec2.DescribeNetworkInterfacesOutput, error) {
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, interfaceFilters, false); err != nil {
		return nil, err
	}
	limit := int(aws.ToInt32(in.MaxResults))
	switch {
	case in.MaxResults != nil && len(in.NetworkInterfaceIds) > 0:
		return nil, apiError("InvalidParameterCombination",
			"The parameter MaxResults cannot be used with the parameter NetworkInterfaceIds")
	case in.MaxResults != nil && (limit < 5 || limit > 1000):
		return nil, invalidValue("Value ( %d ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", limit)
	}
	ids := slices.Sorted(maps.Keys(f.enis))
	if len(in.NetworkInterfaceIds) > 0 {
		for _, id := range in.NetworkInterfaceIds {
			if f.enis[id] == nil {
				return nil, eniNotFound(id)
			}
		}
		ids = slices.Compact(slices.Sorted(slices.Values(in.NetworkInterfaceIds)))
	}
	out := &ec2.DescribeNetworkInterfacesOutput{}
	after := aws.ToString(in.NextToken)
	for _, id := range ids {
		eni := f.enis[id]
		if id <= after || !matchFilters(in.Filters, func(name string) []string { return interfaceValues(eni, name) }) {
			continue
		}
		if limit > 0 && len(out.NetworkInterfaces) == limit {
			out.NextToken = aws.String(*out.NetworkInterfaces[limit-1].NetworkInterfaceId)
			break
		}
		out.NetworkInterfaces = append(out.NetworkInterfaces, f.renderInterface(eni))
	}
	return out, nil
}

func interfaceValues(eni *networkInterface, name string) []string {
	switch name {
	case "attachment.instance-id":
		return nonEmpty(eni.instanceID)
	case "addresses.private-ip-address", "private-ip-address":
		return eni.privateIPs
	case "network-interface-id":
		return []string{eni.id}
	case "interface-type":
		return []string{string(eni.kind)}
	}
	return nil
}

func (f *EC2) renderInterface(eni *networkInterface) types.NetworkInterface {
	out := types.NetworkInterface{
		NetworkInterfaceId: aws.String(eni.id),
		InterfaceType:      eni.kind,
		PrivateIpAddress:   aws.String(eni.privateIPs[0]),
		Status:             types.NetworkInterfaceStatusInUse,
	}
	if eni.instanceID != "" {
		out.Attachment = &types.NetworkInterfaceAttachment{
			InstanceId:  aws.String(eni.instanceID),
			DeviceIndex: aws.Int32(eni.deviceIndex),
			Status:      types.AttachmentStatusAttached,
		}
	}
	for i, ip := range eni.privateIPs {
		pip := types.NetworkInterfacePrivateIpAddress{PrivateIpAddress: aws.String(ip), Primary: aws.Bool(i == 0)}
		if a := f.addressOn(eni.id, ip); a != nil {
			pip.Association = &types.NetworkInterfaceAssociation{
				AllocationId:  aws.String(a.AllocationID),
				AssociationId: aws.String(a.AssociationID),
				PublicIp:      aws.String(a.PublicIP),
			}
			if i == 0 {
				// EC2 repeats the primary IP's association on the ENI itself.
				assoc := *pip.Association
				out.Association = &assoc
			}
		}
		out.PrivateIpAddresses = append(out.PrivateIpAddresses, pip)
	}
	for _, p := range eni.prefixes {
		out.Ipv4Prefixes = append(out.Ipv4Prefixes, types.Ipv4PrefixSpecification{Ipv4Prefix: aws.String(p.String())})
	}
	return out
}
