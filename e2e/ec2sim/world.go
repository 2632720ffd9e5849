package ec2sim

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// world is the emulated account in one region. Every method expects the
// Sim's mutex to be held; the indexes exist so that the invariants EC2 keeps
// (one address per private IP, one owner per private IP, associations that
// vanish with their IP or ENI) are enforced in one place.
type world struct {
	region    string
	accountID string
	eipQuota  int
	pools     map[string]netip.Prefix
	rng       *rand.Rand
	// zones are the region's availability zones and Local Zones.
	zones []zone

	vpcs      map[string]*Vpc
	subnets   map[string]*Subnet
	addresses map[string]*Address
	enis      map[string]*NetworkInterface
	instances map[string]*Instance

	byPublicIP    map[string]*Address
	byAssociation map[string]*Address
	byPrivateIP   map[eniIP]*Address
	byAttachment  map[string]*NetworkInterface
	spaces        map[string]*subnetSpace
	ipOwner       map[netip.Addr]string
	taken         map[string]bool
	// clientTokens makes RunInstances and CreateNetworkInterface idempotent,
	// as their ClientToken promises (the SDK fills one in on every call).
	clientTokens map[string]string
}

// eniIP names one private address of one ENI, the target of an association.
type eniIP struct{ eni, ip string }

func newWorld(o Options, rng *rand.Rand, pools map[string]netip.Prefix) *world {
	return &world{
		region:        o.Region,
		accountID:     o.AccountID,
		eipQuota:      o.EIPQuota,
		pools:         pools,
		rng:           rng,
		zones:         buildZones(o.Region, o.LocalZone),
		vpcs:          map[string]*Vpc{},
		subnets:       map[string]*Subnet{},
		addresses:     map[string]*Address{},
		enis:          map[string]*NetworkInterface{},
		instances:     map[string]*Instance{},
		byPublicIP:    map[string]*Address{},
		byAssociation: map[string]*Address{},
		byPrivateIP:   map[eniIP]*Address{},
		byAttachment:  map[string]*NetworkInterface{},
		spaces:        map[string]*subnetSpace{},
		ipOwner:       map[netip.Addr]string{},
		taken:         map[string]bool{},
		clientTokens:  map[string]string{},
	}
}

// associate points a at one private IP of eni, moving it if it was elsewhere
// and displacing any other address on that IP, as AssociateAddress does.
func (w *world) associate(a *Address, eni *NetworkInterface, ip string) {
	if a.AssociationID != "" {
		w.disassociate(a)
	}
	if other := w.byPrivateIP[eniIP{eni.ID, ip}]; other != nil {
		w.disassociate(other)
	}
	a.AssociationID = w.newID("eipassoc")
	a.NetworkInterfaceID = eni.ID
	a.PrivateIPAddress = ip
	w.byAssociation[a.AssociationID] = a
	w.byPrivateIP[eniIP{eni.ID, ip}] = a
}

func (w *world) disassociate(a *Address) {
	delete(w.byAssociation, a.AssociationID)
	delete(w.byPrivateIP, eniIP{a.NetworkInterfaceID, a.PrivateIPAddress})
	a.AssociationID, a.NetworkInterfaceID, a.PrivateIPAddress = "", "", ""
}

// dropIP disassociates whatever address sits on one private IP of an ENI:
// an Elastic IP never outlives the private address it was mapped to.
func (w *world) dropIP(eniID, ip string) {
	if a := w.byPrivateIP[eniIP{eniID, ip}]; a != nil {
		w.disassociate(a)
	}
}

// eniAddrs lists every address an ENI answers on: its private IPs and all
// addresses inside its delegated prefixes.
func eniAddrs(eni *NetworkInterface) []string {
	out := slices.Clone(eni.PrivateIPs)
	for _, p := range eni.Prefixes {
		out = append(out, prefixAddrs(p)...)
	}
	return out
}

// holdsIP tells whether ip is a private IP of eni or inside one of its
// prefixes (with prefix delegation, pods get addresses from the prefixes).
func holdsIP(eni *NetworkInterface, ip string) bool {
	if slices.Contains(eni.PrivateIPs, ip) {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, s := range eni.Prefixes {
		if p, err := netip.ParsePrefix(s); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}

// deleteENI removes an ENI, its addresses and the Elastic IPs mapped to them.
func (w *world) deleteENI(eni *NetworkInterface) {
	for _, ip := range eniAddrs(eni) {
		w.dropIP(eni.ID, ip)
	}
	for _, ip := range eni.PrivateIPs {
		w.freeIP(ip)
	}
	for _, p := range eni.Prefixes {
		w.freePrefix(p)
	}
	if eni.Attachment != nil {
		w.detach(eni)
	}
	delete(w.enis, eni.ID)
}

func (w *world) attach(eni *NetworkInterface, inst *Instance, index int, deleteOnTermination bool, now time.Time) *Attachment {
	att := &Attachment{
		ID:                  w.newID("eni-attach"),
		InstanceID:          inst.ID,
		DeviceIndex:         index,
		DeleteOnTermination: deleteOnTermination,
		AttachTime:          now.UTC(),
	}
	eni.Attachment = att
	w.byAttachment[att.ID] = eni
	inst.NetworkInterfaceIDs = append(inst.NetworkInterfaceIDs, eni.ID)
	slices.SortStableFunc(inst.NetworkInterfaceIDs, func(a, b string) int {
		return cmp.Compare(w.enis[a].Attachment.DeviceIndex, w.enis[b].Attachment.DeviceIndex)
	})
	return att
}

// detach frees an ENI from its instance. Its Elastic IPs stay associated:
// in EC2 an association belongs to the ENI, not to the instance.
func (w *world) detach(eni *NetworkInterface) {
	att := eni.Attachment
	if inst := w.instances[att.InstanceID]; inst != nil {
		inst.NetworkInterfaceIDs = slices.DeleteFunc(inst.NetworkInterfaceIDs, func(id string) bool { return id == eni.ID })
	}
	delete(w.byAttachment, att.ID)
	eni.Attachment = nil
}

// instanceOf is the instance an ENI is attached to, "" when detached.
func (w *world) instanceOf(eniID string) string {
	if eni := w.enis[eniID]; eni != nil && eni.Attachment != nil {
		return eni.Attachment.InstanceID
	}
	return ""
}

// sortedKeys gives describes a stable order, which paging tokens rely on.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
