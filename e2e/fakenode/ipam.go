package fakenode

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"k8s.io/apimachinery/pkg/types"
)

// ipam hands out pod addresses on one node's primary ENI the way the VPC
// CNI does: one secondary IP per pod, or with prefix delegation addresses
// from /28 prefixes delegated to the ENI, a new prefix only when every
// address of the others is taken.
type ipam struct {
	ec2        EC2API
	eniID      string
	prefixMode bool

	// mu is held across the EC2 calls, so that two pods never both ask
	// for a new prefix when one would do.
	mu        sync.Mutex
	owner     map[netip.Addr]types.UID // addresses pods hold
	secondary map[netip.Addr]bool      // secondary IPs on the ENI
	prefixes  []netip.Prefix           // delegated prefixes, oldest first
}

func newIPAM(api EC2API, eniID string, prefixMode bool) *ipam {
	return &ipam{
		ec2:        api,
		eniID:      eniID,
		prefixMode: prefixMode,
		owner:      map[netip.Addr]types.UID{},
		secondary:  map[netip.Addr]bool{},
	}
}

// load takes in what the ENI holds now.
func (p *ipam) load(eni ec2types.NetworkInterface) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.secondary)
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
	p.owner[a] = uid
	return true
}

// allocate gives a pod an address.
func (p *ipam) allocate(ctx context.Context, uid types.UID) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prefixMode {
		return p.allocateFromPrefix(ctx, uid)
	}
	out, err := p.ec2.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{
		NetworkInterfaceId:             aws.String(p.eniID),
		SecondaryPrivateIpAddressCount: aws.Int32(1),
	})
	if err != nil {
		return "", fmt.Errorf("assigning a secondary IP to %s: %w", p.eniID, err)
	}
	if len(out.AssignedPrivateIpAddresses) != 1 {
		return "", fmt.Errorf("assigning a secondary IP to %s: got %d addresses", p.eniID, len(out.AssignedPrivateIpAddresses))
	}
	a, err := netip.ParseAddr(aws.ToString(out.AssignedPrivateIpAddresses[0].PrivateIpAddress))
	if err != nil {
		return "", fmt.Errorf("parsing the secondary IP assigned to %s: %w", p.eniID, err)
	}
	p.secondary[a] = true
	p.owner[a] = uid
	return a.String(), nil
}

func (p *ipam) allocateFromPrefix(ctx context.Context, uid types.UID) (string, error) {
	for _, pfx := range p.prefixes {
		if a, ok := p.freeIn(pfx); ok {
			p.owner[a] = uid
			return a.String(), nil
		}
	}
	out, err := p.ec2.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{
		NetworkInterfaceId: aws.String(p.eniID),
		Ipv4PrefixCount:    aws.Int32(1),
	})
	if err != nil {
		return "", fmt.Errorf("delegating a prefix to %s: %w", p.eniID, err)
	}
	if len(out.AssignedIpv4Prefixes) != 1 {
		return "", fmt.Errorf("delegating a prefix to %s: got %d prefixes", p.eniID, len(out.AssignedIpv4Prefixes))
	}
	pfx, err := netip.ParsePrefix(aws.ToString(out.AssignedIpv4Prefixes[0].Ipv4Prefix))
	if err != nil {
		return "", fmt.Errorf("parsing the prefix delegated to %s: %w", p.eniID, err)
	}
	pfx = pfx.Masked()
	p.prefixes = append(p.prefixes, pfx)
	a, ok := p.freeIn(pfx)
	if !ok {
		return "", fmt.Errorf("prefix %s delegated to %s has no free address", pfx, p.eniID)
	}
	p.owner[a] = uid
	return a.String(), nil
}

func (p *ipam) freeIn(pfx netip.Prefix) (netip.Addr, bool) {
	for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
		if _, taken := p.owner[a]; !taken {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// release gives back the address a pod held: unassigned from the ENI for
// a secondary IP, back to the free set for a prefix address (the VPC CNI
// keeps prefixes warm). An address the pod no longer holds is left alone.
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
	if !p.prefixMode {
		if err := p.unassign(ctx, []string{ip}); err != nil {
			return err
		}
		delete(p.secondary, a)
	}
	delete(p.owner, a)
	return nil
}

func (p *ipam) unassign(ctx context.Context, ips []string) error {
	_, err := p.ec2.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{
		NetworkInterfaceId: aws.String(p.eniID),
		PrivateIpAddresses: ips,
	})
	if err != nil && !isNotAssigned(err) {
		return fmt.Errorf("unassigning %v from %s: %w", ips, p.eniID, err)
	}
	return nil
}

// sweep unassigns the secondary IPs no pod holds: those a Kubelet took
// and stopped before recording on a pod. It runs before any pod is
// handled, so every holder has been claimed by then.
func (p *ipam) sweep(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prefixMode {
		return nil, nil
	}
	var orphans []string
	for a := range p.secondary {
		if _, taken := p.owner[a]; !taken {
			orphans = append(orphans, a.String())
		}
	}
	if len(orphans) == 0 {
		return nil, nil
	}
	slices.Sort(orphans)
	if err := p.unassign(ctx, orphans); err != nil {
		return nil, err
	}
	for _, ip := range orphans {
		delete(p.secondary, netip.MustParseAddr(ip))
	}
	return orphans, nil
}
