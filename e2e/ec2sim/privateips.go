package ec2sim

import (
	"net/netip"
	"slices"
)

type xmlAssignedIP struct {
	PrivateIPAddress string `xml:"privateIpAddress"`
}

type assignPrivateIPAddressesResponse struct {
	respMeta
	NetworkInterfaceID string          `xml:"networkInterfaceId"`
	AssignedIPs        []xmlAssignedIP `xml:"assignedPrivateIpAddressesSet>item"`
	AssignedPrefixes   []xmlPrefix     `xml:"assignedIpv4PrefixSet>item"`
}

// assignPrivateIPAddresses adds secondary addresses (a count or a list) or
// delegated /28 prefixes (a count or a list) to an ENI, within the
// instance type's per-interface limit. With AllowReassignment an address
// held by another ENI moves here, losing its Elastic IP on the way.
func (w *world) assignPrivateIPAddresses(c call) (response, error) {
	eni, err := w.lookupENI(c.p.str("NetworkInterfaceId"))
	if err != nil {
		return nil, err
	}
	count, _, err := c.p.integer("SecondaryPrivateIpAddressCount")
	if err != nil {
		return nil, err
	}
	prefixCount, _, err := c.p.integer("Ipv4PrefixCount")
	if err != nil {
		return nil, err
	}
	reassign, _, err := c.p.boolean("AllowReassignment")
	if err != nil {
		return nil, err
	}
	ips, prefixes := c.p.list("PrivateIpAddress"), c.p.list("Ipv4Prefix")
	wantIPs := count > 0 || len(ips) > 0
	wantPrefixes := prefixCount > 0 || len(prefixes) > 0
	switch {
	case count < 0 || prefixCount < 0:
		return nil, invalidValue("Address and prefix counts must be positive.")
	case count > 0 && len(ips) > 0:
		return nil, invalidCombination("You may specify secondary private IP addresses or a count of them, but not both.")
	case prefixCount > 0 && len(prefixes) > 0:
		return nil, invalidCombination("You may specify IPv4 prefixes or a count of them, but not both.")
	case wantIPs && wantPrefixes:
		return nil, invalidCombination("You may assign secondary private IP addresses or IPv4 prefixes in one call, but not both.")
	case !wantIPs && !wantPrefixes:
		return nil, missingParameter("SecondaryPrivateIpAddressCount, PrivateIpAddress, Ipv4PrefixCount or Ipv4Prefix")
	}
	if err := checkSlots(eni, count+len(ips)+prefixCount+len(prefixes), w.ipSlots(eni)); err != nil {
		return nil, err
	}
	out := &assignPrivateIPAddressesResponse{NetworkInterfaceID: eni.ID}
	if wantPrefixes {
		got, err := w.addPrefixes(eni, prefixes, prefixCount)
		if err != nil {
			return nil, err
		}
		for _, p := range got {
			out.AssignedPrefixes = append(out.AssignedPrefixes, xmlPrefix{IPv4Prefix: p})
		}
		return out, nil
	}
	// Check every address before moving any, so a refusal changes nothing.
	losers := make([]*NetworkInterface, len(ips))
	for i, ip := range ips {
		if losers[i], err = w.reassignable(eni, ip, reassign); err != nil {
			return nil, err
		}
	}
	for i, loser := range losers {
		if loser != nil {
			w.giveUp(loser, ips[i])
		}
	}
	got, err := w.addIPs(eni, ips, count)
	if err != nil {
		return nil, err
	}
	for _, ip := range got {
		out.AssignedIPs = append(out.AssignedIPs, xmlAssignedIP{PrivateIPAddress: ip})
	}
	return out, nil
}

// reassignable checks that an address can be given to the ENI and returns
// the ENI that must give it up first (nil when it is free). Only secondary
// addresses move, and only when the caller allowed reassignment.
func (w *world) reassignable(to *NetworkInterface, ip string, allowed bool) (*NetworkInterface, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return nil, invalidValue("Invalid value '%s' for IP address.", ip)
	}
	sp := w.spaces[to.SubnetID]
	if off, ok := sp.offset(a); !ok || sp.reserved(off) {
		return nil, invalidValue("Address %s does not fall within the subnet's usable address range", ip)
	}
	switch ownerID := w.ipOwner[a]; ownerID {
	case "":
		return nil, nil
	case to.ID:
		return nil, invalidValue("Address %s is already assigned to %s.", ip, to.ID)
	}
	owner := w.enis[w.ipOwner[a]]
	if !allowed || slices.Index(owner.PrivateIPs, a.String()) < 1 {
		return nil, clientError("InvalidIPAddress.InUse", "Address %s is in use.", ip)
	}
	return owner, nil
}

// giveUp takes a secondary address off an ENI, with its Elastic IP.
func (w *world) giveUp(eni *NetworkInterface, ip string) {
	w.dropIP(eni.ID, ip)
	w.freeIP(ip)
	eni.PrivateIPs = slices.DeleteFunc(eni.PrivateIPs, func(s string) bool { return s == ip })
}

// unassignPrivateIPAddresses removes secondary addresses or prefixes; an
// Elastic IP mapped to a removed address is disassociated, as in EC2.
func (w *world) unassignPrivateIPAddresses(c call) (response, error) {
	eni, err := w.lookupENI(c.p.str("NetworkInterfaceId"))
	if err != nil {
		return nil, err
	}
	ips, prefixes := c.p.list("PrivateIpAddress"), c.p.list("Ipv4Prefix")
	if len(ips) == 0 && len(prefixes) == 0 {
		return nil, missingParameter("PrivateIpAddress or Ipv4Prefix")
	}
	for _, ip := range ips {
		idx := slices.Index(eni.PrivateIPs, ip)
		switch {
		case idx == 0:
			return nil, invalidValue("The primary private IP address %s of %s cannot be unassigned.", ip, eni.ID)
		case idx < 0:
			return nil, invalidValue("Some of the specified addresses are not assigned to interface %s", eni.ID)
		}
	}
	for _, p := range prefixes {
		if !slices.Contains(eni.Prefixes, p) {
			return nil, invalidValue("Some of the specified prefixes are not assigned to interface %s", eni.ID)
		}
	}
	for _, ip := range ips {
		w.giveUp(eni, ip)
	}
	for _, p := range prefixes {
		for _, ip := range prefixAddrs(p) {
			w.dropIP(eni.ID, ip)
		}
		w.freePrefix(p)
		eni.Prefixes = slices.DeleteFunc(eni.Prefixes, func(s string) bool { return s == p })
	}
	return ack(), nil
}
