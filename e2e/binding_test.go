package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// Ten auto pods of a Deployment each get an Elastic IP of their own,
// associated with the ENI and private IP that EC2 shows for the pod, and
// visible in the pod's label; scaled to zero, all ten go back to AWS.
func TestAutoPodsGetTheirOwnAddressAndLoseItAtScaleDown(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "auto"})
	ctx := t.Context()
	deploy := eipDeployment("relay", 10, map[string]string{api.AnnotationMode: "auto"})
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	pods := waitBound(t, ns, "app=relay", 10)
	ips, allocs := map[string]bool{}, []string{}
	for _, p := range pods {
		ip := p.Labels[api.LabelPublicIP]
		if ips[ip] {
			t.Errorf("public IP %s given to two pods", ip)
		}
		ips[ip] = true
		assertAssociatedWithPod(t, &p)
		allocs = append(allocs, p.Annotations[api.AnnotationAllocationID])
	}

	scale(t, ns, "relay", 0)
	eventually(t, time.Minute, "all ten addresses released", func(ctx context.Context) (bool, string, error) {
		left, err := describeAllocations(ctx, allocs)
		return len(left) == 0, fmt.Sprintf("%d still allocated", len(left)), err
	})
}

// A sticky StatefulSet pod gets the same address back after it is deleted
// and recreated, possibly on another node.
func TestStickyPodGetsItsAddressBack(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "sticky"})
	ctx := t.Context()
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "voice"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "voice"}},
			Template: eipPodTemplate("voice", map[string]string{api.AnnotationMode: "sticky"}),
		},
	}
	if _, err := kube.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating statefulset: %v", err)
	}
	before := waitBound(t, ns, "app=voice", 2)
	first := podNamed(before, "voice-0")
	if err := kube.CoreV1().Pods(ns).Delete(ctx, "voice-0", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting voice-0: %v", err)
	}
	var again *corev1.Pod
	eventually(t, time.Minute, "voice-0 recreated and bound", func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "voice-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		again = p
		return p.UID != first.UID && p.Labels[api.LabelPublicIP] != "" && eipReadyCondition(p), fmt.Sprintf("uid=%s label=%q", p.UID, p.Labels[api.LabelPublicIP]), nil
	})
	if got, want := again.Labels[api.LabelPublicIP], first.Labels[api.LabelPublicIP]; got != want {
		t.Fatalf("recreated voice-0 got %s, want its address %s back", got, want)
	}
	assertAssociatedWithPod(t, again)

	// With the StatefulSet gone, nothing keeps the addresses.
	allocs := []string{again.Annotations[api.AnnotationAllocationID], podNamed(before, "voice-1").Annotations[api.AnnotationAllocationID]}
	if err := kube.AppsV1().StatefulSets(ns).Delete(ctx, "voice", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatalf("deleting statefulset: %v", err)
	}
	eventually(t, time.Minute, "sticky addresses released once the StatefulSet is gone", func(ctx context.Context) (bool, string, error) {
		left, err := describeAllocations(ctx, allocs)
		return len(left) == 0, fmt.Sprintf("%d still allocated", len(left)), err
	})
}

// A sticky address drawn from a pool waits for its name while the
// StatefulSet exists, and is free in the pool again once the StatefulSet
// is deleted: the next workload gets it.
func TestAStickyPoolAddressGoesBackToItsPoolWithItsStatefulSet(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "sticky-pool"})
	ctx := t.Context()
	poolName := newPool(t, ns, "voice", map[string]string{"tenant": "sticky-pool"}, 1)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "voice"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "voice"}},
			Template: eipPodTemplate("voice", map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: poolName}),
		},
	}
	if _, err := kube.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating statefulset: %v", err)
	}
	first := waitBound(t, ns, "app=voice", 1)[0]
	allocID := first.Annotations[api.AnnotationAllocationID]
	scaleStatefulSet(t, ns, "voice", 0)
	eventually(t, time.Minute, "voice-0 gone, its reservation kept for its StatefulSet", func(ctx context.Context) (bool, string, error) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=voice"})
		if err != nil {
			return false, "", err
		}
		res := &v1alpha1.EIPReservation{}
		if err := crClient.Get(ctx, client.ObjectKey{Name: allocID}, res); err != nil {
			return false, "", err
		}
		kept := res.Status.KeptFor != nil && res.Status.KeptFor.Controller == "StatefulSet/voice"
		return len(pods.Items) == 0 && kept && res.Status.Phase == v1alpha1.ReservationReserved, fmt.Sprintf("%d pods, reservation %+v", len(pods.Items), res.Status), nil
	})
	// Kept through sweeps while the StatefulSet is there.
	afterSweeps(t, 2)
	if err := crClient.Get(ctx, client.ObjectKey{Name: allocID}, &v1alpha1.EIPReservation{}); err != nil {
		t.Fatalf("the reservation of a scaled-down StatefulSet: %v", err)
	}

	if err := kube.AppsV1().StatefulSets(ns).Delete(ctx, "voice", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPoolStatus(t, poolName, "free=1 reserved=0", func(st v1alpha1.EIPPoolStatus) bool { return st.Free == 1 && st.Reserved == 0 && st.Bound == 0 })
	next := eipDeployment("after", 1, map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: poolName})
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, next, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := waitBound(t, ns, "app=after", 1)[0].Annotations[api.AnnotationAllocationID]; got != allocID {
		t.Errorf("the next pod got %s, want the pool's one address %s", got, allocID)
	}
}

// Pool pods take addresses of their EIPPool and give them back: the
// addresses stay allocated, free for the next pods.
func TestPoolAddressesGoBackToThePool(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "pooled"})
	ctx := t.Context()
	poolName := newPool(t, ns, "partner", map[string]string{"tenant": "pooled"}, 2)
	pool := &v1alpha1.EIPPool{}
	if err := crClient.Get(ctx, client.ObjectKey{Name: poolName}, pool); err != nil {
		t.Fatal(err)
	}
	members := map[string]bool{}
	for _, a := range pool.Status.Addresses {
		members[a.AllocationID] = true
	}

	deploy := eipDeployment("egress", 2, map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: poolName})
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	for _, p := range waitBound(t, ns, "app=egress", 2) {
		if !members[p.Annotations[api.AnnotationAllocationID]] {
			t.Errorf("pod %s got %s, not an address of pool %s", p.Name, p.Annotations[api.AnnotationAllocationID], poolName)
		}
		assertAssociatedWithPod(t, &p)
	}
	waitPoolStatus(t, poolName, "bound=2 free=0", func(st v1alpha1.EIPPoolStatus) bool { return st.Bound == 2 && st.Free == 0 })

	scale(t, ns, "egress", 0)
	waitPoolStatus(t, poolName, "bound=0 free=2", func(st v1alpha1.EIPPoolStatus) bool { return st.Bound == 0 && st.Free == 2 && st.Reserved == 0 })
	var ids []string
	for id := range members {
		ids = append(ids, id)
	}
	left, err := describeAllocations(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 {
		t.Fatalf("pool addresses left in EC2: %d, want both kept", len(left))
	}
	for _, a := range left {
		if a.AssociationId != nil {
			t.Errorf("pool address %s still associated with %s", aws.ToString(a.PublicIp), aws.ToString(a.PrivateIpAddress))
		}
	}
}

// Pods deleted while the binder is down wait for it (the finalizer): when
// it comes back it disassociates and releases their addresses.
func TestPodsDeletedWhileTheBinderIsDownAreCleanedUp(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "downtime"})
	ctx := t.Context()
	deploy := eipDeployment("game", 3, map[string]string{api.AnnotationMode: "auto"})
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	var allocs []string
	for _, p := range waitBound(t, ns, "app=game", 3) {
		allocs = append(allocs, p.Annotations[api.AnnotationAllocationID])
	}

	env.StopBinder()
	t.Cleanup(func() { restartBinder(t) })
	if err := kube.AppsV1().Deployments(ns).Delete(ctx, "game", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The pods stay, terminating, their addresses still associated.
	eventually(t, time.Minute, "pods terminating, held by the finalizer", func(ctx context.Context) (bool, string, error) {
		list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=game"})
		if err != nil {
			return false, "", err
		}
		held := 0
		for _, p := range list.Items {
			if p.DeletionTimestamp != nil && slices.Contains(p.Finalizers, api.FinalizerRelease) {
				held++
			}
		}
		return held == 3, podSummary(list.Items), nil
	})
	left, err := describeAllocations(ctx, allocs)
	if err != nil || len(left) != 3 {
		t.Fatalf("addresses while the binder is down: %d (%v), want all 3 still allocated", len(left), err)
	}

	restartBinder(t)
	eventually(t, time.Minute, "pods gone and addresses released", func(ctx context.Context) (bool, string, error) {
		list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=game"})
		if err != nil {
			return false, "", err
		}
		left, err := describeAllocations(ctx, allocs)
		return len(list.Items) == 0 && len(left) == 0, fmt.Sprintf("%d pods, %d addresses", len(list.Items), len(left)), err
	})
}

// A node that dies under bound pods (its instance terminated, the Node
// deleted) leaves no address allocated that nobody owns.
func TestNodeDeletedUnderBoundPodsLeavesNoOrphan(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "doomed"})
	ctx := t.Context()
	group, err := env.StartNodeGroup(ctx, stack.NodeGroup{Name: "doomed"})
	if err != nil {
		t.Fatalf("starting a node group: %v", err)
	}
	t.Cleanup(group.Stop)
	// Bare pods, so that no controller replaces them on a node that will
	// not come back.
	tmpl := eipPodTemplate("media", map[string]string{api.AnnotationMode: "auto"})
	tmpl.Spec.NodeSelector = group.NodeSelector()
	for i := range 3 {
		pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
		pod.Name = fmt.Sprintf("media-%d", i)
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating pod: %v", err)
		}
	}
	var allocs []string
	for _, p := range waitBound(t, ns, "app=media", 3) {
		allocs = append(allocs, p.Annotations[api.AnnotationAllocationID])
	}
	node := group.NodeNames()[0]
	if err := kube.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting node %s: %v", node, err)
	}
	// The controller manager's pod garbage collector deletes the pods of a
	// vanished node (after its 40 s quarantine); the binder releases.
	eventually(t, 2*time.Minute, "the dead node's pods gone and their addresses released", func(ctx context.Context) (bool, string, error) {
		list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=media"})
		if err != nil {
			return false, "", err
		}
		left, err := describeAllocations(ctx, allocs)
		return len(list.Items) == 0 && len(left) == 0, fmt.Sprintf("%d addresses; pods: %s", len(left), podSummary(list.Items)), err
	})
}

// An address tagged for another cluster is never touched, even one that
// looks like an orphan of a kube-eip pod and one that a pool selects.
func TestAddressesOfAnotherClusterAreNeverTouched(t *testing.T) {
	ctx := t.Context()
	foreignTags := map[string]string{api.TagCluster: "someone-elses", api.TagClaim: "abc", api.TagOwner: "gone/pod", api.TagMode: "auto"}
	ids := allocateTagged(t, foreignTags, 1)
	ns := newEIPNamespace(t, map[string]string{"tenant": "foreign"})
	poolName := newPool(t, ns, "mixed", map[string]string{"tenant": "foreign"}, 1)
	pool := &v1alpha1.EIPPool{}
	if err := crClient.Get(ctx, client.ObjectKey{Name: poolName}, pool); err != nil {
		t.Fatal(err)
	}
	// Another cluster's address carrying the pool's tags does not join it.
	foreignPooled := allocateTagged(t, mergeMaps(pool.Spec.TagSelector, map[string]string{api.TagCluster: "someone-elses"}), 1)
	before, err := describeAllocations(ctx, append(ids, foreignPooled...))
	if err != nil || len(before) != 2 {
		t.Fatalf("describing the foreign addresses: %v (%d)", err, len(before))
	}

	// Several sweeps later, with a grace far shorter than the wait.
	sweeps := binderMetric(t, "kube_eip_binder_sweep_duration_seconds_count")
	eventually(t, 30*time.Second, "three more sweeps", func(context.Context) (bool, string, error) {
		n := binderMetric(t, "kube_eip_binder_sweep_duration_seconds_count")
		return n >= sweeps+3, fmt.Sprintf("%v sweeps", n-sweeps), nil
	})
	after, err := describeAllocations(ctx, append(ids, foreignPooled...))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 2 {
		t.Fatalf("foreign addresses left: %d, want both untouched", len(after))
	}
	for _, a := range after {
		for _, tag := range a.Tags {
			if aws.ToString(tag.Key) == api.TagCluster && aws.ToString(tag.Value) != "someone-elses" {
				t.Errorf("address %s retagged for %s", aws.ToString(a.PublicIp), aws.ToString(tag.Value))
			}
		}
	}
	if err := crClient.Get(ctx, client.ObjectKey{Name: poolName}, pool); err != nil {
		t.Fatal(err)
	}
	if pool.Status.Total != 1 {
		t.Errorf("pool counts %d addresses, want 1: another cluster's address joined it", pool.Status.Total)
	}
}

func eipDeployment(name string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: eipPodTemplate(name, annotations),
		},
	}
}

func eipPodTemplate(app string, annotations map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeSelector:                  env.Nodes.NodeSelector(),
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
}

// waitBound waits for n pods of the selector to carry their address: the
// label, the condition, and Running (the wait init container saw it).
func waitBound(t *testing.T, ns, selector string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, 90*time.Second, fmt.Sprintf("%d pods bound", n), func(ctx context.Context) (bool, string, error) {
		list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, "", err
		}
		pods = list.Items
		bound := 0
		for i := range pods {
			p := &pods[i]
			if p.DeletionTimestamp == nil && p.Labels[api.LabelPublicIP] != "" && eipReadyCondition(p) && p.Status.Phase == corev1.PodRunning {
				bound++
			}
		}
		return len(pods) == n && bound == n, fmt.Sprintf("%d of %d bound: %s", bound, len(pods), podSummary(pods)), nil
	})
	return pods
}

func eipReadyCondition(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == api.ConditionEIPReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// assertAssociatedWithPod checks in EC2 (through the SDK) that the pod's
// address sits on the ENI holding the pod's IP, at that IP.
func assertAssociatedWithPod(t *testing.T, p *corev1.Pod) {
	t.Helper()
	ctx := t.Context()
	out, err := ec2api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{{Name: aws.String("public-ip"), Values: []string{p.Labels[api.LabelPublicIP]}}}})
	if err != nil || len(out.Addresses) != 1 {
		t.Fatalf("describing %s of pod %s: %v (%d found)", p.Labels[api.LabelPublicIP], p.Name, err, len(out.Addresses))
	}
	a := out.Addresses[0]
	enis, err := ec2api.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []ec2types.Filter{{Name: aws.String("addresses.private-ip-address"), Values: []string{p.Status.PodIP}}}})
	if err != nil || len(enis.NetworkInterfaces) != 1 {
		t.Fatalf("describing the ENI of %s: %v", p.Status.PodIP, err)
	}
	switch {
	case aws.ToString(a.AllocationId) != p.Annotations[api.AnnotationAllocationID]:
		t.Errorf("pod %s: annotation says %s, EC2 has %s for %s", p.Name, p.Annotations[api.AnnotationAllocationID], aws.ToString(a.AllocationId), aws.ToString(a.PublicIp))
	case aws.ToString(a.NetworkInterfaceId) != aws.ToString(enis.NetworkInterfaces[0].NetworkInterfaceId) || aws.ToString(a.PrivateIpAddress) != p.Status.PodIP:
		t.Errorf("pod %s (%s on %s): address %s is on %s %s", p.Name, p.Status.PodIP, aws.ToString(enis.NetworkInterfaces[0].NetworkInterfaceId),
			aws.ToString(a.PublicIp), aws.ToString(a.NetworkInterfaceId), aws.ToString(a.PrivateIpAddress))
	case !hasTag(a.Tags, api.TagCluster, stack.ClusterName):
		t.Errorf("address %s lacks the cluster tag: %v", aws.ToString(a.PublicIp), a.Tags)
	}
}

func hasTag(tags []ec2types.Tag, k, v string) bool {
	return slices.ContainsFunc(tags, func(t ec2types.Tag) bool { return aws.ToString(t.Key) == k && aws.ToString(t.Value) == v })
}

// describeAllocations returns those of ids still allocated.
func describeAllocations(ctx context.Context, ids []string) ([]ec2types.Address, error) {
	out, err := ec2api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{{Name: aws.String("allocation-id"), Values: ids}}})
	if err != nil {
		return nil, err
	}
	return out.Addresses, nil
}

func scale(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	if _, err := kube.AppsV1().Deployments(ns).Patch(t.Context(), name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("scaling %s to %d: %v", name, replicas, err)
	}
}

func podNamed(pods []corev1.Pod, name string) *corev1.Pod {
	for i := range pods {
		if pods[i].Name == name {
			return &pods[i]
		}
	}
	return &corev1.Pod{}
}

func waitPoolStatus(t *testing.T, name, what string, ok func(v1alpha1.EIPPoolStatus) bool) {
	t.Helper()
	eventually(t, 30*time.Second, "pool "+what, func(ctx context.Context) (bool, string, error) {
		pool := &v1alpha1.EIPPool{}
		if err := crClient.Get(ctx, client.ObjectKey{Name: name}, pool); err != nil {
			return false, "", err
		}
		st := pool.Status
		return ok(st), fmt.Sprintf("total=%d free=%d reserved=%d bound=%d", st.Total, st.Free, st.Reserved, st.Bound), nil
	})
}

func restartBinder(t *testing.T) {
	if env.BinderRunning() {
		return
	}
	if err := env.StartBinder(context.Background()); err != nil {
		t.Fatalf("restarting the binder: %v", err)
	}
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// binderMetric reads one unlabelled sample of the binder's metrics.
func binderMetric(t *testing.T, name string) float64 {
	t.Helper()
	page, err := env.BinderMetrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return stack.SumSamples(page, name)
}

// A new EIPPool gets its status (which the webhook reserves from) as soon
// as it is created, not at the binder's next periodic sweep.
func TestNewPoolIsCountedAtOnce(t *testing.T) {
	ctx := t.Context()
	usual := stack.BinderOptions{RateScale: throttleScale, SweepInterval: sweepInterval, OrphanGrace: orphanGrace}
	slow := usual
	slow.SweepInterval = time.Hour
	if err := env.RestartBinder(ctx, slow); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.RestartBinder(context.Background(), usual); err != nil {
			t.Errorf("restoring the binder: %v", err)
		}
	})
	ns := newEIPNamespace(t, map[string]string{"tenant": "fresh-pool"})
	// newPool waits (30 s at most) for the status to count the addresses.
	newPool(t, ns, "fresh", map[string]string{"tenant": "fresh-pool"}, 2)
}
