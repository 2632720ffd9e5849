package webhook

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// A pool whose selector certainly shares addresses with another's is
// refused with both pools and the addresses named; an update that leaves
// the selector alone is never refused for an overlap it did not make.
func TestPoolsThatShareAddressesAreRefused(t *testing.T) {
	state := fakeState{pools: map[string]*v1alpha1.EIPPool{
		"alpha": pool("alpha", map[string]string{"team": "alpha"}, nil, addr("eipalloc-1", "3.0.0.1")),
	}}
	h := &PoolHandler{Pools: state}
	review := func(op admissionv1.Operation, p, old *v1alpha1.EIPPool) admission.Response {
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: op}}
		req.Object.Raw = mustJSON(t, p)
		if old != nil {
			req.OldObject.Raw = mustJSON(t, old)
		}
		return h.Handle(t.Context(), req)
	}
	scratch := &v1alpha1.EIPPool{ObjectMeta: metav1.ObjectMeta{Name: "scratch"}, Spec: v1alpha1.EIPPoolSpec{
		TagSelector: map[string]string{"team": "alpha"}, ReleasePolicy: v1alpha1.ReleasePolicyRelease}}
	resp := review(admissionv1.Create, scratch, nil)
	want := `spec.tagSelector: its tagSelector {team: "alpha"} and that of EIPPool "alpha", {team: "alpha"}, select the same addresses (3.0.0.1); an address belongs to one pool only`
	if resp.Allowed || !strings.Contains(resp.Result.Message, want) {
		t.Errorf("overlapping create: allowed %v, %q; want refused with %q", resp.Allowed, resp.Result.Message, want)
	}

	own := scratch.DeepCopy()
	own.Spec.TagSelector = map[string]string{"team": "scratch"}
	if resp := review(admissionv1.Create, own, nil); !resp.Allowed {
		t.Errorf("a pool of its own tag value was refused: %v", resp.Result)
	}
	// alpha itself, updated without touching its selector.
	alpha := state.pools["alpha"].DeepCopy()
	changed := alpha.DeepCopy()
	changed.Spec.ReleasePolicy = v1alpha1.ReleasePolicyRelease
	state.pools["twin"] = pool("twin", map[string]string{"team": "alpha"}, nil)
	if resp := review(admissionv1.Update, changed, alpha); !resp.Allowed {
		t.Errorf("an update that keeps the selector was refused: %v", resp.Result)
	}
	widened := alpha.DeepCopy()
	widened.Spec.TagSelector = map[string]string{"team": ""}
	if resp := review(admissionv1.Update, widened, alpha); resp.Allowed {
		t.Error("an update widening the selector over another pool's was allowed")
	}
}

// A node pool whose nodeSelector cannot select anything is refused with
// what is wrong, rather than admitted to serve no node.
func TestANodePoolWithABadNodeSelectorIsRefused(t *testing.T) {
	h := &PoolHandler{Pools: fakeState{pools: map[string]*v1alpha1.EIPPool{}}}
	p := &v1alpha1.EIPPool{ObjectMeta: metav1.ObjectMeta{Name: "egress"}, Spec: v1alpha1.EIPPoolSpec{
		TagSelector:  map[string]string{"egress": ""},
		NodeSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "group", Operator: "Within", Values: []string{"a"}}}},
	}}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Create}}
	req.Object.Raw = mustJSON(t, p)
	resp := h.Handle(t.Context(), req)
	if resp.Allowed || !strings.HasPrefix(resp.Result.Message, "spec.nodeSelector: ") || !strings.Contains(resp.Result.Message, "Within") {
		t.Errorf("allowed %v, %q; want refused naming spec.nodeSelector and the operator", resp.Allowed, resp.Result.Message)
	}
	p.Spec.NodeSelector.MatchExpressions[0].Operator = metav1.LabelSelectorOpIn
	req.Object.Raw = mustJSON(t, p)
	if resp := h.Handle(t.Context(), req); !resp.Allowed {
		t.Errorf("a good node pool was refused: %v", resp.Result)
	}
}
