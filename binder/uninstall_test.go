package binder

import (
	"errors"
	"net/http/httptest"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// Letting go of the pods leaves no address of kube-eip's allocated or
// associated and no pod on the finalizer: auto and sticky addresses go
// back to AWS, a pool's address is disassociated and stays in its pool,
// the reservations are deleted, and an address kube-eip never tagged is
// left alone.
func TestUninstallLeavesNoAddressAndNoFinalizer(t *testing.T) {
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db", UID: "uid-sts"}}
	e := newEnv(t, sts, eipPool("payments", payments, v1alpha1.ReleasePolicyRetain))
	poolPod, poolAlloc, _ := e.reservedPod("pay-0", "10.0.1.12", "payments", api.ModePool)
	foreign, _ := e.ec2.AddAddress(map[string]string{"team": "other"})
	foreignAssoc := e.associate(foreign, e.eni, "10.0.1.20")
	e.start()

	auto := e.bind(managedPod("web-0", "10.0.1.11"))
	sticky := e.bind(managedPod("db-0", "10.0.1.13", func(p *corev1.Pod) {
		p.Annotations[api.AnnotationMode] = string(api.ModeSticky)
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: sts.UID, Controller: ptr.To(true)}}
	}))
	e.bind(poolPod)
	owned := []string{auto.Annotations[api.AnnotationAllocationID], sticky.Annotations[api.AnnotationAllocationID]}

	var pods corev1.PodList
	if err := e.client.List(e.ctx, &pods); err != nil {
		t.Fatal(err)
	}
	report, err := e.b.letGo(e.ctx, pods.Items)
	if err != nil {
		t.Fatal(err)
	}
	if want := (UninstallReport{Pods: 3, Released: 2, Disassociated: 1, Reservations: 1}); report != want {
		t.Errorf("report = %+v, want %+v", report, want)
	}
	for _, id := range owned {
		if e.addressExists(id) {
			t.Errorf("address %s that kube-eip allocated is still allocated", id)
		}
	}
	if a := e.address(poolAlloc); a.AssociationID != "" {
		t.Errorf("the pool's address is still associated with %s", a.PrivateIP)
	}
	if a := e.address(foreign); a.AssociationID != foreignAssoc {
		t.Errorf("an address kube-eip never tagged lost its association %s: %+v", foreignAssoc, a)
	}
	for _, name := range []string{"web-0", "db-0", "pay-0"} {
		p := e.pod(name)
		if slices.Contains(p.Finalizers, api.FinalizerRelease) {
			t.Errorf("pod %s still has kube-eip's finalizer", name)
		}
		if ip, ok := p.Labels[api.LabelPublicIP]; ok {
			t.Errorf("pod %s still says it has address %s", name, ip)
		}
	}
	var reservations v1alpha1.EIPReservationList
	if err := e.client.List(e.ctx, &reservations); err != nil {
		t.Fatal(err)
	}
	if len(reservations.Items) != 0 {
		t.Errorf("%d reservations left", len(reservations.Items))
	}

	// A second run (the hook retried) finds nothing to do.
	again, err := e.b.letGo(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again != (UninstallReport{}) {
		t.Errorf("second run = %+v, want nothing done", again)
	}
}

// The standby binder is ready while it waits for the lease; the leader
// only once its first sweep loaded the addresses.
func TestReadinessOfLeaderAndStandby(t *testing.T) {
	elected := make(chan struct{})
	loaded := false
	check := readiness(elected, func() error {
		if !loaded {
			return errors.New("not loaded")
		}
		return nil
	})
	req := httptest.NewRequest("GET", "/readyz", nil)
	if err := check(req); err != nil {
		t.Errorf("standby: %v, want ready", err)
	}
	close(elected)
	if err := check(req); err == nil {
		t.Error("a leader that has not swept is ready")
	}
	loaded = true
	if err := check(req); err != nil {
		t.Errorf("leader after its sweep: %v", err)
	}
}
