package ec2sim

import (
	"fmt"
	"net/netip"
	"strings"
)

// The network an EKS cluster built by eksctl gets: a non-default VPC (so EC2
// refuses to release associated addresses, as it does there) with one public
// subnet per zone. Pods that carry Elastic IPs live in public subnets.
var (
	vpcCIDR     = netip.MustParsePrefix("192.168.0.0/16")
	subnetCIDRs = []netip.Prefix{
		netip.MustParsePrefix("192.168.0.0/19"),
		netip.MustParsePrefix("192.168.32.0/19"),
		netip.MustParsePrefix("192.168.64.0/19"),
	}
)

func (w *world) buildLayout(cluster string) {
	clusterTag := "kubernetes.io/cluster/" + cluster
	vpc := &Vpc{
		ID:            w.newID("vpc"),
		CIDR:          vpcCIDR.String(),
		DHCPOptionsID: w.newID("dopt"),
		Tags: map[string]string{
			"Name":                         "eksctl-" + cluster + "-cluster/VPC",
			"alpha.eksctl.io/cluster-name": cluster,
			clusterTag:                     "shared",
		},
	}
	w.vpcs[vpc.ID] = vpc
	for i, cidr := range subnetCIDRs {
		zone := w.region + string(rune('a'+i))
		sub := &Subnet{
			ID:                 w.newID("subnet"),
			VpcID:              vpc.ID,
			AvailabilityZone:   zone,
			AvailabilityZoneID: fmt.Sprintf("%s-az%d", regionShort(w.region), i+1),
			CIDR:               cidr.String(),
			Tags: map[string]string{
				"Name":                         fmt.Sprintf("eksctl-%s-cluster/SubnetPublic%s", cluster, strings.ToUpper(strings.ReplaceAll(zone, "-", ""))),
				"alpha.eksctl.io/cluster-name": cluster,
				"kubernetes.io/role/elb":       "1",
				clusterTag:                     "shared",
			},
		}
		w.subnets[sub.ID] = sub
		w.spaces[sub.ID] = newSubnetSpace(sub.ID, cidr)
	}
	for _, z := range w.zones {
		if z.Type != zoneTypeLocal || !z.OptedIn {
			continue
		}
		cidr := netip.MustParsePrefix(localZoneCIDR)
		sub := &Subnet{
			ID:                 w.newID("subnet"),
			VpcID:              vpc.ID,
			AvailabilityZone:   z.Name,
			AvailabilityZoneID: z.ID,
			CIDR:               cidr.String(),
			Tags: map[string]string{
				"Name":                         fmt.Sprintf("%s-localzone/%s", cluster, z.Name),
				"alpha.eksctl.io/cluster-name": cluster,
				clusterTag:                     "shared",
			},
		}
		w.subnets[sub.ID] = sub
		w.spaces[sub.ID] = newSubnetSpace(sub.ID, cidr)
	}
}

// regionShort abbreviates a region the way zone ids do: us-east-1 → use1.
func regionShort(region string) string {
	parts := strings.Split(region, "-")
	if len(parts) < 3 {
		return region
	}
	var b strings.Builder
	b.WriteString(parts[0])
	for _, p := range parts[1 : len(parts)-1] {
		b.WriteByte(p[0])
	}
	b.WriteString(parts[len(parts)-1])
	return b.String()
}

// subnetInZone picks the subnet RunInstances uses for a Placement zone.
func (w *world) subnetInZone(zone string) *Subnet {
	for _, id := range sortedKeys(w.subnets) {
		if w.subnets[id].AvailabilityZone == zone {
			return w.subnets[id]
		}
	}
	return nil
}

// privateDNSName is the name EC2 gives a private address in the region.
func (w *world) privateDNSName(ip string) string {
	host := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if w.region == "us-east-1" {
		return host + ".ec2.internal"
	}
	return host + "." + w.region + ".compute.internal"
}

// publicDNSName is the name EC2 gives a public address in the region.
func (w *world) publicDNSName(ip string) string {
	host := "ec2-" + strings.ReplaceAll(ip, ".", "-")
	if w.region == "us-east-1" {
		return host + ".compute-1.amazonaws.com"
	}
	return host + "." + w.region + ".compute.amazonaws.com"
}

// securityGroupID is the one security group every ENI reports; the emulator
// does not model security groups beyond that.
func (w *world) securityGroupID() string {
	for _, id := range sortedKeys(w.vpcs) {
		return "sg-" + strings.TrimPrefix(id, "vpc-")
	}
	return "sg-00000000000000000"
}
