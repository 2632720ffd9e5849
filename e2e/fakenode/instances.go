package fakenode

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// instance is what a node needs to know about the EC2 instance behind it.
type instance struct {
	ID             string
	Type           string
	Zone           string
	SubnetID       string
	PrivateIP      string
	PrivateDNSName string
	ENIID          string // the primary ENI (device index 0)
}

// subnet is a subnet nodes can be launched into.
type subnet struct {
	ID, Zone string
}

// Instance tags. The group tag finds a group's instances again after a
// restart; the others are the ones an EKS managed node group carries.
const (
	tagGroup       = LabelFakeNode
	tagClusterName = "eks:cluster-name"
	tagNodegroup   = "eks:nodegroup-name"
)

func (k *Kubelet) instanceTags() []ec2types.Tag {
	return []ec2types.Tag{
		{Key: aws.String("Name"), Value: aws.String(k.opts.ClusterName + "-" + k.opts.Group + "-Node")},
		{Key: aws.String("kubernetes.io/cluster/" + k.opts.ClusterName), Value: aws.String("owned")},
		{Key: aws.String(tagClusterName), Value: aws.String(k.opts.ClusterName)},
		{Key: aws.String(tagNodegroup), Value: aws.String(k.opts.Group)},
		{Key: aws.String(tagGroup), Value: aws.String(k.opts.Group)},
	}
}

// subnets lists the subnets to spread nodes over, one per zone, by zone.
func (k *Kubelet) subnets(ctx context.Context) ([]subnet, error) {
	in := &ec2.DescribeSubnetsInput{SubnetIds: k.opts.SubnetIDs}
	zones := k.opts.Zones
	if len(zones) == 0 && len(k.opts.SubnetIDs) == 0 {
		out, err := k.ec2.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{
			Filters: []ec2types.Filter{{Name: aws.String("zone-type"), Values: []string{"availability-zone"}}},
		})
		if err != nil {
			return nil, fmt.Errorf("describing the region's availability zones: %w", err)
		}
		for _, z := range out.AvailabilityZones {
			zones = append(zones, aws.ToString(z.ZoneName))
		}
	}
	if len(zones) > 0 {
		in.Filters = []ec2types.Filter{{Name: aws.String("availability-zone"), Values: zones}}
	}
	var all []subnet
	pages := ec2.NewDescribeSubnetsPaginator(k.ec2, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing subnets: %w", err)
		}
		for _, s := range page.Subnets {
			all = append(all, subnet{ID: aws.ToString(s.SubnetId), Zone: aws.ToString(s.AvailabilityZone)})
		}
	}
	slices.SortFunc(all, func(a, b subnet) int {
		return cmp.Or(strings.Compare(a.Zone, b.Zone), strings.Compare(a.ID, b.ID))
	})
	all = slices.CompactFunc(all, func(a, b subnet) bool { return a.Zone == b.Zone })
	if len(all) == 0 {
		return nil, fmt.Errorf("no subnets to launch nodes into (asked for subnets %v, zones %v)", k.opts.SubnetIDs, zones)
	}
	return all, nil
}

// groupInstances finds the live instances of this group and cluster.
func (k *Kubelet) groupInstances(ctx context.Context) (map[string]instance, error) {
	in := &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + tagGroup), Values: []string{k.opts.Group}},
		{Name: aws.String("tag:" + tagClusterName), Values: []string{k.opts.ClusterName}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
	}}
	out := map[string]instance{}
	pages := ec2.NewDescribeInstancesPaginator(k.ec2, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing the instances of group %s: %w", k.opts.Group, err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				inst, err := instanceFrom(i)
				if err != nil {
					return nil, err
				}
				out[inst.ID] = inst
			}
		}
	}
	return out, nil
}

func instanceFrom(i ec2types.Instance) (instance, error) {
	inst := instance{
		ID:             aws.ToString(i.InstanceId),
		Type:           string(i.InstanceType),
		SubnetID:       aws.ToString(i.SubnetId),
		PrivateIP:      aws.ToString(i.PrivateIpAddress),
		PrivateDNSName: aws.ToString(i.PrivateDnsName),
	}
	if i.Placement != nil {
		inst.Zone = aws.ToString(i.Placement.AvailabilityZone)
	}
	for _, eni := range i.NetworkInterfaces {
		if eni.Attachment != nil && aws.ToInt32(eni.Attachment.DeviceIndex) == 0 {
			inst.ENIID = aws.ToString(eni.NetworkInterfaceId)
		}
	}
	if inst.ENIID == "" || inst.PrivateIP == "" || inst.Zone == "" {
		return inst, fmt.Errorf("instance %s has no primary network interface, private IP or zone", inst.ID)
	}
	return inst, nil
}

// launch runs one instance with a primary ENI in sub.
func (k *Kubelet) launch(ctx context.Context, sub subnet) (instance, error) {
	tags := k.instanceTags()
	out, err := k.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId:      aws.String(k.opts.ImageID),
		InstanceType: ec2types.InstanceType(k.opts.InstanceType),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		SubnetId:     aws.String(sub.ID),
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: tags},
			{ResourceType: ec2types.ResourceTypeNetworkInterface, Tags: tags},
		},
	})
	if err != nil {
		return instance{}, fmt.Errorf("launching an instance in %s: %w", sub.ID, err)
	}
	if len(out.Instances) != 1 {
		return instance{}, fmt.Errorf("launching an instance in %s: got %d instances", sub.ID, len(out.Instances))
	}
	return instanceFrom(out.Instances[0])
}

func (k *Kubelet) terminate(ctx context.Context, id string) error {
	if _, err := k.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		return fmt.Errorf("terminating instance %s: %w", id, err)
	}
	return nil
}

// describeENIs fetches the nodes' primary ENIs, for their addresses.
func (k *Kubelet) describeENIs(ctx context.Context, ids []string) (map[string]ec2types.NetworkInterface, error) {
	out := map[string]ec2types.NetworkInterface{}
	if len(ids) == 0 {
		return out, nil
	}
	pages := ec2.NewDescribeNetworkInterfacesPaginator(k.ec2, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: ids})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing network interfaces %v: %w", ids, err)
		}
		for _, eni := range page.NetworkInterfaces {
			out[aws.ToString(eni.NetworkInterfaceId)] = eni
		}
	}
	return out, nil
}
