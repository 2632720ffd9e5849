package ec2sim

// How instances look in EC2's answers.

type xmlInstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func instanceState(name string) xmlInstanceState {
	return xmlInstanceState{Code: stateCodes[name], Name: name}
}

type xmlPlacement struct {
	AvailabilityZone string `xml:"availabilityZone"`
	GroupName        string `xml:"groupName"`
	Tenancy          string `xml:"tenancy"`
}

type xmlMonitoring struct {
	State string `xml:"state"`
}

// xmlInstanceENI is an ENI as DescribeInstances shows it.
type xmlInstanceENI struct {
	NetworkInterfaceID string          `xml:"networkInterfaceId"`
	SubnetID           string          `xml:"subnetId"`
	VpcID              string          `xml:"vpcId"`
	Description        string          `xml:"description"`
	OwnerID            string          `xml:"ownerId"`
	Status             string          `xml:"status"`
	MacAddress         string          `xml:"macAddress"`
	PrivateIPAddress   string          `xml:"privateIpAddress"`
	PrivateDNSName     string          `xml:"privateDnsName"`
	SourceDestCheck    bool            `xml:"sourceDestCheck"`
	InterfaceType      string          `xml:"interfaceType"`
	Groups             []xmlGroup      `xml:"groupSet>item"`
	Attachment         *xmlAttachment  `xml:"attachment,omitempty"`
	Association        *xmlAssociation `xml:"association,omitempty"`
	PrivateIPs         []xmlPrivateIP  `xml:"privateIpAddressesSet>item"`
	Prefixes           []xmlPrefix     `xml:"ipv4PrefixSet>item,omitempty"`
}

type xmlInstance struct {
	InstanceID         string           `xml:"instanceId"`
	ImageID            string           `xml:"imageId"`
	State              xmlInstanceState `xml:"instanceState"`
	PrivateDNSName     string           `xml:"privateDnsName"`
	DNSName            string           `xml:"dnsName"`
	Reason             string           `xml:"reason"`
	AmiLaunchIndex     int              `xml:"amiLaunchIndex"`
	InstanceType       string           `xml:"instanceType"`
	LaunchTime         string           `xml:"launchTime"`
	Placement          xmlPlacement     `xml:"placement"`
	Monitoring         xmlMonitoring    `xml:"monitoring"`
	SubnetID           string           `xml:"subnetId,omitempty"`
	VpcID              string           `xml:"vpcId,omitempty"`
	PrivateIPAddress   string           `xml:"privateIpAddress,omitempty"`
	IPAddress          string           `xml:"ipAddress,omitempty"`
	SourceDestCheck    bool             `xml:"sourceDestCheck"`
	Groups             []xmlGroup       `xml:"groupSet>item"`
	Architecture       string           `xml:"architecture"`
	RootDeviceType     string           `xml:"rootDeviceType"`
	RootDeviceName     string           `xml:"rootDeviceName"`
	VirtualizationType string           `xml:"virtualizationType"`
	Hypervisor         string           `xml:"hypervisor"`
	EnaSupport         bool             `xml:"enaSupport"`
	ENIs               []xmlInstanceENI `xml:"networkInterfaceSet>item"`
	Tags               []xmlTag         `xml:"tagSet>item,omitempty"`
}

// renderInstance shows an instance; state overrides the recorded state for
// the answers of RunInstances, which EC2 gives while instances are pending.
func (w *world) renderInstance(inst *Instance, state string) xmlInstance {
	if state == "" {
		state = inst.State
	}
	x := xmlInstance{
		InstanceID:         inst.ID,
		ImageID:            inst.ImageID,
		State:              instanceState(state),
		AmiLaunchIndex:     inst.LaunchIndex,
		InstanceType:       inst.InstanceType,
		LaunchTime:         awsTime(inst.LaunchTime),
		Placement:          xmlPlacement{AvailabilityZone: inst.AvailabilityZone, Tenancy: "default"},
		Monitoring:         xmlMonitoring{State: "disabled"},
		SourceDestCheck:    true,
		Architecture:       "x86_64",
		RootDeviceType:     "ebs",
		RootDeviceName:     "/dev/xvda",
		VirtualizationType: "hvm",
		Hypervisor:         "xen",
		EnaSupport:         true,
		Tags:               renderTags(inst.Tags),
	}
	if inst.State == stateTerminated {
		x.Reason = "User initiated"
		return x
	}
	x.SubnetID, x.VpcID = inst.SubnetID, inst.VpcID
	x.Groups = []xmlGroup{{GroupID: w.securityGroupID(), GroupName: "default"}}
	x.PrivateIPAddress, x.IPAddress = w.primaryAddresses(inst)
	if x.PrivateIPAddress != "" {
		x.PrivateDNSName = w.privateDNSName(x.PrivateIPAddress)
	}
	if x.IPAddress != "" {
		x.DNSName = w.publicDNSName(x.IPAddress)
	}
	for _, id := range inst.NetworkInterfaceIDs {
		eni := w.enis[id]
		assoc := w.renderAssociation(eni.ID, eni.PrivateIPs[0])
		if assoc != nil {
			assoc.AllocationID, assoc.AssociationID = "", ""
		}
		x.ENIs = append(x.ENIs, xmlInstanceENI{
			NetworkInterfaceID: eni.ID,
			SubnetID:           eni.SubnetID,
			VpcID:              eni.VpcID,
			Description:        eni.Description,
			OwnerID:            w.accountID,
			Status:             "in-use",
			MacAddress:         eni.MacAddress,
			PrivateIPAddress:   eni.PrivateIPs[0],
			PrivateDNSName:     w.privateDNSName(eni.PrivateIPs[0]),
			SourceDestCheck:    true,
			InterfaceType:      eni.InterfaceType,
			Groups:             x.Groups,
			Attachment:         renderAttachment(eni.Attachment, ""),
			Association:        assoc,
			PrivateIPs:         w.renderPrivateIPs(eni),
			Prefixes:           renderPrefixes(eni),
		})
	}
	return x
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Groups        []xmlGroup    `xml:"groupSet>item"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}
