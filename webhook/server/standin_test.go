package server

import (
	"context"
	"encoding/json"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// standInInjector does roughly the work the real pod webhook will do, to
// measure the server around it: decode the pod, refuse a bad mode, add the
// wait init container, the downward-API volume and the readiness gate, and
// answer with a JSON patch.
func standInInjector() *admission.Webhook {
	decoder := admission.NewDecoder(clientgoscheme.Scheme)
	return &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		pod := &corev1.Pod{}
		if err := decoder.Decode(req, pod); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if mode := pod.Annotations["kube-eip.io/mode"]; mode != "auto" && mode != "pool" && mode != "sticky" {
			return admission.Denied(`kube-eip.io/mode: unknown mode "` + mode + `"; use auto, pool or sticky`)
		}
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{
			Name:  "kube-eip-wait",
			Image: "ghcr.io/kube-eip/kube-eip:v0.1.0",
			Args:  []string{"wait", "--file=/etc/kube-eip/labels", "--timeout=5m"},
			VolumeMounts: []corev1.VolumeMount{{
				Name: "kube-eip-info", MountPath: "/etc/kube-eip", ReadOnly: true,
			}},
		})
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
			Name: "kube-eip-info",
			VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
				Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
			}},
		})
		pod.Spec.ReadinessGates = append(pod.Spec.ReadinessGates, corev1.PodReadinessGate{ConditionType: "kube-eip.io/eip-ready"})
		marshaled, err := json.Marshal(pod)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		return admission.PatchResponseFromRaw(req.Object.Raw, marshaled)
	})}
}
