package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// What a user sees at kubectl apply when the webhook refuses a pod: the
// client error is the text kubectl prints after "Error from server
// (Forbidden): error when creating ...: ".
const deniedPrefix = `admission webhook "pods.kube-eip.io" denied the request: `

func TestBadAnnotationsAreRefusedWithTheFix(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "refusals"})
	other := newPool(t, ns, "other-tenant", map[string]string{"tenant": "someone-else"}, 1)
	full := newPool(t, ns, "full", map[string]string{"tenant": "refusals"}, 1)
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("takes-the-last", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: full}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("taking the last address of the full pool: %v", err)
	}

	tests := []struct {
		name        string
		annotations map[string]string
		hostNetwork bool
		want        string
	}{
		{name: "unknown mode", annotations: map[string]string{api.AnnotationMode: "autoo"},
			want: `kube-eip.io/mode: unknown mode "autoo"; did you mean "auto"? (one of auto, pool, sticky)`},
		{name: "unknown key", annotations: map[string]string{api.AnnotationMode: "auto", "kube-eip.io/public-ipv4pool": "amazon"},
			want: `kube-eip.io/public-ipv4pool: unknown annotation; did you mean kube-eip.io/public-ipv4-pool?`},
		{name: "pool mode without a pool", annotations: map[string]string{api.AnnotationMode: "pool"},
			want: `kube-eip.io/pool: mode pool needs the EIPPool to draw from; add kube-eip.io/pool: <name> (kubectl get eippools lists them)`},
		{name: "pool that does not exist", annotations: map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "no-such-pool"},
			want: fmt.Sprintf(`kube-eip.io/pool: EIPPool "no-such-pool" does not exist; pools open to namespace %q: %s`, ns, full)},
		{name: "pool not open to the namespace", annotations: map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: other},
			want: fmt.Sprintf(`kube-eip.io/pool: EIPPool %q is not open to namespace %q (its namespaceSelector does not select it)`, other, ns)},
		{name: "malformed BYOIP pool", annotations: map[string]string{api.AnnotationMode: "auto", api.AnnotationPublicIPv4Pool: "ipv4pool-ec2-xyz"},
			want: `kube-eip.io/public-ipv4-pool: "ipv4pool-ec2-xyz" is not a public IPv4 pool; use amazon or a BYOIP pool id like ipv4pool-ec2-0123456789abcdef0`},
		{name: "hostNetwork", annotations: map[string]string{api.AnnotationMode: "auto"}, hostNetwork: true,
			want: `kube-eip.io/mode: pods with hostNetwork: true share their node's address and cannot get an Elastic IP of their own`},
		{name: "old and new annotations conflict", annotations: map[string]string{api.AnnotationMode: "auto", api.LegacyAnnotationType: "fixed-tag", api.LegacyAnnotationTag: "pec-ip-pool"},
			want: `aws-samples.github.com/aws-pod-eip-controller-type: conflicts with kube-eip.io/mode=auto`},
		{name: "pool without a free address", annotations: map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: full},
			want: fmt.Sprintf(`kube-eip.io/pool: EIPPool %q has no free address (1 in the pool, all reserved, bound or in use elsewhere)`, full)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := eipPod("refused", tt.annotations)
			pod.Spec.HostNetwork = tt.hostNetwork
			_, err := kube.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
			if !apierrors.IsForbidden(err) {
				t.Fatalf("create: %v, want Forbidden", err)
			}
			if !strings.Contains(err.Error(), deniedPrefix+tt.want) {
				t.Errorf("message:\n  %s\nwant it to contain:\n  %s%s", err, deniedPrefix, tt.want)
			}
		})
	}

	t.Run("changing the annotations of an existing pod", func(t *testing.T) {
		pod, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("changes", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		_, err = kube.CoreV1().Pods(ns).Patch(t.Context(), pod.Name, "application/merge-patch+json",
			[]byte(`{"metadata":{"annotations":{"kube-eip.io/mode":"sticky"}}}`), metav1.PatchOptions{})
		// Judged by the admission policy in the API server: no update waits
		// on the webhook.
		want := policyDenied + "kube-eip.io/mode: kube-eip annotations cannot be added, changed or removed on an existing pod"
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("patch: %v, want %q", err, want)
		}
		// Other updates go through.
		if _, err := kube.CoreV1().Pods(ns).Patch(t.Context(), pod.Name, "application/merge-patch+json",
			[]byte(`{"metadata":{"labels":{"tier":"edge"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatalf("an unrelated update was refused: %v", err)
		}
	})
}

func TestNamespaceWithoutTheLabelIsUntouched(t *testing.T) {
	ns := newNamespace(t)
	pod, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("plain", map[string]string{api.AnnotationMode: "autoo"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create in an unlabeled namespace: %v", err)
	}
	if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.ReadinessGates) != 0 || pod.Labels[api.LabelManaged] != "" {
		t.Fatalf("pod in an unlabeled namespace was mutated: %+v", pod.Spec)
	}
}

func TestValidPodsAreMutatedAndReserved(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "mutation"})
	pool := newPool(t, ns, "mutation", map[string]string{"tenant": "mutation"}, 2)

	t.Run("auto", func(t *testing.T) {
		pod, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("auto", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		assertInjected(t, pod)
		if pod.Annotations[api.AnnotationReservation] != "" {
			t.Errorf("auto pod got a reservation %q; the binder allocates for it", pod.Annotations[api.AnnotationReservation])
		}
	})

	t.Run("pool", func(t *testing.T) {
		pod := eipPod("", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: pool})
		pod.GenerateName = "pool-"
		created, err := kube.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		assertInjected(t, created)
		resName := created.Annotations[api.AnnotationReservation]
		res := &v1alpha1.EIPReservation{}
		if err := crClient.Get(t.Context(), client.ObjectKey{Name: resName}, res); err != nil {
			t.Fatalf("reservation %q of the pod: %v", resName, err)
		}
		if res.Spec.Claim != created.Annotations[api.AnnotationClaim] || res.Spec.PublicIP != created.Annotations[api.AnnotationReservedIP] {
			t.Fatalf("reservation %+v does not match the pod's annotations %v", res.Spec, created.Annotations)
		}
		// The binder ties the reservation to the pod once it exists,
		// although the pod had no name at admission, and before the pod
		// has a node.
		eventually(t, 30*time.Second, "reservation claimed by the pod", func(ctx context.Context) (bool, string, error) {
			if err := crClient.Get(ctx, client.ObjectKey{Name: resName}, res); err != nil {
				return false, "", err
			}
			return res.Status.PodUID == string(created.UID) && res.Status.PodName == created.Name && res.Status.Phase == v1alpha1.ReservationClaimed,
				fmt.Sprintf("%+v", res.Status), nil
		})
	})
}

func TestDryRunReservesNothing(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "dryrun"})
	pool := newPool(t, ns, "dryrun", map[string]string{"tenant": "dryrun"}, 1)
	pod, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("dry", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: pool}),
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("dry-run create: %v", err)
	}
	assertInjected(t, pod)
	var list v1alpha1.EIPReservationList
	if err := crClient.List(t.Context(), &list, client.MatchingLabels{"kube-eip.io/pool": pool}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Fatalf("a dry run reserved %d addresses", len(list.Items))
	}
	// The address is still there for a real pod.
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("real", pod.Annotations), metav1.CreateOptions{}); err != nil {
		t.Fatalf("real create after a dry run: %v", err)
	}
}

func TestConcurrentPodsNeverShareAnAddress(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "burst"})
	pool := newPool(t, ns, "burst", map[string]string{"tenant": "burst"}, 20)

	const pods = 50
	var wg sync.WaitGroup
	errs := make([]error, pods)
	created := make([]*corev1.Pod, pods)
	for i := range pods {
		wg.Go(func() {
			created[i], errs[i] = kube.CoreV1().Pods(ns).Create(context.Background(),
				eipPod(fmt.Sprintf("burst-%02d", i), map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: pool}), metav1.CreateOptions{})
		})
	}
	wg.Wait()

	addresses := map[string]string{}
	refused := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ip := created[i].Annotations[api.AnnotationReservedIP]
			if prev, dup := addresses[ip]; dup {
				t.Errorf("%s reserved for both %s and %s", ip, prev, created[i].Name)
			}
			addresses[ip] = created[i].Name
		case apierrors.IsForbidden(err) && strings.Contains(err.Error(), deniedPrefix+fmt.Sprintf("kube-eip.io/pool: EIPPool %q has no free address", pool)):
			refused++
		default:
			t.Errorf("pod %d: unexpected error %v", i, err)
		}
	}
	if len(addresses) != 20 || refused != 30 {
		t.Fatalf("%d pods got an address and %d were refused; want 20 and 30", len(addresses), refused)
	}
	var list v1alpha1.EIPReservationList
	if err := crClient.List(t.Context(), &list, client.MatchingLabels{"kube-eip.io/pool": pool}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 20 {
		t.Fatalf("%d reservations in the pool, want 20", len(list.Items))
	}
}

func TestReservationOfAPodThatNeverAppearsIsReclaimed(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "orphans"})
	pool := newPool(t, ns, "orphans", map[string]string{"tenant": "orphans"}, 1)
	// A quota admitting no pod refuses the create after the webhook has
	// reserved: the quota check runs after mutating admission.
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-pods"}, Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}
	if _, err := kube.CoreV1().ResourceQuotas(ns).Create(t.Context(), quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "pod refused by the quota after admission", func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().Pods(ns).Create(ctx, eipPod("over-quota", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: pool}), metav1.CreateOptions{})
		if err == nil {
			return false, "", fmt.Errorf("pod created despite the quota")
		}
		return strings.Contains(err.Error(), "exceeded quota"), err.Error(), nil
	})
	var list v1alpha1.EIPReservationList
	if err := crClient.List(t.Context(), &list, client.MatchingLabels{"kube-eip.io/pool": pool}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d reservations after the refused create, want the orphan", len(list.Items))
	}
	eventually(t, claimTTL+30*time.Second, "orphaned reservation reclaimed", func(ctx context.Context) (bool, string, error) {
		if err := crClient.List(ctx, &list, client.MatchingLabels{"kube-eip.io/pool": pool}); err != nil {
			return false, "", err
		}
		return len(list.Items) == 0, fmt.Sprintf("%d reservations", len(list.Items)), nil
	})
}

func assertInjected(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != api.WaitContainerName {
		t.Fatalf("no wait init container first: %+v", pod.Spec.InitContainers)
	}
	wait := pod.Spec.InitContainers[0]
	if !strings.HasPrefix(wait.Image, "ghcr.io/kube-eip/kube-eip:") || len(wait.Args) == 0 || wait.Args[0] != "wait" {
		t.Errorf("wait container runs %s %v", wait.Image, wait.Args)
	}
	gated := false
	for _, g := range pod.Spec.ReadinessGates {
		gated = gated || g.ConditionType == api.ConditionEIPReady
	}
	volume := false
	for _, v := range pod.Spec.Volumes {
		volume = volume || v.Name == api.PodInfoVolumeName && v.DownwardAPI != nil
	}
	if !gated || !volume || pod.Labels[api.LabelManaged] != "true" || pod.Annotations[api.AnnotationClaim] == "" {
		t.Errorf("gate %t, volume %t, labels %v, annotations %v", gated, volume, pod.Labels, pod.Annotations)
	}
	if !slices.Contains(pod.Finalizers, api.FinalizerRelease) {
		t.Errorf("finalizers %v lack %s, which holds the pod until its address is released", pod.Finalizers, api.FinalizerRelease)
	}
}

// eipPod is a pod that asks kube-eip for an address; it runs on no node, so
// that admission alone is what a test sees.
func eipPod(name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"e2e.kube-eip.io/no-such-node": "true"},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers:                    []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
}

// newEIPNamespace creates a namespace opted in to kube-eip.
func newEIPNamespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	ns := newNamespace(t)
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, api.LabelInjection, api.InjectionEnabled)
	for k, v := range labels {
		patch = strings.Replace(patch, "}}}", fmt.Sprintf(",%q:%q}}}", k, v), 1)
	}
	if _, err := kube.CoreV1().Namespaces().Patch(t.Context(), ns, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("labelling namespace: %v", err)
	}
	// The webhook reads namespace labels from its cache.
	eventually(t, 10*time.Second, "webhook sees the namespace labels", func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().Pods(ns).Create(ctx, eipPod("probe", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	return ns
}

// newPool creates an EIPPool open to namespaces with nsLabels, holding n
// addresses, with its status written the way the binder writes it, and
// waits until admission in ns sees it.
func newPool(t *testing.T, ns, name string, nsLabels map[string]string, n int32) string {
	t.Helper()
	tag := map[string]string{"e2e.kube-eip.io/pool": name + "-" + strings.ToLower(rand.Text()[:6])}
	pool := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"},
		Spec: v1alpha1.EIPPoolSpec{
			TagSelector:       tag,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels},
		},
	}
	allocateTagged(t, tag, int(n))
	if err := crClient.Create(t.Context(), pool); err != nil {
		t.Fatalf("creating pool: %v", err)
	}
	t.Cleanup(func() { _ = crClient.Delete(context.Background(), pool) })
	// The binder fills the status from EC2, and the webhook decides from
	// its cache of it: wait until a dry run in ns sees the addresses.
	eventually(t, 30*time.Second, "the binder counts the pool's addresses", func(ctx context.Context) (bool, string, error) {
		if err := crClient.Get(ctx, client.ObjectKeyFromObject(pool), pool); err != nil {
			return false, "", err
		}
		return pool.Status.Total == n, fmt.Sprintf("status.total=%d", pool.Status.Total), nil
	})
	eventually(t, 10*time.Second, "webhook sees the pool", func(ctx context.Context) (bool, string, error) {
		probe := eipPod("probe", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: pool.Name})
		_, err := kube.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && (strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "(0 in the pool")) {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	return pool.Name
}

// allocateTagged allocates n addresses in EC2 carrying tags, as an
// operator tags addresses for a pool, and releases them after the test.
func allocateTagged(t *testing.T, tags map[string]string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		var ec2Tags []ec2types.Tag
		for k, v := range tags {
			ec2Tags = append(ec2Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		out, err := ec2api.AllocateAddress(t.Context(), &ec2.AllocateAddressInput{
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeElasticIp, Tags: ec2Tags}},
		})
		if err != nil {
			t.Fatalf("allocating a tagged address: %v", err)
		}
		ids = append(ids, aws.ToString(out.AllocationId))
	}
	t.Cleanup(func() { releaseAll(ids) })
	return ids
}

// releaseAll disassociates and releases addresses, whatever holds them.
func releaseAll(ids []string) {
	ctx := context.Background()
	out, err := ec2api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{{Name: aws.String("allocation-id"), Values: ids}}})
	if err != nil {
		return
	}
	for _, a := range out.Addresses {
		if a.AssociationId != nil {
			_, _ = ec2api.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: a.AssociationId})
		}
		_, _ = ec2api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: a.AllocationId})
	}
}

// Pods that ask nothing of kube-eip never reach the webhook, even in an
// opted-in namespace (matchConditions): a webhook outage then blocks only
// pods that asked for an address. Counted on the API server's side.
func TestPodsWithoutEIPAnnotationsSkipTheWebhook(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "skip"})
	before := webhookCalls(t)
	for i := range 5 {
		pod := eipPod(fmt.Sprintf("plain-%d", i), map[string]string{"team": "web", "example.com/note": "plain"})
		created, err := kube.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if len(created.Spec.InitContainers) != 0 {
			t.Fatalf("pod without EIP annotations was mutated: %+v", created.Spec.InitContainers)
		}
	}
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("asks", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if calls := webhookCalls(t) - before; calls != 1 {
		t.Fatalf("the API server called the webhook %v times for 5 plain pods and 1 EIP pod, want 1", calls)
	}
}

// webhookCalls is the API server's count of calls to kube-eip's webhook
// for creates (the binder's updates of other tests' pods go on meanwhile).
func webhookCalls(t *testing.T) float64 {
	t.Helper()
	raw, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(t.Context())
	if err != nil {
		t.Fatalf("reading API server metrics: %v", err)
	}
	return stack.SumSamples(string(raw), "apiserver_admission_webhook_admission_duration_seconds_count", `name="pods.kube-eip.io"`, `operation="CREATE"`)
}

// A user labels and annotates a bound pod, and the binder writes its own
// keys on it: nobody sees a warning about kube-eip's keys whose value did
// not change (the webhook is not called for updates, and the admission
// policy only refuses).
func TestUpdatesOfABoundPodPrintNoWarning(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "quiet"})
	pod := boundAutoPod(t, ns, "quiet")
	for _, args := range [][]string{
		{"label", "pod", pod.Name, "tier=edge"},
		{"annotate", "pod", pod.Name, "example.com/note=rolled"},
		{"label", "pod", pod.Name, "tier=core", "--overwrite"},
	} {
		stdout, stderr, err := env.Kubectl(t.Context(), "", append([]string{"--namespace=" + ns}, args...)...)
		if err != nil {
			t.Fatalf("kubectl %v: %v", args, err)
		}
		if stderr != "" {
			t.Errorf("kubectl %v printed %q (and %q), want no warning", args, stderr, stdout)
		}
	}
}
