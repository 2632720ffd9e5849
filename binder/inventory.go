package binder

import (
	"maps"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/kube-eip/kube-eip/api"
)

// Address is what the binder knows of one Elastic IP.
type Address struct {
	AllocationID  string
	PublicIP      string
	AssociationID string
	ENI           string
	PrivateIP     string
	// BorderGroup is the network border group the address belongs to: it
	// reaches only interfaces in that group's zones.
	BorderGroup string
	Tags        map[string]string
}

// On reports whether the address is associated with exactly t.
func (a Address) On(t Target) bool {
	return a.AssociationID != "" && a.ENI == t.ENI && a.PrivateIP == t.PrivateIP
}

func addressFromEC2(x types.Address) Address {
	a := Address{
		AllocationID:  aws.ToString(x.AllocationId),
		PublicIP:      aws.ToString(x.PublicIp),
		AssociationID: aws.ToString(x.AssociationId),
		ENI:           aws.ToString(x.NetworkInterfaceId),
		PrivateIP:     aws.ToString(x.PrivateIpAddress),
		BorderGroup:   aws.ToString(x.NetworkBorderGroup),
		Tags:          make(map[string]string, len(x.Tags)),
	}
	for _, t := range x.Tags {
		a.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return a
}

// inventory is the binder's view of the addresses it may touch: refreshed
// whole by each sweep (one DescribeAddresses), kept current in between by
// the outcome of the binder's own calls. It lets a bind skip every read.
type inventory struct {
	mu      sync.Mutex
	byAlloc map[string]Address
	// changed records when the binder's own calls last changed an address
	// (removed ones included), so that a sweep's older snapshot does not
	// undo them.
	changed map[string]time.Time
	now     func() time.Time
	// uncertain holds claims whose AllocateAddress failed in a way that
	// may still have allocated: EC2 must be searched for the claim's tag
	// before allocating again.
	uncertain map[string]bool
}

func newInventory(now func() time.Time) *inventory {
	return &inventory{byAlloc: map[string]Address{}, uncertain: map[string]bool{}, changed: map[string]time.Time{}, now: now}
}

// replace installs a snapshot EC2 answered after asked: what the binder
// changed itself since then wins over the snapshot.
func (inv *inventory) replace(addrs []Address, asked time.Time) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	fresh := make(map[string]Address, len(addrs))
	for _, a := range addrs {
		fresh[a.AllocationID] = a
	}
	for id, at := range inv.changed {
		if at.Before(asked) {
			delete(inv.changed, id)
			continue
		}
		if a, ok := inv.byAlloc[id]; ok {
			fresh[id] = a
		} else {
			delete(fresh, id)
		}
	}
	inv.byAlloc = fresh
}

func (inv *inventory) get(allocID string) (Address, bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	a, ok := inv.byAlloc[allocID]
	return a, ok
}

func (inv *inventory) put(a Address) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.byAlloc[a.AllocationID] = a
	inv.changed[a.AllocationID] = inv.now()
}

func (inv *inventory) remove(allocID string) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	delete(inv.byAlloc, allocID)
	inv.changed[allocID] = inv.now()
}

// update applies f to a known address.
func (inv *inventory) update(allocID string, f func(*Address)) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if a, ok := inv.byAlloc[allocID]; ok {
		a.Tags = maps.Clone(a.Tags)
		f(&a)
		inv.byAlloc[allocID] = a
		inv.changed[allocID] = inv.now()
	}
}

// find returns an address whose tags include all of want; of several, the
// same one every time: an associated one first, then the lowest id.
func (inv *inventory) find(want map[string]string) (Address, bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var best Address
	found := false
	for _, a := range inv.byAlloc {
		if !hasTags(a.Tags, want) {
			continue
		}
		if !found || (a.AssociationID != "") != (best.AssociationID != "") && a.AssociationID != "" ||
			(a.AssociationID != "") == (best.AssociationID != "") && a.AllocationID < best.AllocationID {
			best, found = a, true
		}
	}
	return best, found
}

func (inv *inventory) all() []Address {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	out := make([]Address, 0, len(inv.byAlloc))
	for _, a := range inv.byAlloc {
		out = append(out, a)
	}
	return out
}

func (inv *inventory) setUncertain(claim string, v bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if v {
		inv.uncertain[claim] = true
	} else {
		delete(inv.uncertain, claim)
	}
}

func (inv *inventory) isUncertain(claim string) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.uncertain[claim]
}

func hasTags(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ownedElsewhere reports whether an address belongs to another cluster.
func ownedElsewhere(tags map[string]string, cluster string) bool {
	c, ok := tags[api.TagCluster]
	return ok && c != cluster
}
