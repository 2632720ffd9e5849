package fakenode

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// poolChange is what one pass over the warm pool did.
type poolChange struct {
	assigned, unassigned []string // secondary IPs or prefixes
	// next is how long until the next address leaves its cooldown, by the
	// pool's clock; zero when none cools.
	next time.Duration
}

// tend brings the ENI to its targets, as ipamd's reconciler does: available
// addresses beyond them go back to EC2, missing ones are assigned in one
// call. Cooling addresses count toward neither and stay. A refusal for want
// of room is no error: the next release makes room, and the pods wait.
func (p *ipam) tend(ctx context.Context) (poolChange, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.passes++
	var ch poolChange
	if p.policy.releaseImmediately {
		return ch, nil
	}
	now := p.policy.clock.Now()
	c := p.counts(now)
	var err error
	if over := p.policy.over(c); over > 0 {
		ch.unassigned, err = p.trim(ctx, now, over)
	} else if short := p.policy.short(c); short > 0 && !p.full {
		ch.assigned, err = p.grow(ctx, short)
		if isAddressLimit(err) {
			err = nil
		}
	}
	ch.next = p.nextCooled(now)
	return ch, err
}

// trim gives back over available addresses, those the next pods would get
// last; with prefixes, whole prefixes none of whose addresses is in use or
// cooling, the newest first, while the rest still meet the targets.
func (p *ipam) trim(ctx context.Context, now time.Time, over int) ([]string, error) {
	if !p.prefixMode {
		avail := p.available(now)
		var ips []string
		for _, a := range avail[len(avail)-over:] {
			ips = append(ips, a.String())
		}
		slices.Sort(ips)
		if err := p.unassign(ctx, ips, nil); err != nil {
			return nil, err
		}
		for _, ip := range ips {
			a := netip.MustParseAddr(ip)
			delete(p.secondary, a)
			delete(p.freed, a)
		}
		p.full = false
		return ips, nil
	}
	var gone []netip.Prefix
	for i := len(p.prefixes) - 1; i >= 0 && over >= prefixSize; i-- {
		if p.unused(p.prefixes[i], now) {
			gone = append(gone, p.prefixes[i])
			over -= prefixSize
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	names := make([]string, len(gone))
	for i, pfx := range gone {
		names[i] = pfx.String()
	}
	if err := p.unassign(ctx, nil, names); err != nil {
		return nil, err
	}
	p.prefixes = slices.DeleteFunc(p.prefixes, func(pfx netip.Prefix) bool { return slices.Contains(gone, pfx) })
	for a := range p.freed {
		if slices.ContainsFunc(gone, func(pfx netip.Prefix) bool { return pfx.Contains(a) }) {
			delete(p.freed, a)
		}
	}
	p.full = false
	return names, nil
}

// unused tells whether every address of a prefix is available.
func (p *ipam) unused(pfx netip.Prefix, now time.Time) bool {
	for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
		if p.stateOf(a, now) != IPAvailable {
			return false
		}
	}
	return true
}

func (p *ipam) nextCooled(now time.Time) time.Duration {
	var next time.Duration
	for _, at := range p.freed {
		if left := at.Add(p.policy.cooldown).Sub(now); left > 0 && (next == 0 || left < next) {
			next = left
		}
	}
	return next
}

// adopt takes the addresses on the ENI that no pod holds, after a restart,
// as the warm pool rather than as orphans. The Kubelet that freed them kept
// no record of when, so they cool from now: one may carry a deleted pod's
// Elastic IP. Returns how many.
func (p *ipam) adopt() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.policy.releaseImmediately {
		return 0
	}
	now := p.policy.clock.Now()
	n := 0
	for _, a := range p.addrs() {
		if _, taken := p.owner[a]; !taken {
			p.freed[a] = now
			n++
		}
	}
	return n
}

// sweep unassigns, when addresses are released immediately, the secondary
// IPs no pod holds: those a Kubelet took and stopped before recording on a
// pod. It runs before any pod is handled, so every holder has been claimed
// by then.
func (p *ipam) sweep(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prefixMode || !p.policy.releaseImmediately {
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
	if err := p.unassign(ctx, orphans, nil); err != nil {
		return nil, err
	}
	for _, ip := range orphans {
		delete(p.secondary, netip.MustParseAddr(ip))
	}
	return orphans, nil
}
