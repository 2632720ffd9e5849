package binder

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// reserve creates the reservation the webhook would make of allocID for a
// pod not seen yet.
func (e *env) reserve(pool, allocID, publicIP string) {
	e.t.Helper()
	pod := managedPod("holder-"+allocID, "")
	e.create(reservationFor(pod, pool, allocID, publicIP, v1alpha1.ReservationModePool))
}

// The sweep writes what the webhook reserves from: every address carrying
// the pool's tags, which are reserved, which are associated by someone
// else (never handed out) and which are free. Another cluster's addresses
// are not the pool's, whatever their tags.
func TestPoolStatusCountsItsAddresses(t *testing.T) {
	tests := []struct {
		name string
		// setup adds the account's addresses.
		setup         func(e *env)
		wantTotal     int32
		wantReserved  int32
		wantFree      int32
		wantElsewhere int
		wantExhausted metav1.ConditionStatus
	}{
		{
			name: "one reserved, one associated elsewhere, one free",
			setup: func(e *env) {
				r, rip := e.ec2.AddAddress(payments)
				e.reserve("payments", r, rip)
				x, _ := e.ec2.AddAddress(payments)
				e.associate(x, e.ec2.AddInterface("i-0cccccccccccccccc", []string{"10.0.6.10"}, nil), "10.0.6.10")
				e.ec2.AddAddress(payments)
			},
			wantTotal: 3, wantReserved: 1, wantFree: 1, wantElsewhere: 1, wantExhausted: metav1.ConditionFalse,
		},
		{
			name: "none free",
			setup: func(e *env) {
				r, rip := e.ec2.AddAddress(payments)
				e.reserve("payments", r, rip)
				x, _ := e.ec2.AddAddress(payments)
				e.associate(x, e.ec2.AddInterface("i-0cccccccccccccccc", []string{"10.0.6.10"}, nil), "10.0.6.10")
			},
			wantTotal: 2, wantReserved: 1, wantFree: 0, wantElsewhere: 1, wantExhausted: metav1.ConditionTrue,
		},
		{
			name: "another cluster's addresses with the pool's tags",
			setup: func(e *env) {
				e.ec2.AddAddress(map[string]string{"team": "payments", api.TagCluster: "other"})
				e.ec2.AddAddress(map[string]string{"team": "payments", api.TagCluster: "other"})
				e.ec2.AddAddress(payments)
			},
			wantTotal: 1, wantFree: 1, wantExhausted: metav1.ConditionFalse,
		},
		{
			name: "other tags",
			setup: func(e *env) {
				e.ec2.AddAddress(map[string]string{"team": "search"})
				e.ec2.AddAddress(nil)
			},
			wantTotal: 0, wantFree: 0, wantExhausted: metav1.ConditionTrue,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, eipPool("payments", payments, v1alpha1.ReleasePolicyRetain))
			tc.setup(e)
			e.start()

			st := e.pool("payments").Status
			if st.Total != tc.wantTotal || st.Reserved != tc.wantReserved || st.Free != tc.wantFree {
				t.Errorf("total/reserved/free = %d/%d/%d, want %d/%d/%d", st.Total, st.Reserved, st.Free, tc.wantTotal, tc.wantReserved, tc.wantFree)
			}
			if len(st.Addresses) != int(tc.wantTotal) {
				t.Errorf("status lists %d addresses, want %d", len(st.Addresses), tc.wantTotal)
			}
			elsewhere := 0
			for _, a := range st.Addresses {
				if a.AssociatedElsewhere {
					elsewhere++
				}
				if got, ok := e.ec2.Address(a.AllocationID); !ok || got.Tags[api.TagCluster] == "other" {
					t.Errorf("status lists %s, which is not the pool's", a.AllocationID)
				}
			}
			if elsewhere != tc.wantElsewhere {
				t.Errorf("%d addresses flagged associated elsewhere, want %d", elsewhere, tc.wantElsewhere)
			}
			if c := meta.FindStatusCondition(st.Conditions, v1alpha1.PoolConditionExhausted); c == nil || c.Status != tc.wantExhausted {
				t.Errorf("condition Exhausted = %+v, want %s", c, tc.wantExhausted)
			}
			if !meta.IsStatusConditionTrue(st.Conditions, v1alpha1.PoolConditionReady) {
				t.Errorf("condition Ready is not True: %+v", st.Conditions)
			}
			if st.LastSyncTime == nil || st.ObservedGeneration != 1 {
				t.Errorf("lastSyncTime %v, observedGeneration %d; want set, 1", st.LastSyncTime, st.ObservedGeneration)
			}
			if n := e.ec2.Calls("AllocateAddress"); n != 0 {
				t.Errorf("AllocateAddress called %d times for a pool without growth", n)
			}
		})
	}
}

// A pool's address bound to its pod counts as reserved and bound, not as
// associated elsewhere.
func TestPoolStatusCountsBoundAddresses(t *testing.T) {
	e := newEnv(t, eipPool("payments", payments, v1alpha1.ReleasePolicyRetain))
	allocID, publicIP := e.ec2.AddAddress(payments)
	e.ec2.AddAddress(payments)
	pod := poolPod("pay-0", "10.0.1.12", "payments", allocID, api.ModePool)
	e.create(reservationFor(pod, "payments", allocID, publicIP, v1alpha1.ReservationModePool))
	e.start()
	e.bind(pod)

	e.clock.Step(time.Second)
	e.sweep()
	st := e.pool("payments").Status
	if st.Total != 2 || st.Reserved != 1 || st.Bound != 1 || st.Free != 1 {
		t.Errorf("total/reserved/bound/free = %d/%d/%d/%d, want 2/1/1/1", st.Total, st.Reserved, st.Bound, st.Free)
	}
	for _, a := range st.Addresses {
		if a.AssociatedElsewhere {
			t.Errorf("%s flagged associated elsewhere, though its own pod holds it", a.AllocationID)
		}
	}
}

// An unchanged pool status is not rewritten on every sweep, only every
// few minutes so that lastSyncTime shows the binder is alive.
func TestPoolStatusIsWrittenOnlyWhenChangedOrStale(t *testing.T) {
	e := newEnv(t, eipPool("payments", payments, v1alpha1.ReleasePolicyRetain))
	e.ec2.AddAddress(payments)
	e.start()
	rv := e.pool("payments").ResourceVersion

	e.clock.Step(time.Minute)
	e.sweep()
	if got := e.pool("payments").ResourceVersion; got != rv {
		t.Errorf("an unchanged status was rewritten a minute later (resourceVersion %s → %s)", rv, got)
	}

	e.ec2.AddAddress(payments)
	e.sweep()
	if st := e.pool("payments").Status; st.Total != 2 {
		t.Errorf("total = %d after an address was tagged for the pool, want 2", st.Total)
	}

	rv = e.pool("payments").ResourceVersion
	e.clock.Step(statusRefresh + time.Second)
	e.sweep()
	if got := e.pool("payments").ResourceVersion; got == rv {
		t.Error("an unchanged status was not refreshed after statusRefresh")
	}
}

// A pool with growth allocates addresses carrying its tags (and this
// cluster's) until Warm are free, and never grows beyond MaxAddresses,
// counting the addresses it did not allocate itself.
func TestPoolGrowth(t *testing.T) {
	pool := eipPool("payments", payments, v1alpha1.ReleasePolicyRetain)
	pool.Spec.Growth = &v1alpha1.PoolGrowth{MaxAddresses: 3, Warm: 2}
	e := newEnv(t, pool)
	e.start()

	if n := e.ec2.Calls("AllocateAddress"); n != 2 {
		t.Fatalf("the first sweep allocated %d addresses for an empty pool with warm 2, want 2", n)
	}
	for _, in := range e.ec2.Inputs("AllocateAddress") {
		tags := tagsOf(in.(*ec2.AllocateAddressInput))
		if tags["team"] != "payments" || tags[api.TagCluster] != cluster {
			t.Errorf("growth allocated with tags %v, want the pool's and %s=%s", tags, api.TagCluster, cluster)
		}
	}
	wantEvent(t, e.events(), "Normal PoolGrown")

	e.clock.Step(time.Minute)
	e.sweep()
	if n := e.ec2.Calls("AllocateAddress"); n != 2 {
		t.Fatalf("with 2 free addresses the pool grew again (%d allocations)", n)
	}
	st := e.pool("payments").Status
	if st.Total != 2 || st.Free != 2 {
		t.Fatalf("total/free = %d/%d, want 2/2", st.Total, st.Free)
	}

	// A pod reserves one: one more keeps two free, and reaches the maximum.
	e.reserve("payments", st.Addresses[0].AllocationID, st.Addresses[0].PublicIP)
	e.clock.Step(time.Minute)
	e.sweep()
	if n := e.ec2.Calls("AllocateAddress"); n != 3 {
		t.Fatalf("after a reservation the pool made %d allocations in all, want 3", n)
	}

	// Another reservation leaves one free, but the pool is at its maximum.
	e.clock.Step(time.Minute)
	e.sweep()
	st = e.pool("payments").Status
	e.reserve("payments", st.Addresses[1].AllocationID, st.Addresses[1].PublicIP)
	for range 3 {
		e.clock.Step(time.Minute)
		e.sweep()
	}
	if n := e.ec2.Calls("AllocateAddress"); n != 3 {
		t.Errorf("the pool grew beyond maxAddresses 3: %d allocations", n)
	}
	if st := e.pool("payments").Status; st.Total != 3 || st.Free != 1 {
		t.Errorf("total/free = %d/%d, want 3/1", st.Total, st.Free)
	}
	if n := len(e.ec2.Addresses()); n != 3 {
		t.Errorf("EC2 holds %d addresses, want 3", n)
	}
}

// The status written by the sweep that grew a pool shows the addresses it
// just allocated: the webhook reserves only from the status.
func TestPoolStatusIncludesTheAddressesGrowthAllocated(t *testing.T) {
	pool := eipPool("payments", payments, v1alpha1.ReleasePolicyRetain)
	pool.Spec.Growth = &v1alpha1.PoolGrowth{MaxAddresses: 3, Warm: 2}
	e := newEnv(t, pool)
	e.start()

	st := e.pool("payments").Status
	if st.Total != 2 || st.Free != 2 || len(st.Addresses) != 2 {
		t.Errorf("total/free/addresses = %d/%d/%d right after growing, want 2/2/2", st.Total, st.Free, len(st.Addresses))
	}
	if meta.IsStatusConditionTrue(st.Conditions, v1alpha1.PoolConditionExhausted) {
		t.Error("pool marked Exhausted right after it grew two free addresses")
	}
}

// An address pinned to a pod identity by the pool's stickyTag is listed
// with that owner, so that the webhook gives it to that pod only.
func TestPoolStatusShowsStickyOwnersFromTheStickyTag(t *testing.T) {
	pool := eipPool("legacy", map[string]string{"eip-key": ""}, v1alpha1.ReleasePolicyRetain)
	pool.Spec.StickyTag = "eip-key"
	e := newEnv(t, pool)
	pinned, _ := e.ec2.AddAddress(map[string]string{"eip-key": "default/db-0"})
	e.start()

	st := e.pool("legacy").Status
	if len(st.Addresses) != 1 || st.Addresses[0].AllocationID != pinned {
		t.Fatalf("status addresses = %+v, want %s", st.Addresses, pinned)
	}
	if got := st.Addresses[0].StickyOwner; got != "default/db-0" {
		t.Errorf("stickyOwner = %q, want default/db-0", got)
	}
}
