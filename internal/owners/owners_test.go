package owners

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// recorder keeps what each event regards.
type recorder struct {
	mu     sync.Mutex
	events []string
}

var _ events.EventRecorder = (*recorder)(nil)

func (r *recorder) Eventf(regarding, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	m, _ := meta.Accessor(regarding)
	gvk := regarding.GetObjectKind().GroupVersionKind()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s %s/%s (%s) %s %s %s: %s", gvk.GroupVersion(), gvk.Kind, m.GetName(), m.GetUID(), eventtype, reason, action, fmt.Sprintf(note, args...)))
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func controlledBy(apiVersion, kind, name string, uid types.UID) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}}
}

func podOf(owners []metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "games", OwnerReferences: owners}}
}

// A refusal reaches the workload the user applied: the Deployment above a
// ReplicaSet, the CronJob above a Job, a StatefulSet itself; the
// ReplicaSet when its Deployment cannot be found; and nobody for a pod no
// controller owns.
func TestRefusalsReachTheWorkloadTheUserApplied(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-7d9c", Namespace: "games", UID: "rs-uid",
			OwnerReferences: controlledBy("apps/v1", "Deployment", "web", "deploy-uid")}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-290", Namespace: "games", UID: "job-uid",
			OwnerReferences: controlledBy("batch/v1", "CronJob", "nightly", "cron-uid")}},
		// A ReplicaSet of the same name as one gone, made anew.
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "api-55f", Namespace: "games", UID: "new-uid",
			OwnerReferences: controlledBy("apps/v1", "Deployment", "api", "api-uid")}},
	).Build()
	rec := &recorder{}
	r := New(reader, rec, logr.Discard())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- r.Start(ctx) }()

	r.Report(podOf(nil), "EIPRefused", "Admit", "a bare pod: its user was told")
	r.Report(podOf(controlledBy("apps/v1", "ReplicaSet", "web-7d9c", "rs-uid")), "EIPRefused", "Admit", "pods are refused at creation: no pool")
	r.Report(podOf(controlledBy("batch/v1", "Job", "nightly-290", "job-uid")), "EIPRefused", "Admit", "pods are refused at creation: no pool")
	r.Report(podOf(controlledBy("apps/v1", "StatefulSet", "db", "sts-uid")), "EIPRefused", "Authorize", "pod db-0 is refused: closed")
	r.Report(podOf(controlledBy("apps/v1", "ReplicaSet", "gone-1", "gone-uid")), "EIPRefused", "Admit", "x")
	r.Report(podOf(controlledBy("apps/v1", "ReplicaSet", "api-55f", "old-uid")), "EIPRefused", "Admit", "y")

	want := []string{
		`apps/v1 Deployment/web (deploy-uid) Warning EIPRefused Admit: ReplicaSet web-7d9c: pods are refused at creation: no pool`,
		`batch/v1 CronJob/nightly (cron-uid) Warning EIPRefused Admit: Job nightly-290: pods are refused at creation: no pool`,
		`apps/v1 StatefulSet/db (sts-uid) Warning EIPRefused Authorize: pod db-0 is refused: closed`,
		`apps/v1 ReplicaSet/gone-1 (gone-uid) Warning EIPRefused Admit: x`,
		`apps/v1 ReplicaSet/api-55f (old-uid) Warning EIPRefused Admit: y`,
	}
	err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(rec.all()) >= len(want), nil
	})
	if err != nil {
		t.Fatalf("events: %q; want %d", rec.all(), len(want))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events:\n  %q\nwant:\n  %q", got, want)
	}
}
