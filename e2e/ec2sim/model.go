package ec2sim

import (
	"maps"
	"slices"
	"time"
)

// State is everything the emulator holds. Snapshot returns a copy, GET
// /_sim/state serves it as JSON, and the state file stores it.
type State struct {
	Vpcs              []Vpc              `json:"vpcs"`
	Subnets           []Subnet           `json:"subnets"`
	Addresses         []Address          `json:"addresses"`
	NetworkInterfaces []NetworkInterface `json:"networkInterfaces"`
	Instances         []Instance         `json:"instances"`
}

// Vpc is a VPC; the emulator starts with one shaped like an EKS cluster's.
type Vpc struct {
	ID            string            `json:"id"`
	CIDR          string            `json:"cidr"`
	DHCPOptionsID string            `json:"dhcpOptionsId"`
	Tags          map[string]string `json:"tags,omitempty"`
}

// Subnet is a subnet of a VPC in one availability zone.
type Subnet struct {
	ID                 string            `json:"id"`
	VpcID              string            `json:"vpcId"`
	AvailabilityZone   string            `json:"availabilityZone"`
	AvailabilityZoneID string            `json:"availabilityZoneId"`
	CIDR               string            `json:"cidr"`
	Tags               map[string]string `json:"tags,omitempty"`
}

// Address is an Elastic IP. The association fields are empty while it is not
// associated; the instance it reaches is derived from the ENI's attachment.
type Address struct {
	AllocationID       string            `json:"allocationId"`
	PublicIP           string            `json:"publicIp"`
	Domain             string            `json:"domain"`
	PublicIPv4Pool     string            `json:"publicIpv4Pool"`
	NetworkBorderGroup string            `json:"networkBorderGroup"`
	AssociationID      string            `json:"associationId,omitempty"`
	NetworkInterfaceID string            `json:"networkInterfaceId,omitempty"`
	PrivateIPAddress   string            `json:"privateIpAddress,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
}

// NetworkInterface is an ENI. PrivateIPs[0] is the primary address; the
// others are secondary. Prefixes are delegated /28s.
type NetworkInterface struct {
	ID               string            `json:"id"`
	SubnetID         string            `json:"subnetId"`
	VpcID            string            `json:"vpcId"`
	AvailabilityZone string            `json:"availabilityZone"`
	Description      string            `json:"description,omitempty"`
	InterfaceType    string            `json:"interfaceType"`
	MacAddress       string            `json:"macAddress"`
	PrivateIPs       []string          `json:"privateIps"`
	Prefixes         []string          `json:"prefixes,omitempty"`
	Attachment       *Attachment       `json:"attachment,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
}

// Attachment ties an ENI to an instance at a device index.
type Attachment struct {
	ID                  string    `json:"id"`
	InstanceID          string    `json:"instanceId"`
	DeviceIndex         int       `json:"deviceIndex"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
	AttachTime          time.Time `json:"attachTime"`
}

// Instance is an EC2 instance. NetworkInterfaceIDs lists its attached ENIs,
// the primary (device index 0) first.
type Instance struct {
	ID                  string            `json:"id"`
	ReservationID       string            `json:"reservationId"`
	ImageID             string            `json:"imageId"`
	InstanceType        string            `json:"instanceType"`
	State               string            `json:"state"`
	SubnetID            string            `json:"subnetId"`
	VpcID               string            `json:"vpcId"`
	AvailabilityZone    string            `json:"availabilityZone"`
	LaunchIndex         int               `json:"launchIndex"`
	LaunchTime          time.Time         `json:"launchTime"`
	TerminatedAt        *time.Time        `json:"terminatedAt,omitempty"`
	NetworkInterfaceIDs []string          `json:"networkInterfaceIds,omitempty"`
	Tags                map[string]string `json:"tags,omitempty"`
}

// Instance states and the codes EC2 reports with them.
const (
	statePending      = "pending"
	stateRunning      = "running"
	stateShuttingDown = "shutting-down"
	stateTerminated   = "terminated"
	stateStopping     = "stopping"
	stateStopped      = "stopped"
)

var stateCodes = map[string]int{
	statePending:      0,
	stateRunning:      16,
	stateShuttingDown: 32,
	stateTerminated:   48,
	stateStopping:     64,
	stateStopped:      80,
}

func (a Address) clone() Address {
	a.Tags = maps.Clone(a.Tags)
	return a
}

func (n NetworkInterface) clone() NetworkInterface {
	n.PrivateIPs = slices.Clone(n.PrivateIPs)
	n.Prefixes = slices.Clone(n.Prefixes)
	if n.Attachment != nil {
		att := *n.Attachment
		n.Attachment = &att
	}
	n.Tags = maps.Clone(n.Tags)
	return n
}

func (i Instance) clone() Instance {
	if i.TerminatedAt != nil {
		t := *i.TerminatedAt
		i.TerminatedAt = &t
	}
	i.NetworkInterfaceIDs = slices.Clone(i.NetworkInterfaceIDs)
	i.Tags = maps.Clone(i.Tags)
	return i
}

func (s Subnet) clone() Subnet {
	s.Tags = maps.Clone(s.Tags)
	return s
}

func (v Vpc) clone() Vpc {
	v.Tags = maps.Clone(v.Tags)
	return v
}
