package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/pools"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// PoolsPath is where the API server sends EIPPool admission reviews.
const PoolsPath = "/validate-eippools"

// PoolHandler refuses an EIPPool whose tagSelector certainly shares
// addresses with another pool's: an address belongs to one pool only.
// Overlaps that only some addresses' tags make (two different keys) are
// caught by the binder, which serves such addresses from no pool.
type PoolHandler struct {
	Pools authz.Pools
}

// Handle implements admission.Handler.
func (h *PoolHandler) Handle(_ context.Context, req admission.Request) admission.Response {
	pool := &v1alpha1.EIPPool{}
	if err := json.Unmarshal(req.Object.Raw, pool); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the EIPPool: %w", err))
	}
	if sel := pool.Spec.NodeSelector; sel != nil {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			return admission.Denied("spec.nodeSelector: " + err.Error())
		}
	}
	if req.Operation == admissionv1.Update {
		old := &v1alpha1.EIPPool{}
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the old EIPPool: %w", err))
		}
		if maps.Equal(old.Spec.TagSelector, pool.Spec.TagSelector) {
			return admission.Allowed("") // which addresses it takes did not change
		}
	}
	if msg := pools.Overlap(pool, h.Pools.Pools()); msg != "" {
		return admission.Denied("spec.tagSelector: " + msg)
	}
	return admission.Allowed("")
}
