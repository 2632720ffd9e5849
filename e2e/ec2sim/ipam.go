package ec2sim

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// prefixSize is the number of addresses in a delegated /28 prefix.
const (
	prefixBits = 28
	prefixSize = 1 << (32 - prefixBits)
)

// subnetSpace hands out a subnet's private addresses. Cursors move forward
// and wrap, so a freed address is not handed out again at once (like EC2,
// and unlike a lowest-free allocator that would mask use-after-free bugs).
type subnetSpace struct {
	subnetID     string
	base         uint32
	size         uint32
	cursor       uint32
	prefixCursor uint32
	used         int
}

func newSubnetSpace(id string, p netip.Prefix) *subnetSpace {
	return &subnetSpace{
		subnetID: id,
		base:     addrToU32(p.Masked().Addr()),
		size:     1 << (32 - p.Bits()),
		cursor:   4,
	}
}

func addrToU32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func u32ToAddr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// reserved: AWS keeps the first four addresses and the last one of every subnet.
func (s *subnetSpace) reserved(off uint32) bool { return off < 4 || off == s.size-1 }

// available is what DescribeSubnets reports as availableIpAddressCount.
func (s *subnetSpace) available() int { return int(s.size) - 5 - s.used }

func (s *subnetSpace) offset(a netip.Addr) (uint32, bool) {
	if !a.Is4() {
		return 0, false
	}
	v := addrToU32(a)
	if v < s.base || v-s.base >= s.size {
		return 0, false
	}
	return v - s.base, true
}

// allocIPs takes n free addresses of the subnet for owner.
func (w *world) allocIPs(sp *subnetSpace, n int, owner string) ([]string, error) {
	if sp.available() < n {
		return nil, clientError("InsufficientFreeAddressesInSubnet",
			"There are not enough free addresses in subnet '%s' to satisfy the requested number of addresses.", sp.subnetID)
	}
	out := make([]string, 0, n)
	for scanned := uint32(0); len(out) < n && scanned < sp.size; scanned++ {
		off := sp.cursor
		sp.cursor = (sp.cursor + 1) % sp.size
		a := u32ToAddr(sp.base + off)
		if sp.reserved(off) || w.ipOwner[a] != "" {
			continue
		}
		w.ipOwner[a] = owner
		sp.used++
		out = append(out, a.String())
	}
	return out, nil
}

// allocPrefixes takes n free aligned /28 blocks of the subnet for owner.
func (w *world) allocPrefixes(sp *subnetSpace, n int, owner string) ([]string, error) {
	blocks := sp.size / prefixSize
	var out []string
	for scanned := uint32(0); len(out) < n && scanned < blocks; scanned++ {
		blk := sp.prefixCursor % blocks
		sp.prefixCursor = (blk + 1) % blocks
		if w.blockFree(sp, blk*prefixSize) {
			p := netip.PrefixFrom(u32ToAddr(sp.base+blk*prefixSize), prefixBits)
			w.takeBlock(sp, blk*prefixSize, owner)
			out = append(out, p.String())
		}
	}
	if len(out) < n {
		for _, p := range out {
			w.freePrefix(p)
		}
		return nil, clientError("InsufficientCidrBlocks",
			"There are not enough free cidr blocks in the specified subnet '%s' to satisfy the request.", sp.subnetID)
	}
	return out, nil
}

func (w *world) blockFree(sp *subnetSpace, start uint32) bool {
	for off := start; off < start+prefixSize; off++ {
		if sp.reserved(off) || w.ipOwner[u32ToAddr(sp.base+off)] != "" {
			return false
		}
	}
	return true
}

func (w *world) takeBlock(sp *subnetSpace, start uint32, owner string) {
	for off := start; off < start+prefixSize; off++ {
		w.ipOwner[u32ToAddr(sp.base+off)] = owner
	}
	sp.used += prefixSize
}

// claimIP takes an address the caller chose.
func (w *world) claimIP(sp *subnetSpace, s, owner string) (string, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return "", invalidValue("Invalid value '%s' for IP address.", s)
	}
	off, ok := sp.offset(a)
	if !ok {
		return "", invalidValue("Address %s does not fall within the subnet's address range", s)
	}
	if sp.reserved(off) {
		return "", invalidValue("Address %s is reserved by AWS and cannot be assigned.", s)
	}
	if w.ipOwner[a] != "" {
		return "", clientError("InvalidIPAddress.InUse", "Address %s is in use.", s)
	}
	w.ipOwner[a] = owner
	sp.used++
	return a.String(), nil
}

// claimPrefix takes a /28 the caller chose.
func (w *world) claimPrefix(sp *subnetSpace, s, owner string) (string, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.Bits() != prefixBits || p.Masked() != p {
		return "", invalidValue("Invalid value '%s' for IPv4 prefix: expected an aligned /%d CIDR block.", s, prefixBits)
	}
	off, ok := sp.offset(p.Addr())
	if !ok {
		return "", invalidValue("Prefix %s does not fall within the subnet's address range", s)
	}
	if !w.blockFree(sp, off) {
		return "", clientError("InvalidIPAddress.InUse", "Prefix %s overlaps addresses that are in use or reserved.", s)
	}
	w.takeBlock(sp, off, owner)
	return p.String(), nil
}

func (w *world) spaceOf(a netip.Addr) *subnetSpace {
	for _, sp := range w.spaces {
		if _, ok := sp.offset(a); ok {
			return sp
		}
	}
	return nil
}

func (w *world) freeIP(s string) {
	a, err := netip.ParseAddr(s)
	if err != nil || w.ipOwner[a] == "" {
		return
	}
	delete(w.ipOwner, a)
	if sp := w.spaceOf(a); sp != nil {
		sp.used--
	}
}

func (w *world) freePrefix(s string) {
	for _, ip := range prefixAddrs(s) {
		w.freeIP(ip)
	}
}

// prefixAddrs lists the 16 addresses of a /28.
func prefixAddrs(s string) []string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return nil
	}
	out := make([]string, 0, prefixSize)
	a := p.Masked().Addr()
	for range prefixSize {
		out = append(out, a.String())
		a = a.Next()
	}
	return out
}

// setOwner records an address a loaded state says is held, refusing doubles.
func (w *world) setOwner(s, owner string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("parsing private address %q of %s: %w", s, owner, err)
	}
	if prev := w.ipOwner[a]; prev != "" {
		return fmt.Errorf("private address %s held by both %s and %s", s, prev, owner)
	}
	sp := w.spaceOf(a)
	if sp == nil {
		return fmt.Errorf("private address %s of %s is in no subnet", s, owner)
	}
	w.ipOwner[a] = owner
	sp.used++
	return nil
}
