package ec2sim

// How ENIs look in EC2's answers.

type xmlAssociation struct {
	AllocationID  string `xml:"allocationId,omitempty"`
	AssociationID string `xml:"associationId,omitempty"`
	IPOwnerID     string `xml:"ipOwnerId"`
	PublicDNSName string `xml:"publicDnsName"`
	PublicIP      string `xml:"publicIp"`
}

type xmlAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	DeviceIndex         int    `xml:"deviceIndex"`
	NetworkCardIndex    int    `xml:"networkCardIndex"`
	InstanceID          string `xml:"instanceId,omitempty"`
	InstanceOwnerID     string `xml:"instanceOwnerId,omitempty"`
	Status              string `xml:"status"`
}

type xmlPrivateIP struct {
	Association      *xmlAssociation `xml:"association,omitempty"`
	Primary          bool            `xml:"primary"`
	PrivateDNSName   string          `xml:"privateDnsName"`
	PrivateIPAddress string          `xml:"privateIpAddress"`
}

type xmlPrefix struct {
	IPv4Prefix string `xml:"ipv4Prefix"`
}

type xmlNetworkInterface struct {
	NetworkInterfaceID string          `xml:"networkInterfaceId"`
	SubnetID           string          `xml:"subnetId"`
	VpcID              string          `xml:"vpcId"`
	AvailabilityZone   string          `xml:"availabilityZone"`
	Description        string          `xml:"description"`
	OwnerID            string          `xml:"ownerId"`
	RequesterManaged   bool            `xml:"requesterManaged"`
	Status             string          `xml:"status"`
	MacAddress         string          `xml:"macAddress"`
	PrivateIPAddress   string          `xml:"privateIpAddress"`
	PrivateDNSName     string          `xml:"privateDnsName"`
	SourceDestCheck    bool            `xml:"sourceDestCheck"`
	InterfaceType      string          `xml:"interfaceType"`
	Groups             []xmlGroup      `xml:"groupSet>item"`
	Attachment         *xmlAttachment  `xml:"attachment,omitempty"`
	Association        *xmlAssociation `xml:"association,omitempty"`
	Tags               []xmlTag        `xml:"tagSet>item,omitempty"`
	PrivateIPs         []xmlPrivateIP  `xml:"privateIpAddressesSet>item"`
	Prefixes           []xmlPrefix     `xml:"ipv4PrefixSet>item,omitempty"`
}

func (w *world) renderAssociation(eniID, ip string) *xmlAssociation {
	a := w.byPrivateIP[eniIP{eniID, ip}]
	if a == nil {
		return nil
	}
	return &xmlAssociation{
		AllocationID:  a.AllocationID,
		AssociationID: a.AssociationID,
		IPOwnerID:     w.accountID,
		PublicDNSName: w.publicDNSName(a.PublicIP),
		PublicIP:      a.PublicIP,
	}
}

func renderAttachment(att *Attachment, accountID string) *xmlAttachment {
	if att == nil {
		return nil
	}
	return &xmlAttachment{
		AttachmentID:        att.ID,
		AttachTime:          awsTime(att.AttachTime),
		DeleteOnTermination: att.DeleteOnTermination,
		DeviceIndex:         att.DeviceIndex,
		InstanceID:          att.InstanceID,
		InstanceOwnerID:     accountID,
		Status:              "attached",
	}
}

func (w *world) renderPrivateIPs(eni *NetworkInterface) []xmlPrivateIP {
	out := make([]xmlPrivateIP, 0, len(eni.PrivateIPs))
	for i, ip := range eni.PrivateIPs {
		out = append(out, xmlPrivateIP{
			Association:      w.renderAssociation(eni.ID, ip),
			Primary:          i == 0,
			PrivateDNSName:   w.privateDNSName(ip),
			PrivateIPAddress: ip,
		})
	}
	return out
}

func renderPrefixes(eni *NetworkInterface) []xmlPrefix {
	out := make([]xmlPrefix, 0, len(eni.Prefixes))
	for _, p := range eni.Prefixes {
		out = append(out, xmlPrefix{IPv4Prefix: p})
	}
	return out
}

func (w *world) renderENI(eni *NetworkInterface) xmlNetworkInterface {
	status := "available"
	if eni.Attachment != nil {
		status = "in-use"
	}
	return xmlNetworkInterface{
		NetworkInterfaceID: eni.ID,
		SubnetID:           eni.SubnetID,
		VpcID:              eni.VpcID,
		AvailabilityZone:   eni.AvailabilityZone,
		Description:        eni.Description,
		OwnerID:            w.accountID,
		Status:             status,
		MacAddress:         eni.MacAddress,
		PrivateIPAddress:   eni.PrivateIPs[0],
		PrivateDNSName:     w.privateDNSName(eni.PrivateIPs[0]),
		SourceDestCheck:    true,
		InterfaceType:      eni.InterfaceType,
		Groups:             []xmlGroup{{GroupID: w.securityGroupID(), GroupName: "default"}},
		Attachment:         renderAttachment(eni.Attachment, w.accountID),
		Association:        w.renderAssociation(eni.ID, eni.PrivateIPs[0]),
		Tags:               renderTags(eni.Tags),
		PrivateIPs:         w.renderPrivateIPs(eni),
		Prefixes:           renderPrefixes(eni),
	}
}
