// Package binder associates each managed pod's Elastic IP with the network
// interface that holds the pod's IP, marks the pod, and releases the
// address when the pod goes. A finalizer set at admission guarantees the
// release even if the binder was down; a periodic sweep compares EC2 with
// the cluster and repairs drift both ways.
package binder

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/kube-eip/kube-eip/binder/cloud"
	"github.com/kube-eip/kube-eip/internal/owners"
)

// Config is what a Binder is built from.
type Config struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads the API server directly.
	APIReader client.Reader
	EC2       cloud.API
	Recorder  events.EventRecorder
	// Refusals, when set, hears of every pod refused an address, so that
	// the workload behind it is told (owners.Reporter).
	Refusals owners.Sink
	// Namespace is kube-eip's own, where the account's count is published
	// (api.AccountConfigMap); empty publishes nothing.
	Namespace string
	// Cluster is the value of the kube-eip.io/cluster tag on every address
	// this binder owns.
	Cluster string
	// OrphanGrace is how long an address must have had no owner before the
	// sweep releases it.
	OrphanGrace time.Duration
	// ClaimTTL is how long a reservation waits for the pod it was made
	// for before it is reclaimed.
	ClaimTTL time.Duration
	Log      logr.Logger
	// Now is the clock.
	Now func() time.Time
}

// Binder holds what the pod reconciler and the sweep share.
type Binder struct {
	Config

	inv   *inventory
	enis  *eniResolver
	zones *borderGroups
	// ready is closed once the first sweep loaded the inventory: binding
	// before that could allocate an address a previous run already holds.
	ready     chan struct{}
	readyOnce sync.Once
	// requeue carries pods the sweep found drifted to the controller.
	requeue chan event.GenericEvent
	// nodeRequeue carries nodes the sweep found drifted, or waiting for
	// an address of a pool that freed one, to the node controller.
	nodeRequeue chan event.GenericEvent
	// statusNow asks for the pools' status to be written (requestStatus).
	statusNow chan struct{}
	// statusMu makes one writer of pool status at a time.
	statusMu sync.Mutex
	// sweepNow asks for a sweep before the interval is up (an EIPPool
	// changed); requests made while one is pending coalesce.
	sweepNow chan struct{}
	// account is the count of the account's addresses the sweep publishes.
	account account
	// released are the pods whose address was given back already.
	released *releasedPods
	// quota pauses allocations while the account's quota is used up.
	quota *quotaGate

	mu      sync.Mutex
	orphans map[string]time.Time // allocation id → first seen unowned
	seen    map[string]time.Time // pod UID → first seen with an IP
	nsLocks map[string]*sync.Mutex
}

// New returns a Binder.
func New(cfg Config) *Binder {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OrphanGrace == 0 {
		cfg.OrphanGrace = DefaultOrphanGrace
	}
	if cfg.ClaimTTL == 0 {
		cfg.ClaimTTL = DefaultClaimTTL
	}
	b := &Binder{Config: cfg}
	b.inv = newInventory(b.Now)
	b.enis = newENIResolver(b.EC2)
	b.zones = newBorderGroups(b.EC2, b.Now)
	b.ready = make(chan struct{})
	b.requeue = make(chan event.GenericEvent, 1024)
	b.sweepNow = make(chan struct{}, 1)
	b.nodeRequeue = make(chan event.GenericEvent, 1024)
	b.statusNow = make(chan struct{}, 1)
	b.orphans = map[string]time.Time{}
	b.seen = map[string]time.Time{}
	b.released = newReleasedPods()
	b.quota = newQuotaGate()
	b.nsLocks = map[string]*sync.Mutex{}
	return b
}

// DefaultOrphanGrace leaves an address without an owner alone for this
// long before the sweep releases it, so that nothing the binder is still
// working on can be mistaken for an orphan.
const DefaultOrphanGrace = 30 * time.Second

func (b *Binder) markReady() { b.readyOnce.Do(func() { close(b.ready) }) }

// waitReady blocks until the inventory is loaded.
func (b *Binder) waitReady(ctx context.Context) error {
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
