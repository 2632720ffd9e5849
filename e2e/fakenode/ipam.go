package fakenode

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"k8s.io/apimachinery/pkg/types"
)

// prefixSize is how many addresses a delegated /28 holds.
const prefixSize = 16

// ipam hands out pod addresses on one node's primary ENI the way the VPC
// CNI does: one secondary IP per pod, or with prefix delegation addresses
// from /28 prefixes delegated to the ENI. Freed addresses stay on the ENI
// as a warm pool and cool down before the next pod gets one (see
// CNIOptions), unless the policy releases them immediately.
type ipam struct {
	ec2        EC2API
	eniID      string
	prefixMode bool
	policy     poolPolicy

	// mu is held across the EC2 calls, so that two pods never both ask
	// for a new address or prefix when one would do.
	mu        sync.Mutex
	owner     map[netip.Addr]types.UID // addresses pods hold
	freed     map[netip.Addr]time.Time // when pods let go of addresses still on the ENI
	secondary map[netip.Addr]bool      // secondary IPs on the ENI
	prefixes  []netip.Prefix           // delegated prefixes, oldest first
	// full is set when EC2 refused the ENI another address, and cleared
	// when the pool gives one back: until then a top-up would only be
	// refused again.
	full bool
	// passes counts the warm pool's passes, for tests to wait on.
	passes uint64
}

func newIPAM(api EC2API, eniID string, prefixMode bool, policy poolPolicy) *ipam {
	return &ipam{
		ec2:        api,
		eniID:      eniID,
		prefixMode: prefixMode,
		policy:     policy,
		owner:      map[netip.Addr]types.UID{},
		freed:      map[netip.Addr]time.Time{},
		secondary:  map[netip.Addr]bool{},
	}
}

// load takes in what the ENI holds now.
func (p *ipam) load(eni ec2types.NetworkInterface) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.secondary)
	clear(p.freed)
	p.prefixes = p.prefixes[:0]
	for _, ip := range eni.PrivateIpAddresses {
		if aws.ToBool(ip.Primary) {
			continue
		}
		a, err := netip.ParseAddr(aws.ToString(ip.PrivateIpAddress))
		if err != nil {
			return fmt.Errorf("parsing a private IP of %s: %w", p.eniID, err)
		}
		p.secondary[a] = true
	}
	for _, pre := range eni.Ipv4Prefixes {
		pfx, err := netip.ParsePrefix(aws.ToString(pre.Ipv4Prefix))
		if err != nil {
			return fmt.Errorf("parsing a prefix of %s: %w", p.eniID, err)
		}
		p.prefixes = append(p.prefixes, pfx.Masked())
	}
	return nil
}

// held tells whether the ENI answers on a, in the mode's own way.
func (p *ipam) held(a netip.Addr) bool {
	if !p.prefixMode {
		return p.secondary[a]
	}
	return slices.ContainsFunc(p.prefixes, func(pfx netip.Prefix) bool { return pfx.Contains(a) })
}

// addrs lists every address the ENI offers pods, in the order a fresh ENI
// hands them out: secondary IPs by address, or the prefixes oldest first,
// each from its lowest address.
func (p *ipam) addrs() []netip.Addr {
	if !p.prefixMode {
		return slices.SortedFunc(maps.Keys(p.secondary), netip.Addr.Compare)
	}
	out := make([]netip.Addr, 0, len(p.prefixes)*prefixSize)
	for _, pfx := range p.prefixes {
		for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
			out = append(out, a)
		}
	}
	return out
}

func (p *ipam) stateOf(a netip.Addr, now time.Time) IPState {
	_, held := p.owner[a]
	return p.policy.stateOf(held, p.freed[a], now)
}

func (p *ipam) counts(now time.Time) poolCounts {
	var c poolCounts
	for _, a := range p.addrs() {
		c.add(p.stateOf(a, now))
	}
	return c
}

// available lists the addresses the next pods may get, first first.
func (p *ipam) available(now time.Time) []netip.Addr {
	var out []netip.Addr
	for _, a := range p.addrs() {
		if p.stateOf(a, now) == IPAvailable {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, handOutOrder(p.freed))
	return out
}

// claim records, when rebuilding after a restart, that a pod holds ip. It
// refuses an address another pod holds, and with onlyIfHeld one the ENI no
// longer has.
func (p *ipam) claim(ip string, uid types.UID, onlyIfHeld bool) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if owner, taken := p.owner[a]; taken && owner != uid {
		return false
	}
	if onlyIfHeld && !p.held(a) {
		return false
	}
	p.take(a, uid)
	return true
}

func (p *ipam) take(a netip.Addr, uid types.UID) string {
	p.owner[a] = uid
	delete(p.freed, a)
	return a.String()
}

// allocate gives a pod an address: the available one freed longest ago,
// or when none is available a new one from EC2, together with what the
// warm pool then lacks.
func (p *ipam) allocate(ctx context.Context, uid types.UID) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.policy.releaseImmediately {
		return p.allocateUnpooled(ctx, uid)
	}
	now := p.policy.clock.Now()
	if avail := p.available(now); len(avail) > 0 {
		return p.take(avail[0], uid), nil
	}
	c := p.counts(now)
	if p.full {
		return "", fmt.Errorf("no address free on %s, which EC2 gives no more: %d in use, %d cooling", p.eniID, c.inUse, c.cooling)
	}
	if _, err := p.grow(ctx, p.policy.toGrow(c)); err != nil {
		return "", err
	}
	avail := p.available(now)
	if len(avail) == 0 {
		return "", fmt.Errorf("%s has no free address after growing", p.eniID)
	}
	return p.take(avail[0], uid), nil
}

// allocateUnpooled is the kinder CNI: a secondary IP of its own per pod,
// or the first free address of the prefixes, a new prefix only when every
// address of the others is taken.
func (p *ipam) allocateUnpooled(ctx context.Context, uid types.UID) (string, error) {
	if p.prefixMode {
		if a, ok := p.firstFree(); ok {
			return p.take(a, uid), nil
		}
	}
	got, err := p.assign(ctx, 1)
	if err != nil {
		return "", err
	}
	if !p.prefixMode {
		return p.take(netip.MustParseAddr(got[0]), uid), nil
	}
	a, ok := p.firstFree()
	if !ok {
		return "", fmt.Errorf("prefix %s delegated to %s has no free address", got[0], p.eniID)
	}
	return p.take(a, uid), nil
}

func (p *ipam) firstFree() (netip.Addr, bool) {
	for _, a := range p.addrs() {
		if _, taken := p.owner[a]; !taken {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// grow asks EC2 for enough secondary IPs or prefixes to hold n more
// addresses in one call. When the ENI has no room for all, it settles for
// one: a pod waits for that one.
func (p *ipam) grow(ctx context.Context, n int) ([]string, error) {
	count := n
	if p.prefixMode {
		count = (n + prefixSize - 1) / prefixSize
	}
	got, err := p.assign(ctx, count)
	if isAddressLimit(err) && count > 1 {
		got, err = p.assign(ctx, 1)
	}
	if isAddressLimit(err) {
		p.full = true
	}
	return got, err
}

// maxAssign is the most IPs or prefixes one ENI can hold, and so ask for.
const maxAssign = 50

// assign gets count secondary IPs or prefixes from EC2 and records them.
func (p *ipam) assign(ctx context.Context, count int) ([]string, error) {
	// No ENI holds more than 50 IPs or prefixes: a larger count is a bug.
	if count < 1 || count > maxAssign {
		return nil, fmt.Errorf("asking EC2 for %d addresses at once on %s", count, p.eniID)
	}
	in := &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String(p.eniID)}
	what := "assigning %d secondary IPs to %s"
	if p.prefixMode {
		in.Ipv4PrefixCount = aws.Int32(int32(count))
		what = "delegating %d prefixes to %s"
	} else {
		in.SecondaryPrivateIpAddressCount = aws.Int32(int32(count))
	}
	what = fmt.Sprintf(what, count, p.eniID)
	out, err := p.ec2.AssignPrivateIpAddresses(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var got []string
	if p.prefixMode {
		for _, pre := range out.AssignedIpv4Prefixes {
			pfx, err := netip.ParsePrefix(aws.ToString(pre.Ipv4Prefix))
			if err != nil {
				return got, fmt.Errorf("%s: parsing %q: %w", what, aws.ToString(pre.Ipv4Prefix), err)
			}
			p.prefixes = append(p.prefixes, pfx.Masked())
			got = append(got, pfx.Masked().String())
		}
	} else {
		for _, ip := range out.AssignedPrivateIpAddresses {
			a, err := netip.ParseAddr(aws.ToString(ip.PrivateIpAddress))
			if err != nil {
				return got, fmt.Errorf("%s: parsing %q: %w", what, aws.ToString(ip.PrivateIpAddress), err)
			}
			p.secondary[a] = true
			got = append(got, a.String())
		}
	}
	if len(got) != count {
		return got, fmt.Errorf("%s: got %d", what, len(got))
	}
	return got, nil
}

// release gives back the address a pod held. In the warm pool it stays on
// the ENI, cooling from now; released immediately, a secondary IP is
// unassigned and a prefix address is free at once. An address the pod no
// longer holds is left alone.
func (p *ipam) release(ctx context.Context, ip string, uid types.UID) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owner[a] != uid {
		return nil
	}
	switch {
	case !p.policy.releaseImmediately:
		if p.held(a) {
			p.freed[a] = p.policy.clock.Now()
		}
	case !p.prefixMode:
		if err := p.unassign(ctx, []string{ip}, nil); err != nil {
			return err
		}
		delete(p.secondary, a)
	}
	delete(p.owner, a)
	return nil
}

// unassign gives secondary IPs or prefixes back to EC2, which drops any
// Elastic IP associated with their addresses.
func (p *ipam) unassign(ctx context.Context, ips, prefixes []string) error {
	_, err := p.ec2.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{
		NetworkInterfaceId: aws.String(p.eniID),
		PrivateIpAddresses: ips,
		Ipv4Prefixes:       prefixes,
	})
	if err != nil && !isNotAssigned(err) {
		return fmt.Errorf("unassigning %v from %s: %w", slices.Concat(ips, prefixes), p.eniID, err)
	}
	return nil
}
