package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// What a user sees when the EIPPool webhook refuses a pool.
const poolDenied = `admission webhook "eippools.kube-eip.io" denied the request: spec.tagSelector: `

func getPool(t *testing.T, name string) *v1alpha1.EIPPool {
	t.Helper()
	p := &v1alpha1.EIPPool{}
	if err := crClient.Get(t.Context(), client.ObjectKey{Name: name}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// An address belongs to one pool only. A second pool with the selector of
// an allow-listed pool (one that would give its addresses back to AWS) is
// refused, naming the first and its addresses. Where an overlap arises in
// EC2 afterwards (an address tagged for two pools), no pool serves that
// address, and both pools say so.
func TestPoolsNeverShareAnAddress(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "overlap"})
	alpha := getPool(t, newPool(t, ns, "alpha", map[string]string{"tenant": "overlap"}, 2))
	scratch := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "scratch-"},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: alpha.Spec.TagSelector, ReleasePolicy: v1alpha1.ReleasePolicyRelease,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "overlap"}}},
	}
	err := crClient.Create(t.Context(), scratch)
	var ips []string
	for _, a := range alpha.Status.Addresses {
		ips = append(ips, a.PublicIP)
	}
	for k, v := range alpha.Spec.TagSelector {
		want := poolDenied + fmt.Sprintf(`its tagSelector {%s: %q} and that of EIPPool %q, {%s: %q}, select the same addresses (%s); an address belongs to one pool only: give each pool a tag value of its own`,
			k, v, alpha.Name, k, v, strings.Join(ips, ", "))
		wantForbidden(t, "a pool with another's selector", err, want)
	}

	// A pool by another tag key is fine, until an admin tags one of
	// alpha's addresses with it too.
	other := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "other-"},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: map[string]string{"e2e.kube-eip.io/other": strings.ToLower(rand.Text()[:6])},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "overlap"}}},
	}
	if err := crClient.Create(t.Context(), other); err != nil {
		t.Fatalf("a pool by another key: %v", err)
	}
	t.Cleanup(func() { _ = crClient.Delete(context.Background(), other) })
	shared := alpha.Status.Addresses[0]
	var tags []ec2types.Tag
	for k, v := range other.Spec.TagSelector {
		tags = append(tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if _, err := ec2api.CreateTags(t.Context(), &ec2.CreateTagsInput{Resources: []string{shared.AllocationID}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{alpha.Name, other.Name} {
		eventually(t, 30*time.Second, name+" reports the overlap", func(ctx context.Context) (bool, string, error) {
			p := &v1alpha1.EIPPool{}
			if err := crClient.Get(ctx, client.ObjectKey{Name: name}, p); err != nil {
				return false, "", err
			}
			c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PoolConditionOverlap)
			listed := slices.ContainsFunc(p.Status.Addresses, func(a v1alpha1.PoolAddress) bool { return a.AllocationID == shared.AllocationID })
			ok := c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, shared.PublicIP) && !listed
			return ok, fmt.Sprintf("condition %+v, listed %v", c, listed), nil
		})
	}
	eventually(t, 10*time.Second, "a PoolOverlap event", func(ctx context.Context) (bool, string, error) {
		evs, err := kube.EventsV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + alpha.Name + ",reason=PoolOverlap"})
		if err != nil {
			return false, "", err
		}
		return len(evs.Items) > 0 && strings.Contains(evs.Items[0].Note, shared.PublicIP), fmt.Sprintf("%d events", len(evs.Items)), nil
	})
	// alpha's other address is handed out; the shared one never.
	first, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("first", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: alpha.Name}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Annotations[api.AnnotationReservedIP] == shared.PublicIP {
		t.Fatalf("reserved %s, which two pools select", shared.PublicIP)
	}
	_, err = kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("second", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: alpha.Name}), metav1.CreateOptions{})
	wantForbidden(t, "a second pod of alpha", err, deniedPrefix+fmt.Sprintf("kube-eip.io/pool: EIPPool %q has no free address", alpha.Name))
}

// kube-eip's own tags are no pool's to select: the addresses it allocates
// for pods are never in a pool, so no live address is handed out twice.
func TestAPoolCannotSelectKubeEIPsOwnAddresses(t *testing.T) {
	for _, selector := range []map[string]string{{api.TagCluster: ""}, {api.TagClaim: ""}, {"team": "a", api.TagOwner: ""}} {
		self := &v1alpha1.EIPPool{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "self-"},
			Spec:       v1alpha1.EIPPoolSpec{TagSelector: selector, NamespaceSelector: &metav1.LabelSelector{}},
		}
		err := crClient.Create(t.Context(), self)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "tagSelector may not name kube-eip.io/ keys: kube-eip writes them on the addresses it allocates for pods, which are never a pool's") {
			t.Errorf("a pool selecting %v: %v, want it refused", selector, err)
		}
	}
}

// A webhook outage stops only the creation of pods that ask for an
// address: the binder still releases and binds, kube-eip's bookkeeping and
// a user's update of a managed pod do not wait on the webhook, and pods
// elsewhere are created as ever.
func TestAWebhookOutageDoesNotStopTheBinder(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "outage"})
	gone := boundAutoPod(t, ns, "gone")
	stays := boundAutoPod(t, ns, "stays")

	env.StopWebhook()
	t.Cleanup(func() {
		if err := env.StartWebhook(context.Background()); err != nil {
			t.Errorf("starting the webhook again: %v", err)
		}
	})
	if err := kube.CoreV1().Pods(ns).Delete(t.Context(), gone.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the deleted pod gone and its address released", func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().Pods(ns).Get(ctx, gone.Name, metav1.GetOptions{})
		left, derr := describeAllocations(ctx, []string{gone.Annotations[api.AnnotationAllocationID]})
		return apierrors.IsNotFound(err) && derr == nil && len(left) == 0, fmt.Sprintf("pod: %v, addresses left %d", err, len(left)), derr
	})
	if _, err := kube.CoreV1().Pods(ns).Patch(t.Context(), stays.Name, "application/merge-patch+json", []byte(`{"metadata":{"labels":{"tier":"edge"}}}`), metav1.PatchOptions{}); err != nil {
		t.Errorf("labelling a managed pod during the outage: %v", err)
	}
	plain := newNamespace(t)
	if _, err := kube.CoreV1().Pods(plain).Create(t.Context(), eipPod("plain", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{}); err != nil {
		t.Errorf("creating a pod in a namespace that did not opt in: %v", err)
	}
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("asks", map[string]string{"example.com/note": "x"}), metav1.CreateOptions{}); err != nil {
		t.Errorf("creating a pod that asks nothing, in the opted-in namespace: %v", err)
	}
	// A workload is not an address: its check fails open, and its pods
	// still meet pod admission.
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "applied-in-the-outage"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](0),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "outage"}},
		Template: eipPodTemplate("outage", map[string]string{api.AnnotationMode: "auto"}),
	}}
	if _, err := kube.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Errorf("creating a Deployment that asks for addresses: %v, want the workload check to fail open", err)
	}
	// What the outage does stop: a pod that asks for an address, which
	// must not run without the wait.
	_, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("waits", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), `failed calling webhook "pods.kube-eip.io"`) {
		t.Errorf("a pod asking for an address during the outage: %v, want it refused", err)
	}
}

// The longest legal namespace and pod names bind: every tag kube-eip
// writes fits EC2, and a binder that restarts finds the address again.
func TestTheLongestNamesBind(t *testing.T) {
	ns := "longest-" + strings.ToLower(rand.Text()[:8]) + "-" + strings.Repeat("n", 63-8-8-1)
	if _, err := kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{api.LabelInjection: api.InjectionEnabled}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	if err := env.ControlPlane.WaitForServiceAccount(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	boundAutoPod(t, ns, "short")
	name := "relay-" + strings.Repeat("p", 253-6)
	long := eipPod(name, map[string]string{api.AnnotationMode: "auto"})
	long.Labels = map[string]string{"app": "longest"}
	long.Spec.NodeSelector = env.Nodes.NodeSelector()
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), long, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound := waitBound(t, ns, "app=longest", 1)[0]
	a := addressOf(t, bound.Annotations[api.AnnotationAllocationID])
	for _, tag := range a.Tags {
		if len(aws.ToString(tag.Value)) > api.MaxTagValue {
			t.Errorf("tag %s is %d characters long", aws.ToString(tag.Key), len(aws.ToString(tag.Value)))
		}
	}
	if !hasTag(a.Tags, api.TagOwner, api.OwnerTag(ns, name)) {
		t.Errorf("owner tag of %v, want %s", a.Tags, api.OwnerTag(ns, name))
	}

	if err := env.RestartBinder(t.Context(), stack.BinderOptions{RateScale: throttleScale, SweepInterval: sweepInterval, OrphanGrace: orphanGrace}); err != nil {
		t.Fatal(err)
	}
	afterSweeps(t, 2)
	again, err := kube.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Annotations[api.AnnotationAllocationID] != bound.Annotations[api.AnnotationAllocationID] {
		t.Errorf("after a restart the pod has %s, want %s", again.Annotations[api.AnnotationAllocationID], bound.Annotations[api.AnnotationAllocationID])
	}
	if ids, err := addressesOwnedIn(t.Context(), ns); err != nil || len(ids) != 2 {
		t.Errorf("addresses of the namespace after a restart: %v (%v), want the two pods'", ids, err)
	}
	assertAssociatedWithPod(t, again)
}

// The aws-pod-eip-controller's fixed-tag resolves to the one pool open to
// the namespace that selects the tag key, every time; where there is none
// open, or none at all, the message says which pool to open or create.
func TestLegacyPoolsAreDeterministic(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "legacy"})
	key := "e2e-legacy-" + strings.ToLower(rand.Text()[:6])
	legacy := func(name string) *corev1.Pod {
		return eipPod(name, map[string]string{api.LegacyAnnotationType: api.LegacyTypeFixedTag, api.LegacyAnnotationTag: key})
	}
	dryRun := func() error {
		_, err := kube.CoreV1().Pods(ns).Create(t.Context(), legacy("probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	wantForbidden(t, "no pool selects the key", dryRun(), deniedPrefix+fmt.Sprintf(
		`%s: no EIPPool selects addresses by the tag key %q; create one: {apiVersion: kube-eip.io/v1alpha1, kind: EIPPool, metadata: {name: %s}, spec: {tagSelector: {%q: ""}, namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}}}`,
		api.LegacyAnnotationTag, key, key, key, ns))

	closed := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "legacy-"},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: map[string]string{key: ""},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "someone-else"}}},
	}
	if err := crClient.Create(t.Context(), closed); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crClient.Delete(context.Background(), closed) })
	allocateTagged(t, map[string]string{key: ""}, 1)
	eventually(t, 30*time.Second, "the webhook sees the pool", func(context.Context) (bool, string, error) {
		err := dryRun()
		return err != nil && strings.Contains(err.Error(), "is not open to namespace"), fmt.Sprint(err), nil
	})
	for range 5 {
		wantForbidden(t, "a pool not open to the namespace", dryRun(), deniedPrefix+fmt.Sprintf(
			`%s: EIPPool %q selects addresses by the tag key %q but is not open to namespace %q`, api.LegacyAnnotationTag, closed.Name, key, ns))
	}
	// A second pool of the same key is refused: the legacy annotations
	// could not choose between the two.
	twin := closed.DeepCopy()
	twin.Name, twin.ResourceVersion, twin.Spec.NamespaceSelector = "", "", &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "legacy"}}
	wantForbidden(t, "a second pool of the key", crClient.Create(t.Context(), twin), poolDenied)

	// Opened to the namespace, the pool serves it.
	opened := closed.DeepCopy()
	opened.Spec.NamespaceSelector.MatchLabels["tenant"] = "legacy"
	if err := crClient.Patch(t.Context(), opened, client.MergeFrom(closed)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "admitted from the opened pool", func(context.Context) (bool, string, error) {
		err := dryRun()
		return err == nil, fmt.Sprint(err), nil
	})
}
