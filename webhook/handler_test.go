package webhook

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/api"
)

// A manifest exported from a live pod carries what the binder wrote: its
// address in the label the wait container reads, its allocation and
// association. A new pod created from it must not inherit them: the wait
// would pass with another pod's address, and the binder could take that
// pod's association for this one's.
func TestCreateDropsWhatTheBinderWroteOnAnotherPod(t *testing.T) {
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "copy", Namespace: "payments",
			Labels: map[string]string{"app": "relay", api.LabelPublicIP: "3.0.0.9"},
			Annotations: map[string]string{
				api.AnnotationMode:          "auto",
				api.AnnotationAllocationID:  "eipalloc-of-another-pod",
				api.AnnotationAssociationID: "eipassoc-of-another-pod",
			},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var req admission.Request
	req.AdmissionRequest = admissionv1.AdmissionRequest{Operation: admissionv1.Create, Namespace: "payments"}
	req.Object.Raw = raw
	resp := testHandlerImpl().Handle(t.Context(), req)
	if !resp.Allowed {
		t.Fatalf("refused: %v", resp.Result)
	}
	removed := map[string]bool{}
	for _, op := range resp.Patches {
		if op.Operation == "remove" {
			removed[op.Path] = true
		}
	}
	for _, path := range []string{
		"/metadata/labels/kube-eip.io~1public-ip",
		"/metadata/annotations/kube-eip.io~1allocation-id",
		"/metadata/annotations/kube-eip.io~1association-id",
	} {
		if !removed[path] {
			t.Errorf("patch %v does not remove %s", resp.Patches, path)
		}
	}
}
