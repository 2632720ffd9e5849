package webhook

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

func zoneAffinity(terms ...[]string) *corev1.Affinity {
	var ts []corev1.NodeSelectorTerm
	for _, zones := range terms {
		t := corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
		}}
		if zones != nil {
			t.MatchExpressions = append(t.MatchExpressions, corev1.NodeSelectorRequirement{
				Key: corev1.LabelTopologyZone, Operator: corev1.NodeSelectorOpIn, Values: zones})
		}
		ts = append(ts, t)
	}
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: ts}}}
}

// zonesAccount is what the binder publishes for a region with a Local Zone.
var zonesAccount = api.Account{Quota: 5, Region: "us-east-1", Zones: map[string]string{
	"us-east-1a": "us-east-1", "us-east-1b": "us-east-1", "us-east-1-bos-1a": "us-east-1-bos-1",
}}

func TestBorderGroupOfAPod(t *testing.T) {
	tests := []struct {
		name    string
		spec    corev1.PodSpec
		known   bool
		want    string
		problem string
	}{
		{name: "zones not published", spec: corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelTopologyZone: "us-east-1-bos-1a"}}},
		{name: "not pinned: the region's", known: true, want: "us-east-1"},
		{name: "pinned by nodeSelector", known: true, spec: corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelTopologyZone: "us-east-1-bos-1a"}},
			want: "us-east-1-bos-1"},
		{name: "pinned by affinity to zones of one group", known: true, spec: corev1.PodSpec{Affinity: zoneAffinity([]string{"us-east-1a"}, []string{"us-east-1b"})},
			want: "us-east-1"},
		{name: "a term that leaves the zone open", known: true, spec: corev1.PodSpec{Affinity: zoneAffinity([]string{"us-east-1-bos-1a"}, nil)},
			want: "us-east-1"},
		{name: "an unknown zone decides nothing", known: true, spec: corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelTopologyZone: "us-east-1z"}}},
		{name: "zones of two groups", known: true, spec: corev1.PodSpec{Affinity: zoneAffinity([]string{"us-east-1a", "us-east-1-bos-1a"})},
			problem: "spec.nodeSelector: the pod may run in zones us-east-1-bos-1a, us-east-1a, which are in different network border groups (us-east-1, us-east-1-bos-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problem := borderGroup(&tt.spec, zonesAccount, tt.known)
			if got != tt.want {
				t.Errorf("group %q, want %q", got, tt.want)
			}
			if msg := ""; problem != nil || tt.problem != "" {
				if problem != nil {
					msg = problem.Error()
				}
				if tt.problem == "" || !strings.HasPrefix(msg, tt.problem) {
					t.Errorf("problem %q, want %q", msg, tt.problem)
				}
			}
		})
	}
}

// Admission reserves an address of the pod's border group only, and says
// which group it lacks when the pool has free addresses of another.
func TestDecideReservesInThePodsBorderGroup(t *testing.T) {
	tenant := map[string]string{"tenant": "payments"}
	ns := servedNamespace("payments", tenant)
	inGroup := func(id, ip, group string) v1alpha1.PoolAddress {
		a := addr(id, ip)
		a.NetworkBorderGroup = group
		return a
	}
	acct := zonesAccount
	state := fakeState{
		account: &acct,
		pools: map[string]*v1alpha1.EIPPool{"edge": pool("edge", map[string]string{"team": "edge"}, tenant,
			inGroup("eipalloc-1", "3.0.0.1", "us-east-1"), inGroup("eipalloc-2", "15.0.0.2", "us-east-1-bos-1"),
			addr("eipalloc-3", "3.0.0.3"))},
		reserved: map[string]*v1alpha1.EIPReservation{},
	}
	ask := map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "edge"}
	candidates := func(p *corev1.Pod) []string {
		plan := Decide(Input{Pod: p, Namespace: ns, State: state})
		if len(plan.Denial) > 0 {
			t.Fatalf("denied: %s", denialMessage(plan.Denial))
		}
		var ids []string
		for _, c := range plan.Candidates {
			ids = append(ids, c.AllocationID)
		}
		return ids
	}
	// An address whose group the status does not know yet suits anyone.
	if got := strings.Join(candidates(newPod("a", ask)), ","); got != "eipalloc-1,eipalloc-3" {
		t.Errorf("a pod of the region: candidates %s", got)
	}
	local := newPod("b", ask)
	local.Spec.NodeSelector = map[string]string{corev1.LabelTopologyZone: "us-east-1-bos-1a"}
	if got := strings.Join(candidates(local), ","); got != "eipalloc-2,eipalloc-3" {
		t.Errorf("a pod of the Local Zone: candidates %s", got)
	}

	state.reserved["eipalloc-2"] = &v1alpha1.EIPReservation{}
	state.reserved["eipalloc-3"] = &v1alpha1.EIPReservation{}
	plan := Decide(Input{Pod: local, Namespace: ns, State: state})
	want := `EIPPool "edge" has no free address of network border group us-east-1-bos-1, where the pod runs`
	if got := denialMessage(plan.Denial); !strings.Contains(got, want) {
		t.Errorf("denial %q, want %q", got, want)
	}
	both := newPod("c", ask)
	both.Spec.Affinity = zoneAffinity([]string{"us-east-1a", "us-east-1-bos-1a"})
	if got := denialMessage(Decide(Input{Pod: both, Namespace: ns, State: state}).Denial); !strings.Contains(got, "different network border groups") {
		t.Errorf("a pod of two groups: denial %q", got)
	}
}
