package ec2sim

// interfaceLimits are EC2's per-instance-type limits on network interfaces
// and IPv4 addresses per interface (a delegated prefix takes one address
// slot), which bound how many pods a node can host under the VPC CNI.
type interfaceLimits struct {
	enis      int
	ipsPerENI int
}

var instanceTypeLimits = map[string]interfaceLimits{
	"m1.small":   {2, 4},
	"t3.micro":   {2, 2},
	"t3.small":   {3, 4},
	"t3.medium":  {3, 6},
	"t3.large":   {3, 12},
	"t3.xlarge":  {4, 15},
	"m5.large":   {3, 10},
	"m5.xlarge":  {4, 15},
	"m5.2xlarge": {4, 15},
	"m5.4xlarge": {8, 30},
	"m6i.large":  {3, 10},
	"m6i.xlarge": {4, 15},
	"m7i.large":  {3, 10},
	"c5.large":   {3, 10},
	"c5.xlarge":  {4, 15},
	"c6i.large":  {3, 10},
	"r5.large":   {3, 10},
}

// defaultInstanceType is what RunInstances launches when none is named.
const defaultInstanceType = "m1.small"

// Types the table does not know get a mid-sized allowance rather than a
// refusal, so a dev stack can name any type.
var fallbackLimits = interfaceLimits{4, 15}

// unattachedIPLimit bounds an ENI that no instance type constrains yet.
const unattachedIPLimit = 50

func limitsFor(instanceType string) interfaceLimits {
	if l, ok := instanceTypeLimits[instanceType]; ok {
		return l
	}
	return fallbackLimits
}

// ipSlots is how many address slots an ENI may fill where it stands now.
func (w *world) ipSlots(eni *NetworkInterface) int {
	if eni.Attachment == nil {
		return unattachedIPLimit
	}
	if inst := w.instances[eni.Attachment.InstanceID]; inst != nil {
		return limitsFor(inst.InstanceType).ipsPerENI
	}
	return unattachedIPLimit
}

func slotsUsed(eni *NetworkInterface) int { return len(eni.PrivateIPs) + len(eni.Prefixes) }

func checkSlots(eni *NetworkInterface, adding, limit int) error {
	if slotsUsed(eni)+adding > limit {
		return clientError("PrivateIpAddressLimitExceeded",
			"Number of private addresses will exceed limit: %d allowed on %s.", limit, eni.ID)
	}
	return nil
}
