package webhook

import (
	"fmt"
	"slices"
	"time"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// InjectConfig is what the webhook puts into pods.
type InjectConfig struct {
	// Image is kube-eip's own image, which runs the wait subcommand.
	Image string
	// WaitTimeout bounds the wait for the address before the init
	// container fails (and the kubelet restarts it).
	WaitTimeout time.Duration
}

// Inject adds to pod what a managed pod needs: the label the binder selects
// on, the claim, the binder's finalizer, the wait init container over a
// downward-API volume of the pod's labels, and the readiness gate. Each
// piece is checked before it is added, so running it again (a
// reinvocation) changes nothing; a container or volume of kube-eip's name
// that is not kube-eip's must be gone first (withoutImpostors).
func Inject(pod *corev1.Pod, cfg InjectConfig, claim string, res *v1alpha1.EIPReservation) {
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[api.LabelManaged] = "true"
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	if claim != "" {
		pod.Annotations[api.AnnotationClaim] = claim
	}
	if res != nil {
		pod.Annotations[api.AnnotationReservation] = res.Name
		pod.Annotations[api.AnnotationReservedIP] = res.Spec.PublicIP
	}

	// Set at creation, the finalizer holds even a pod deleted before the
	// binder ever saw it until its address is accounted for.
	if !slices.Contains(pod.Finalizers, api.FinalizerRelease) {
		pod.Finalizers = append(pod.Finalizers, api.FinalizerRelease)
	}

	if !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == api.PodInfoVolumeName }) {
		pod.Spec.Volumes = append(pod.Spec.Volumes, podInfoVolume())
	}
	if !slices.ContainsFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == api.WaitContainerName }) {
		wait := waitContainer(cfg)
		// The service account plugin mounts the pod's token into every
		// container, ours included, and runs again after a webhook adds a
		// container; that change would make the API server call the webhook
		// a second time (reinvocationPolicy IfNeeded). Carrying the mount it
		// would add saves that call and changes nothing in the pod.
		if m, ok := serviceAccountMount(pod); ok {
			wait.VolumeMounts = append(wait.VolumeMounts, m)
		}
		// First, so that init containers after it already see the address.
		pod.Spec.InitContainers = append([]corev1.Container{wait}, pod.Spec.InitContainers...)
	}
	gate := corev1.PodConditionType(api.ConditionEIPReady)
	if !slices.ContainsFunc(pod.Spec.ReadinessGates, func(g corev1.PodReadinessGate) bool { return g.ConditionType == gate }) {
		pod.Spec.ReadinessGates = append(pod.Spec.ReadinessGates, corev1.PodReadinessGate{ConditionType: gate})
	}
}

// withoutImpostors returns pod without the init containers and volumes that
// bear kube-eip's names but are not what Inject makes with cfg (a user's
// container named kube-eip-wait would otherwise stand in for the real wait,
// a user's volume named kube-eip-podinfo feed it made-up labels), with the
// patch operations that remove them and a warning for each. A pod without
// any is returned as it is.
func withoutImpostors(pod *corev1.Pod, cfg InjectConfig) (*corev1.Pod, []jsonpatch.JsonPatchOperation, []string) {
	var ops []jsonpatch.JsonPatchOperation
	var warnings []string
	out := pod
	clone := func() {
		if out == pod {
			out = pod.DeepCopy()
		}
	}
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		c := pod.Spec.InitContainers[i]
		if c.Name != api.WaitContainerName || ownWaitContainer(c, cfg) {
			continue
		}
		clone()
		out.Spec.InitContainers = slices.Delete(out.Spec.InitContainers, i, i+1)
		ops = append(ops, jsonpatch.NewOperation("remove", fmt.Sprintf("/spec/initContainers/%d", i), nil))
		warnings = append(warnings, fmt.Sprintf("spec.initContainers[%d]: %s is the name of kube-eip's wait container, and this one is not kube-eip's; it was replaced by kube-eip's own", i, api.WaitContainerName))
	}
	for i := len(pod.Spec.Volumes) - 1; i >= 0; i-- {
		v := pod.Spec.Volumes[i]
		if v.Name != api.PodInfoVolumeName || ownPodInfoVolume(v) {
			continue
		}
		clone()
		out.Spec.Volumes = slices.Delete(out.Spec.Volumes, i, i+1)
		ops = append(ops, jsonpatch.NewOperation("remove", fmt.Sprintf("/spec/volumes/%d", i), nil))
		warnings = append(warnings, fmt.Sprintf("spec.volumes[%d]: %s is the name of kube-eip's downward-API volume, and this one is not kube-eip's; it was replaced by kube-eip's own", i, api.PodInfoVolumeName))
	}
	return out, ops, warnings
}

// ownWaitContainer reports whether c is exactly the wait container Inject
// makes with cfg, as the API server stores it: with the termination message
// path defaulted, and the service account token mounted.
func ownWaitContainer(c corev1.Container, cfg InjectConfig) bool {
	got := c.DeepCopy()
	got.TerminationMessagePath = ""
	got.VolumeMounts = slices.DeleteFunc(got.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == serviceAccountTokenPath })
	return equality.Semantic.DeepEqual(*got, waitContainer(cfg))
}

// ownPodInfoVolume reports whether v is exactly the volume Inject makes, as
// the API server stores it: with its mode and field version defaulted.
func ownPodInfoVolume(v corev1.Volume) bool {
	got := v.DeepCopy()
	if d := got.DownwardAPI; d != nil {
		d.DefaultMode = nil
		for i := range d.Items {
			if d.Items[i].FieldRef != nil {
				d.Items[i].FieldRef.APIVersion = ""
			}
		}
	}
	return equality.Semantic.DeepEqual(*got, podInfoVolume())
}

// serviceAccountTokenPath is where the service account plugin mounts the
// pod's API token.
const serviceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount" //nolint:gosec // a mount path, not a credential

func serviceAccountMount(pod *corev1.Pod) (corev1.VolumeMount, bool) {
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		for _, m := range c.VolumeMounts {
			if m.MountPath == serviceAccountTokenPath {
				return m, true
			}
		}
	}
	return corev1.VolumeMount{}, false
}

func podInfoVolume() corev1.Volume {
	return corev1.Volume{
		Name: api.PodInfoVolumeName,
		VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{Path: api.PodInfoLabelsFile, FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
		}},
	}
}

func waitContainer(cfg InjectConfig) corev1.Container {
	return corev1.Container{
		Name:            api.WaitContainerName,
		Image:           cfg.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args: []string{
			"wait",
			"--labels-file=" + api.PodInfoMountPath + "/" + api.PodInfoLabelsFile,
			fmt.Sprintf("--timeout=%s", cfg.WaitTimeout),
		},
		VolumeMounts: []corev1.VolumeMount{{Name: api.PodInfoVolumeName, MountPath: api.PodInfoMountPath, ReadOnly: true}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To[int64](65532),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}
