package authz

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

type poolSet []v1alpha1.EIPPool

func (p poolSet) Pool(name string) (*v1alpha1.EIPPool, bool) {
	for i := range p {
		if p[i].Name == name {
			return &p[i], true
		}
	}
	return nil, false
}

func (p poolSet) Pools() []v1alpha1.EIPPool { return p }

func namespace(name string, labels map[string]string, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

func pool(name string, selector map[string]string, open map[string]string) v1alpha1.EIPPool {
	p := v1alpha1.EIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.EIPPoolSpec{TagSelector: selector}}
	if open != nil {
		p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: open}
	}
	return p
}

func TestCheck(t *testing.T) {
	served := map[string]string{api.LabelInjection: api.InjectionEnabled, "tenant": "a"}
	ns := namespace("a", served, nil)
	growing := pool("grows", map[string]string{"team": "a"}, map[string]string{"tenant": "a"})
	growing.Spec.Growth = &v1alpha1.PoolGrowth{PublicIPv4Pool: "ipv4pool-ec2-0123456789abcdef0", MaxAddresses: 2}
	all := poolSet{
		pool("open", map[string]string{"team": "a"}, map[string]string{"tenant": "a"}),
		pool("closed", map[string]string{"team": "b"}, map[string]string{"tenant": "b"}),
		pool("unset", map[string]string{"team": "c"}, nil),
		// Two pools of one legacy tag key open to "a", one of another key
		// open to "a" and one to "b".
		pool("legacy-b", map[string]string{"pec": ""}, map[string]string{"tenant": "a"}),
		pool("legacy-a", map[string]string{"pec": ""}, map[string]string{"tenant": "a"}),
		pool("mine", map[string]string{"k2": ""}, map[string]string{"tenant": "a"}),
		pool("theirs", map[string]string{"k2": ""}, map[string]string{"tenant": "b"}),
		pool("closed-only", map[string]string{"k3": ""}, map[string]string{"tenant": "b"}),
		growing,
		{ObjectMeta: metav1.ObjectMeta{Name: "egress"}, Spec: v1alpha1.EIPPoolSpec{TagSelector: map[string]string{"egress": ""},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": "egress"}}}},
	}
	for _, tc := range []struct {
		name    string
		ns      *corev1.Namespace
		req     api.Request
		pool    string
		problem string
	}{
		{name: "auto", ns: ns, req: api.Request{Mode: api.ModeAuto}},
		{name: "auto, not opted in", ns: namespace("a", map[string]string{"tenant": "a"}, nil), req: api.Request{Mode: api.ModeAuto},
			problem: `kube-eip.io/managed: namespace "a" has not opted in to kube-eip`},
		{name: "opted in with another value", ns: namespace("a", map[string]string{api.LabelInjection: "true"}, nil), req: api.Request{Mode: api.ModeAuto},
			problem: "has not opted in"},
		{name: "kube-system", ns: namespace("kube-system", served, nil), req: api.Request{Mode: api.ModeAuto}, problem: `namespace "kube-system" has not opted in`},
		{name: "no namespace", ns: nil, req: api.Request{Mode: api.ModeAuto}, problem: `namespace "" has not opted in`},
		{name: "pool open", ns: ns, req: api.Request{Mode: api.ModePool, Pool: "open"}, pool: "open"},
		{name: "sticky with a pool", ns: ns, req: api.Request{Mode: api.ModeSticky, Pool: "open"}, pool: "open"},
		{name: "sticky without a pool", ns: ns, req: api.Request{Mode: api.ModeSticky}},
		{name: "pool closed", ns: ns, req: api.Request{Mode: api.ModePool, Pool: "closed"},
			problem: `kube-eip.io/pool: EIPPool "closed" is not open to namespace "a" (its namespaceSelector does not select it); pools open to namespace "a": grows, legacy-a, legacy-b, mine, open`},
		{name: "pool without a selector is open to none", ns: ns, req: api.Request{Mode: api.ModePool, Pool: "unset"}, problem: `EIPPool "unset" is not open`},
		{name: "a node pool serves no pod", ns: ns, req: api.Request{Mode: api.ModePool, Pool: "egress"},
			problem: `kube-eip.io/pool: EIPPool "egress" is a node pool: its addresses go to the nodes its nodeSelector selects, never to pods`},
		{name: "a node pool serves no sticky pod", ns: ns, req: api.Request{Mode: api.ModeSticky, Pool: "egress"}, problem: `is a node pool`},
		{name: "pool missing", ns: ns, req: api.Request{Mode: api.ModePool, Pool: "nope"}, problem: `kube-eip.io/pool: EIPPool "nope" does not exist`},
		{name: "legacy, two pools open", ns: ns, req: api.Request{Mode: api.ModePool, LegacyTagKey: "pec", Legacy: true},
			problem: api.LegacyAnnotationTag + `: EIPPools legacy-a, legacy-b all select addresses by the tag key "pec" and are open to namespace "a"; choose one: add kube-eip.io/mode: pool and kube-eip.io/pool: <one of them>`},
		{name: "legacy, the one pool open", ns: ns, req: api.Request{Mode: api.ModePool, LegacyTagKey: "k2", Legacy: true}, pool: "mine"},
		{name: "legacy, a pool not open", ns: ns, req: api.Request{Mode: api.ModePool, LegacyTagKey: "k3", Legacy: true},
			problem: `EIPPool "closed-only" selects addresses by the tag key "k3" but is not open to namespace "a"`},
		{name: "legacy without a pool", ns: ns, req: api.Request{Mode: api.ModePool, LegacyTagKey: "other", Legacy: true},
			problem: api.LegacyAnnotationTag + `: no EIPPool selects addresses by the tag key "other"`},
		{name: "BYOIP an open pool grows from", ns: ns, req: api.Request{Mode: api.ModeAuto, PublicIPv4Pool: "ipv4pool-ec2-0123456789abcdef0"}},
		{name: "BYOIP nobody opened", ns: ns, req: api.Request{Mode: api.ModeAuto, PublicIPv4Pool: "ipv4pool-ec2-0123456789abcdef1"},
			problem: `kube-eip.io/public-ipv4-pool: BYOIP pool "ipv4pool-ec2-0123456789abcdef1" is not open to namespace "a"`},
		{name: "BYOIP opened to others", ns: namespace("b", map[string]string{api.LabelInjection: api.InjectionEnabled, "tenant": "b"}, nil),
			req: api.Request{Mode: api.ModeAuto, PublicIPv4Pool: "ipv4pool-ec2-0123456789abcdef0"}, problem: `is not open to namespace "b"`},
		{name: "amazon", ns: ns, req: api.Request{Mode: api.ModeAuto, PublicIPv4Pool: "amazon"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, problem := Check(&tc.req, tc.ns, all)
			if msg := problemText(problem); tc.problem == "" && msg != "" || !strings.Contains(msg, tc.problem) {
				t.Fatalf("problem = %q, want %q", msg, tc.problem)
			}
			if name := poolName(got); name != tc.pool {
				t.Errorf("pool = %q, want %q", name, tc.pool)
			}
		})
	}
}

func TestOverCap(t *testing.T) {
	capped := func(v string) *corev1.Namespace {
		return namespace("a", nil, map[string]string{AnnotationMaxAddresses: v})
	}
	for _, tc := range []struct {
		name    string
		ns      *corev1.Namespace
		held    int
		problem string
	}{
		{"no cap", namespace("a", nil, nil), 1000, ""},
		{"under", capped("3"), 2, ""},
		{"at", capped("3"), 3, `namespace "a" holds 3 of its 3 addresses (kube-eip.io/max-addresses)`},
		{"zero", capped("0"), 0, "holds 0 of its 0 addresses"},
		{"spaces are fine", capped(" 2 "), 1, ""},
		{"negative", capped("-1"), 0, `has kube-eip.io/max-addresses="-1", which is not a whole number`},
		{"words", capped("many"), 0, "not a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if msg := problemText(OverCap(tc.ns, tc.held)); tc.problem == "" && msg != "" || !strings.Contains(msg, tc.problem) {
				t.Errorf("problem = %q, want %q", msg, tc.problem)
			}
		})
	}
}

func problemText(p *api.Problem) string {
	if p == nil {
		return ""
	}
	return p.Error()
}

func poolName(p *v1alpha1.EIPPool) string {
	if p == nil {
		return ""
	}
	return p.Name
}
