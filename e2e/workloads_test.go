package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// The control plane is real: the ReplicaSet and StatefulSet controllers make
// pods, the scheduler binds them once a node appears, and the garbage
// collector removes what a deleted Deployment owned.
func TestWorkloadControllersAndSchedulerAct(t *testing.T) {
	ns := newNamespace(t)
	ctx := t.Context()

	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate("web"),
		},
	}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](2),
			ServiceName: "db",
			// Parallel: with OrderedReady the controller would wait for db-0
			// to be Ready, which needs a kubelet.
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template:            podTemplate("db"),
		},
	}
	if _, err := kube.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating statefulset: %v", err)
	}

	// No node matches yet: the controllers create the pods and the scheduler
	// reports them unschedulable.
	eventually(t, time.Minute, "pods created and marked unschedulable", func(ctx context.Context) (bool, string, error) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		unschedulable := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
					unschedulable++
				}
			}
		}
		return len(pods.Items) == 5 && unschedulable == 5, podSummary(pods.Items), nil
	})
	rs := ownedReplicaSets(ctx, t, ns, "web")
	if len(rs) != 1 || ptr.Deref(rs[0].Spec.Replicas, 0) != 3 {
		t.Fatalf("want one ReplicaSet of 3 replicas owned by the deployment, got %d", len(rs))
	}
	for _, name := range []string{"db-0", "db-1"} {
		if _, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("statefulset pod %s: %v", name, err)
		}
	}

	node := registerNode(ctx, t, "e2e-workloads-node")

	eventually(t, time.Minute, "all pods bound to the node", func(ctx context.Context) (bool, string, error) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		bound := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName == node {
				bound++
			}
		}
		return len(pods.Items) == 5 && bound == 5, podSummary(pods.Items), nil
	})

	// Deleting the Deployment lets the garbage collector remove its
	// ReplicaSet and mark the ReplicaSet's pods for deletion.
	background := metav1.DeletePropagationBackground
	if err := kube.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
		t.Fatalf("deleting deployment: %v", err)
	}
	eventually(t, time.Minute, "garbage collector removes the ReplicaSet and its pods", func(ctx context.Context) (bool, string, error) {
		sets, err := kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, "", err
		}
		// Bound pods wait for a kubelet to confirm their end; the collector's
		// part is the deletion request, visible as a deletion timestamp.
		terminating := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				terminating++
			}
		}
		return len(sets.Items) == 0 && terminating == len(pods.Items),
			fmt.Sprintf("%d replicasets, %d of %d pods terminating", len(sets.Items), terminating, len(pods.Items)), nil
	})
}

func podTemplate(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			// Only the node this test registers matches, whatever other
			// nodes the suite runs.
			NodeSelector: map[string]string{workloadsNodeLabel: "true"},
			Containers:   []corev1.Container{{Name: app, Image: "registry.k8s.io/pause:3.10"}},
		},
	}
}

func ownedReplicaSets(ctx context.Context, t *testing.T, ns, deployment string) []appsv1.ReplicaSet {
	t.Helper()
	sets, err := kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing replicasets: %v", err)
	}
	var owned []appsv1.ReplicaSet
	for _, rs := range sets.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.Kind == "Deployment" && ref.Name == deployment {
			owned = append(owned, rs)
		}
	}
	return owned
}

const workloadsNodeLabel = "e2e.kube-eip.io/workloads"

// registerNode adds a Ready node with room for pods, without a kubelet: the
// scheduler binds to it but nothing runs. Its pods are force-deleted and the
// node removed when the test ends.
func registerNode(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, workloadsNodeLabel: "true"}}}
	created, err := kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating node: %v", err)
	}
	t.Cleanup(func() { removeNode(t, name) })
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("8"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	now := metav1.Now()
	status := corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.10"}},
	}
	// The node controllers update a new node too (taints, annotations):
	// retry on conflict with the latest version.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		latest, err := kube.CoreV1().Nodes().Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		latest.Status = status
		_, err = kube.CoreV1().Nodes().UpdateStatus(ctx, latest, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("marking node ready: %v", err)
	}
	return name
}

func removeNode(t *testing.T, name string) {
	ctx := context.Background()
	pods, err := kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + name})
	if err == nil {
		for _, p := range pods.Items {
			_ = kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		}
	}
	if err := kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Logf("removing node %s: %v", name, err)
	}
}
