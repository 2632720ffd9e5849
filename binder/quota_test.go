package binder

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kube-eip/kube-eip/api"
)

func key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}

// The gate in isolation: with a known quota it never lets an allocation
// through that the account has no room for, tells a waiting pod once,
// and wakes the waiting, first come first, one per address freed.
func TestTheQuotaGateLetsThroughWhatTheAccountHasRoomFor(t *testing.T) {
	q := newQuotaGate()
	q.setQuota(2, true)
	q.observed(1)
	if ok, _ := q.admit(key("a")); !ok {
		t.Fatal("a: refused with room for one")
	}
	if ok, tell := q.admit(key("b")); ok || !tell {
		t.Fatalf("b: admitted %t, told %t; want it to wait, told", ok, tell)
	}
	if ok, tell := q.admit(key("c")); ok || !tell {
		t.Fatalf("c: admitted %t, told %t; want it to wait, told", ok, tell)
	}
	if _, tell := q.admit(key("b")); tell {
		t.Error("b was told twice")
	}
	q.done(key("a"), true, false)
	if woken := q.freed(1); len(woken) != 1 || woken[0] != key("b") {
		t.Fatalf("one address freed woke %v, want b", woken)
	}
	if ok, _ := q.admit(key("b")); !ok {
		t.Fatal("b: refused after an address was freed for it")
	}
	q.done(key("b"), true, false)
	// The room an address freed makes is the woken pod's: a pod that never
	// waited does not take it first.
	if woken := q.freed(1); len(woken) != 1 || woken[0] != key("c") {
		t.Fatalf("one more address freed woke %v, want c", woken)
	}
	if ok, _ := q.admit(key("newcomer")); ok {
		t.Error("a newcomer took the room freed for c")
	}
	if ok, _ := q.admit(key("c")); !ok {
		t.Fatal("c: refused the room freed for it")
	}
	q.done(key("c"), true, false)
	q.forget(key("newcomer"))
	// The sweep counts 1 of 2 in use (someone else released one): the
	// next in line goes.
	if ok, _ := q.admit(key("d")); ok {
		t.Fatal("d admitted over the quota")
	}
	if woken := q.observed(1); len(woken) != 1 || woken[0] != key("d") {
		t.Errorf("room for one woke %v, want d", woken)
	}
}

// A quota of 3 and 5 pods: 3 are bound, 2 wait with one event each and
// without a single refused AllocateAddress (the binder read the quota); a
// released address goes to the first that waits, at once.
func TestPodsWaitForTheQuotaAndTakeWhatIsFreed(t *testing.T) {
	e := newEnv(t)
	e.ec2.SetQuota(3)
	e.start()
	for i := range 3 {
		e.bind(managedPod(fmt.Sprintf("web-%d", i), fmt.Sprintf("10.0.1.%d", 11+i)))
	}
	e.events()
	for i := 3; i < 5; i++ {
		e.create(managedPod(fmt.Sprintf("web-%d", i), fmt.Sprintf("10.0.1.%d", 11+i)))
		for range 3 {
			e.mustReconcile(fmt.Sprintf("web-%d", i))
		}
	}
	evs := e.events()
	if n := strings.Count(strings.Join(evs, "\n"), api.EventQuotaExhausted); n != 2 {
		t.Errorf("%d %s events for 2 waiting pods over 6 looks, want one each: %q", n, api.EventQuotaExhausted, evs)
	}
	if n := e.ec2.Calls("AllocateAddress"); n != 3 {
		t.Errorf("%d AllocateAddress calls for a quota of 3, want 3: the waiting pods asked", n)
	}
	if v := testutil.ToFloat64(quotaWaiting); v != 2 {
		t.Errorf("kube_eip_binder_pods_waiting_for_quota = %v, want 2", v)
	}

	e.requeued()
	e.delete("web-0")
	e.mustReconcile("web-0")
	if woken := e.requeued(); len(woken) != 1 || woken[0] != "web-3" {
		t.Fatalf("releasing one address woke %v, want web-3, the first to wait", woken)
	}
	e.mustReconcile("web-3")
	if p := e.pod("web-3"); p.Labels[api.LabelPublicIP] == "" {
		t.Error("web-3 is not bound after the address it waited for was freed")
	}
	if n := e.ec2.Calls("AllocateAddress"); n != 4 {
		t.Errorf("%d AllocateAddress calls in all, want 4", n)
	}
}

// With the quota not readable (no permission), the first refused
// AllocateAddress pauses every pod: the others wait without calling. An
// address released outside kube-eip is seen by the sweep, which lets one
// pod probe; its success lets the next go.
func TestAnUnknownQuotaPausesAfterOneRefusal(t *testing.T) {
	e := newEnv(t)
	e.ec2.FailNext("DescribeAccountAttributes", "UnauthorizedOperation", 100)
	e.ec2.SetQuota(1)
	other, _ := e.ec2.AddAddress(nil) // someone else's: the account is full
	e.start()
	for i := range 3 {
		e.create(managedPod(fmt.Sprintf("web-%d", i), fmt.Sprintf("10.0.1.%d", 11+i)))
		e.mustReconcile(fmt.Sprintf("web-%d", i))
	}
	if n := e.ec2.Calls("AllocateAddress"); n != 1 {
		t.Fatalf("%d AllocateAddress calls, want the one refused", n)
	}
	if _, err := e.ec2.ReleaseAddress(context.Background(), &ec2.ReleaseAddressInput{AllocationId: aws.String(other)}); err != nil {
		t.Fatal(err)
	}
	e.requeued()
	e.sweep()
	woken := e.requeued()
	if len(woken) != 1 || woken[0] != "web-0" {
		t.Fatalf("the sweep woke %v, want one probe, web-0 (the first refused)", woken)
	}
	e.mustReconcile("web-0")
	if p := e.pod("web-0"); p.Labels[api.LabelPublicIP] == "" {
		t.Error("the probe did not bind")
	}
	if woken := e.requeued(); len(woken) != 1 || woken[0] != "web-1" {
		t.Fatalf("the probe's success woke %v, want the next, web-1", woken)
	}
	// web-1 finds the account full again: one refusal, and the pause goes
	// on, web-2 never asking.
	e.mustReconcile("web-1")
	e.mustReconcile("web-2")
	if n := e.ec2.Calls("AllocateAddress"); n != 3 {
		t.Errorf("%d AllocateAddress calls in all, want 3: one refused per pause", n)
	}
}
