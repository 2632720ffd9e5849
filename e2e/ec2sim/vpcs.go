package ec2sim

import (
	"fmt"
	"strconv"
)

type xmlSubnet struct {
	SubnetID                string   `xml:"subnetId"`
	SubnetArn               string   `xml:"subnetArn"`
	State                   string   `xml:"state"`
	VpcID                   string   `xml:"vpcId"`
	OwnerID                 string   `xml:"ownerId"`
	CidrBlock               string   `xml:"cidrBlock"`
	AvailableIPAddressCount int      `xml:"availableIpAddressCount"`
	AvailabilityZone        string   `xml:"availabilityZone"`
	AvailabilityZoneID      string   `xml:"availabilityZoneId"`
	DefaultForAz            bool     `xml:"defaultForAz"`
	MapPublicIPOnLaunch     bool     `xml:"mapPublicIpOnLaunch"`
	Tags                    []xmlTag `xml:"tagSet>item,omitempty"`
}

type describeSubnetsResponse struct {
	respMeta
	Subnets   items[xmlSubnet] `xml:"subnetSet"`
	NextToken string           `xml:"nextToken,omitempty"`
}

var subnetFilters = map[string]bool{
	"availability-zone": true, "availability-zone-id": true, "available-ip-address-count": true,
	"cidr-block": true, "default-for-az": true, "owner-id": true, "state": true,
	"subnet-arn": true, "subnet-id": true, "vpc-id": true,
}

func (w *world) subnetArn(id string) string {
	return fmt.Sprintf("arn:aws:ec2:%s:%s:subnet/%s", w.region, w.accountID, id)
}

func (w *world) describeSubnets(c call) (response, error) {
	fs, err := parseFilters(c.p, subnetFilters)
	if err != nil {
		return nil, err
	}
	ids := c.p.list("SubnetId")
	pr, err := parsePaging(c.p, len(ids) > 0)
	if err != nil {
		return nil, err
	}
	candidates := sortedKeys(w.subnets)
	if len(ids) > 0 {
		wanted := map[string]bool{}
		for _, id := range ids {
			if _, err := w.lookupSubnet(id); err != nil {
				return nil, err
			}
			wanted[id] = true
		}
		candidates = sortedKeys(wanted)
	}
	var matched []string
	for _, id := range candidates {
		s := w.subnets[id]
		if fs.match(func(name string) []string { return w.subnetAttr(s, name) }, s.Tags) {
			matched = append(matched, id)
		}
	}
	page, next := pr.page(matched)
	out := &describeSubnetsResponse{NextToken: next}
	for _, id := range page {
		s := w.subnets[id]
		out.Subnets.Item = append(out.Subnets.Item, xmlSubnet{
			SubnetID:                s.ID,
			SubnetArn:               w.subnetArn(s.ID),
			State:                   "available",
			VpcID:                   s.VpcID,
			OwnerID:                 w.accountID,
			CidrBlock:               s.CIDR,
			AvailableIPAddressCount: w.spaces[s.ID].available(),
			AvailabilityZone:        s.AvailabilityZone,
			AvailabilityZoneID:      s.AvailabilityZoneID,
			Tags:                    renderTags(s.Tags),
		})
	}
	return out, nil
}

func (w *world) subnetAttr(s *Subnet, name string) []string {
	switch name {
	case "availability-zone":
		return []string{s.AvailabilityZone}
	case "availability-zone-id":
		return []string{s.AvailabilityZoneID}
	case "available-ip-address-count":
		return []string{strconv.Itoa(w.spaces[s.ID].available())}
	case "cidr-block":
		return []string{s.CIDR}
	case "default-for-az":
		return []string{"false"}
	case "owner-id":
		return []string{w.accountID}
	case "state":
		return []string{"available"}
	case "subnet-arn":
		return []string{w.subnetArn(s.ID)}
	case "subnet-id":
		return []string{s.ID}
	case "vpc-id":
		return []string{s.VpcID}
	}
	return nil
}

type xmlVpc struct {
	VpcID           string   `xml:"vpcId"`
	OwnerID         string   `xml:"ownerId"`
	State           string   `xml:"state"`
	CidrBlock       string   `xml:"cidrBlock"`
	DHCPOptionsID   string   `xml:"dhcpOptionsId"`
	InstanceTenancy string   `xml:"instanceTenancy"`
	IsDefault       bool     `xml:"isDefault"`
	Tags            []xmlTag `xml:"tagSet>item,omitempty"`
}

type describeVpcsResponse struct {
	respMeta
	Vpcs      items[xmlVpc] `xml:"vpcSet"`
	NextToken string        `xml:"nextToken,omitempty"`
}

var vpcFilters = map[string]bool{
	"cidr": true, "cidr-block-association.cidr-block": true, "dhcp-options-id": true,
	"is-default": true, "owner-id": true, "state": true, "vpc-id": true,
}

func (w *world) describeVpcs(c call) (response, error) {
	fs, err := parseFilters(c.p, vpcFilters)
	if err != nil {
		return nil, err
	}
	ids := c.p.list("VpcId")
	pr, err := parsePaging(c.p, len(ids) > 0)
	if err != nil {
		return nil, err
	}
	candidates := sortedKeys(w.vpcs)
	if len(ids) > 0 {
		wanted := map[string]bool{}
		for _, id := range ids {
			if !validID(id, "vpc") {
				return nil, malformed("InvalidVpcID.Malformed", id, "vpc")
			}
			if w.vpcs[id] == nil {
				return nil, vpcNotFound(id)
			}
			wanted[id] = true
		}
		candidates = sortedKeys(wanted)
	}
	var matched []string
	for _, id := range candidates {
		v := w.vpcs[id]
		if fs.match(func(name string) []string { return w.vpcAttr(v, name) }, v.Tags) {
			matched = append(matched, id)
		}
	}
	page, next := pr.page(matched)
	out := &describeVpcsResponse{NextToken: next}
	for _, id := range page {
		v := w.vpcs[id]
		out.Vpcs.Item = append(out.Vpcs.Item, xmlVpc{
			VpcID:           v.ID,
			OwnerID:         w.accountID,
			State:           "available",
			CidrBlock:       v.CIDR,
			DHCPOptionsID:   v.DHCPOptionsID,
			InstanceTenancy: "default",
			Tags:            renderTags(v.Tags),
		})
	}
	return out, nil
}

func (w *world) vpcAttr(v *Vpc, name string) []string {
	switch name {
	case "cidr", "cidr-block-association.cidr-block":
		return []string{v.CIDR}
	case "dhcp-options-id":
		return []string{v.DHCPOptionsID}
	case "is-default":
		return []string{"false"}
	case "owner-id":
		return []string{w.accountID}
	case "state":
		return []string{"available"}
	case "vpc-id":
		return []string{v.ID}
	}
	return nil
}
