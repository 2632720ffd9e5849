package webhook

import (
	"encoding/json"
	"testing"
	"time"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	jsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// The hand-made patch, applied to the original pod, gives exactly the pod
// Inject made, whatever the pod already had.
func TestPatchOpsReproduceInject(t *testing.T) {
	bare := newPod("bare", map[string]string{api.AnnotationMode: "auto"})
	full := newPod("full", map[string]string{api.AnnotationMode: "pool", "a/b~c": "x", api.AnnotationClaim: "copied"})
	full.Labels = map[string]string{"app": "relay", "tier/edge": "1"}
	full.Spec.InitContainers = []corev1.Container{{Name: "setup"}, {Name: "migrate"}}
	full.Spec.Volumes = []corev1.Volume{{Name: "data"}}
	full.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "other"}}
	res := &v1alpha1.EIPReservation{}
	res.Name, res.Spec.PublicIP = "eipalloc-1", "3.0.0.1"

	for _, orig := range []*corev1.Pod{bare, full} {
		t.Run(orig.Name, func(t *testing.T) {
			mutated := orig.DeepCopy()
			delete(mutated.Annotations, api.AnnotationClaim)
			Inject(mutated, InjectConfig{Image: "img", WaitTimeout: time.Minute}, "fresh", res)
			ops := patchOps(orig, mutated)
			got := applyPatch(t, mustJSON(t, orig), ops)
			if !equality.Semantic.DeepEqual(got, mutated) {
				t.Fatalf("patched pod differs from the injected one\npatch: %v\ngot:  %+v\nwant: %+v", ops, got, mutated)
			}
		})
	}
}

// applyPatch applies ops to the pod raw, as the API server does.
func applyPatch(t *testing.T, raw []byte, ops []jsonpatch.JsonPatchOperation) *corev1.Pod {
	t.Helper()
	data, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatchapply.DecodePatch(data)
	if err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("applying %s: %v", data, err)
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(patched, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}
