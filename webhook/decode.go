package webhook

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
)

// decodePod reads the part of a pod that admission looks at or adds to:
// metadata's name, namespace, labels, annotations, finalizers and owner
// references (a refusal is told to the pod's controller), and the spec's
// hostNetwork, containers (names and volume mounts), volume names,
// readiness gates, and the node selector and node affinity (which zones the
// pod may run in); a container or volume that bears kube-eip's own name
// is read whole, since injection checks its content. The rest of the
// document (images, probes, env, resources, managed fields...) is skipped
// rather than built, which takes about a tenth off a typical pod's review
// (BenchmarkAdmission: p50 0.54 to 0.48 ms).
//
// Nothing skipped can be lost: the patch only adds to the lists and maps it
// read, or removes keys it read (patchOps). Anything Decide or Inject reads
// must be decoded here; TestDecodePodSeesWhatAdmissionReads compares the
// two on pods with every field set.
func decodePod(raw []byte) (*corev1.Pod, error) {
	var in admissionPod
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	m, s := in.Metadata, in.Spec
	pod := &corev1.Pod{}
	pod.Name, pod.GenerateName, pod.Namespace = m.Name, m.GenerateName, m.Namespace
	pod.Labels, pod.Annotations, pod.Finalizers = m.Labels, m.Annotations, m.Finalizers
	pod.OwnerReferences = m.OwnerReferences
	pod.Spec.HostNetwork = s.HostNetwork
	pod.Spec.NodeSelector = s.NodeSelector
	if s.Affinity != nil && s.Affinity.NodeAffinity != nil {
		pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: s.Affinity.NodeAffinity}
	}
	pod.Spec.InitContainers = containers(s.InitContainers)
	pod.Spec.Containers = containers(s.Containers)
	if s.Volumes != nil {
		pod.Spec.Volumes = make([]corev1.Volume, len(s.Volumes))
		for i, v := range s.Volumes {
			pod.Spec.Volumes[i].Name = v.Name
		}
	}
	if in.bearsOurNames() {
		// Rare: a reinvocation, a copied manifest, or an impostor.
		var whole wholeSpec
		if err := json.Unmarshal(raw, &whole); err != nil {
			return nil, err
		}
		pod.Spec.InitContainers, pod.Spec.Containers, pod.Spec.Volumes = whole.Spec.InitContainers, whole.Spec.Containers, whole.Spec.Volumes
	}
	pod.Spec.ReadinessGates = s.ReadinessGates
	return pod, nil
}

// admissionPod is the JSON of a pod, cut down to what decodePod keeps.
type admissionPod struct {
	Metadata struct {
		Name            string                  `json:"name"`
		GenerateName    string                  `json:"generateName"`
		Namespace       string                  `json:"namespace"`
		Labels          map[string]string       `json:"labels"`
		Annotations     map[string]string       `json:"annotations"`
		Finalizers      []string                `json:"finalizers"`
		OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		HostNetwork  bool              `json:"hostNetwork"`
		NodeSelector map[string]string `json:"nodeSelector"`
		Affinity     *struct {
			NodeAffinity *corev1.NodeAffinity `json:"nodeAffinity"`
		} `json:"affinity"`
		InitContainers []admissionContainer `json:"initContainers"`
		Containers     []admissionContainer `json:"containers"`
		Volumes        []struct {
			Name string `json:"name"`
		} `json:"volumes"`
		ReadinessGates []corev1.PodReadinessGate `json:"readinessGates"`
	} `json:"spec"`
}

type admissionContainer struct {
	Name         string               `json:"name"`
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts"`
}

// bearsOurNames reports whether a container or volume is named as one of
// kube-eip's: injection checks those by content, so they are read whole.
func (p *admissionPod) bearsOurNames() bool {
	for _, list := range [][]admissionContainer{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range list {
			if c.Name == api.WaitContainerName {
				return true
			}
		}
	}
	for _, v := range p.Spec.Volumes {
		if v.Name == api.PodInfoVolumeName {
			return true
		}
	}
	return false
}

// wholeSpec is the part of a pod's spec read whole when it bears
// kube-eip's names.
type wholeSpec struct {
	Spec struct {
		InitContainers []corev1.Container `json:"initContainers"`
		Containers     []corev1.Container `json:"containers"`
		Volumes        []corev1.Volume    `json:"volumes"`
	} `json:"spec"`
}

func containers(in []admissionContainer) []corev1.Container {
	if in == nil {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i, c := range in {
		out[i] = corev1.Container{Name: c.Name, VolumeMounts: c.VolumeMounts}
	}
	return out
}
