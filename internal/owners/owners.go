// Package owners tells the workload a user applied why kube-eip refused
// its pods. Users apply Deployments, StatefulSets, DaemonSets, Jobs and
// CronJobs, not pods: a refusal recorded on a pod, or on a ReplicaSet a
// Deployment made, is where nobody looks. The Reporter records it again on
// the workload at the top of the pod's controllers, as a Warning Event,
// which `kubectl describe deployment` (or statefulset, job...) lists beside
// the controller's own.
//
// The webhook reports the pods it refuses at creation (they never exist,
// so there is nothing else to tell), the binder the pods it refuses to
// bind. Reports are queued and recorded in the background: neither path
// waits for the reads that find the top workload.
package owners

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// maxQueued bounds the reports waiting to be recorded: past it, new ones
// are dropped and counted, rather than held without limit while the API
// server is slow.
const maxQueued = 1000

// Sink hears of refused pods; Reporter is one.
type Sink interface {
	Report(pod metav1.Object, reason, action, note string)
}

var _ Sink = (*Reporter)(nil)

// Reporter records refusals on the workloads behind pods. It is a
// controller-runtime Runnable that every replica runs (no leader
// election): every webhook replica refuses pods.
type Reporter struct {
	reader   client.Reader
	recorder events.EventRecorder
	log      logr.Logger
	queue    workqueue.TypedInterface[report]
}

// report is one refusal to record on the workload named by owner, the
// pod's controller.
type report struct {
	namespace            string
	owner                ref
	reason, action, note string
}

// ref names a controller as an owner reference does.
type ref struct {
	apiVersion, kind, name string
	uid                    types.UID
}

// New returns a Reporter that reads ReplicaSets and Jobs through reader
// (to find the Deployment or CronJob above them) and records on recorder.
func New(reader client.Reader, recorder events.EventRecorder, log logr.Logger) *Reporter {
	return &Reporter{
		reader: reader, recorder: recorder, log: log,
		queue: workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[report]{Name: "kube-eip-owner-reports"}),
	}
}

// Report queues a refusal of pod for its top workload; it never blocks. A
// pod no controller owns is reported nowhere: its user applied the pod
// and was told already. Identical reports still queued are one.
func (r *Reporter) Report(pod metav1.Object, reason, action, note string) {
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return
	}
	if r.queue.Len() >= maxQueued {
		dropped.Inc()
		return
	}
	r.queue.Add(report{
		namespace: pod.GetNamespace(),
		owner:     ref{apiVersion: owner.APIVersion, kind: owner.Kind, name: owner.Name, uid: owner.UID},
		reason:    reason, action: action, note: note,
	})
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica records its own refusals.
func (r *Reporter) NeedLeaderElection() bool { return false }

// Start records queued reports until ctx ends.
func (r *Reporter) Start(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		r.queue.ShutDown()
	}()
	for {
		rep, shutdown := r.queue.Get()
		if shutdown {
			return nil
		}
		r.record(ctx, rep)
		r.queue.Done(rep)
	}
}

func (r *Reporter) record(ctx context.Context, rep report) {
	top := r.top(ctx, rep.namespace, rep.owner)
	regarding := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: top.apiVersion, Kind: top.kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: rep.namespace, Name: top.name, UID: top.uid},
	}
	note := rep.note
	if top != rep.owner {
		note = fmt.Sprintf("%s %s: %s", rep.owner.kind, rep.owner.name, note)
	}
	r.recorder.Eventf(regarding, nil, corev1.EventTypeWarning, rep.reason, rep.action, "%s", note)
	reported.WithLabelValues(top.kind).Inc()
}

// above are the controllers whose pods come through a controller of their
// own: a Deployment's through its ReplicaSets, a CronJob's through its
// Jobs. The user applied the one above.
var above = map[string]string{
	"apps/v1/ReplicaSet": "Deployment",
	"batch/v1/Job":       "CronJob",
}

// top is the workload the user applied, of the pod controller owner: the
// Deployment of a ReplicaSet, the CronJob of a Job, or owner itself. When
// the read fails, owner is told instead.
func (r *Reporter) top(ctx context.Context, namespace string, owner ref) ref {
	kind, ok := above[owner.apiVersion+"/"+owner.kind]
	if !ok {
		return owner
	}
	obj := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: owner.apiVersion, Kind: owner.kind}}
	if err := r.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: owner.name}, obj); err != nil {
		r.log.V(1).Info("reading a pod's controller to find the workload above it", "kind", owner.kind, "namespace", namespace, "name", owner.name, "error", err.Error())
		return owner
	}
	if obj.UID != owner.uid {
		return owner // another object of that name now
	}
	up := metav1.GetControllerOfNoCopy(obj)
	if up == nil || up.Kind != kind {
		return owner
	}
	return ref{apiVersion: up.APIVersion, kind: up.Kind, name: up.Name, uid: up.UID}
}
