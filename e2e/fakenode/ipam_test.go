package fakenode

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

// ipamFixture is one ENI's ipam over the fake EC2, on a fake clock.
type ipamFixture struct {
	t     *testing.T
	ipam  *ipam
	ec2   *fakeEC2
	clock *clocktesting.FakeClock
}

func newIPAMFixture(t *testing.T, prefixMode bool, cni CNIOptions, slots int) *ipamFixture {
	t.Helper()
	f := &ipamFixture{t: t, ec2: newFakeEC2(slots), clock: clocktesting.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))}
	cni.Clock = f.clock
	policy, err := cni.policy()
	if err != nil {
		t.Fatalf("resolving %+v: %v", cni, err)
	}
	f.ipam = newIPAM(f.ec2, "eni-test", prefixMode, policy)
	return f
}

func (f *ipamFixture) allocate(pod string) string {
	f.t.Helper()
	ip, err := f.ipam.allocate(context.Background(), types.UID(pod))
	if err != nil {
		f.t.Fatalf("allocating for %s: %v", pod, err)
	}
	return ip
}

func (f *ipamFixture) release(pod, ip string) {
	f.t.Helper()
	if err := f.ipam.release(context.Background(), ip, types.UID(pod)); err != nil {
		f.t.Fatalf("releasing %s of %s: %v", ip, pod, err)
	}
}

func (f *ipamFixture) tend() poolChange {
	f.t.Helper()
	ch, err := f.ipam.tend(context.Background())
	if err != nil {
		f.t.Fatalf("tending the pool: %v", err)
	}
	return ch
}

// wantCalls checks the EC2 calls made since the last check.
func (f *ipamFixture) wantCalls(what string, want ...string) {
	f.t.Helper()
	if got := f.ec2.takeCalls(); !slices.Equal(got, want) {
		f.t.Errorf("%s: EC2 calls %q, want %q", what, got, want)
	}
}

func (f *ipamFixture) wantState(ip string, want IPState) {
	f.t.Helper()
	if got := f.ipam.snapshot().State(ip); got != want {
		f.t.Errorf("%s is %q, want %q", ip, got, want)
	}
}

// On EKS a deleted pod's IP stays on the ENI, is kept from other pods for
// the cooldown, then is the first the next pod gets.
func TestAFreedIPCoolsDownThenGoesToTheNextPodFirst(t *testing.T) {
	f := newIPAMFixture(t, false, CNIOptions{}, 0)
	f.tend()
	f.wantCalls("filling the warm pool", "assign 1 ips")
	a := f.allocate("a")
	f.wantCalls("a pod taking the warm IP")
	if a != "10.0.1.1" {
		t.Fatalf("first pod got %s, want the warm 10.0.1.1", a)
	}
	f.tend()
	f.wantCalls("refilling", "assign 1 ips")

	f.release("a", a)
	f.wantState(a, IPCooling)
	if ch := f.tend(); ch.next != DefaultIPCooldown {
		t.Errorf("next look in %v, want the cooldown %v", ch.next, DefaultIPCooldown)
	}
	f.wantCalls("a release, the warm target met")
	if b := f.allocate("b"); b == a {
		t.Fatalf("pod b got %s while it cools", b)
	}
	f.tend()
	f.wantCalls("refilling", "assign 1 ips")

	f.clock.Step(DefaultIPCooldown - time.Second)
	if ch := f.tend(); ch.next != time.Second {
		t.Errorf("next look in %v, want 1s", ch.next)
	}
	f.wantCalls("a second before the cooldown ends")
	f.clock.Step(time.Second)
	f.tend()
	// Two are available for a warm target of one: the one no pod had goes.
	f.wantCalls("the cooldown over", "unassign 10.0.1.3")
	f.wantState(a, IPAvailable)
	if c := f.allocate("c"); c != a {
		t.Errorf("pod c got %s, want the cooled %s", c, a)
	}
}

// Of the cooled IPs the one freed longest ago goes first, whatever its
// address, and any freed one before one no pod has had.
func TestTheIPFreedLongestAgoGoesFirst(t *testing.T) {
	f := newIPAMFixture(t, false, CNIOptions{WarmIPTarget: -1}, 0)
	a, b := f.allocate("a"), f.allocate("b")
	f.release("b", b)
	f.clock.Step(10 * time.Second)
	f.release("a", a)
	f.clock.Step(DefaultIPCooldown)
	if c := f.allocate("c"); c != b {
		t.Errorf("pod c got %s, want %s, freed first", c, b)
	}
	if d := f.allocate("d"); d != a {
		t.Errorf("pod d got %s, want %s", d, a)
	}
}

func TestHandOutOrder(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ips := []netip.Addr{
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"),
		netip.MustParseAddr("10.0.0.4"), netip.MustParseAddr("10.0.0.5"),
	}
	freed := map[netip.Addr]time.Time{ips[1]: at.Add(time.Minute), ips[2]: at, ips[4]: at}
	slices.SortStableFunc(ips, handOutOrder(freed))
	want := []string{"10.0.0.3", "10.0.0.5", "10.0.0.2", "10.0.0.1", "10.0.0.4"}
	var got []string
	for _, a := range ips {
		got = append(got, a.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("hand-out order %v, want %v", got, want)
	}
}

// A pod that finds no IP available asks EC2 for its own and the warm pool's
// in one call.
func TestAPodFindingNoIPAsksForItsOwnAndTheWarmPoolInOneCall(t *testing.T) {
	for _, tc := range []struct {
		name string
		cni  CNIOptions
		want string
	}{
		{"warm target", CNIOptions{WarmIPTarget: 2}, "assign 3 ips"},
		{"minimum target", CNIOptions{MinimumIPTarget: 5}, "assign 5 ips"},
		{"none warm", CNIOptions{WarmIPTarget: -1}, "assign 1 ips"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newIPAMFixture(t, false, tc.cni, 0)
			f.allocate("a")
			f.wantCalls("the first pod", tc.want)
			f.tend()
			f.wantCalls("tending after it")
		})
	}
}

// When pods go, their IPs stay while they cool; once cooled, those beyond
// the warm target go back, but never below the minimum.
func TestCooledIPsBeyondTheTargetsGoBack(t *testing.T) {
	for _, tc := range []struct {
		name          string
		warm, minimum int
		left          int
	}{
		{"down to the warm target", 2, 0, 2},
		{"the minimum kept", 1, 3, 3},
		{"none kept warm", -1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newIPAMFixture(t, false, CNIOptions{WarmIPTarget: tc.warm, MinimumIPTarget: tc.minimum}, 0)
			var ips []string
			for i := range 4 {
				ips = append(ips, f.allocate(fmt.Sprint(i)))
				f.tend()
			}
			f.ec2.takeCalls()
			held := len(f.ec2.ips)
			for i, ip := range ips {
				f.release(fmt.Sprint(i), ip)
			}
			f.tend()
			f.wantCalls("the pods gone, their IPs cooling")
			if len(f.ec2.ips) != held {
				t.Errorf("ENI holds %d IPs while they cool, want %d", len(f.ec2.ips), held)
			}

			f.clock.Step(DefaultIPCooldown)
			f.tend()
			if got := len(f.ec2.ips); got != tc.left {
				t.Errorf("ENI holds %v once cooled, want %d", f.ec2.ips, tc.left)
			}
			if calls := f.ec2.takeCalls(); len(calls) != 1 {
				t.Errorf("calls %q, want one unassign", calls)
			}
			pool := f.ipam.snapshot()
			if pool.Count(IPAvailable) != tc.left || len(pool.Addresses) != tc.left {
				t.Errorf("pool %+v, want %d available", pool.Addresses, tc.left)
			}
			f.tend()
			f.wantCalls("at the targets")
		})
	}
}

// With prefix delegation a freed address cools too, while the pod after it
// gets the next address of the prefix.
func TestAFreedPrefixAddressCoolsDownBeforeReuse(t *testing.T) {
	f := newIPAMFixture(t, true, CNIOptions{}, 0)
	f.tend()
	f.wantCalls("filling the warm pool", "assign 1 prefixes")
	a := f.allocate("a")
	if a != "10.0.16.0" {
		t.Fatalf("first pod got %s, want 10.0.16.0", a)
	}
	f.release("a", a)
	if b := f.allocate("b"); b != "10.0.16.1" {
		t.Errorf("pod b got %s while %s cools, want 10.0.16.1", b, a)
	}
	f.clock.Step(DefaultIPCooldown)
	if c := f.allocate("c"); c != a {
		t.Errorf("pod c got %s, want the cooled %s", c, a)
	}
	f.tend()
	f.wantCalls("a prefix that still has room")
}

// A prefix goes back only when no address of it is in use or cooling, and
// the other prefixes still keep the warm target available.
func TestAPrefixGoesBackOnlyWhenUnusedAndBeyondTheWarmTarget(t *testing.T) {
	t.Run("needed for the warm target", func(t *testing.T) {
		f := newIPAMFixture(t, true, CNIOptions{WarmIPTarget: 8}, 0)
		var ips []string
		for i := range 9 {
			ips = append(ips, f.allocate(fmt.Sprint(i)))
			f.tend()
		}
		f.wantCalls("nine pods, seven addresses left", "assign 1 prefixes", "assign 1 prefixes")
		for i, ip := range ips {
			f.release(fmt.Sprint(i), ip)
		}
		f.tend()
		f.wantCalls("the second prefix unused, but needed for eight available")
		f.clock.Step(DefaultIPCooldown)
		f.tend()
		f.wantCalls("the first prefix cooled", "unassign 10.0.16.16/28")
		if got := f.ipam.snapshot().Prefixes; !slices.Equal(got, []string{"10.0.16.0/28"}) {
			t.Errorf("prefixes %v, want the first only", got)
		}
	})
	t.Run("cooling", func(t *testing.T) {
		f := newIPAMFixture(t, true, CNIOptions{}, 0)
		if _, err := f.ec2.AssignPrivateIpAddresses(context.Background(), ec2AssignPrefixes(2)); err != nil {
			t.Fatal(err)
		}
		f.ec2.takeCalls()
		if err := f.ipam.load(f.ec2.eni()); err != nil {
			t.Fatal(err)
		}
		// A pod of the newer prefix ends; the older one is wholly unused.
		if !f.ipam.claim("10.0.16.19", "a", true) {
			t.Fatal("claim refused")
		}
		f.release("a", "10.0.16.19")
		f.tend()
		f.wantCalls("one prefix cooling", "unassign 10.0.16.0/28")
		f.clock.Step(DefaultIPCooldown)
		f.tend()
		f.wantCalls("the last prefix, needed for the warm target")
	})
}

// A restarted Kubelet keeps the IPs no pod holds as the warm pool, cooling
// from the restart, instead of unassigning them (unless it releases IPs
// immediately, when they are orphans).
func TestARestartKeepsTheIPsNoPodHolds(t *testing.T) {
	setUp := func(t *testing.T, cni CNIOptions) *ipamFixture {
		f := newIPAMFixture(t, false, cni, 0)
		if _, err := f.ec2.AssignPrivateIpAddresses(context.Background(), ec2AssignIPs(3)); err != nil {
			t.Fatal(err)
		}
		f.ec2.takeCalls()
		if err := f.ipam.load(f.ec2.eni()); err != nil {
			t.Fatal(err)
		}
		if !f.ipam.claim("10.0.1.1", "live", false) {
			t.Fatal("claim refused")
		}
		return f
	}
	t.Run("warm pool", func(t *testing.T) {
		f := setUp(t, CNIOptions{})
		if n := f.ipam.adopt(); n != 2 {
			t.Errorf("adopted %d IPs, want 2", n)
		}
		if freed, err := f.ipam.sweep(context.Background()); err != nil || freed != nil {
			t.Errorf("sweep: %v %v, want nothing", freed, err)
		}
		f.wantState("10.0.1.2", IPCooling)
		f.wantState("10.0.1.3", IPCooling)
		f.tend()
		f.wantCalls("nothing available after the restart", "assign 1 ips")
		if ip := f.allocate("new"); ip != "10.0.1.4" {
			t.Errorf("a new pod got %s, want the new 10.0.1.4", ip)
		}
	})
	t.Run("released immediately", func(t *testing.T) {
		f := setUp(t, CNIOptions{ReleaseImmediately: true})
		if n := f.ipam.adopt(); n != 0 {
			t.Errorf("adopted %d IPs, want none", n)
		}
		freed, err := f.ipam.sweep(context.Background())
		if err != nil || !slices.Equal(freed, []string{"10.0.1.2", "10.0.1.3"}) {
			t.Errorf("sweep: %v %v, want both orphans", freed, err)
		}
		f.wantCalls("the sweep", "unassign 10.0.1.2 10.0.1.3")
	})
}

// When the ENI has no room left, a pod still gets what room there is, and
// the pool stops asking EC2 until it gives an address back.
func TestAFullENIGivesWhatRoomIsLeftThenStopsAsking(t *testing.T) {
	f := newIPAMFixture(t, false, CNIOptions{WarmIPTarget: 3}, 2)
	a := f.allocate("a")
	f.wantCalls("the first pod", "assign 4 ips", "assign 1 ips")
	f.tend()
	f.wantCalls("room for one more", "assign 3 ips", "assign 1 ips")
	f.tend()
	f.wantCalls("no room", "assign 2 ips", "assign 1 ips")
	f.tend()
	f.wantCalls("full")
	f.allocate("b")
	if _, err := f.ipam.allocate(context.Background(), "c"); err == nil {
		t.Fatal("a third pod got an address on a full ENI")
	}
	f.wantCalls("pods on a full ENI")
	f.release("a", a)
	f.clock.Step(DefaultIPCooldown)
	if c := f.allocate("c"); c != a {
		t.Errorf("pod c got %s, want the cooled %s", c, a)
	}
	f.wantCalls("reuse")
}

// The kinder CNI unassigns a secondary IP at once and hands a prefix
// address out again at once, keeping nothing warm.
func TestReleasingImmediatelyKeepsNothing(t *testing.T) {
	t.Run("secondary IP", func(t *testing.T) {
		f := newIPAMFixture(t, false, CNIOptions{ReleaseImmediately: true}, 0)
		a := f.allocate("a")
		f.tend()
		f.wantCalls("a pod", "assign 1 ips")
		f.release("a", a)
		f.wantCalls("its release", "unassign "+a)
	})
	t.Run("prefix address", func(t *testing.T) {
		f := newIPAMFixture(t, true, CNIOptions{ReleaseImmediately: true}, 0)
		a := f.allocate("a")
		f.release("a", a)
		if b := f.allocate("b"); b != a {
			t.Errorf("pod b got %s, want the freed %s at once", b, a)
		}
		f.tend()
		f.wantCalls("two pods", "assign 1 prefixes")
	})
}

func TestPoolTargets(t *testing.T) {
	for _, tc := range []struct {
		warm, minimum     int
		counts            poolCounts
		short, over, grow int
	}{
		{1, 0, poolCounts{}, 1, 0, 2},
		{1, 0, poolCounts{inUse: 3, available: 1}, 0, 0, 1},
		{1, 0, poolCounts{inUse: 3, available: 4}, 0, 3, 1},
		{1, 0, poolCounts{cooling: 5}, 1, 0, 2},
		{2, 10, poolCounts{inUse: 2, cooling: 3, available: 2}, 3, 0, 3},
		{2, 10, poolCounts{inUse: 2, cooling: 3, available: 6}, 0, 1, 1},
		{0, 0, poolCounts{cooling: 2, available: 3}, 0, 3, 1},
		{16, 0, poolCounts{inUse: 2, available: 30}, 0, 14, 1},
	} {
		p := poolPolicy{warm: tc.warm, minimum: tc.minimum}
		if got := p.short(tc.counts); got != tc.short {
			t.Errorf("warm %d minimum %d %+v: short %d, want %d", tc.warm, tc.minimum, tc.counts, got, tc.short)
		}
		if got := p.over(tc.counts); got != tc.over {
			t.Errorf("warm %d minimum %d %+v: over %d, want %d", tc.warm, tc.minimum, tc.counts, got, tc.over)
		}
		if got := p.toGrow(tc.counts); got != tc.grow {
			t.Errorf("warm %d minimum %d %+v: toGrow %d, want %d", tc.warm, tc.minimum, tc.counts, got, tc.grow)
		}
	}
}

func TestCNIOptionsDefaults(t *testing.T) {
	for _, tc := range []struct {
		in            CNIOptions
		warm, minimum int
		cooldown      time.Duration
	}{
		{CNIOptions{}, 1, 0, 30 * time.Second},
		{CNIOptions{WarmIPTarget: 5, MinimumIPTarget: 10, Cooldown: time.Second}, 5, 10, time.Second},
		{CNIOptions{WarmIPTarget: -1, Cooldown: -1}, 0, 0, 0},
	} {
		p, err := tc.in.policy()
		if err != nil {
			t.Errorf("%+v: %v", tc.in, err)
			continue
		}
		if p.warm != tc.warm || p.minimum != tc.minimum || p.cooldown != tc.cooldown || p.clock == nil {
			t.Errorf("%+v: warm %d minimum %d cooldown %v clock %v, want %d %d %v and a clock", tc.in, p.warm, p.minimum, p.cooldown, p.clock, tc.warm, tc.minimum, tc.cooldown)
		}
	}
	if _, err := (CNIOptions{MinimumIPTarget: -1}).policy(); err == nil {
		t.Error("a negative minimum was accepted")
	}
}
