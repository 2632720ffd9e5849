package fake

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The helpers below set up and inspect the account the way the world
// outside the binder would change it: the VPC CNI assigning pod IPs,
// instances being terminated, another cluster owning addresses. They panic
// on malformed arguments, which are mistakes in the test itself.

// networkInterface is an ENI as far as Elastic IPs care.
type networkInterface struct {
	id string
	// instanceID is "" for a branch ENI, which hangs off a trunk ENI
	// rather than being attached to the instance itself.
	instanceID string
	kind       types.NetworkInterfaceType
	privateIPs []string // the primary first
	prefixes   []netip.Prefix
	// deviceIndex is the attachment's: the instance's first ENI is its
	// primary, at 0.
	deviceIndex int32
}

// holds tells whether ip is one of the ENI's private IPs or inside one of
// its delegated prefixes, where pods get addresses under prefix delegation.
func (e *networkInterface) holds(ip string) bool {
	if slices.Contains(e.privateIPs, ip) {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(e.prefixes, func(p netip.Prefix) bool { return p.Contains(addr) })
}

// AddInterface attaches a new ENI to instanceID with the given private IPs
// (the primary first, at least one) and delegated prefixes such as
// "10.0.1.16/28", and returns its id.
func (f *EC2) AddInterface(instanceID string, privateIPs, prefixes []string) string {
	return f.addInterface(instanceID, types.NetworkInterfaceTypeInterface, privateIPs, prefixes)
}

// AddBranchInterface adds a branch ENI, which security groups for pods give
// a single pod, holding privateIP, and returns its id.
func (f *EC2) AddBranchInterface(privateIP string) string {
	return f.addInterface("", types.NetworkInterfaceTypeBranch, []string{privateIP}, nil)
}

func (f *EC2) addInterface(instanceID string, kind types.NetworkInterfaceType, privateIPs, prefixes []string) string {
	if len(privateIPs) == 0 {
		panic("fake: an ENI needs a primary private IP")
	}
	eni := &networkInterface{instanceID: instanceID, kind: kind}
	for _, ip := range privateIPs {
		eni.privateIPs = append(eni.privateIPs, netip.MustParseAddr(ip).String())
	}
	for _, p := range prefixes {
		eni.prefixes = append(eni.prefixes, netip.MustParsePrefix(p).Masked())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	eni.id = f.newID("eni")
	for _, other := range f.enis {
		if instanceID != "" && other.instanceID == instanceID {
			eni.deviceIndex++
		}
	}
	f.enis[eni.id] = eni
	return eni.id
}

// AssignIP adds a secondary private IP to an ENI, as the CNI does for a new
// pod. It reports whether the ENI exists.
func (f *EC2) AssignIP(eniID, ip string) bool {
	ip = netip.MustParseAddr(ip).String()
	f.mu.Lock()
	defer f.mu.Unlock()
	eni := f.enis[eniID]
	if eni == nil {
		return false
	}
	if !slices.Contains(eni.privateIPs, ip) {
		eni.privateIPs = append(eni.privateIPs, ip)
	}
	return true
}

// UnassignIP takes a secondary private IP off an ENI. The Elastic IP mapped
// to it is disassociated, as EC2 does: an association never outlives its
// private address. It reports whether the ENI held the IP.
func (f *EC2) UnassignIP(eniID, ip string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	eni := f.enis[eniID]
	if eni == nil {
		return false
	}
	i := slices.Index(eni.privateIPs, ip)
	if i < 1 {
		return false // unknown, or the primary, which only goes with the ENI
	}
	eni.privateIPs = slices.Delete(eni.privateIPs, i, i+1)
	if a := f.addressOn(eniID, ip); a != nil {
		disassociate(a)
	}
	return true
}

// UnassignPrefix takes a delegated prefix off an ENI, disassociating every
// Elastic IP mapped into it. It reports whether the ENI held the prefix.
func (f *EC2) UnassignPrefix(eniID, prefix string) bool {
	p := netip.MustParsePrefix(prefix).Masked()
	f.mu.Lock()
	defer f.mu.Unlock()
	eni := f.enis[eniID]
	if eni == nil || !slices.Contains(eni.prefixes, p) {
		return false
	}
	eni.prefixes = slices.DeleteFunc(eni.prefixes, func(q netip.Prefix) bool { return q == p })
	for _, a := range f.addresses {
		if a.NetworkInterfaceID != eniID || eni.holds(a.PrivateIP) {
			continue
		}
		disassociate(a)
	}
	return true
}

// DeleteInterface removes an ENI, as terminating its instance does, and
// disassociates the Elastic IPs mapped to it. The addresses stay allocated.
func (f *EC2) DeleteInterface(eniID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.addresses {
		if a.NetworkInterfaceID == eniID {
			disassociate(a)
		}
	}
	delete(f.enis, eniID)
}

// AddAddress allocates an address outside the binder, e.g. an operator's
// pool or another cluster's, ignoring the quota (it already exists; it
// still counts against the quota for later allocations).
func (f *EC2) AddAddress(tags map[string]string) (allocID, publicIP string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ip, err := f.newPublicIP()
	if err != nil {
		panic("fake: " + err.Error())
	}
	a := &Address{AllocationID: f.newID("eipalloc"), PublicIP: ip, PublicIPv4Pool: amazonPool, Tags: maps.Clone(tags)}
	f.addresses[a.AllocationID] = a
	return a.AllocationID, a.PublicIP
}

// SetTags replaces an address's tags with tags, as an operator retagging
// it in the console would, keeping those under kube-eip.io/ (kube-eip's).
func (f *EC2) SetTags(allocID string, tags map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.addresses[allocID]
	if a == nil {
		panic("fake: no address " + allocID)
	}
	next := maps.Clone(tags)
	for k, v := range a.Tags {
		if strings.HasPrefix(k, "kube-eip.io/") {
			next[k] = v
		}
	}
	a.Tags = next
}

// AddPublicIPv4Pool registers a BYOIP pool that AllocateAddress accepts.
func (f *EC2) AddPublicIPv4Pool(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pools[id] = true
}

// SetQuota sets how many addresses the account may hold; negative means
// no limit, which DescribeAccountAttributes reports by leaving
// vpc-max-elastic-ips out. Lowering it below the current count only stops
// allocations.
func (f *EC2) SetQuota(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.quota = n
}

// Address returns a copy of the address with this allocation id.
func (f *EC2) Address(allocID string) (Address, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.addresses[allocID]
	if a == nil {
		return Address{}, false
	}
	return f.copyOf(a), true
}

// Addresses returns copies of every address, ordered by allocation id.
func (f *EC2) Addresses() []Address {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Address, 0, len(f.addresses))
	for _, id := range slices.Sorted(maps.Keys(f.addresses)) {
		out = append(out, f.copyOf(f.addresses[id]))
	}
	return out
}

// publicBlocks are the documentation ranges (RFC 5737) public IPs come
// from, so that a test address can never be mistaken for a real one.
var publicBlocks = []string{"203.0.113.", "198.51.100.", "192.0.2."}

// newPublicIP walks the blocks without reusing a released address until it
// has to wrap around, so a test notices a binder that confuses an old
// address with a new one holding the same IP.
func (f *EC2) newPublicIP() (string, error) {
	const perBlock = 254
	total := perBlock * len(publicBlocks)
	taken := map[string]bool{}
	for _, a := range f.addresses {
		taken[a.PublicIP] = true
	}
	for range total {
		i := f.nextIP % total
		f.nextIP++
		ip := publicBlocks[i/perBlock] + strconv.Itoa(i%perBlock+1)
		if !taken[ip] {
			return ip, nil
		}
	}
	return "", apiError("InsufficientAddressCapacity", "There are no free public addresses.")
}
