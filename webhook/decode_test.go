package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-openapi/jsonpointer"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/webhook/server/loadgen"
)

// TestDecodePodSeesWhatAdmissionReads admits pods with every field set
// twice, once decoded whole and once by decodePod: the answers must be the
// same. A field that Decide, Inject or the patch starts to read without
// decodePod decoding it makes them differ.
func TestDecodePodSeesWhatAdmissionReads(t *testing.T) {
	full := func(annotations map[string]string) *corev1.Pod {
		pod := loadgen.ExamplePod()
		pod.Namespace = "payments"
		pod.Annotations = annotations
		// What the API server's plugins and an earlier admission add.
		pod.Finalizers = []string{"example.com/keep"}
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "kube-api-access-x7k2p",
			VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: ptr.To[int32](0o644)}}})
		for i := range pod.Spec.Containers {
			pod.Spec.Containers[i].VolumeMounts = append(pod.Spec.Containers[i].VolumeMounts,
				corev1.VolumeMount{Name: "kube-api-access-x7k2p", MountPath: serviceAccountTokenPath, ReadOnly: true})
		}
		pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "app", Args: []string{"migrate"}}}
		pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/ready"}}
		return pod
	}
	pool := map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "partners"}
	copied := full(map[string]string{api.AnnotationMode: "auto", api.AnnotationAllocationID: "eipalloc-9", api.AnnotationClaim: "c0ffee"})
	copied.Labels[api.LabelPublicIP] = "3.0.0.9"
	hostNetwork := full(map[string]string{api.AnnotationMode: "auto"})
	hostNetwork.Spec.HostNetwork = true
	sticky := full(map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: "partners"})
	sticky.Name, sticky.GenerateName = "relay-0", ""
	impostor := full(map[string]string{api.AnnotationMode: "auto"})
	impostor.Spec.InitContainers = append(impostor.Spec.InitContainers, corev1.Container{Name: api.WaitContainerName, Image: "busybox", Command: []string{"true"}})
	impostor.Spec.Volumes = append(impostor.Spec.Volumes, corev1.Volume{Name: api.PodInfoVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	// Pinned to a Local Zone: admission reserves of its border group.
	pinned := full(pool)
	pinned.Spec.NodeSelector = map[string]string{corev1.LabelTopologyZone: "us-east-1-bos-1a"}
	pinnedByAffinity := full(pool)
	pinnedByAffinity.Spec.Affinity = zoneAffinity([]string{"us-east-1-bos-1a"})
	// The second pass over a pod the first injected into.
	reinvoked := full(map[string]string{api.AnnotationMode: "auto"})
	Inject(reinvoked, testHandlerImpl().Config, "c0ffee", nil)

	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
	}{
		{"auto", full(map[string]string{api.AnnotationMode: "auto"})},
		{"pool", full(pool)},
		{"sticky", sticky},
		{"legacy", full(map[string]string{api.LegacyAnnotationType: "fixed-tag", api.LegacyAnnotationTag: "pec-ip-pool"})},
		{"copied from a live pod", copied},
		{"host network", hostNetwork},
		{"names of kube-eip's", impostor},
		{"not asking", full(map[string]string{"example.com/x": "y"})},
		{"reinvocation", reinvoked},
		{"pinned to a Local Zone", pinned},
		{"pinned by node affinity", pinnedByAffinity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer := func(decode func([]byte) (*corev1.Pod, error)) admission.Response {
				t.Helper()
				req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Namespace: "payments"}}
				pod, err := decode(mustJSON(t, tc.pod))
				if err != nil {
					t.Fatal(err)
				}
				// A handler of its own each time: reservations are state.
				resp := testHandlerImpl().admit(context.Background(), req, pod)
				for i, op := range resp.Patches {
					// The claim is made up afresh for each answer.
					if op.Path == "/metadata/annotations/"+jsonpointer.Escape(api.AnnotationClaim) && op.Value != "c0ffee" {
						resp.Patches[i].Value = "<new claim>"
					}
				}
				return resp
			}
			whole := answer(func(raw []byte) (*corev1.Pod, error) {
				pod := &corev1.Pod{}
				return pod, json.Unmarshal(raw, pod)
			})
			part := answer(decodePod)
			if !reflect.DeepEqual(whole, part) {
				t.Errorf("whole pod:\n%+v\ndecodePod:\n%+v", whole, part)
			}
			if tc.name == "pool" && len(part.Patches) == 0 {
				t.Fatal("no patch: the comparison proves nothing")
			}
			if strings.HasPrefix(tc.name, "pinned") && !strings.Contains(fmt.Sprint(part.Patches), "eipalloc-3") {
				t.Errorf("a pod pinned to the Local Zone was not given its address: %v", part.Patches)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
