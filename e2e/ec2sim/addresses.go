package ec2sim

import (
	"net/netip"
	"strings"
)

type xmlAddress struct {
	AllocationID            string   `xml:"allocationId"`
	PublicIP                string   `xml:"publicIp"`
	Domain                  string   `xml:"domain"`
	PublicIPv4Pool          string   `xml:"publicIpv4Pool"`
	NetworkBorderGroup      string   `xml:"networkBorderGroup"`
	AssociationID           string   `xml:"associationId,omitempty"`
	InstanceID              string   `xml:"instanceId,omitempty"`
	NetworkInterfaceID      string   `xml:"networkInterfaceId,omitempty"`
	NetworkInterfaceOwnerID string   `xml:"networkInterfaceOwnerId,omitempty"`
	PrivateIPAddress        string   `xml:"privateIpAddress,omitempty"`
	Tags                    []xmlTag `xml:"tagSet>item,omitempty"`
}

func (w *world) renderAddress(a *Address) xmlAddress {
	x := xmlAddress{
		AllocationID:       a.AllocationID,
		PublicIP:           a.PublicIP,
		Domain:             a.Domain,
		PublicIPv4Pool:     a.PublicIPv4Pool,
		NetworkBorderGroup: a.NetworkBorderGroup,
		AssociationID:      a.AssociationID,
		InstanceID:         w.instanceOf(a.NetworkInterfaceID),
		NetworkInterfaceID: a.NetworkInterfaceID,
		PrivateIPAddress:   a.PrivateIPAddress,
		Tags:               renderTags(a.Tags),
	}
	if a.AssociationID != "" {
		x.NetworkInterfaceOwnerID = w.accountID
	}
	return x
}

type allocateAddressResponse struct {
	respMeta
	AllocationID       string `xml:"allocationId"`
	PublicIP           string `xml:"publicIp"`
	Domain             string `xml:"domain"`
	PublicIPv4Pool     string `xml:"publicIpv4Pool"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
}

func (w *world) allocateAddress(c call) (response, error) {
	if d := c.p.str("Domain"); d != "" && d != "vpc" {
		return nil, invalidValue("Invalid value '%s' for domain: EC2-Classic is retired, the only domain is 'vpc'.", d)
	}
	nbg := c.p.str("NetworkBorderGroup")
	if nbg == "" {
		nbg = w.region
	} else if !w.borderGroupKnown(nbg) {
		return nil, invalidValue("Invalid value '%s' for NetworkBorderGroup.", nbg)
	}
	specs, err := parseTagSpecs(c.p, "elastic-ip")
	if err != nil {
		return nil, err
	}
	if w.eipQuota >= 0 && len(w.addresses) >= w.eipQuota {
		return nil, clientError("AddressLimitExceeded", "The maximum number of addresses has been reached.")
	}
	pool := c.p.str("PublicIpv4Pool")
	if pool == "" {
		pool = amazonPool
	}
	ip, err := w.pickPublicIP(pool, c.p.str("Address"))
	if err != nil {
		return nil, err
	}
	a := &Address{
		AllocationID:       w.newID("eipalloc"),
		PublicIP:           ip,
		Domain:             "vpc",
		PublicIPv4Pool:     pool,
		NetworkBorderGroup: nbg,
		Tags:               specs["elastic-ip"],
	}
	w.addresses[a.AllocationID] = a
	w.byPublicIP[a.PublicIP] = a
	return &allocateAddressResponse{
		AllocationID:       a.AllocationID,
		PublicIP:           a.PublicIP,
		Domain:             a.Domain,
		PublicIPv4Pool:     a.PublicIPv4Pool,
		NetworkBorderGroup: a.NetworkBorderGroup,
	}, nil
}

// pickPublicIP draws from Amazon's ranges or from a configured BYOIP pool,
// or takes the requested address out of a BYOIP pool.
func (w *world) pickPublicIP(pool, want string) (string, error) {
	if pool == amazonPool {
		if want != "" {
			return "", invalidValue("The address %s cannot be recovered: it is not in a public IPv4 pool of this account.", want)
		}
		return w.newPublicIP(), nil
	}
	cidr, ok := w.pools[pool]
	if !ok {
		if strings.HasPrefix(pool, "ipv4pool-ec2-") {
			return "", clientError("InvalidPublicIpv4PoolID.NotFound", "The public IPv4 pool ID '%s' does not exist", pool)
		}
		return "", invalidValue("Invalid value '%s' for PublicIpv4Pool.", pool)
	}
	if want != "" {
		a, err := netip.ParseAddr(want)
		if err != nil || !cidr.Contains(a) {
			return "", invalidValue("The address %s is not in public IPv4 pool %s.", want, pool)
		}
		if w.byPublicIP[a.String()] != nil {
			return "", clientError("InvalidIPAddress.InUse", "Address %s is in use.", want)
		}
		return a.String(), nil
	}
	base, size := addrToU32(cidr.Masked().Addr()), uint32(1)<<(32-cidr.Bits())
	start := w.rng.Uint32N(size)
	for i := range size {
		a := u32ToAddr(base + (start+i)%size).String()
		if w.byPublicIP[a] == nil {
			return a, nil
		}
	}
	return "", clientError("InsufficientAddressCapacity", "The public IPv4 pool %s has no free addresses.", pool)
}

type associateAddressResponse struct {
	respMeta
	AssociationID string `xml:"associationId"`
}

func (w *world) associateAddress(c call) (response, error) {
	allocID, publicIP := c.p.str("AllocationId"), c.p.str("PublicIp")
	instID, eniID := c.p.str("InstanceId"), c.p.str("NetworkInterfaceId")
	allow, allowSet, err := c.p.boolean("AllowReassociation")
	if err != nil {
		return nil, err
	}
	switch {
	case allocID == "" && publicIP == "":
		return nil, missingParameter("AllocationId")
	case allocID != "" && publicIP != "":
		return nil, invalidCombination("You may specify an allocation ID or a public IP address, but not both.")
	case instID == "" && eniID == "":
		return nil, missingParameter("InstanceId or NetworkInterfaceId")
	case instID != "" && eniID != "":
		return nil, invalidCombination("You may specify an instance ID or a network interface ID, but not both.")
	}
	var a *Address
	if allocID != "" {
		a, err = w.lookupAddress(allocID)
	} else if a = w.byPublicIP[publicIP]; a == nil {
		err = addressNotFound(publicIP)
	}
	if err != nil {
		return nil, err
	}
	eni, err := w.associationTarget(instID, eniID)
	if err != nil {
		return nil, err
	}
	if group := w.borderGroupOf(eni.AvailabilityZone); group != a.NetworkBorderGroup {
		// AWS documents the refusal ("You cannot associate an Elastic IP
		// address with an interface in a different network border group")
		// but not its code; this is the code EC2 gives other mismatched
		// pairs of parameters.
		return nil, invalidCombination("You cannot associate an Elastic IP address with an interface in a different network border group: "+
			"%s is in %s, %s in %s (%s).", a.AllocationID, a.NetworkBorderGroup, eni.ID, group, eni.AvailabilityZone)
	}
	ip := c.p.str("PrivateIpAddress")
	if ip == "" {
		ip = eni.PrivateIPs[0]
	} else if !holdsIP(eni, ip) {
		return nil, invalidValue("The private IP address %s is not assigned to network interface %s.", ip, eni.ID)
	}
	if a.AssociationID != "" {
		if a.NetworkInterfaceID == eni.ID && a.PrivateIPAddress == ip {
			// Already where the caller wants it: nothing moves.
			return &associateAddressResponse{AssociationID: a.AssociationID}, nil
		}
		// Unset means "reassociate" in a VPC; only an explicit false refuses.
		if allowSet && !allow {
			return nil, clientError("Resource.AlreadyAssociated",
				"resource %s is already associated with associate-id %s", a.AllocationID, a.AssociationID)
		}
	}
	w.associate(a, eni, ip)
	return &associateAddressResponse{AssociationID: a.AssociationID}, nil
}

// associationTarget resolves the ENI an address goes to: the named one, or
// the only ENI of the named instance (EC2 refuses instances with several).
func (w *world) associationTarget(instID, eniID string) (*NetworkInterface, error) {
	if eniID != "" {
		return w.lookupENI(eniID)
	}
	inst, err := w.runningInstance(instID)
	if err != nil {
		return nil, err
	}
	if len(inst.NetworkInterfaceIDs) != 1 {
		return nil, clientError("InvalidInstanceID",
			"There are multiple interfaces attached to instance '%s'. Please specify an interface ID for the operation instead.", instID)
	}
	return w.enis[inst.NetworkInterfaceIDs[0]], nil
}

func (w *world) disassociateAddress(c call) (response, error) {
	assocID, publicIP := c.p.str("AssociationId"), c.p.str("PublicIp")
	switch {
	case assocID == "" && publicIP == "":
		return nil, missingParameter("AssociationId")
	case assocID == "":
		if w.byPublicIP[publicIP] == nil {
			return nil, addressNotFound(publicIP)
		}
		return nil, invalidValue("You must specify an association id when unmapping an address from a VPC instance")
	}
	a := w.byAssociation[assocID]
	if a == nil {
		return nil, associationNotFound(assocID)
	}
	w.disassociate(a)
	return ack(), nil
}

func (w *world) releaseAddress(c call) (response, error) {
	allocID := c.p.str("AllocationId")
	if allocID == "" {
		if ip := c.p.str("PublicIp"); ip != "" {
			return nil, invalidValue("You must specify an allocation id when releasing a VPC elastic IP address")
		}
		return nil, missingParameter("AllocationId")
	}
	a, err := w.lookupAddress(allocID)
	if err != nil {
		return nil, err
	}
	if nbg := c.p.str("NetworkBorderGroup"); nbg != "" && nbg != a.NetworkBorderGroup {
		// As AWS documents: an incorrect network border group is answered
		// as if the address did not exist.
		return nil, clientError("InvalidAddress.NotFound", "The address '%s' does not exist in network border group '%s'", a.PublicIP, nbg)
	}
	// Outside the account's default VPC, EC2 refuses to release an address
	// that is still associated instead of disassociating it silently.
	if a.AssociationID != "" {
		return nil, clientError("InvalidIPAddress.InUse", "Address %s is in use.", a.PublicIP)
	}
	delete(w.addresses, a.AllocationID)
	delete(w.byPublicIP, a.PublicIP)
	return ack(), nil
}

var addressFilters = map[string]bool{
	"allocation-id": true, "association-id": true, "domain": true, "instance-id": true,
	"network-border-group": true, "network-interface-id": true, "network-interface-owner-id": true,
	"private-ip-address": true, "public-ip": true, "public-ipv4-pool": true,
}

type describeAddressesResponse struct {
	respMeta
	Addresses items[xmlAddress] `xml:"addressesSet"`
}

func (w *world) describeAddresses(c call) (response, error) {
	fs, err := parseFilters(c.p, addressFilters)
	if err != nil {
		return nil, err
	}
	allocIDs, publicIPs := c.p.list("AllocationId"), c.p.list("PublicIp")
	ids := sortedKeys(w.addresses)
	if len(allocIDs)+len(publicIPs) > 0 {
		wanted := map[string]bool{}
		for _, id := range allocIDs {
			if w.addresses[id] == nil {
				return nil, allocationNotFound(id)
			}
			wanted[id] = true
		}
		for _, ip := range publicIPs {
			a := w.byPublicIP[ip]
			if a == nil {
				return nil, addressNotFound(ip)
			}
			wanted[a.AllocationID] = true
		}
		ids = sortedKeys(wanted)
	}
	out := &describeAddressesResponse{}
	for _, id := range ids {
		a := w.addresses[id]
		if fs.match(func(name string) []string { return w.addressAttr(a, name) }, a.Tags) {
			out.Addresses.Item = append(out.Addresses.Item, w.renderAddress(a))
		}
	}
	return out, nil
}

func (w *world) addressAttr(a *Address, name string) []string {
	switch name {
	case "allocation-id":
		return nonEmpty(a.AllocationID)
	case "association-id":
		return nonEmpty(a.AssociationID)
	case "domain":
		return nonEmpty(a.Domain)
	case "instance-id":
		return nonEmpty(w.instanceOf(a.NetworkInterfaceID))
	case "network-border-group":
		return nonEmpty(a.NetworkBorderGroup)
	case "network-interface-id":
		return nonEmpty(a.NetworkInterfaceID)
	case "network-interface-owner-id":
		if a.AssociationID != "" {
			return []string{w.accountID}
		}
	case "private-ip-address":
		return nonEmpty(a.PrivateIPAddress)
	case "public-ip":
		return nonEmpty(a.PublicIP)
	case "public-ipv4-pool":
		return nonEmpty(a.PublicIPv4Pool)
	}
	return nil
}
