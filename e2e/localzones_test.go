package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// The emulator's Local Zone (ec2sim.Options.LocalZone) and its border group.
const (
	localZone      = "us-east-1-bos-1a"
	localZoneGroup = "us-east-1-bos-1"
	regionGroup    = "us-east-1"
)

// localZoneTaint keeps the suite's other pods off Local Zone nodes, as
// EKS users keep workloads off theirs.
var localZoneTaint = corev1.Taint{Key: "e2e.kube-eip.io/local-zone", Value: "true", Effect: corev1.TaintEffectNoSchedule}

// allocateIn allocates n addresses with tags in a network border group.
func allocateIn(t *testing.T, tags map[string]string, group string, n int) []string {
	t.Helper()
	var ec2Tags []ec2types.Tag
	for k, v := range tags {
		ec2Tags = append(ec2Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	var ids []string
	for range n {
		out, err := ec2api.AllocateAddress(t.Context(), &ec2.AllocateAddressInput{
			NetworkBorderGroup: aws.String(group),
			TagSpecifications:  []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeElasticIp, Tags: ec2Tags}},
		})
		if err != nil {
			t.Fatalf("allocating an address in %s: %v", group, err)
		}
		ids = append(ids, aws.ToString(out.AllocationId))
	}
	t.Cleanup(func() { releaseAll(ids) })
	return ids
}

// startLocalZoneNodes starts a tainted node group in the Local Zone.
func startLocalZoneNodes(t *testing.T, name string, n int, labels map[string]string) *fakenode.Kubelet {
	t.Helper()
	g, err := env.StartNodeGroup(t.Context(), stack.NodeGroup{Name: name, Nodes: n, Labels: labels,
		Taints: []corev1.Taint{localZoneTaint}, Zones: []string{localZone}})
	if err != nil {
		t.Fatalf("starting Local Zone nodes: %v", err)
	}
	for _, node := range g.Nodes() {
		if node.Zone != localZone {
			t.Fatalf("node %s is in %s, not in the Local Zone", node.Name, node.Zone)
		}
	}
	return g
}

// A node pool spanning a region and its Local Zone gives each node an
// address of its own zone's border group, never one EC2 would refuse:
// a Local Zone node finds the pool exhausted while a region address is
// still free, and is told why, until growth allocates in its group.
func TestANodePoolGivesLocalZoneNodesAddressesOfTheirBorderGroup(t *testing.T) {
	ctx := t.Context()
	id := strings.ToLower(rand.Text()[:6])
	tags := map[string]string{"e2e.kube-eip.io/pool": "edge-lz-" + id}
	regional := allocateIn(t, tags, regionGroup, 2)
	local := allocateIn(t, tags, localZoneGroup, 1)
	groupLabel := map[string]string{"e2e.kube-eip.io/edge-lz": id}
	pool := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "edge-lz-" + id},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: tags, NodeSelector: &metav1.LabelSelector{MatchLabels: groupLabel},
			ReleasePolicy: v1alpha1.ReleasePolicyRetain},
	}
	if err := crClient.Create(ctx, pool); err != nil {
		t.Fatalf("creating the node pool: %v", err)
	}
	inRegion, err := env.StartNodeGroup(ctx, stack.NodeGroup{Name: "edge-r-" + id, Nodes: 1, Labels: groupLabel})
	if err != nil {
		t.Fatalf("starting the region's node: %v", err)
	}
	inLocal := startLocalZoneNodes(t, "edge-l-"+id, 1, groupLabel)
	var more *fakenode.Kubelet
	all := func() []fakenode.NodeInfo {
		nodes := append(inRegion.Nodes(), inLocal.Nodes()...)
		if more != nil {
			nodes = append(nodes, more.Nodes()...)
		}
		return nodes
	}
	var grown []string
	t.Cleanup(func() {
		cleanUpNodePool(t, pool, slices.Concat(regional, local, grown), inRegion, inLocal, more)
		releaseAll(grown)
	})

	regionNode, localNode := inRegion.Nodes()[0], inLocal.Nodes()[0]
	eventually(t, time.Minute, "both nodes bound in their own border groups", func(context.Context) (bool, string, error) {
		got := onPrimaryIPs(all())
		return got[regionNode.Name].NetworkBorderGroup == regionGroup && got[localNode.Name].AllocationID == local[0], fmt.Sprintf("%+v", got), nil
	})

	// A second Local Zone node: a region address is free, but EC2 could
	// not associate it there, so the node is told and waits.
	more = startLocalZoneNodes(t, "edge-l2-"+id, 1, groupLabel)
	second := more.Nodes()[0]
	eventually(t, time.Minute, "the second Local Zone node told there is no address of its group", func(ctx context.Context) (bool, string, error) {
		evs, err := nodeEvents(ctx, second.Name)
		if err != nil {
			return false, "", err
		}
		c := meta.FindStatusCondition(getPool(t, pool.Name).Status.Conditions, v1alpha1.PoolConditionExhausted)
		told := slices.ContainsFunc(evs, func(e string) bool {
			return strings.HasPrefix(e, "Warning EIPPoolExhausted: ") && strings.Contains(e, "network border group "+localZoneGroup)
		})
		flagged := c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, second.Name)
		return told && flagged, fmt.Sprintf("events %q, condition %+v", evs, c), nil
	})
	if got := onPrimaryIPs(more.Nodes()); len(got) != 0 {
		t.Fatalf("the second Local Zone node holds %v, with no address of its group in the pool", got)
	}
	state := env.EC2.Snapshot()
	free := 0
	for _, id := range regional {
		if a, ok := addressByID(state, id); ok && a.AssociationID == "" && a.Tags[api.TagHolder] == "" {
			free++
		}
	}
	if free != 1 {
		t.Fatalf("%d of the pool's region addresses free, want the one no region node took", free)
	}

	// Growth allocates in the node's border group.
	base := getPool(t, pool.Name)
	patched := base.DeepCopy()
	patched.Spec.Growth = &v1alpha1.PoolGrowth{MaxAddresses: 4}
	if err := crClient.Patch(ctx, patched, client.MergeFrom(base)); err != nil {
		t.Fatalf("enabling growth: %v", err)
	}
	eventually(t, time.Minute, "the second Local Zone node bound to a grown address of its group", func(context.Context) (bool, string, error) {
		a, ok := onPrimaryIPs(more.Nodes())[second.Name]
		if ok {
			grown = []string{a.AllocationID}
		}
		return ok && a.NetworkBorderGroup == localZoneGroup && !slices.Contains(local, a.AllocationID), fmt.Sprintf("%+v", a), nil
	})
}

// lzPod is a pod of the Local Zone node group, pinned to the zone when
// pinned is set; others reach its node only by naming it.
func lzPod(name string, g *fakenode.Kubelet, pinned bool, annotations map[string]string) *corev1.Pod {
	selector := maps.Clone(g.NodeSelector())
	if pinned {
		selector[corev1.LabelTopologyZone] = localZone
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeSelector: selector,
			Tolerations: []corev1.Toleration{{Key: localZoneTaint.Key, Operator: corev1.TolerationOpEqual,
				Value: localZoneTaint.Value, Effect: localZoneTaint.Effect}},
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if !pinned {
		// Past the scheduler: admission cannot tell where it runs.
		pod.Spec.NodeSelector, pod.Spec.NodeName = nil, g.Nodes()[0].Name
	}
	return pod
}

// Pods in a Local Zone get addresses of its border group: admission
// reserves one for a pod pinned to the zone (and refuses when the pool has
// none left there, whatever it has elsewhere), the binder allocates one
// for an auto pod, and a pod that reaches the zone past admission's sight
// with a region address is told, and nothing is associated.
func TestPodsInALocalZoneGetAddressesOfItsBorderGroup(t *testing.T) {
	ctx := t.Context()
	nsLabels := map[string]string{"tenant": "local-zone"}
	ns := newEIPNamespace(t, nsLabels)
	id := strings.ToLower(rand.Text()[:6])
	tags := map[string]string{"e2e.kube-eip.io/pool": "lz-pods-" + id}
	allocateIn(t, tags, regionGroup, 1)
	local := allocateIn(t, tags, localZoneGroup, 1)
	pool := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "lz-pods-" + id},
		Spec:       v1alpha1.EIPPoolSpec{TagSelector: tags, NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels}},
	}
	if err := crClient.Create(ctx, pool); err != nil {
		t.Fatalf("creating the pool: %v", err)
	}
	t.Cleanup(func() { _ = crClient.Delete(context.Background(), pool) })
	waitPoolStatus(t, pool.Name, "shows both groups", func(st v1alpha1.EIPPoolStatus) bool {
		groups := map[string]bool{}
		for _, a := range st.Addresses {
			groups[a.NetworkBorderGroup] = true
		}
		return st.Total == 2 && groups[regionGroup] && groups[localZoneGroup]
	})
	// Admission knows where zones are from what the binder publishes.
	eventually(t, 30*time.Second, "the binder publishes the zones' border groups", func(ctx context.Context) (bool, string, error) {
		cm, err := kube.CoreV1().ConfigMaps(stack.Namespace).Get(ctx, api.AccountConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		acct, _ := api.ParseAccount(cm.Data)
		return acct.Zones[localZone] == localZoneGroup && acct.Region == regionGroup, fmt.Sprint(cm.Data), nil
	})
	g := startLocalZoneNodes(t, "lz-pods-"+id, 1, nil)
	t.Cleanup(func() {
		names := g.NodeNames()
		g.Stop()
		for _, n := range names {
			_ = kube.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{})
		}
	})
	poolPod := map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: pool.Name}

	// Pinned to the zone: the pool's Local Zone address, on the pod.
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, lzPod("pinned", g, true, poolPod), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the pinned pod: %v", err)
	}
	eventually(t, 90*time.Second, "the pinned pod bound to the Local Zone address", func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "pinned", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		evs, err := podEventNotes(ctx, ns, "pinned")
		return p.Labels[api.LabelPublicIP] != "" && p.Annotations[api.AnnotationAllocationID] == local[0] && p.Status.Phase == corev1.PodRunning,
			fmt.Sprintf("labels %v, annotations %v, node %q, phase %s, events %q", p.Labels, p.Annotations, p.Spec.NodeName, p.Status.Phase, evs), err
	})
	pinned, err := kube.CoreV1().Pods(ns).Get(ctx, "pinned", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertAssociatedWithPod(t, pinned)

	// Another pinned pod: the region address is free, but is refused.
	_, err = kube.CoreV1().Pods(ns).Create(ctx, lzPod("pinned-2", g, true, poolPod), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "no free address of network border group "+localZoneGroup) {
		t.Fatalf("a second pinned pod: got %v, want a refusal naming the border group", err)
	}

	// An auto pod in the zone: the binder allocates in its group.
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, lzPod("auto", g, true, map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the auto pod: %v", err)
	}
	eventually(t, 90*time.Second, "the auto pod bound to an address of the Local Zone's group", func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "auto", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		a, ok := addressByID(env.EC2.Snapshot(), p.Annotations[api.AnnotationAllocationID])
		return ok && a.AssociationID != "" && a.NetworkBorderGroup == localZoneGroup, fmt.Sprintf("%+v", a), nil
	})

	// Placed on the Local Zone node past the scheduler, a pool pod gets the
	// region address at admission; the binder says why it cannot bind it.
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, lzPod("unpinned", g, false, poolPod), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the unpinned pod: %v", err)
	}
	eventually(t, 90*time.Second, "the unpinned pod told its address cannot reach its zone", func(ctx context.Context) (bool, string, error) {
		evs, err := kube.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=unpinned,reason=" + api.EventWrongBorderGroup})
		if err != nil {
			return false, "", err
		}
		for _, e := range evs.Items {
			if strings.Contains(e.Note, "network border group "+localZoneGroup) && strings.Contains(e.Note, "belongs to network border group "+regionGroup) {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d events", len(evs.Items)), nil
	})
	p, err := kube.CoreV1().Pods(ns).Get(ctx, "unpinned", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := addressByID(env.EC2.Snapshot(), reservedFor(t, p)); !ok || a.AssociationID != "" || a.NetworkBorderGroup != regionGroup {
		t.Errorf("the unpinned pod's reserved address %+v: want the region's, not associated", a)
	}
}

// podEventNotes lists the reasons and notes of a pod's events.
func podEventNotes(ctx context.Context, ns, pod string) ([]string, error) {
	list, err := kube.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + pod})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason+": "+e.Note)
	}
	return out, nil
}

// reservedFor is the allocation id of a pod's reservation.
func reservedFor(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	name := p.Annotations[api.AnnotationReservation]
	if name == "" {
		t.Fatalf("pod %s has no reservation: %v", p.Name, p.Annotations)
	}
	return name
}
