package webhook

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/api"
)

// admitCreate sends pod through the handler as a CREATE and returns the
// pod the API server would store, with the warnings.
func admitCreate(t *testing.T, h *Handler, pod *corev1.Pod) (*corev1.Pod, []string) {
	t.Helper()
	raw := mustJSON(t, pod)
	var req admission.Request
	req.AdmissionRequest = admissionv1.AdmissionRequest{Operation: admissionv1.Create, Namespace: pod.Namespace}
	req.Object.Raw = raw
	resp := h.Handle(t.Context(), req)
	if !resp.Allowed {
		t.Fatalf("refused: %v", resp.Result)
	}
	return applyPatch(t, raw, resp.Patches), resp.Warnings
}

// A tenant's own init container named kube-eip-wait (busybox running true)
// would pass at once and start the app with no address; a volume named as
// kube-eip's downward-API volume would feed the wait made-up labels. Neither
// stands in for kube-eip's own: each is replaced, with a warning.
func TestInjectionChecksContentNotNames(t *testing.T) {
	h := testHandlerImpl()
	impostor := func() *corev1.Pod {
		pod := newPod("relay", map[string]string{api.AnnotationMode: "auto"})
		pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "app", VolumeMounts: []corev1.VolumeMount{{Name: api.PodInfoVolumeName, MountPath: "/info"}}}}
		return pod
	}
	fakeWait := corev1.Container{Name: api.WaitContainerName, Image: "busybox", Command: []string{"true"}}
	// The real image and arguments, turned into a sidecar that blocks
	// nothing.
	sidecar := waitContainer(h.Config)
	sidecar.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	fakeInfo := corev1.Volume{Name: api.PodInfoVolumeName, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "made-up-labels"}}}}

	for _, tc := range []struct {
		name    string
		init    []corev1.Container
		volumes []corev1.Volume
		warning string
	}{
		{"an init container of kube-eip's name", []corev1.Container{{Name: "setup", Image: "app"}, fakeWait}, nil,
			"spec.initContainers[1]: kube-eip-wait is the name of kube-eip's wait container, and this one is not kube-eip's; it was replaced by kube-eip's own"},
		{"kube-eip's image made a sidecar", []corev1.Container{sidecar}, nil, "spec.initContainers[0]: kube-eip-wait is the name of kube-eip's wait container"},
		{"a volume of kube-eip's name", nil, []corev1.Volume{{Name: "data"}, fakeInfo},
			"spec.volumes[1]: kube-eip-podinfo is the name of kube-eip's downward-API volume, and this one is not kube-eip's; it was replaced by kube-eip's own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := impostor()
			pod.Spec.InitContainers, pod.Spec.Volumes = tc.init, tc.volumes
			got, warnings := admitCreate(t, h, pod)
			if !slicesContainSubstring(warnings, tc.warning) {
				t.Errorf("warnings %q, want one containing %q", warnings, tc.warning)
			}
			var waits, infos int
			for _, c := range got.Spec.InitContainers {
				if c.Name == api.WaitContainerName {
					waits++
					if !equality.Semantic.DeepEqual(c, waitContainer(h.Config)) {
						t.Errorf("the wait container is not kube-eip's: %+v", c)
					}
				}
			}
			if got.Spec.InitContainers[0].Name != api.WaitContainerName {
				t.Errorf("init containers %v: kube-eip's wait is not first", got.Spec.InitContainers)
			}
			for _, v := range got.Spec.Volumes {
				if v.Name == api.PodInfoVolumeName {
					infos++
					if !equality.Semantic.DeepEqual(v, podInfoVolume()) {
						t.Errorf("the downward-API volume is not kube-eip's: %+v", v)
					}
				}
			}
			if waits != 1 || infos != 1 {
				t.Errorf("%d wait containers and %d downward-API volumes, want one of each", waits, infos)
			}
		})
	}
}

// On reinvocation the webhook meets its own container and volume as the
// API server keeps them (defaulted, with the service account's mount): they
// are kube-eip's, and nothing is replaced or added again.
func TestInjectionKnowsItsOwnOnReinvocation(t *testing.T) {
	h := testHandlerImpl()
	pod := newPod("relay", map[string]string{api.AnnotationMode: "auto"})
	pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "app"}}
	first, _ := admitCreate(t, h, pod)

	// What the API server and its service account plugin make of it.
	sa := corev1.VolumeMount{Name: "kube-api-access-x7k2p", MountPath: serviceAccountTokenPath, ReadOnly: true}
	for i := range first.Spec.InitContainers {
		first.Spec.InitContainers[i].TerminationMessagePath = corev1.TerminationMessagePathDefault
		first.Spec.InitContainers[i].VolumeMounts = append(first.Spec.InitContainers[i].VolumeMounts, sa)
	}
	for i := range first.Spec.Volumes {
		if d := first.Spec.Volumes[i].DownwardAPI; d != nil {
			d.DefaultMode = ptr.To(corev1.DownwardAPIVolumeSourceDefaultMode)
			d.Items[0].FieldRef.APIVersion = "v1"
		}
	}
	again, warnings := admitCreate(t, h, first)
	if len(warnings) > 0 {
		t.Errorf("warnings on reinvocation: %q", warnings)
	}
	if !equality.Semantic.DeepEqual(again.Spec, first.Spec) {
		t.Errorf("reinvocation changed the spec:\nbefore %+v\nafter  %+v", first.Spec, again.Spec)
	}
}

func slicesContainSubstring(list []string, want string) bool {
	for _, s := range list {
		if strings.Contains(s, want) {
			return true
		}
	}
	return false
}
