package binder

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kube-eip/kube-eip/api"
)

// A sweep's snapshot replaces the inventory, except where the binder's own
// calls changed an address after the snapshot was asked for: those changes
// are newer than what EC2 answered, and an address released meanwhile must
// not come back.
func TestInventoryReplaceKeepsNewerChanges(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	inv := newInventory(clock.Now)
	inv.put(Address{AllocationID: "eipalloc-old", PublicIP: "203.0.113.1"})
	inv.put(Address{AllocationID: "eipalloc-released", PublicIP: "203.0.113.2"})
	inv.put(Address{AllocationID: "eipalloc-moved", PublicIP: "203.0.113.3", AssociationID: "eipassoc-1", ENI: "eni-1", PrivateIP: "10.0.1.1"})

	clock.Step(time.Second)
	asked := clock.Now()
	// While EC2 answers, the binder allocates one address, releases one
	// and moves one.
	clock.Step(time.Second)
	inv.put(Address{AllocationID: "eipalloc-new", PublicIP: "203.0.113.4"})
	inv.remove("eipalloc-released")
	inv.update("eipalloc-moved", func(a *Address) { a.AssociationID, a.ENI, a.PrivateIP = "eipassoc-2", "eni-2", "10.0.2.2" })

	// The snapshot predates all three.
	inv.replace([]Address{
		{AllocationID: "eipalloc-old", PublicIP: "203.0.113.1", AssociationID: "eipassoc-9"},
		{AllocationID: "eipalloc-released", PublicIP: "203.0.113.2"},
		{AllocationID: "eipalloc-moved", PublicIP: "203.0.113.3", AssociationID: "eipassoc-1", ENI: "eni-1", PrivateIP: "10.0.1.1"},
	}, asked)

	if _, ok := inv.get("eipalloc-new"); !ok {
		t.Error("an address allocated after the snapshot was asked for was dropped")
	}
	if _, ok := inv.get("eipalloc-released"); ok {
		t.Error("an address released after the snapshot was asked for came back")
	}
	if a, _ := inv.get("eipalloc-moved"); a.AssociationID != "eipassoc-2" {
		t.Errorf("an association made after the snapshot was asked for was undone: %+v", a)
	}
	if a, _ := inv.get("eipalloc-old"); a.AssociationID != "eipassoc-9" {
		t.Errorf("the snapshot did not replace an address the binder last changed before it: %+v", a)
	}

	// The next snapshot, asked for after those changes, wins over them.
	clock.Step(time.Second)
	inv.replace([]Address{{AllocationID: "eipalloc-released", PublicIP: "203.0.113.2"}}, clock.Now())
	if got := len(inv.all()); got != 1 {
		t.Errorf("inventory holds %d addresses, want the snapshot's 1", got)
	}
	if _, ok := inv.get("eipalloc-released"); !ok {
		t.Error("a newer snapshot showing the address again was ignored")
	}
}

// A claim whose allocation may have succeeded unheard stays uncertain until
// cleared.
func TestInventoryUncertainClaims(t *testing.T) {
	inv := newInventory(time.Now)
	inv.setUncertain("c1", true)
	if !inv.isUncertain("c1") || inv.isUncertain("c2") {
		t.Errorf("uncertain c1=%v c2=%v, want true false", inv.isUncertain("c1"), inv.isUncertain("c2"))
	}
	inv.setUncertain("c1", false)
	if inv.isUncertain("c1") {
		t.Error("c1 still uncertain after it was cleared")
	}
}

// update changes only known addresses, and never the tags map the caller
// read earlier.
func TestInventoryUpdate(t *testing.T) {
	inv := newInventory(time.Now)
	inv.update("eipalloc-unknown", func(a *Address) { a.AssociationID = "x" })
	if _, ok := inv.get("eipalloc-unknown"); ok {
		t.Error("update created an address")
	}
	inv.put(Address{AllocationID: "eipalloc-1", Tags: map[string]string{"k": "v"}})
	before, _ := inv.get("eipalloc-1")
	inv.update("eipalloc-1", func(a *Address) { a.Tags["k"] = "changed" })
	if before.Tags["k"] != "v" {
		t.Error("update wrote into a tags map handed out earlier")
	}
	if after, _ := inv.get("eipalloc-1"); after.Tags["k"] != "changed" {
		t.Errorf("tags after update = %v", after.Tags)
	}
}

func TestInventoryFind(t *testing.T) {
	inv := newInventory(time.Now)
	inv.put(Address{AllocationID: "eipalloc-1", Tags: map[string]string{api.TagCluster: "test", api.TagClaim: "c1"}})
	inv.put(Address{AllocationID: "eipalloc-2", Tags: map[string]string{api.TagCluster: "other", api.TagClaim: "c2"}})
	tests := []struct {
		want   map[string]string
		wantID string
	}{
		{want: map[string]string{api.TagCluster: "test", api.TagClaim: "c1"}, wantID: "eipalloc-1"},
		{want: map[string]string{api.TagCluster: "test", api.TagClaim: "c2"}, wantID: ""},
		{want: map[string]string{api.TagClaim: "c2"}, wantID: "eipalloc-2"},
		{want: map[string]string{api.TagClaim: ""}, wantID: ""},
	}
	for _, tc := range tests {
		a, ok := inv.find(tc.want)
		if ok != (tc.wantID != "") || a.AllocationID != tc.wantID {
			t.Errorf("find(%v) = %q, %v; want %q", tc.want, a.AllocationID, ok, tc.wantID)
		}
	}
}

func TestOwnedElsewhere(t *testing.T) {
	tests := []struct {
		tags map[string]string
		want bool
	}{
		{map[string]string{api.TagCluster: "test"}, false},
		{map[string]string{api.TagCluster: "other"}, true},
		{map[string]string{api.TagCluster: ""}, true},
		{map[string]string{"team": "a"}, false},
		{nil, false},
	}
	for _, tc := range tests {
		if got := ownedElsewhere(tc.tags, "test"); got != tc.want {
			t.Errorf("ownedElsewhere(%v) = %v, want %v", tc.tags, got, tc.want)
		}
	}
}
