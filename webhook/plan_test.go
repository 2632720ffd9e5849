package webhook

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// fakeState is an in-memory State.
type fakeState struct {
	pools    map[string]*v1alpha1.EIPPool
	reserved map[string]*v1alpha1.EIPReservation
	claims   map[string]bool // claims carried by existing pods
	held     map[string]int  // namespace → pods holding or waiting for an address
	account  *api.Account
}

func (s fakeState) Pool(name string) (*v1alpha1.EIPPool, bool) { p, ok := s.pools[name]; return p, ok }
func (s fakeState) Pools() []v1alpha1.EIPPool {
	var out []v1alpha1.EIPPool
	for _, p := range s.pools {
		out = append(out, *p)
	}
	return out
}
func (s fakeState) Reserved(id string) bool      { _, ok := s.reserved[id]; return ok }
func (s fakeState) ClaimInUse(claim string) bool { return s.claims[claim] }
func (s fakeState) AddressesHeld(ns string) int  { return s.held[ns] }
func (s fakeState) Account() (api.Account, bool) {
	if s.account == nil {
		return api.Account{}, false
	}
	return *s.account, true
}
func (s fakeState) StickyReservation(pool, owner string) (*v1alpha1.EIPReservation, bool) {
	for _, r := range s.reserved {
		if r.Spec.Pool == pool && r.Spec.StickyOwner == owner {
			return r, true
		}
	}
	return nil, false
}

func pool(name string, tags map[string]string, nsLabels map[string]string, addrs ...v1alpha1.PoolAddress) *v1alpha1.EIPPool {
	p := &v1alpha1.EIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.EIPPoolSpec{TagSelector: tags}}
	if nsLabels != nil {
		p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: nsLabels}
	}
	p.Status.Addresses = addrs
	return p
}

// BYOIP pools: one that a pool open to "payments" grows from, one that only
// a pool closed to it does.
const (
	byoip       = "ipv4pool-ec2-0123456789abcdef0"
	closedBYOIP = "ipv4pool-ec2-0123456789abcdef1"
)

func growing(p *v1alpha1.EIPPool, source string) *v1alpha1.EIPPool {
	p.Spec.Growth = &v1alpha1.PoolGrowth{PublicIPv4Pool: source, MaxAddresses: 5}
	return p
}

func addr(id, ip string) v1alpha1.PoolAddress {
	return v1alpha1.PoolAddress{AllocationID: id, PublicIP: ip}
}

// servedNamespace is a namespace that opted in to kube-eip, with labels.
func servedNamespace(name string, labels map[string]string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{api.LabelInjection: api.InjectionEnabled}}}
	maps.Copy(ns.Labels, labels)
	return ns
}

func newPod(name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "payments", Annotations: annotations}}
}

func TestDecide(t *testing.T) {
	tenant := map[string]string{"tenant": "payments"}
	ns := servedNamespace("payments", tenant)
	state := fakeState{
		pools: map[string]*v1alpha1.EIPPool{
			"partners":  pool("partners", map[string]string{"team": "payments"}, tenant, addr("eipalloc-1", "3.0.0.1"), addr("eipalloc-2", "3.0.0.2")),
			"closed":    pool("closed", map[string]string{"team": "x"}, nil, addr("eipalloc-3", "3.0.0.3")),
			"full":      pool("full", map[string]string{"team": "full"}, tenant, addr("eipalloc-4", "3.0.0.4")),
			"legacy":    pool("legacy", map[string]string{"pec-ip-pool": ""}, tenant, addr("eipalloc-5", "3.0.0.5")),
			"grows":     growing(pool("grows", map[string]string{"team": "grows"}, tenant), byoip),
			"elsewhere": growing(pool("elsewhere", map[string]string{"team": "elsewhere"}, map[string]string{"tenant": "other"}), closedBYOIP),
		},
		reserved: map[string]*v1alpha1.EIPReservation{
			"eipalloc-1": {ObjectMeta: metav1.ObjectMeta{Name: "eipalloc-1"}, Spec: v1alpha1.EIPReservationSpec{Pool: "partners", StickyOwner: "payments/db-0"}},
			"eipalloc-4": {ObjectMeta: metav1.ObjectMeta{Name: "eipalloc-4"}, Spec: v1alpha1.EIPReservationSpec{Pool: "full"}},
		},
	}
	tests := []struct {
		name       string
		pod        *corev1.Pod
		denial     string // substring; empty means admitted
		candidates []string
		existing   string
	}{
		{name: "auto needs no reservation", pod: newPod("a", map[string]string{api.AnnotationMode: "auto"})},
		{name: "pool gets the free address", pod: newPod("a", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "partners"}), candidates: []string{"eipalloc-2"}},
		{name: "missing pool", pod: newPod("a", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "nope"}),
			denial: `kube-eip.io/pool: EIPPool "nope" does not exist; pools open to namespace "payments": full, grows, legacy, partners`},
		{name: "pool closed to namespace", pod: newPod("a", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "closed"}),
			denial: `kube-eip.io/pool: EIPPool "closed" is not open to namespace "payments"`},
		{name: "pool exhausted", pod: newPod("a", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "full"}),
			denial: `kube-eip.io/pool: EIPPool "full" has no free address (1 in the pool`},
		{name: "hostNetwork", pod: func() *corev1.Pod {
			p := newPod("a", map[string]string{api.AnnotationMode: "auto"})
			p.Spec.HostNetwork = true
			return p
		}(), denial: "kube-eip.io/mode: pods with hostNetwork: true share their node's address"},
		{name: "sticky keeps its reservation", pod: newPod("db-0", map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: "partners"}), existing: "eipalloc-1"},
		{name: "sticky new identity", pod: newPod("db-1", map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: "partners"}), candidates: []string{"eipalloc-2"}},
		{name: "sticky needs a name", pod: newPod("", map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: "partners"}),
			denial: "mode sticky ties the address to the pod's name"},
		{name: "legacy fixed-tag maps to its pool", pod: newPod("a", map[string]string{api.LegacyAnnotationType: "fixed-tag", api.LegacyAnnotationTag: "pec-ip-pool"}), candidates: []string{"eipalloc-5"}},
		{name: "legacy fixed-tag without a pool", pod: newPod("a", map[string]string{api.LegacyAnnotationType: "fixed-tag", api.LegacyAnnotationTag: "other-tag"}),
			denial: `no EIPPool selects addresses by the tag key "other-tag"; create one:`},
		{name: "parse problems come through", pod: newPod("a", map[string]string{api.AnnotationMode: "autoo"}), denial: `did you mean "auto"`},
		{name: "amazon's addresses are open to all", pod: newPod("a", map[string]string{api.AnnotationMode: "auto", api.AnnotationPublicIPv4Pool: "amazon"})},
		{name: "a BYOIP pool an open pool grows from", pod: newPod("a", map[string]string{api.AnnotationMode: "auto", api.AnnotationPublicIPv4Pool: byoip})},
		{name: "a BYOIP pool only a closed pool grows from", pod: newPod("a", map[string]string{api.AnnotationMode: "auto", api.AnnotationPublicIPv4Pool: closedBYOIP}),
			denial: `kube-eip.io/public-ipv4-pool: BYOIP pool "` + closedBYOIP + `" is not open to namespace "payments": no EIPPool open to the namespace grows from it`},
		{name: "a BYOIP pool no pool grows from, asked the old way", pod: newPod("a", map[string]string{api.LegacyAnnotationType: "auto", api.LegacyAnnotationIPv4Pool: "ipv4pool-ec2-00000000000000000"}),
			denial: api.LegacyAnnotationIPv4Pool + `: BYOIP pool "ipv4pool-ec2-00000000000000000" is not open to namespace "payments"`},
		{name: "a container of kube-eip's name", pod: func() *corev1.Pod {
			p := newPod("a", map[string]string{api.AnnotationMode: "auto"})
			p.Spec.Containers = []corev1.Container{{Name: "app"}, {Name: api.WaitContainerName}}
			return p
		}(), denial: "spec.containers[1]: the name kube-eip-wait is kube-eip's (its injected init container); rename the container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Decide(Input{Pod: tt.pod, Namespace: ns, State: state})
			got := denialMessage(plan.Denial)
			if tt.denial == "" && got != "" || !strings.Contains(got, tt.denial) {
				t.Fatalf("denial = %q, want %q", got, tt.denial)
			}
			if tt.denial != "" {
				return
			}
			var ids []string
			for _, c := range plan.Candidates {
				ids = append(ids, c.AllocationID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.candidates, ",") {
				t.Errorf("candidates = %v, want %v", ids, tt.candidates)
			}
			if existing := plan.Existing; (existing == nil) != (tt.existing == "") || existing != nil && existing.Name != tt.existing {
				t.Errorf("existing = %v, want %q", existing, tt.existing)
			}
		})
	}
}

// Whoever may create pods in a namespace, the namespace's own labels and
// annotations (a cluster admin's) decide whether kube-eip serves it and how
// many addresses it may hold.
func TestDecideHonoursWhatOnlyTheAdminSets(t *testing.T) {
	open := map[string]string{"tenant": "payments"}
	state := fakeState{pools: map[string]*v1alpha1.EIPPool{
		"partners": pool("partners", map[string]string{"team": "payments"}, open, addr("eipalloc-1", "3.0.0.1")),
	}, reserved: map[string]*v1alpha1.EIPReservation{}, held: map[string]int{"payments": 2}}
	auto := newPod("a", map[string]string{api.AnnotationMode: "auto"})
	capped := func(v string) *corev1.Namespace {
		ns := servedNamespace("payments", open)
		ns.Annotations = map[string]string{authz.AnnotationMaxAddresses: v}
		return ns
	}
	for _, tc := range []struct {
		name   string
		ns     *corev1.Namespace
		denial string
	}{
		{"served", servedNamespace("payments", open), ""},
		{"not opted in", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "payments", Labels: open}},
			`kube-eip.io/managed: namespace "payments" has not opted in to kube-eip (a cluster admin labels it kube-eip.io/injection=enabled)`},
		{"kube-system never", servedNamespace("kube-system", open), `namespace "kube-system" has not opted in`},
		{"under its cap", capped("3"), ""},
		{"at its cap", capped("2"), `kube-eip.io/mode: namespace "payments" holds 2 of its 2 addresses (kube-eip.io/max-addresses); delete a pod that holds one, or ask a cluster admin to raise the cap`},
		{"a cap of nothing", capped("0"), `holds 2 of its 0 addresses`},
		{"a cap that is no number", capped("ten"), `namespace "payments" has kube-eip.io/max-addresses="ten", which is not a whole number of addresses`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, pod := range []*corev1.Pod{auto, newPod("b", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "partners"})} {
				plan := Decide(Input{Pod: pod, Namespace: tc.ns, State: state})
				if got := denialMessage(plan.Denial); tc.denial == "" && got != "" || !strings.Contains(got, tc.denial) {
					t.Errorf("%s: denial = %q, want %q", pod.Name, got, tc.denial)
				}
			}
		})
	}
}

func TestInjectIsIdempotent(t *testing.T) {
	pod := newPod("a", map[string]string{api.AnnotationMode: "auto"})
	pod.Spec.InitContainers = []corev1.Container{{Name: "setup"}}
	cfg := InjectConfig{Image: "ghcr.io/kube-eip/kube-eip:v0", WaitTimeout: 600_000_000_000}
	Inject(pod, cfg, "claim-1", nil)
	once := pod.DeepCopy()
	Inject(pod, cfg, "claim-1", nil)
	if len(pod.Spec.InitContainers) != 2 || pod.Spec.InitContainers[0].Name != api.WaitContainerName {
		t.Fatalf("init containers = %v, want the wait container first, once", pod.Spec.InitContainers)
	}
	if len(pod.Spec.Volumes) != 1 || len(pod.Spec.ReadinessGates) != 1 {
		t.Fatalf("volumes %d, readiness gates %d; want 1 each", len(pod.Spec.Volumes), len(pod.Spec.ReadinessGates))
	}
	if pod.Labels[api.LabelManaged] != "true" || pod.Annotations[api.AnnotationClaim] != "claim-1" {
		t.Fatalf("labels %v annotations %v", pod.Labels, pod.Annotations)
	}
	if got := pod.Spec.InitContainers[0].Args; strings.Join(got, " ") != "wait --labels-file=/etc/kube-eip/podinfo/labels --timeout=10m0s" {
		t.Errorf("wait args = %q", got)
	}
	if len(once.Spec.InitContainers) != len(pod.Spec.InitContainers) {
		t.Error("second injection changed the pod")
	}
}

func TestDecideTellsReinvocationFromACopiedManifest(t *testing.T) {
	tenant := map[string]string{"tenant": "payments"}
	ns := servedNamespace("payments", tenant)
	state := fakeState{pools: map[string]*v1alpha1.EIPPool{
		"partners": pool("partners", map[string]string{"team": "payments"}, tenant, addr("eipalloc-1", "3.0.0.1"), addr("eipalloc-2", "3.0.0.2")),
	}, reserved: map[string]*v1alpha1.EIPReservation{}}
	annotations := map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "partners", api.AnnotationClaim: "c1", api.AnnotationReservation: "eipalloc-1"}
	ours := &v1alpha1.EIPReservation{ObjectMeta: metav1.ObjectMeta{Name: "eipalloc-1"}, Spec: v1alpha1.EIPReservationSpec{Claim: "c1", PodNamespace: "payments"}}
	claimed := ours.DeepCopy()
	claimed.Status.PodUID = "uid-of-the-pod-it-was-copied-from"

	plan := Decide(Input{Pod: newPod("a", annotations), Namespace: ns, State: state, Prior: ours})
	if !plan.Admitted || plan.Reservation != ours || len(plan.Candidates) != 0 {
		t.Errorf("reinvocation: admitted %t reservation %v candidates %v; want the first pass's reservation kept", plan.Admitted, plan.Reservation, plan.Candidates)
	}
	plan = Decide(Input{Pod: newPod("a", annotations), Namespace: ns, State: state, Prior: claimed})
	if plan.Admitted || len(plan.Candidates) == 0 {
		t.Errorf("copied manifest: admitted %t candidates %v; want a reservation of its own", plan.Admitted, plan.Candidates)
	}

	auto := map[string]string{api.AnnotationMode: "auto", api.AnnotationClaim: "c2"}
	if plan := Decide(Input{Pod: newPod("a", auto), Namespace: ns, State: state}); plan.Claim != "c2" {
		t.Errorf("auto reinvocation: claim %q, want c2 kept", plan.Claim)
	}
	long := map[string]string{api.AnnotationMode: "auto", api.AnnotationClaim: strings.Repeat("c", 300)}
	if plan := Decide(Input{Pod: newPod("a", long), Namespace: ns, State: state}); plan.Claim != "" {
		t.Errorf("a claim too long for its tag was kept")
	}
	state.claims = map[string]bool{"c2": true}
	if plan := Decide(Input{Pod: newPod("a", auto), Namespace: ns, State: state}); plan.Claim != "" {
		t.Errorf("auto copied from a live pod: claim %q kept, want a new one", plan.Claim)
	}
}

// Admissions of one pool start from different free addresses, by claim,
// and always after the ones pinned to the pod; every candidate is still
// tried.
func TestReservationsSpreadOverTheFreeAddresses(t *testing.T) {
	cands := []v1alpha1.PoolAddress{{AllocationID: "pinned", StickyOwner: "ns/web-0"}}
	for i := range 20 {
		cands = append(cands, v1alpha1.PoolAddress{AllocationID: fmt.Sprintf("free-%02d", i)})
	}
	firsts := map[string]bool{}
	for i := range 50 {
		got := spread(cands, fmt.Sprintf("claim-%d", i))
		if len(got) != len(cands) || got[0].AllocationID != "pinned" {
			t.Fatalf("spread = %v; want all %d, the pinned one first", got, len(cands))
		}
		seen := map[string]bool{}
		for _, c := range got {
			seen[c.AllocationID] = true
		}
		if len(seen) != len(cands) {
			t.Fatalf("spread lost or repeated candidates: %v", got)
		}
		firsts[got[1].AllocationID] = true
	}
	if len(firsts) < 10 {
		t.Errorf("50 claims start from only %d of 20 free addresses", len(firsts))
	}
	if got := spread(cands, "claim-1"); got[1] != spread(cands, "claim-1")[1] {
		t.Error("one claim's order changes between calls")
	}
}
