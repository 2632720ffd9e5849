package binder

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/kube-eip/kube-eip/api"
)

// AllocateAddress is not idempotent. When a call may have allocated
// without the binder hearing of it (a 5xx, a lost answer), the next attempt
// looks for the claim's tag before allocating, so the pod ends up with
// exactly one address. When EC2 answered that it did nothing (throttled,
// quota), that look is skipped: it would be a wasted call.
func TestAllocationIsNeverRepeatedBlindly(t *testing.T) {
	tests := []struct {
		name string
		// fail injects the first Allocate's failure.
		fail func(e *env)
		// wantLookups is how many DescribeAddresses by claim tag the retry
		// makes.
		wantLookups int
		// wantAllocations is how many AllocateAddress calls there are in all.
		wantAllocations int
	}{
		{
			name:            "allocated but the answer was lost",
			fail:            func(e *env) { e.ec2.FailAfterApply("AllocateAddress", "InternalError", 1) },
			wantLookups:     1,
			wantAllocations: 1,
		},
		{
			name:            "failed on EC2's side before or after applying",
			fail:            func(e *env) { e.ec2.FailNext("AllocateAddress", "ServiceUnavailable", 1) },
			wantLookups:     1,
			wantAllocations: 2,
		},
		{
			name:            "throttled",
			fail:            func(e *env) { e.ec2.FailNext("AllocateAddress", "RequestLimitExceeded", 1) },
			wantLookups:     0,
			wantAllocations: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, managedPod("web-0", "10.0.1.11"))
			e.start()
			tc.fail(e)
			if _, err := e.reconcile("web-0"); err == nil {
				t.Fatal("the first reconcile succeeded despite the failed AllocateAddress")
			}
			wantEvent(t, e.events(), "Warning "+api.EventBindFailed)

			before := e.calls()
			e.mustReconcile("web-0")
			if got := e.callsSince(before)["DescribeAddresses"]; got != tc.wantLookups {
				t.Errorf("DescribeAddresses called %d times before allocating again, want %d", got, tc.wantLookups)
			}
			for _, in := range e.ec2.Inputs("DescribeAddresses")[before["DescribeAddresses"]:] {
				if !filtersOn(in.(*ec2.DescribeAddressesInput), "tag:"+api.TagClaim, "claim-web-0") ||
					!filtersOn(in.(*ec2.DescribeAddressesInput), "tag:"+api.TagCluster, cluster) {
					t.Errorf("the look before allocating again has filters %+v, want the claim and cluster tags", in.(*ec2.DescribeAddressesInput).Filters)
				}
			}
			if n := e.ec2.Calls("AllocateAddress"); n != tc.wantAllocations {
				t.Errorf("AllocateAddress called %d times in all, want %d", n, tc.wantAllocations)
			}

			// Whatever happened, the pod has exactly one address, and it is
			// the one on the pod.
			var mine []string
			for _, a := range e.ec2.Addresses() {
				if a.Tags[api.TagClaim] == "claim-web-0" {
					mine = append(mine, a.AllocationID)
				}
			}
			if len(mine) != 1 {
				t.Fatalf("addresses with the pod's claim: %v, want exactly one", mine)
			}
			p := e.pod("web-0")
			if got := p.Annotations[api.AnnotationAllocationID]; got != mine[0] {
				t.Errorf("pod annotated with %s, want %s", got, mine[0])
			}
			if a := e.address(mine[0]); a.PrivateIP != "10.0.1.11" {
				t.Errorf("address on %q, want the pod's 10.0.1.11", a.PrivateIP)
			}
		})
	}
}

// A pod deleted right after an allocation whose answer was lost still has
// that address released: the release looks for the claim's tag too.
func TestReleaseFindsAnAddressWhoseAllocationAnswerWasLost(t *testing.T) {
	e := newEnv(t, managedPod("web-0", "10.0.1.11"))
	e.start()
	e.ec2.FailAfterApply("AllocateAddress", "InternalError", 1)
	if _, err := e.reconcile("web-0"); err == nil {
		t.Fatal("the first reconcile succeeded despite the failed AllocateAddress")
	}
	if n := len(e.ec2.Addresses()); n != 1 {
		t.Fatalf("EC2 holds %d addresses, want the one allocated", n)
	}

	e.delete("web-0")
	e.mustReconcile("web-0")
	if n := len(e.ec2.Addresses()); n != 0 {
		t.Errorf("EC2 still holds %d addresses after the pod was deleted: %+v", n, e.ec2.Addresses())
	}
	if !e.podGone("web-0") {
		t.Error("the pod is still there: the finalizer was not removed")
	}
}

func filtersOn(in *ec2.DescribeAddressesInput, name, value string) bool {
	for _, f := range in.Filters {
		if aws.ToString(f.Name) == name && len(f.Values) == 1 && f.Values[0] == value {
			return true
		}
	}
	return false
}
