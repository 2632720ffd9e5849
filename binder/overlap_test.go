package binder

import (
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// Two pools whose selectors both take an address (its tags changed in EC2
// after the pools were made): neither serves it, both say so, and a pod
// that reserved it before is not bound to it.
func TestAnAddressTwoPoolsSelectIsServedByNeither(t *testing.T) {
	alpha := eipPool("alpha", map[string]string{"team": "alpha"}, v1alpha1.ReleasePolicyRetain)
	scratch := eipPool("scratch", map[string]string{"env": "scratch"}, v1alpha1.ReleasePolicyRelease)
	e := newEnv(t, alpha, scratch)
	both, bothIP := e.ec2.AddAddress(map[string]string{"team": "alpha", "env": "scratch"})
	e.ec2.AddAddress(map[string]string{"team": "alpha"})
	pod := poolPod("pay-0", "10.0.1.11", "scratch", both, api.ModePool)
	e.create(reservationFor(pod, "scratch", both, bothIP, v1alpha1.ReservationModePool))
	e.start()

	for _, name := range []string{"alpha", "scratch"} {
		p := e.pool(name)
		if slices.ContainsFunc(p.Status.Addresses, func(a v1alpha1.PoolAddress) bool { return a.AllocationID == both }) {
			t.Errorf("pool %s lists %s, which another pool selects too", name, both)
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PoolConditionOverlap)
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, bothIP+" ("+both+", pools alpha, scratch)") {
			t.Errorf("pool %s: Overlap condition %+v, want it true, naming %s", name, c, bothIP)
		}
	}
	wantEvent(t, e.events(), "Warning PoolOverlap")
	if got := e.pool("alpha").Status.Total; got != 1 {
		t.Errorf("alpha counts %d addresses, want its own 1", got)
	}

	e.create(pod)
	e.wantRefused(namespace, "pay-0", "reserved address "+bothIP+" is selected by pools alpha, scratch")
	if a := e.address(both); a.AssociationID != "" {
		t.Errorf("the overlapping address was associated with %s", a.PrivateIP)
	}
}

// What becomes of a pool address when its pod goes follows the pool the
// address's tags put it in, not the pool the pod drew it through, and an
// address two pools select is never released.
func TestReleaseFollowsTheAddressesOwnPool(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tags      map[string]string
		released  bool
		eventSays string
	}{
		{"its own pool releases", map[string]string{"env": "scratch"}, true, "Normal EIPReleased Released to AWS (pool scratch releases its addresses): "},
		{"its tags now put it in a Retain pool", map[string]string{"team": "alpha"}, false, "Normal EIPReleased Returned to pool alpha: "},
		{"two pools select it", map[string]string{"team": "alpha", "env": "scratch"}, false,
			"Normal EIPReleased Kept allocated, since pools alpha, scratch all select it (an address belongs to one pool only): "},
		{"no pool selects it any more", map[string]string{"team": "gone"}, false, "Normal EIPReleased Kept allocated, since no pool selects it any more: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alpha := eipPool("alpha", map[string]string{"team": "alpha"}, v1alpha1.ReleasePolicyRetain)
			scratch := eipPool("scratch", map[string]string{"env": "scratch"}, v1alpha1.ReleasePolicyRelease)
			e := newEnv(t, alpha, scratch)
			allocID, ip := e.ec2.AddAddress(map[string]string{"env": "scratch"})
			pod := poolPod("pay-0", "10.0.1.11", "scratch", allocID, api.ModePool)
			e.create(reservationFor(pod, "scratch", allocID, ip, v1alpha1.ReservationModePool))
			e.start()
			e.bind(pod)
			e.ec2.SetTags(allocID, tc.tags)
			e.clock.Step(time.Second) // the sweep's snapshot is newer than the bind
			e.sweep()
			e.events()

			e.delete("pay-0")
			e.mustReconcile("pay-0")
			if got := !e.addressExists(allocID); got != tc.released {
				t.Errorf("released = %v, want %v", got, tc.released)
			}
			wantEvent(t, e.events(), tc.eventSays+ip)
		})
	}
}
