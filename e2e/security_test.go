package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/webhook"
)

// What a user sees when kube-eip's admission policy refuses a request.
const policyDenied = "ValidatingAdmissionPolicy 'kube-eip-pod-keys' with binding 'kube-eip-pod-keys' denied request: "

// tenant is a user with only the edit role in one namespace, as a
// platform team gives its tenants; its client records the warnings the API
// server sends, as kubectl prints them.
type tenant struct {
	name   string
	client kubernetes.Interface
	ctrl   client.Client
	mu     sync.Mutex
	warned []string
}

func (w *tenant) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warned = append(w.warned, text)
}

func (w *tenant) warnings() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.warned)
}

// newTenant binds the edit role in ns to a new user and returns a client
// that acts as that user.
func newTenant(t *testing.T, ns, name string) *tenant {
	t.Helper()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "edit-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}},
	}
	if _, err := kube.RbacV1().RoleBindings(ns).Create(t.Context(), rb, metav1.CreateOptions{}); err != nil {
		t.Fatalf("binding edit to %s in %s: %v", name, ns, err)
	}
	tn := &tenant{name: name}
	cfg := env.ImpersonatedConfig(name, "system:authenticated")
	cfg.WarningHandlerWithContext = nil
	cfg.WarningHandler = tn
	var err error
	if tn.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if tn.ctrl, err = client.New(cfg, client.Options{Scheme: webhook.Scheme()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, name+" may create pods in "+ns, func(ctx context.Context) (bool, string, error) {
		_, err := tn.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil, fmt.Sprint(err), nil
	})
	return tn
}

// wantForbidden fails unless err is a Forbidden carrying msg.
func wantForbidden(t *testing.T, what string, err error, msg string) {
	t.Helper()
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("%s: %v\nwant Forbidden containing:\n  %s", what, err, msg)
	}
}

// addressesOwnedIn lists the addresses whose owner tag names a pod of ns.
func addressesOwnedIn(ctx context.Context, ns string) ([]string, error) {
	out, err := ec2api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + api.TagCluster), Values: []string{stack.ClusterName}},
	}})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, a := range out.Addresses {
		for _, tag := range a.Tags {
			if aws.ToString(tag.Key) == api.TagOwner && strings.HasPrefix(aws.ToString(tag.Value), ns+"/") {
				ids = append(ids, aws.ToString(a.AllocationId))
			}
		}
	}
	return ids, nil
}

// afterSweeps waits until the binder has swept n more times: what the
// sweep would do wrong, it has had the chance to do.
func afterSweeps(t *testing.T, n int) {
	t.Helper()
	start := binderMetric(t, "kube_eip_binder_sweep_duration_seconds_count")
	eventually(t, time.Duration(n+2)*sweepInterval+30*time.Second, fmt.Sprintf("%d sweeps", n), func(context.Context) (bool, string, error) {
		got := binderMetric(t, "kube_eip_binder_sweep_duration_seconds_count") - start
		return got >= float64(n), fmt.Sprintf("%g sweeps", got), nil
	})
}

// addressOf reads an address from EC2 by allocation id.
func addressOf(t *testing.T, allocID string) ec2types.Address {
	t.Helper()
	out, err := ec2api.DescribeAddresses(t.Context(), &ec2.DescribeAddressesInput{AllocationIds: []string{allocID}})
	if err != nil || len(out.Addresses) != 1 {
		t.Fatalf("describing %s: %v", allocID, err)
	}
	return out.Addresses[0]
}

// boundAutoPod runs an auto pod in ns to Running with its address.
func boundAutoPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	pod := eipPod(name, map[string]string{api.AnnotationMode: "auto"})
	pod.Labels = map[string]string{"app": name}
	pod.Spec.NodeSelector = env.Nodes.NodeSelector()
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	return &waitBound(t, ns, "app="+name, 1)[0]
}

// Attack 1. A pod that never passed admission, in a namespace that never
// opted in, carries kube-eip's label and a claim of its choosing: it is
// refused at the door, by the API server itself, and nothing is allocated.
func TestPodsOutsideOptedInNamespacesCannotCarryKubeEIPsKeys(t *testing.T) {
	ns := newNamespace(t)
	forged := eipPod("no-opt-in", map[string]string{api.AnnotationMode: "auto", api.AnnotationClaim: "abc123"})
	forged.Labels = map[string]string{api.LabelManaged: "true"}
	forged.Spec.NodeSelector = env.Nodes.NodeSelector()

	_, err := kube.CoreV1().Pods(ns).Create(t.Context(), forged, metav1.CreateOptions{})
	wantForbidden(t, "creating the pod as the cluster admin", err, policyDenied+
		"kube-eip.io/claim, kube-eip.io/managed: written only by kube-eip; namespace "+ns+" has not opted in to kube-eip (kube-eip.io/injection=enabled)")
	_, err = newTenant(t, ns, "tenant-no-opt-in").client.CoreV1().Pods(ns).Create(t.Context(), forged, metav1.CreateOptions{})
	wantForbidden(t, "creating the pod as a tenant", err, policyDenied+"kube-eip.io/claim, kube-eip.io/managed: written only by kube-eip")

	// The binder's own bind keys are refused on any new pod, wherever.
	copied := eipPod("copied", map[string]string{api.AnnotationAllocationID: "eipalloc-0123456789abcdef0"})
	copied.Labels = map[string]string{api.LabelPublicIP: "203.0.113.9"}
	_, err = kube.CoreV1().Pods(ns).Create(t.Context(), copied, metav1.CreateOptions{})
	wantForbidden(t, "creating a pod with the bind's keys", err, policyDenied+
		"kube-eip.io/allocation-id, kube-eip.io/public-ip: written by kube-eip on a bound pod only; a new pod cannot carry it")

	// An ordinary pod there is untouched.
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("plain", map[string]string{"example.com/note": "x"}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("an ordinary pod was refused: %v", err)
	}
	afterSweeps(t, 1)
	if ids, err := addressesOwnedIn(t.Context(), ns); err != nil || len(ids) > 0 {
		t.Errorf("addresses allocated for namespace %s: %v (%v)", ns, ids, err)
	}
}

// Attack 2. A StatefulSet's allow-listed address, kept for pdb-0 while the
// StatefulSet is scaled to zero, cannot be taken by another tenant: not
// outside kube-eip, not through the webhook by naming the reservation, and
// pdb-0 gets it back.
func TestAnotherTenantsKeptAddressCannotBeTaken(t *testing.T) {
	victimNS := newEIPNamespace(t, map[string]string{"tenant": "victim"})
	hijack := newPool(t, victimNS, "hijack", map[string]string{"tenant": "victim"}, 1)
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "pdb"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pdb"}},
			Template: eipPodTemplate("pdb", map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: hijack}),
		},
	}
	if _, err := kube.AppsV1().StatefulSets(victimNS).Create(t.Context(), set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first := waitBound(t, victimNS, "app=pdb", 1)[0]
	resName := first.Annotations[api.AnnotationReservation]
	scaleStatefulSet(t, victimNS, "pdb", 0)
	eventually(t, time.Minute, "pdb-0 gone, its reservation kept", func(ctx context.Context) (bool, string, error) {
		pods, err := kube.CoreV1().Pods(victimNS).List(ctx, metav1.ListOptions{LabelSelector: "app=pdb"})
		if err != nil {
			return false, "", err
		}
		res := &v1alpha1.EIPReservation{}
		if err := crClient.Get(ctx, client.ObjectKey{Name: resName}, res); err != nil {
			return false, "", err
		}
		return len(pods.Items) == 0 && res.Status.Phase == v1alpha1.ReservationReserved, fmt.Sprintf("%d pods, reservation %s", len(pods.Items), res.Status.Phase), nil
	})
	kept := &v1alpha1.EIPReservation{}
	if err := crClient.Get(t.Context(), client.ObjectKey{Name: resName}, kept); err != nil {
		t.Fatal(err)
	}

	forged := func(name string, annotations map[string]string) *corev1.Pod {
		p := eipPod(name, mergeMaps(map[string]string{api.AnnotationReservation: resName, api.AnnotationClaim: kept.Spec.Claim}, annotations))
		p.Spec.NodeSelector = env.Nodes.NodeSelector()
		return p
	}
	// From a namespace that never opted in, with kube-eip's label.
	plain := newNamespace(t)
	outsider := forged("pdb-0", map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: hijack})
	outsider.Labels = map[string]string{api.LabelManaged: "true"}
	_, err := kube.CoreV1().Pods(plain).Create(t.Context(), outsider, metav1.CreateOptions{})
	wantForbidden(t, "the pod outside kube-eip", err, policyDenied+"kube-eip.io/claim, kube-eip.io/reservation, kube-eip.io/managed: written only by kube-eip; namespace "+plain+" has not opted in")

	// From an opted-in namespace the pool is not open to, through the webhook.
	otherNS := newEIPNamespace(t, map[string]string{"tenant": "b"})
	_, err = kube.CoreV1().Pods(otherNS).Create(t.Context(), forged("pdb-0", map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: hijack}), metav1.CreateOptions{})
	wantForbidden(t, "the sticky pod of another namespace", err, deniedPrefix+fmt.Sprintf(`kube-eip.io/pool: EIPPool %q is not open to namespace %q`, hijack, otherNS))
	// From a namespace the pool is open to as well (two tenants sharing an
	// allow-list), as a pod of the same name, naming the reservation and
	// its claim: the reservation is not its, and the pool has nothing free.
	sharing := newEIPNamespace(t, map[string]string{"tenant": "victim"})
	_, err = kube.CoreV1().Pods(sharing).Create(t.Context(), forged("pdb-0", map[string]string{api.AnnotationMode: "sticky", api.AnnotationPool: hijack}), metav1.CreateOptions{})
	wantForbidden(t, "the sticky pod of a namespace sharing the pool", err, deniedPrefix+fmt.Sprintf(`kube-eip.io/pool: EIPPool %q has no free address (1 in the pool, all reserved, bound or in use elsewhere)`, hijack))
	for _, n := range []string{plain, otherNS, sharing} {
		if ids, err := addressesOwnedIn(t.Context(), n); err != nil || len(ids) > 0 {
			t.Errorf("addresses allocated for namespace %s: %v (%v)", n, ids, err)
		}
	}
	afterSweeps(t, 2)
	res := &v1alpha1.EIPReservation{}
	if err := crClient.Get(t.Context(), client.ObjectKey{Name: resName}, res); err != nil {
		t.Fatal(err)
	}
	if res.Status.PodUID != "" || res.Status.Phase != v1alpha1.ReservationReserved {
		t.Errorf("the kept reservation is now %+v", res.Status)
	}

	// pdb-0 comes back and gets its address.
	scaleStatefulSet(t, victimNS, "pdb", 1)
	again := waitBound(t, victimNS, "app=pdb", 1)[0]
	if again.Labels[api.LabelPublicIP] != first.Labels[api.LabelPublicIP] {
		t.Errorf("pdb-0 came back with %s, want %s", again.Labels[api.LabelPublicIP], first.Labels[api.LabelPublicIP])
	}
	assertAssociatedWithPod(t, &again)
}

func scaleStatefulSet(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	if _, err := kube.AppsV1().StatefulSets(ns).Patch(t.Context(), name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("scaling %s to %d: %v", name, replicas, err)
	}
}

// Attack 3. A claim is visible to anyone who can read a namespace's pods.
// Copied onto a pod of another namespace it ties nothing: the webhook gives
// the copy a claim of its own, and the pod an address of its own.
func TestACopiedClaimTakesNoAddress(t *testing.T) {
	victimNS := newEIPNamespace(t, map[string]string{"tenant": "claims"})
	victim := boundAutoPod(t, victimNS, "relay")
	claim := victim.Annotations[api.AnnotationClaim]

	thiefNS := newEIPNamespace(t, map[string]string{"tenant": "claims-b"})
	copyCat := eipPod("relay", map[string]string{api.AnnotationMode: "auto", api.AnnotationClaim: claim})
	copyCat.Labels = map[string]string{"app": "relay"}
	copyCat.Spec.NodeSelector = env.Nodes.NodeSelector()
	created, err := newTenant(t, thiefNS, "claims-thief").client.CoreV1().Pods(thiefNS).Create(t.Context(), copyCat, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating the copy: %v", err)
	}
	if created.Annotations[api.AnnotationClaim] == claim {
		t.Fatal("the webhook kept a claim another pod carries")
	}
	thief := waitBound(t, thiefNS, "app=relay", 1)[0]
	if thief.Labels[api.LabelPublicIP] == victim.Labels[api.LabelPublicIP] {
		t.Fatal("the copy got the victim's address")
	}
	afterSweeps(t, 2)
	if a := addressOf(t, victim.Annotations[api.AnnotationAllocationID]); aws.ToString(a.AssociationId) != victim.Annotations[api.AnnotationAssociationID] {
		t.Errorf("the victim's association %s became %s", victim.Annotations[api.AnnotationAssociationID], aws.ToString(a.AssociationId))
	}
}

// Attacks 4 and 5, as a tenant with the edit role: annotating a pod that
// never binds with another namespace's allocation id, or labelling it with
// an address of its choosing, is refused; the other pod keeps its address,
// and the pod keeps waiting.
func TestTenantsCannotWriteKubeEIPsKeys(t *testing.T) {
	victimNS := newEIPNamespace(t, map[string]string{"tenant": "keys-victim"})
	victim := boundAutoPod(t, victimNS, "relay")

	ns := newEIPNamespace(t, map[string]string{"tenant": "keys"})
	tn := newTenant(t, ns, "keys-tenant")
	// Scheduled nowhere, it never binds.
	stuck, err := tn.client.CoreV1().Pods(ns).Create(t.Context(), eipPod("stuck", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ what, patch, msg string }{
		{"annotating another pod's allocation id", fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, api.AnnotationAllocationID, victim.Annotations[api.AnnotationAllocationID]),
			"kube-eip.io/allocation-id: written by kube-eip only; keys-tenant may not add, change or remove it on a pod"},
		{"annotating another pod's association id", fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, api.AnnotationAssociationID, victim.Annotations[api.AnnotationAssociationID]),
			"kube-eip.io/association-id: written by kube-eip only"},
		{"labelling it with an address", fmt.Sprintf(`{"metadata":{"labels":{%q:"6.6.6.6"}}}`, api.LabelPublicIP),
			"kube-eip.io/public-ip: written by kube-eip only; keys-tenant may not add, change or remove it on a pod"},
		{"changing its claim", fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, api.AnnotationClaim, victim.Annotations[api.AnnotationClaim]),
			"kube-eip.io/claim: written by kube-eip only"},
		{"dropping kube-eip's label", fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, api.LabelManaged),
			"kube-eip.io/managed: written by kube-eip only"},
		{"adding a pool to its request", fmt.Sprintf(`{"metadata":{"annotations":{%q:"somewhere"}}}`, api.AnnotationPool),
			"kube-eip.io/pool: kube-eip annotations cannot be added, changed or removed on an existing pod"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			_, err := tn.client.CoreV1().Pods(ns).Patch(t.Context(), stuck.Name, "application/merge-patch+json", []byte(tc.patch), metav1.PatchOptions{})
			wantForbidden(t, tc.what, err, policyDenied+tc.msg)
		})
	}
	// Through the status too, which may change metadata.
	status, err := tn.client.CoreV1().Pods(ns).Get(t.Context(), stuck.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status.Labels[api.LabelPublicIP] = "6.6.6.6"
	_, err = kube.CoreV1().Pods(ns).UpdateStatus(t.Context(), status, metav1.UpdateOptions{})
	wantForbidden(t, "labelling through the status, as the cluster admin", err, policyDenied+"kube-eip.io/public-ip: written by kube-eip only")

	got, err := kube.CoreV1().Pods(ns).Get(t.Context(), stuck.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels[api.LabelPublicIP] != "" || got.Annotations[api.AnnotationAllocationID] != "" || got.Labels[api.LabelManaged] != "true" {
		t.Errorf("the stuck pod's labels %v and annotations %v changed", got.Labels, got.Annotations)
	}
	afterSweeps(t, 3)
	if a := addressOf(t, victim.Annotations[api.AnnotationAllocationID]); aws.ToString(a.AssociationId) != victim.Annotations[api.AnnotationAssociationID] {
		t.Errorf("the victim's association %s became %s", victim.Annotations[api.AnnotationAssociationID], aws.ToString(a.AssociationId))
	}
	if n := binderMetric(t, `kube_eip_binder_sweep_repairs_total{kind="stale_disassociated"}`); n != 0 {
		t.Logf("stale disassociations so far in the suite: %g", n)
	}
}

// Attack 6, as a tenant with the edit role: an init container named as
// kube-eip's wait (busybox running true) and a volume named as its
// downward-API volume are replaced by kube-eip's own, with a warning; the
// wait's image cannot be changed afterwards.
func TestInjectionIsNotSuppressedByNames(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "names"})
	tn := newTenant(t, ns, "names-tenant")
	pod := eipPod("impostor", map[string]string{api.AnnotationMode: "auto"})
	pod.Spec.InitContainers = []corev1.Container{{Name: api.WaitContainerName, Image: "busybox", Command: []string{"true"}}}
	pod.Spec.Volumes = []corev1.Volume{{Name: api.PodInfoVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	created, err := tn.client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	for _, want := range []string{
		"spec.initContainers[0]: kube-eip-wait is the name of kube-eip's wait container, and this one is not kube-eip's; it was replaced by kube-eip's own",
		"spec.volumes[0]: kube-eip-podinfo is the name of kube-eip's downward-API volume, and this one is not kube-eip's; it was replaced by kube-eip's own",
	} {
		if !slices.Contains(tn.warnings(), want) {
			t.Errorf("warnings %q lack %q", tn.warnings(), want)
		}
	}
	waits := slices.DeleteFunc(slices.Clone(created.Spec.InitContainers), func(c corev1.Container) bool { return c.Name != api.WaitContainerName })
	if len(waits) != 1 || waits[0].Image != stack.Image || len(waits[0].Command) != 0 || waits[0].Args[0] != "wait" {
		t.Fatalf("the wait containers are %+v, want kube-eip's alone", waits)
	}
	for _, v := range created.Spec.Volumes {
		if v.Name == api.PodInfoVolumeName && v.DownwardAPI == nil {
			t.Errorf("the downward-API volume is still the tenant's: %+v", v)
		}
	}
	patch := fmt.Sprintf(`{"spec":{"initContainers":[{"name":%q,"image":"busybox"}]}}`, api.WaitContainerName)
	_, err = tn.client.CoreV1().Pods(ns).Patch(t.Context(), created.Name, "application/strategic-merge-patch+json", []byte(patch), metav1.PatchOptions{})
	wantForbidden(t, "changing the wait's image", err, policyDenied+"the image of kube-eip-wait, kube-eip's wait container, is kube-eip's and cannot be changed")
	// A container (not an init container) of kube-eip's name is refused.
	app := eipPod("named-app", map[string]string{api.AnnotationMode: "auto"})
	app.Spec.Containers[0].Name = api.WaitContainerName
	_, err = tn.client.CoreV1().Pods(ns).Create(t.Context(), app, metav1.CreateOptions{})
	wantForbidden(t, "a container of kube-eip's name", err, deniedPrefix+"kube-eip.io/mode: spec.containers[0]: the name kube-eip-wait is kube-eip's (its injected init container); rename the container")
}

// EIPReservations are kube-eip's: a namespace's user cannot touch them at
// all (they are cluster-scoped), and even a cluster admin other than
// kube-eip cannot create or change one; what admission wrote of its pod
// changes for nobody.
func TestOnlyKubeEIPWritesReservations(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "reservations"})
	pool := newPool(t, ns, "reservations", map[string]string{"tenant": "reservations"}, 2)
	pod, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("holder", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: pool}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := &v1alpha1.EIPReservation{}
	if err := crClient.Get(t.Context(), client.ObjectKey{Name: pod.Annotations[api.AnnotationReservation]}, res); err != nil {
		t.Fatal(err)
	}
	forged := &v1alpha1.EIPReservation{
		ObjectMeta: metav1.ObjectMeta{Name: "eipalloc-0000000000000f00d"},
		Spec: v1alpha1.EIPReservationSpec{Pool: pool, AllocationID: "eipalloc-0000000000000f00d", PublicIP: "203.0.113.66",
			Mode: v1alpha1.ReservationModePool, PodNamespace: ns, Claim: "mine"},
	}

	tn := newTenant(t, ns, "reservations-tenant")
	err = tn.ctrl.Create(t.Context(), forged.DeepCopy())
	wantForbidden(t, "a tenant creating a reservation", err, `User "reservations-tenant" cannot create resource "eipreservations" in API group "kube-eip.io" at the cluster scope`)

	ops := "ops-" + strings.ToLower(ns)
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ops},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: ops}},
	}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(t.Context(), crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), ops, metav1.DeleteOptions{})
	})
	admin, err := client.New(env.ImpersonatedConfig(ops, "system:authenticated"), client.Options{Scheme: webhook.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	deniedRes := "ValidatingAdmissionPolicy 'kube-eip-reservations' with binding 'kube-eip-reservations' denied request: " +
		"EIPReservations are written by kube-eip alone (its webhook and binder), not by " + ops
	eventually(t, 10*time.Second, "a cluster admin's create refused", func(ctx context.Context) (bool, string, error) {
		err := admin.Create(ctx, forged.DeepCopy())
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), deniedRes), fmt.Sprint(err), nil
	})
	claimed := res.DeepCopy()
	claimed.Status.PodUID, claimed.Status.PodName = "uid-of-someone-else", "someone-else"
	wantForbidden(t, "a cluster admin claiming a reservation", admin.Status().Patch(t.Context(), claimed, client.MergeFrom(res)), deniedRes)

	// Nobody rewrites what admission recorded of the pod: kube-eip's
	// identities have no right to (only the status is theirs to change),
	// and to the cluster's own admin the CRD answers that it cannot change.
	moved := res.DeepCopy()
	moved.Spec.PodNamespace = "elsewhere"
	if err := crClient.Patch(t.Context(), moved, client.MergeFrom(res)); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "an EIPReservation's spec is written once, at admission, and cannot change") {
		t.Fatalf("rewriting a reservation's spec: %v, want it refused as immutable", err)
	}
}

// A company's BYOIP range is open only to namespaces an EIPPool that grows
// from it is open to.
func TestBYOIPRangesAreOpenOnlyWhereAnAdminOpenedThem(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "byoip"})
	asks := eipPod("byoip", map[string]string{api.AnnotationMode: "auto", api.AnnotationPublicIPv4Pool: byoipPool})
	asks.Labels = map[string]string{"app": "byoip"}
	asks.Spec.NodeSelector = env.Nodes.NodeSelector()
	_, err := kube.CoreV1().Pods(ns).Create(t.Context(), asks, metav1.CreateOptions{})
	wantForbidden(t, "a BYOIP pool nobody opened", err, deniedPrefix+fmt.Sprintf(
		`kube-eip.io/public-ipv4-pool: BYOIP pool %q is not open to namespace %q: no EIPPool open to the namespace grows from it (spec.growth.publicIPv4Pool)`, byoipPool, ns))

	// An EIPPool open to another tenant does not open it here either.
	grows := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "byoip-"},
		Spec: v1alpha1.EIPPoolSpec{
			TagSelector:       map[string]string{"e2e.kube-eip.io/pool": "byoip-" + ns},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "someone-else"}},
			Growth:            &v1alpha1.PoolGrowth{PublicIPv4Pool: byoipPool, MaxAddresses: 1},
		},
	}
	if err := crClient.Create(t.Context(), grows); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crClient.Delete(context.Background(), grows) })
	_, err = kube.CoreV1().Pods(ns).Create(t.Context(), asks, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	wantForbidden(t, "a BYOIP pool opened to another tenant", err, "is not open to namespace")

	opened := grows.DeepCopy()
	opened.Spec.NamespaceSelector.MatchLabels["tenant"] = "byoip"
	if err := crClient.Patch(t.Context(), opened, client.MergeFrom(grows)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the webhook sees the pool opened", func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().Pods(ns).Create(ctx, asks.DeepCopy(), metav1.CreateOptions{})
		return err == nil, fmt.Sprint(err), nil
	})
	pod := waitBound(t, ns, "app=byoip", 1)[0]
	if _, block, _ := net.ParseCIDR(byoipCIDR); !block.Contains(net.ParseIP(pod.Labels[api.LabelPublicIP])) {
		t.Errorf("bound to %s, not an address of %s", pod.Labels[api.LabelPublicIP], byoipCIDR)
	}
}

// A cluster admin caps how many addresses a namespace holds; a pod over
// the cap is refused at apply with the count, and fits again once a pod
// gave its address back.
func TestANamespaceOverItsCapIsRefused(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "capped"})
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"2"}}}`, authz.AnnotationMaxAddresses)
	if _, err := kube.CoreV1().Namespaces().Patch(t.Context(), ns, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	first := boundAutoPod(t, ns, "one")
	boundAutoPod(t, ns, "two")
	eventually(t, 10*time.Second, "the third pod refused", func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().Pods(ns).Create(ctx, eipPod("three", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil, fmt.Sprint(err), nil
	})
	_, err := kube.CoreV1().Pods(ns).Create(t.Context(), eipPod("three", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{})
	wantForbidden(t, "a pod over the cap", err, deniedPrefix+fmt.Sprintf(
		`kube-eip.io/mode: namespace %q holds 2 of its 2 addresses (kube-eip.io/max-addresses); delete a pod that holds one, or ask a cluster admin to raise the cap`, ns))

	if err := kube.CoreV1().Pods(ns).Delete(t.Context(), first.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "room for the third pod", func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().Pods(ns).Create(ctx, eipPod("three", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{})
		return err == nil, fmt.Sprint(err), nil
	})
}

// A namespace whose opt-in label a cluster admin removes: its bound pods
// keep their addresses (with a warning event), a pod admitted before but
// not bound yet gets nothing, and deleting a pod still releases its
// address. Labelled again, the waiting pod is bound.
func TestANamespaceThatOptsOutKeepsWhatItHolds(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "opt-out"})
	bound := boundAutoPod(t, ns, "bound")

	env.StopBinder()
	t.Cleanup(func() { restartBinder(t) })
	waiting := eipPod("waiting", map[string]string{api.AnnotationMode: "auto"})
	waiting.Labels = map[string]string{"app": "waiting"}
	waiting.Spec.NodeSelector = env.Nodes.NodeSelector()
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), waiting, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the waiting pod has an IP", func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "waiting", metav1.GetOptions{})
		return err == nil && p.Status.PodIP != "", "", err
	})
	// A CronJob's pod waits too: its refusal is told on the CronJob.
	nightly := eipPodTemplate("nightly", map[string]string{api.AnnotationMode: "auto"})
	nightly.Spec.RestartPolicy = corev1.RestartPolicyNever
	cron := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec:       batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: nightly}}},
	}
	if _, err := kube.BatchV1().CronJobs(ns).Create(t.Context(), cron, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Kubectl(t.Context(), "", "create", "job", "--namespace="+ns, "manual", "--from=cronjob/nightly"); err != nil {
		t.Fatal(err)
	}
	var jobPod string
	eventually(t, time.Minute, "the Job's pod has an IP", func(ctx context.Context) (bool, string, error) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=manual"})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.PodIP == "" {
			return false, fmt.Sprint(len(pods.Items), " pods"), err
		}
		jobPod = pods.Items[0].Name
		return true, "", nil
	})
	setOptIn(t, ns, false)
	restartBinder(t)

	notOptedIn := fmt.Sprintf(`namespace %q has not opted in to kube-eip`, ns)
	wantRefusedEvent(t, ns, "waiting", notOptedIn)
	wantDescribed(t, ns, "cronjob", "nightly", api.EventRefused, fmt.Sprintf("Job manual: pod %s is refused: %s: %s", jobPod, api.LabelManaged, notOptedIn))
	wantRefusedEvent(t, ns, "bound", fmt.Sprintf("; the pod keeps %s until it goes, and nothing new is bound for it", bound.Labels[api.LabelPublicIP]))
	afterSweeps(t, 2)
	if a := addressOf(t, bound.Annotations[api.AnnotationAllocationID]); aws.ToString(a.AssociationId) != bound.Annotations[api.AnnotationAssociationID] {
		t.Errorf("the bound pod's association %s became %s", bound.Annotations[api.AnnotationAssociationID], aws.ToString(a.AssociationId))
	}
	if ids, err := addressesOwnedIn(t.Context(), ns); err != nil || len(ids) != 1 {
		t.Errorf("addresses of the namespace: %v (%v), want the bound pod's alone", ids, err)
	}

	if err := kube.CoreV1().Pods(ns).Delete(t.Context(), "bound", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the deleted pod's address released", func(ctx context.Context) (bool, string, error) {
		left, err := describeAllocations(ctx, []string{bound.Annotations[api.AnnotationAllocationID]})
		return err == nil && len(left) == 0, fmt.Sprint(left), err
	})

	setOptIn(t, ns, true)
	waitBound(t, ns, "app=waiting", 1)
	waitBound(t, ns, "app=nightly", 1)
}

func setOptIn(t *testing.T, ns string, on bool) {
	t.Helper()
	value := "null"
	if on {
		value = fmt.Sprintf("%q", api.InjectionEnabled)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, api.LabelInjection, value)
	if _, err := kube.CoreV1().Namespaces().Patch(t.Context(), ns, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// wantRefusedEvent waits for an EIPRefused event on the pod saying msg.
func wantRefusedEvent(t *testing.T, ns, pod, msg string) {
	t.Helper()
	eventually(t, time.Minute, "an "+api.EventRefused+" event on "+pod, func(ctx context.Context) (bool, string, error) {
		evs, err := kube.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + pod})
		if err != nil {
			return false, "", err
		}
		var seen []string
		for _, ev := range evs.Items {
			if ev.Reason == api.EventRefused && ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Note, msg) {
				return true, "", nil
			}
			seen = append(seen, ev.Reason+": "+ev.Note)
		}
		return false, strings.Join(seen, " | "), nil
	})
}

// The admission policies pass the API server's type check: an expression
// that failed it would refuse every pod it matches.
func TestAdmissionPoliciesTypeCheck(t *testing.T) {
	for _, name := range []string{webhook.PodKeysPolicyName, webhook.ReservationsPolicyName} {
		eventually(t, 30*time.Second, name+" type-checked", func(ctx context.Context) (bool, string, error) {
			p, err := kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			if p.Status.ObservedGeneration != p.Generation {
				return false, "not observed yet", nil
			}
			if tc := p.Status.TypeChecking; tc != nil && len(tc.ExpressionWarnings) > 0 {
				return false, "", fmt.Errorf("type-check warnings: %+v", tc.ExpressionWarnings)
			}
			return true, "", nil
		})
	}
}
