package fakenode_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const publicIPLabel = "kube-eip.io/public-ip"

// waitingPod is shaped like a pod the kube-eip webhook has injected: an
// init container running the project's image with its wait subcommand,
// reading the pod's labels through a downward-API volume.
func waitingPod(ns, name string, args ...string) *corev1.Pod {
	spec := podSpec("main")
	spec.Volumes = []corev1.Volume{{
		Name: "podinfo",
		VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		}}},
	}}
	spec.InitContainers = []corev1.Container{{
		Name:    "wait",
		Image:   localImage + ":v0.1.0",
		Command: []string{"/kube-eip", "wait"},
		Args:    args,
		Env: []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "GREETING", Value: "hello $(POD_NAME)"},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo", ReadOnly: true}},
	}}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "eip"}}, Spec: spec}
}

func initState(p *corev1.Pod) corev1.ContainerStatus {
	if len(p.Status.InitContainerStatuses) == 0 {
		return corev1.ContainerStatus{}
	}
	return p.Status.InitContainerStatuses[0]
}

func TestLocalInitContainerWaitsForTheLabel(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := createPod(t, waitingPod(ns, "waiter",
		"-labels", "/etc/podinfo/labels", "-key", publicIPLabel, "-require-env", "POD_NAME,POD_IP,GREETING"))

	pod = waitPod(t, ns, pod.Name, 30*time.Second, "running its init container", func(p *corev1.Pod) (bool, string) {
		return initState(p).State.Running != nil, "init container not running"
	})
	if pod.Status.Phase != corev1.PodPending || !conditionIs(pod, corev1.PodInitialized, corev1.ConditionFalse) || pod.Status.PodIP == "" {
		t.Errorf("while its init container runs: %s; want Pending, Initialized=False, an IP", statusSummary(pod))
	}

	// The volume has the kubelet's layout: labels -> ..data/labels.
	volume := filepath.Join(nodes.WorkDir(), "pods", ns+"_"+pod.Name+"_"+string(pod.UID), "volumes", "podinfo")
	if target, err := os.Readlink(filepath.Join(volume, "labels")); err != nil || target != "..data/labels" {
		t.Errorf("labels symlink: %q, %v", target, err)
	}
	// The API server adds the node's topology labels at binding; the file
	// shows every label the way the kubelet formats them.
	current, err := kube.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading pod: %v", err)
	}
	var want []string
	for _, k := range slices.Sorted(maps.Keys(current.Labels)) {
		want = append(want, fmt.Sprintf("%s=%q", k, current.Labels[k]))
	}
	data, err := os.ReadFile(filepath.Join(volume, "labels"))
	if err != nil || string(data) != strings.Join(want, "\n") {
		t.Errorf("labels file: %q, %v; want %q", data, err, strings.Join(want, "\n"))
	}

	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{publicIPLabel: "203.0.113.10"}}})
	if _, err := kube.CoreV1().Pods(ns).Patch(t.Context(), pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("labelling pod: %v", err)
	}
	pod = waitPod(t, ns, pod.Name, 30*time.Second, "running", func(p *corev1.Pod) (bool, string) {
		ok, why := running(p)
		return ok && conditionIs(p, corev1.PodReady, corev1.ConditionTrue), why
	})
	term := initState(pod).State.Terminated
	if term == nil || term.ExitCode != 0 || term.Reason != "Completed" {
		t.Errorf("init container: %+v, want terminated with exit code 0", initState(pod).State)
	}
	if !conditionIs(pod, corev1.PodInitialized, corev1.ConditionTrue) {
		t.Errorf("Initialized is not True: %s", statusSummary(pod))
	}
	log, err := os.ReadFile(filepath.Join(nodes.WorkDir(), "pods", ns+"_"+pod.Name+"_"+string(pod.UID), "wait", "0.log"))
	if err != nil {
		t.Fatalf("reading the init container's log: %v", err)
	}
	for _, want := range []string{
		"POD_NAME=waiter", "POD_IP=" + pod.Status.PodIP, "GREETING=hello waiter",
		"waiting for " + publicIPLabel + " in " + volume + "/labels",
		`found ` + publicIPLabel + `="203.0.113.10"`,
	} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestFailingLocalInitContainerIsRestartedWithBackoff(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := createPod(t, waitingPod(ns, "crashloop", "-fail", "boom: no address"))
	pod = waitPod(t, ns, pod.Name, 30*time.Second, "restarted twice", func(p *corev1.Pod) (bool, string) {
		cs := initState(p)
		last := cs.LastTerminationState.Terminated
		return cs.RestartCount >= 2 && last != nil, "not restarted twice yet"
	})
	cs := initState(pod)
	last := cs.LastTerminationState.Terminated
	if last.ExitCode != 1 || last.Reason != "Error" || !strings.Contains(last.Message, "boom: no address") {
		t.Errorf("last termination: %+v, want exit code 1, reason Error, the output as message", last)
	}
	if pod.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", pod.Status.Phase)
	}
	waitPod(t, ns, pod.Name, 10*time.Second, "in CrashLoopBackOff", func(p *corev1.Pod) (bool, string) {
		w := initState(p).State.Waiting
		return w != nil && w.Reason == "CrashLoopBackOff", "not waiting in CrashLoopBackOff"
	})
}

func TestFailingLocalInitContainerFailsAPodThatNeverRestarts(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	spec := waitingPod(ns, "once", "-fail", "boom: no address")
	spec.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod := createPod(t, spec)
	pod = waitPod(t, ns, pod.Name, 30*time.Second, "failed", func(p *corev1.Pod) (bool, string) {
		return p.Status.Phase == corev1.PodFailed, "not failed"
	})
	term := initState(pod).State.Terminated
	if term == nil || term.ExitCode != 1 || term.Reason != "Error" || !strings.Contains(term.Message, "boom: no address") {
		t.Errorf("init container: %+v, want terminated with exit code 1, reason Error, the output as message", initState(pod).State)
	}
	if initState(pod).RestartCount != 0 {
		t.Errorf("restarted %d times under restartPolicy Never", initState(pod).RestartCount)
	}
	// A failed pod's address goes back to its node's warm pool.
	waitIPReleased(t, nodes, nodeOf(t, nodes, pod).Name, pod.Status.PodIP, 10*time.Second)
}

// A local binary stands in for init containers only: an app container of
// the same image "runs" at once, as any other image's, and is ready.
func TestAppContainerOfALocalImageStartsAtOnce(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	spec := podSpec("main")
	spec.Containers[0].Image = localImage + ":v0.1.0"
	pod := createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Spec: spec})
	waitPod(t, ns, pod.Name, 30*time.Second, "ready", func(p *corev1.Pod) (bool, string) {
		return conditionIs(p, corev1.PodReady, corev1.ConditionTrue), statusSummary(p)
	})
}
