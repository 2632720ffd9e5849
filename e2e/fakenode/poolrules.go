package fakenode

import (
	"net/netip"
	"time"

	"k8s.io/utils/clock"
)

// poolPolicy is CNIOptions with the defaults applied.
type poolPolicy struct {
	releaseImmediately bool
	warm, minimum      int
	cooldown           time.Duration
	clock              clock.PassiveClock
}

// stateOf is where an address stands: held by a pod, cooling since freed,
// or available. freed is zero for an address no pod has let go of.
func (p poolPolicy) stateOf(held bool, freed, now time.Time) IPState {
	switch {
	case held:
		return IPInUse
	case !freed.IsZero() && now.Before(freed.Add(p.cooldown)):
		return IPCooling
	}
	return IPAvailable
}

// poolCounts counts the addresses on an ENI by state.
type poolCounts struct {
	inUse, cooling, available int
}

func (c poolCounts) total() int { return c.inUse + c.cooling + c.available }

func (c *poolCounts) add(s IPState) {
	switch s {
	case IPInUse:
		c.inUse++
	case IPCooling:
		c.cooling++
	case IPAvailable:
		c.available++
	}
}

// short is how many addresses the ENI lacks for the warm target to be
// available and the minimum to be assigned, as ipamd reckons it.
func (p poolPolicy) short(c poolCounts) int {
	return max(p.warm-c.available, p.minimum-c.total(), 0)
}

// over is how many available addresses the ENI may give back and still
// meet both targets. Cooling addresses are not available, so they never go
// back: an Elastic IP on a freed address stays associated.
func (p poolPolicy) over(c poolCounts) int {
	return max(min(c.available-p.warm, c.total()-p.minimum), 0)
}

// toGrow is how many addresses to ask EC2 for when a pod finds none
// available: its own and what the targets lack once it has it, in one call.
func (p poolPolicy) toGrow(c poolCounts) int {
	return max(p.warm+1-c.available, p.minimum-c.total(), 1)
}

// handOutOrder sorts available addresses the way they go to pods: those
// freed longest ago first, so that a freed address is reused as on EKS,
// then those no pod has had, in the ENI's order (sort stably). The trim
// gives back from the other end.
func handOutOrder(freed map[netip.Addr]time.Time) func(a, b netip.Addr) int {
	return func(a, b netip.Addr) int {
		fa, aFreed := freed[a]
		fb, bFreed := freed[b]
		switch {
		case aFreed && bFreed:
			return fa.Compare(fb)
		case aFreed:
			return -1
		case bFreed:
			return 1
		}
		return 0
	}
}
