package webhook

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// workload is a Deployment-like workload of pods pods asking annotations.
func workload(kind, name string, pods, surge int, annotations map[string]string) *Workload {
	return &Workload{Kind: kind, Name: name, TemplatePath: "spec.template", Pods: pods, PodsField: "spec.replicas", Surge: surge,
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}}
}

// The state of TestDecideWorkload: a pool with one free address of three
// (one reserved, one in use outside kube-eip), one with three free, one
// closed to the namespace, and one that can grow.
func workloadState() fakeState {
	tenant := map[string]string{"tenant": "payments"}
	elsewhere := addr("eipalloc-3", "3.0.0.3")
	elsewhere.AssociatedElsewhere = true
	return fakeState{
		pools: map[string]*v1alpha1.EIPPool{
			"one-free": pool("one-free", map[string]string{"team": "one"}, tenant, addr("eipalloc-1", "3.0.0.1"), addr("eipalloc-2", "3.0.0.2"), elsewhere),
			"three": pool("three", map[string]string{"team": "three"}, tenant,
				addr("eipalloc-4", "3.0.0.4"), addr("eipalloc-5", "3.0.0.5"), addr("eipalloc-6", "3.0.0.6")),
			"closed": pool("closed", map[string]string{"team": "x"}, map[string]string{"tenant": "other"}, addr("eipalloc-7", "3.0.0.7")),
			"grows": func() *v1alpha1.EIPPool {
				p := pool("grows", map[string]string{"team": "grows"}, tenant, addr("eipalloc-8", "3.0.0.8"))
				p.Spec.Growth = &v1alpha1.PoolGrowth{PublicIPv4Pool: "amazon", MaxAddresses: 3}
				return p
			}(),
		},
		reserved: map[string]*v1alpha1.EIPReservation{
			"eipalloc-2": {ObjectMeta: metav1.ObjectMeta{Name: "eipalloc-2"}, Spec: v1alpha1.EIPReservationSpec{Pool: "one-free"}},
			// db-0 of the StatefulSet keeps its address of pool three.
			"eipalloc-4": {ObjectMeta: metav1.ObjectMeta{Name: "eipalloc-4"}, Spec: v1alpha1.EIPReservationSpec{Pool: "three", StickyOwner: "payments/db-0"}},
		},
		held:    map[string]int{"payments": 3},
		account: &api.Account{Quota: 5, Allocated: 4},
	}
}

func TestDecideWorkload(t *testing.T) {
	ns := servedNamespace("payments", map[string]string{"tenant": "payments"})
	poolOf := func(name string) map[string]string {
		return map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: name}
	}
	auto := map[string]string{api.AnnotationMode: "auto"}
	sticky := func(pool string) map[string]string {
		return map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: pool}
	}
	tests := []struct {
		name     string
		w, old   *Workload
		ns       *corev1.Namespace
		denial   string   // the whole message; empty means admitted
		warnings []string // substrings, one per warning, in order
	}{
		{name: "a typo in the mode is refused in pod admission's words, naming the workload",
			w:      workload("Deployment", "typo", 2, 1, map[string]string{api.AnnotationMode: "autoo"}),
			denial: `Deployment "typo" (spec.template): kube-eip.io/mode: unknown mode "autoo"; did you mean "auto"? (one of auto, pool, sticky)`},
		{name: "an unknown key",
			w:      workload("Job", "batch", 1, 0, map[string]string{api.AnnotationMode: "auto", "kube-eip.io/pol": "x"}),
			denial: `Job "batch" (spec.template): kube-eip.io/pol: unknown annotation; did you mean kube-eip.io/pool?`},
		{name: "a pool that does not exist",
			w:      workload("Deployment", "web", 1, 0, poolOf("nope")),
			denial: `Deployment "web" (spec.template): kube-eip.io/pool: EIPPool "nope" does not exist; pools open to namespace "payments": grows, one-free, three`},
		{name: "a pool not open to the namespace",
			w:      workload("StatefulSet", "db", 1, 0, poolOf("closed")),
			denial: `StatefulSet "db" (spec.template): kube-eip.io/pool: EIPPool "closed" is not open to namespace "payments"`},
		{name: "hostNetwork",
			w: func() *Workload {
				w := workload("DaemonSet", "agent", -1, 0, auto)
				w.Template.Spec.HostNetwork = true
				return w
			}(),
			denial: `DaemonSet "agent" (spec.template): kube-eip.io/mode: pods with hostNetwork: true share their node's address`},
		{name: "a malformed BYOIP pool",
			w:      workload("Deployment", "web", 1, 0, map[string]string{api.AnnotationMode: "auto", api.AnnotationPublicIPv4Pool: "ipv4pool-ec2-xyz"}),
			denial: `Deployment "web" (spec.template): kube-eip.io/public-ipv4-pool: "ipv4pool-ec2-xyz" is not a public IPv4 pool`},
		{name: "a BYOIP pool no open pool grows from",
			w:      workload("Deployment", "web", 1, 0, map[string]string{api.AnnotationMode: "auto", api.AnnotationPublicIPv4Pool: byoip}),
			denial: `Deployment "web" (spec.template): kube-eip.io/public-ipv4-pool: BYOIP pool "` + byoip + `" is not open to namespace "payments"`},
		{name: "old and new annotations that disagree",
			w:      workload("Deployment", "web", 1, 0, map[string]string{api.AnnotationMode: "auto", api.LegacyAnnotationType: "fixed-tag", api.LegacyAnnotationTag: "t"}),
			denial: `Deployment "web" (spec.template): aws-samples.github.com/aws-pod-eip-controller-type: conflicts with kube-eip.io/mode=auto`},
		{name: "sticky on a Deployment: its pods have no names yet",
			w:      workload("Deployment", "web", 1, 0, sticky("three")),
			denial: `Deployment "web" (spec.template): kube-eip.io/mode: mode sticky ties the address to the pod's name, and pods from generateName`},
		{name: "a namespace that has not opted in",
			w: workload("Deployment", "web", 1, 0, auto), ns: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "payments"}},
			denial: `Deployment "web" (spec.template): kube-eip.io/managed: namespace "payments" has not opted in to kube-eip`},
		{name: "a template asking nothing", w: workload("Deployment", "plain", 3, 1, map[string]string{"example.com/x": "y"})},
		{name: "parse warnings name the workload",
			w:        workload("Deployment", "web", 1, 0, map[string]string{api.AnnotationMode: "auto", api.AnnotationPool: "three"}),
			warnings: []string{`Deployment "web": kube-eip.io/pool is ignored in mode auto`}},

		{name: "three replicas on a pool with one free address",
			w:        workload("Deployment", "web", 3, 0, poolOf("one-free")),
			warnings: []string{`Deployment "web": EIPPool "one-free" has 1 free address for 3 pods (spec.replicas): 2 of them will be refused at creation until addresses are free (kubectl get eippool one-free)`}},
		{name: "replicas that fit, but not the rolling update's surge",
			w:        workload("Deployment", "web", 2, 1, poolOf("three")),
			warnings: []string{`Deployment "web": EIPPool "three" has 2 free addresses, and a rolling update starts 1 new pod (maxSurge) before old ones give theirs back, with room for 0 after this change's pods`}},
		{name: "no surge, no rollout warning", w: workload("Deployment", "web", 2, 0, poolOf("three"))},
		{name: "a pool that grows counts what it may grow by",
			w:        workload("Deployment", "web", 4, 0, poolOf("grows")),
			warnings: []string{`EIPPool "grows" has 1 free address and may grow by 2 (spec.growth.maxAddresses 3) for 4 pods (spec.replicas): 1 of them will be refused at creation until the pool has grown`}},
		{name: "a Job's parallelism",
			w: func() *Workload {
				w := workload("Job", "batch", 2, 0, poolOf("one-free"))
				w.PodsField = "spec.parallelism"
				return w
			}(),
			warnings: []string{`Job "batch": EIPPool "one-free" has 1 free address for 2 pods (spec.parallelism): 1 of them`}},
		{name: "a DaemonSet's pods are not counted here", w: workload("DaemonSet", "agent", -1, 0, poolOf("one-free"))},

		{name: "a sticky StatefulSet larger than its pool",
			w:        workload("StatefulSet", "db", 5, 0, sticky("three")),
			warnings: []string{`StatefulSet "db": StatefulSet "db" is 5 replicas and EIPPool "three" has 3 usable addresses: each replica keeps an address of its own, so 2 of its pods will never get one`}},
		{name: "a sticky StatefulSet that fits, one replica keeping its address", w: workload("StatefulSet", "db", 3, 0, sticky("three"))},
		{name: "a sticky StatefulSet with fewer free addresses than names without one",
			w:        workload("StatefulSet", "db", 3, 0, sticky("one-free")),
			warnings: []string{`StatefulSet "db": StatefulSet "db" is 3 replicas and EIPPool "one-free" has 2 usable addresses`}},

		{name: "auto past the namespace's cap and the account's quota",
			w: workload("Deployment", "web", 3, 0, auto), ns: func() *corev1.Namespace {
				n := ns.DeepCopy()
				n.Annotations = map[string]string{authz.AnnotationMaxAddresses: "5"}
				return n
			}(),
			warnings: []string{
				`Deployment "web": namespace "payments" holds 3 of its 5 addresses (kube-eip.io/max-addresses) for 3 pods (spec.replicas): 1 of them will be refused at creation; ask a cluster admin to raise the cap`,
				`Deployment "web": the AWS account has 4 of its 5 Elastic IPs in the region allocated (kube-eip's last count) for 3 pods (spec.replicas): 2 of them will wait without an address`,
			}},
		{name: "a pool's pods count against the cap too",
			w: workload("Deployment", "web", 3, 0, poolOf("three")), ns: func() *corev1.Namespace {
				n := ns.DeepCopy()
				n.Annotations = map[string]string{authz.AnnotationMaxAddresses: "4"}
				return n
			}(),
			warnings: []string{
				`Deployment "web": namespace "payments" holds 3 of its 4 addresses (kube-eip.io/max-addresses) for 3 pods (spec.replicas): 2 of them will be refused at creation`,
				`Deployment "web": EIPPool "three" has 2 free addresses for 3 pods (spec.replicas): 1 of them`,
			}},
		{name: "auto under a malformed cap",
			w: workload("Deployment", "web", 1, 0, auto), ns: func() *corev1.Namespace {
				n := ns.DeepCopy()
				n.Annotations = map[string]string{authz.AnnotationMaxAddresses: "lots"}
				return n
			}(),
			warnings: []string{`Deployment "web": its pods are refused at creation: namespace "payments" has kube-eip.io/max-addresses="lots"`}},
		{name: "sticky without a pool allocates, within the account's room", w: workload("StatefulSet", "db", 1, 0, map[string]string{api.AnnotationMode: "sticky"})},

		{name: "an update that scales up counts only the new pods",
			w: workload("Deployment", "web", 3, 1, poolOf("three")), old: workload("Deployment", "web", 1, 1, poolOf("three"))},
		{name: "an update that scales past the pool",
			w: workload("Deployment", "web", 5, 0, poolOf("one-free")), old: workload("Deployment", "web", 3, 0, poolOf("one-free")),
			warnings: []string{`EIPPool "one-free" has 1 free address for 2 more pods (spec.replicas): 1 of them will be refused`}},
		{name: "an update of the template starts the surge now",
			w: func() *Workload {
				w := workload("Deployment", "web", 4, 2, poolOf("one-free"))
				w.Template.Labels = map[string]string{"version": "2"}
				return w
			}(),
			old:      workload("Deployment", "web", 4, 2, poolOf("one-free")),
			warnings: []string{`EIPPool "one-free" has 1 free address, and a rolling update starts 2 new pods (maxSurge) before old ones give theirs back, with room for 1 after this change's pods`}},
		{name: "an update of the template whose surge fits",
			w: func() *Workload {
				w := workload("Deployment", "web", 4, 1, poolOf("one-free"))
				w.Template.Labels = map[string]string{"version": "2"}
				return w
			}(),
			old: workload("Deployment", "web", 4, 1, poolOf("one-free"))},
		{name: "an update that scales down never warns of the surge",
			w: workload("Deployment", "web", 1, 1, poolOf("one-free")), old: workload("Deployment", "web", 3, 1, poolOf("one-free"))},
		{name: "an update that breaks the template is refused",
			w:      workload("Deployment", "web", 1, 0, map[string]string{api.AnnotationMode: "poool"}),
			old:    workload("Deployment", "web", 1, 0, poolOf("three")),
			denial: `Deployment "web" (spec.template): kube-eip.io/mode: unknown mode "poool"; did you mean "pool"?`},
		{name: "an update that leaves a template refused today alone only warns: scaling down must go through",
			w: workload("Deployment", "web", 1, 0, poolOf("deleted")), old: workload("Deployment", "web", 3, 0, poolOf("deleted")),
			warnings: []string{`Deployment "web": its pods are refused at creation: kube-eip.io/pool: EIPPool "deleted" does not exist`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ns
			if tt.ns != nil {
				n = tt.ns
			}
			plan := DecideWorkload(WorkloadInput{Workload: tt.w, Old: tt.old, Namespace: n, State: workloadState()})
			got := ""
			if len(plan.Denial) > 0 {
				got = plan.Message(tt.w)
			}
			if tt.denial == "" && got != "" || !strings.HasPrefix(got, tt.denial) {
				t.Fatalf("denial:\n  %s\nwant it to start:\n  %s", got, tt.denial)
			}
			if len(plan.Warnings) != len(tt.warnings) {
				t.Fatalf("warnings:\n  %s\nwant %d", strings.Join(plan.Warnings, "\n  "), len(tt.warnings))
			}
			for i, w := range tt.warnings {
				if !strings.Contains(plan.Warnings[i], w) {
					t.Errorf("warning %d:\n  %s\nwant it to contain:\n  %s", i, plan.Warnings[i], w)
				}
			}
		})
	}
}

// Pod admission and workload admission refuse a template in the same words:
// each refusal of a pod is the workload's, after the workload's name.
func TestWorkloadAndPodRefusalsAgree(t *testing.T) {
	ns := servedNamespace("payments", map[string]string{"tenant": "payments"})
	state := workloadState()
	for _, annotations := range []map[string]string{
		{api.AnnotationMode: "autoo"},
		{api.AnnotationMode: "pool"},
		{api.AnnotationMode: "pool", api.AnnotationPool: "closed"},
		{api.AnnotationMode: "auto", api.AnnotationPublicIPv4Pool: "amazonn"},
		{api.LegacyAnnotationType: "fixed-tag", api.LegacyAnnotationTag: "nobody-selects-this"},
		{api.AnnotationMode: "sticky", api.AnnotationPool: "three"},
	} {
		pod := newPod("", annotations)
		pod.GenerateName = "web-"
		podDenial := denialMessage(Decide(Input{Pod: pod, Namespace: ns, State: state}).Denial)
		w := workload("Deployment", "web", 1, 0, annotations)
		plan := DecideWorkload(WorkloadInput{Workload: w, Namespace: ns, State: state})
		if podDenial == "" || len(plan.Denial) == 0 {
			t.Fatalf("%v: pod denial %q, workload denial %v; want both refused", annotations, podDenial, plan.Denial)
		}
		if want := `Deployment "web" (spec.template): ` + podDenial; plan.Message(w) != want {
			t.Errorf("%v:\n  workload: %s\n  want:     %s", annotations, plan.Message(w), want)
		}
	}
}
