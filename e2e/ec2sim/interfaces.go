package ec2sim

import (
	"slices"
	"strconv"
)

// newENI creates an ENI in a subnet with a primary address (chosen or
// drawn) and nothing else yet.
func (w *world) newENI(sub *Subnet, primary, description, interfaceType string) (*NetworkInterface, error) {
	eni := &NetworkInterface{
		ID:               w.newID("eni"),
		SubnetID:         sub.ID,
		VpcID:            sub.VpcID,
		AvailabilityZone: sub.AvailabilityZone,
		Description:      description,
		InterfaceType:    interfaceType,
		MacAddress:       newMAC(w.rng),
	}
	var explicit []string
	if primary != "" {
		explicit = []string{primary}
	}
	count := 1 - len(explicit)
	if _, err := w.addIPs(eni, explicit, count); err != nil {
		delete(w.taken, eni.ID)
		return nil, err
	}
	w.enis[eni.ID] = eni
	return eni, nil
}

// addIPs gives an ENI the chosen addresses plus count drawn ones, all or
// nothing.
func (w *world) addIPs(eni *NetworkInterface, explicit []string, count int) ([]string, error) {
	sp := w.spaces[eni.SubnetID]
	var got []string
	undo := func() {
		for _, ip := range got {
			w.freeIP(ip)
		}
	}
	for _, s := range explicit {
		ip, err := w.claimIP(sp, s, eni.ID)
		if err != nil {
			undo()
			return nil, err
		}
		got = append(got, ip)
	}
	if count > 0 {
		drawn, err := w.allocIPs(sp, count, eni.ID)
		if err != nil {
			undo()
			return nil, err
		}
		got = append(got, drawn...)
	}
	eni.PrivateIPs = append(eni.PrivateIPs, got...)
	return got, nil
}

// addPrefixes gives an ENI the chosen /28 prefixes plus count drawn ones,
// all or nothing.
func (w *world) addPrefixes(eni *NetworkInterface, explicit []string, count int) ([]string, error) {
	sp := w.spaces[eni.SubnetID]
	var got []string
	undo := func() {
		for _, p := range got {
			w.freePrefix(p)
		}
	}
	for _, s := range explicit {
		p, err := w.claimPrefix(sp, s, eni.ID)
		if err != nil {
			undo()
			return nil, err
		}
		got = append(got, p)
	}
	if count > 0 {
		drawn, err := w.allocPrefixes(sp, count, eni.ID)
		if err != nil {
			undo()
			return nil, err
		}
		got = append(got, drawn...)
	}
	eni.Prefixes = append(eni.Prefixes, got...)
	return got, nil
}

var interfaceTypes = []string{"interface", "efa", "efa-only", "trunk"}

type createNetworkInterfaceResponse struct {
	respMeta
	NetworkInterface xmlNetworkInterface `xml:"networkInterface"`
	ClientToken      string              `xml:"clientToken,omitempty"`
}

func (w *world) createNetworkInterface(c call) (response, error) {
	sub, err := w.lookupSubnet(c.p.str("SubnetId"))
	if err != nil {
		return nil, err
	}
	token := c.p.str("ClientToken")
	if id := w.clientTokens["eni/"+token]; token != "" && w.enis[id] != nil {
		return &createNetworkInterfaceResponse{NetworkInterface: w.renderENI(w.enis[id]), ClientToken: token}, nil
	}
	itype := c.p.str("InterfaceType")
	if itype == "" {
		itype = "interface"
	} else if !slices.Contains(interfaceTypes, itype) {
		return nil, invalidValue("Invalid value '%s' for InterfaceType.", itype)
	}
	specs, err := parseTagSpecs(c.p, "network-interface")
	if err != nil {
		return nil, err
	}
	primary := c.p.str("PrivateIpAddress")
	var secondaries []string
	for _, m := range c.p.members("PrivateIpAddresses") {
		ip := m.str("PrivateIpAddress")
		if isPrimary, _, _ := m.boolean("Primary"); isPrimary {
			if primary != "" && primary != ip {
				return nil, invalidCombination("Only one primary private IP address may be specified.")
			}
			primary = ip
			continue
		}
		secondaries = append(secondaries, ip)
	}
	count, _, err := c.p.integer("SecondaryPrivateIpAddressCount")
	if err != nil {
		return nil, err
	}
	prefixCount, _, err := c.p.integer("Ipv4PrefixCount")
	if err != nil {
		return nil, err
	}
	var prefixes []string
	for _, m := range c.p.members("Ipv4Prefix") {
		prefixes = append(prefixes, m.str("Ipv4Prefix"))
	}
	switch {
	case count < 0 || prefixCount < 0:
		return nil, invalidValue("Address and prefix counts must not be negative.")
	case count > 0 && len(secondaries) > 0:
		return nil, invalidCombination("You may specify secondary private IP addresses or a count of them, but not both.")
	case prefixCount > 0 && len(prefixes) > 0:
		return nil, invalidCombination("You may specify IPv4 prefixes or a count of them, but not both.")
	case 1+len(secondaries)+count+len(prefixes)+prefixCount > unattachedIPLimit:
		return nil, clientError("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.")
	}
	eni, err := w.newENI(sub, primary, c.p.str("Description"), itype)
	if err != nil {
		return nil, err
	}
	if _, err := w.addIPs(eni, secondaries, count); err != nil {
		w.deleteENI(eni)
		return nil, err
	}
	if _, err := w.addPrefixes(eni, prefixes, prefixCount); err != nil {
		w.deleteENI(eni)
		return nil, err
	}
	eni.Tags = specs["network-interface"]
	if token != "" {
		w.clientTokens["eni/"+token] = eni.ID
	}
	return &createNetworkInterfaceResponse{NetworkInterface: w.renderENI(eni), ClientToken: token}, nil
}

func (w *world) deleteNetworkInterface(c call) (response, error) {
	eni, err := w.lookupENI(c.p.str("NetworkInterfaceId"))
	if err != nil {
		return nil, err
	}
	if eni.Attachment != nil {
		return nil, clientError("InvalidNetworkInterface.InUse",
			"The network interface '%s' is currently in use.", eni.ID)
	}
	w.deleteENI(eni)
	return ack(), nil
}

type attachNetworkInterfaceResponse struct {
	respMeta
	AttachmentID     string `xml:"attachmentId"`
	NetworkCardIndex int    `xml:"networkCardIndex"`
}

func (w *world) attachNetworkInterface(c call) (response, error) {
	index, set, err := c.p.integer("DeviceIndex")
	if err != nil {
		return nil, err
	}
	if !set {
		return nil, missingParameter("DeviceIndex")
	}
	eni, err := w.lookupENI(c.p.str("NetworkInterfaceId"))
	if err != nil {
		return nil, err
	}
	inst, err := w.runningInstance(c.p.str("InstanceId"))
	if err != nil {
		return nil, err
	}
	limits := limitsFor(inst.InstanceType)
	switch {
	case eni.Attachment != nil:
		return nil, clientError("InvalidNetworkInterface.InUse", "Interface %s is in use.", eni.ID)
	case eni.AvailabilityZone != inst.AvailabilityZone:
		return nil, invalidCombination("You may not attach a network interface to an instance if they are not in the same availability zone")
	case index < 0:
		return nil, invalidValue("Invalid value '%d' for DeviceIndex.", index)
	case len(inst.NetworkInterfaceIDs) >= limits.enis:
		return nil, clientError("AttachmentLimitExceeded",
			"Interface count %d exceeds the limit for %s", len(inst.NetworkInterfaceIDs)+1, inst.InstanceType)
	case slotsUsed(eni) > limits.ipsPerENI:
		return nil, clientError("PrivateIpAddressLimitExceeded",
			"Network interface %s has more addresses than %s allows per interface.", eni.ID, inst.InstanceType)
	}
	for _, id := range inst.NetworkInterfaceIDs {
		if w.enis[id].Attachment.DeviceIndex == index {
			return nil, invalidValue("Instance '%s' already has an interface attached at device index '%d'.", inst.ID, index)
		}
	}
	att := w.attach(eni, inst, index, false, c.now)
	return &attachNetworkInterfaceResponse{AttachmentID: att.ID}, nil
}

func (w *world) detachNetworkInterface(c call) (response, error) {
	id := c.p.str("AttachmentId")
	if id == "" {
		return nil, missingParameter("AttachmentId")
	}
	eni := w.byAttachment[id]
	if eni == nil {
		return nil, attachmentNotFound(id)
	}
	if eni.Attachment.DeviceIndex == 0 {
		return nil, clientError("OperationNotPermitted", "The network interface at device index 0 cannot be detached.")
	}
	w.detach(eni)
	return ack(), nil
}

var networkInterfaceFilters = map[string]bool{
	"addresses.private-ip-address": true, "addresses.primary": true, "addresses.association.public-ip": true,
	"association.allocation-id": true, "association.association-id": true, "association.public-ip": true,
	"attachment.attachment-id": true, "attachment.instance-id": true, "attachment.device-index": true,
	"attachment.status": true, "availability-zone": true, "description": true, "interface-type": true,
	"mac-address": true, "network-interface-id": true, "owner-id": true, "private-ip-address": true,
	"private-dns-name": true, "status": true, "subnet-id": true, "vpc-id": true,
}

type describeNetworkInterfacesResponse struct {
	respMeta
	NetworkInterfaces items[xmlNetworkInterface] `xml:"networkInterfaceSet"`
	NextToken         string                     `xml:"nextToken,omitempty"`
}

func (w *world) describeNetworkInterfaces(c call) (response, error) {
	fs, err := parseFilters(c.p, networkInterfaceFilters)
	if err != nil {
		return nil, err
	}
	ids := c.p.list("NetworkInterfaceId")
	pr, err := parsePaging(c.p, len(ids) > 0)
	if err != nil {
		return nil, err
	}
	candidates := sortedKeys(w.enis)
	if len(ids) > 0 {
		wanted := map[string]bool{}
		for _, id := range ids {
			if _, err := w.lookupENI(id); err != nil {
				return nil, err
			}
			wanted[id] = true
		}
		candidates = sortedKeys(wanted)
	}
	var matched []string
	for _, id := range candidates {
		eni := w.enis[id]
		if fs.match(func(name string) []string { return w.eniAttr(eni, name) }, eni.Tags) {
			matched = append(matched, id)
		}
	}
	page, next := pr.page(matched)
	out := &describeNetworkInterfacesResponse{NextToken: next}
	for _, id := range page {
		out.NetworkInterfaces.Item = append(out.NetworkInterfaces.Item, w.renderENI(w.enis[id]))
	}
	return out, nil
}

func (w *world) eniAttr(eni *NetworkInterface, name string) []string {
	switch name {
	case "addresses.private-ip-address", "private-ip-address":
		return eni.PrivateIPs
	case "addresses.primary":
		if len(eni.PrivateIPs) > 1 {
			return []string{"true", "false"}
		}
		return []string{"true"}
	case "addresses.association.public-ip":
		var out []string
		for _, ip := range eni.PrivateIPs {
			if a := w.byPrivateIP[eniIP{eni.ID, ip}]; a != nil {
				out = append(out, a.PublicIP)
			}
		}
		return out
	case "association.allocation-id", "association.association-id", "association.public-ip":
		a := w.byPrivateIP[eniIP{eni.ID, eni.PrivateIPs[0]}]
		if a == nil {
			return nil
		}
		switch name {
		case "association.allocation-id":
			return []string{a.AllocationID}
		case "association.association-id":
			return []string{a.AssociationID}
		}
		return []string{a.PublicIP}
	case "attachment.attachment-id", "attachment.instance-id", "attachment.device-index", "attachment.status":
		att := eni.Attachment
		if att == nil {
			return nil
		}
		switch name {
		case "attachment.attachment-id":
			return []string{att.ID}
		case "attachment.instance-id":
			return []string{att.InstanceID}
		case "attachment.device-index":
			return []string{strconv.Itoa(att.DeviceIndex)}
		}
		return []string{"attached"}
	case "availability-zone":
		return nonEmpty(eni.AvailabilityZone)
	case "description":
		return []string{eni.Description}
	case "interface-type":
		return nonEmpty(eni.InterfaceType)
	case "mac-address":
		return nonEmpty(eni.MacAddress)
	case "network-interface-id":
		return []string{eni.ID}
	case "owner-id":
		return []string{w.accountID}
	case "private-dns-name":
		return []string{w.privateDNSName(eni.PrivateIPs[0])}
	case "status":
		if eni.Attachment != nil {
			return []string{"in-use"}
		}
		return []string{"available"}
	case "subnet-id":
		return []string{eni.SubnetID}
	case "vpc-id":
		return []string{eni.VpcID}
	}
	return nil
}
