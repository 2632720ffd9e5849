// Package fake is an in-memory EC2 for the binder's unit tests. It holds
// the state a binder reads and changes (Elastic IPs, network interfaces,
// the address quota), refuses what EC2 refuses with EC2's error codes,
// records every call and injects failures, so tests check what the binder
// did to the account rather than which canned answers it was fed.
//
// It is deliberately small and speaks no HTTP; e2e/ec2sim is the full
// emulator that the end-to-end suite drives through the real SDK.
package fake

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/kube-eip/kube-eip/binder/cloud"
)

var _ cloud.API = (*EC2)(nil)

// EC2 is one emulated account in one region. It is safe for concurrent use.
type EC2 struct {
	mu        sync.Mutex
	seq       uint64
	nextIP    int
	quota     int
	pools     map[string]bool
	addresses map[string]*Address
	enis      map[string]*networkInterface

	calls     map[string][]any
	failNext  map[string][]string
	failAfter map[string][]string
	hook      func(action string) error
}

// Address is a copy of one Elastic IP. The association fields are empty
// while it is not associated.
type Address struct {
	AllocationID   string
	PublicIP       string
	PublicIPv4Pool string
	Tags           map[string]string

	AssociationID      string
	NetworkInterfaceID string
	PrivateIP          string
	// InstanceID is the instance the ENI is attached to. It is derived
	// when the copy is made, since an association belongs to the ENI.
	InstanceID string
}

// amazonPool is the pool EC2 names when it picks the address itself.
const amazonPool = "amazon"

// defaultQuota is AWS's default limit of Elastic IPs per region.
const defaultQuota = 5

// New returns an empty account with AWS's default quota of 5 addresses.
func New() *EC2 {
	return &EC2{
		quota:     defaultQuota,
		pools:     map[string]bool{},
		addresses: map[string]*Address{},
		enis:      map[string]*networkInterface{},
		calls:     map[string][]any{},
		failNext:  map[string][]string{},
		failAfter: map[string][]string{},
	}
}

// run is the path every API call takes: record, hook, injected failure,
// apply under the lock, lost response. The hook runs without the lock so
// that it may change the fake's state, e.g. to delete an ENI mid-flight.
func run[In, Out any](ctx context.Context, f *EC2, action string, in *In, apply func(*In) (*Out, error)) (*Out, error) {
	if in == nil {
		in = new(In) // the SDK treats a nil input as an empty one
	}
	f.mu.Lock()
	rec := *in // a shallow copy, so later changes by the caller do not rewrite history
	f.calls[action] = append(f.calls[action], &rec)
	hook := f.hook
	f.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if hook != nil {
		if err := hook(action); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if code, ok := pop(f.failNext, action); ok {
		return nil, injected(code)
	}
	out, err := apply(in)
	if err != nil {
		return nil, err
	}
	if code, ok := pop(f.failAfter, action); ok {
		return nil, injected(code)
	}
	return out, nil
}

// newID returns an id such as eipalloc-0f3c… with AWS's 17 hex digits.
// The counter is scrambled by an odd multiplier (a bijection, so ids stay
// unique) to keep tests from relying on ids sorting in creation order.
func (f *EC2) newID(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s-0%016x", prefix, f.seq*0x9e3779b97f4a7c15)
}

// copyOf is what leaves the fake: callers may mutate it freely.
func (f *EC2) copyOf(a *Address) Address {
	c := *a
	c.Tags = maps.Clone(a.Tags)
	c.InstanceID = f.instanceOf(a.NetworkInterfaceID)
	return c
}

// instanceOf is the instance an ENI is attached to, "" when it has none.
func (f *EC2) instanceOf(eniID string) string {
	if eni := f.enis[eniID]; eni != nil {
		return eni.instanceID
	}
	return ""
}

// addressOn is the address associated with one private IP of an ENI.
func (f *EC2) addressOn(eniID, ip string) *Address {
	for _, a := range f.addresses {
		if a.NetworkInterfaceID == eniID && a.PrivateIP == ip {
			return a
		}
	}
	return nil
}

func disassociate(a *Address) {
	a.AssociationID, a.NetworkInterfaceID, a.PrivateIP = "", "", ""
}
