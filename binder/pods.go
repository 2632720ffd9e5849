package binder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-openapi/jsonpointer"
	jsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// Reconcile implements reconcile.Reconciler for managed pods: fetch, clean
// up if the pod is going, authorize, make sure of the finalizer, bind once
// the pod has a node and an IP, and write the pod only if something
// changed.
func (b *Binder) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := b.waitReady(ctx); err != nil {
		return reconcile.Result{}, err
	}
	pod := &corev1.Pod{}
	if err := b.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Labels[api.LabelManaged] != "true" {
		return reconcile.Result{}, nil
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("pod", client.ObjectKeyFromObject(pod)))

	switch {
	case pod.DeletionTimestamp != nil:
		return reconcile.Result{}, b.finalize(ctx, pod)
	case terminal(pod):
		// A finished pod (a Job's) keeps no address, though it may stay.
		return reconcile.Result{}, b.finalize(ctx, pod)
	}
	g, err := b.authorize(ctx, pod)
	if r := (*refusal)(nil); errors.As(err, &r) {
		return b.refused(pod, r), nil
	} else if err != nil {
		return reconcile.Result{}, err
	}
	if !slices.Contains(pod.Finalizers, api.FinalizerRelease) {
		// Admitted before the webhook set the finalizer: add it before
		// anything is allocated.
		base := pod.DeepCopy()
		pod.Finalizers = append(pod.Finalizers, api.FinalizerRelease)
		if err := b.Client.Patch(ctx, pod, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, fmt.Errorf("adding the finalizer: %w", err)
		}
	}
	if pod.Spec.NodeName == "" || pod.Status.PodIP == "" {
		return reconcile.Result{}, nil // the IP's arrival triggers us again
	}
	return b.bind(ctx, pod, g)
}

// refused tells the pod's user why it gets no address. A pod bound before
// its namespace or pool stopped admitting it keeps its address until it
// goes: nothing is taken from it, and nothing new is done for it.
func (b *Binder) refused(pod *corev1.Pod, r *refusal) reconcile.Result {
	refusals.Inc()
	b.quota.forget(client.ObjectKeyFromObject(pod)) // it asks for nothing now
	msg := r.msg
	if ip := pod.Labels[api.LabelPublicIP]; ip != "" && eipReady(pod) {
		msg += fmt.Sprintf("; the pod keeps %s until it goes, and nothing new is bound for it", ip)
	}
	b.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, api.EventRefused, "Authorize", "%s", msg)
	if b.Refusals != nil {
		b.Refusals.Report(pod, api.EventRefused, "Authorize", fmt.Sprintf("pod %s is refused: %s", pod.Name, msg))
	}
	return reconcile.Result{RequeueAfter: r.retry}
}

// wrongGroup tells the pod's user that its address cannot reach it: the
// pod runs in a zone of another network border group. Nothing is done;
// the pod looks again now and then, in case the address is taken off it.
func (b *Binder) wrongGroup(pod *corev1.Pod, g grant, addr Address, target Target, group string) reconcile.Result {
	msg := fmt.Sprintf("the pod runs in zone %s (network border group %s), but its address %s (%s) belongs to network border group %s, "+
		"and EC2 associates an Elastic IP only within its group; nothing was bound", target.Zone, group, addr.PublicIP, addr.AllocationID, addr.BorderGroup)
	if g.res != nil {
		msg += fmt.Sprintf(". Admission reserved it from EIPPool %q: pin the pod to zones of one group (nodeSelector %s) so that admission "+
			"reserves an address of that group, or give the pool addresses of %s", g.res.Spec.Pool, corev1.LabelTopologyZone, group)
	}
	b.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, api.EventWrongBorderGroup, "Associate", "%s", msg)
	if b.Refusals != nil {
		b.Refusals.Report(pod, api.EventWrongBorderGroup, "Associate", fmt.Sprintf("pod %s gets no address: %s", pod.Name, msg))
	}
	return reconcile.Result{RequeueAfter: capRecheck}
}

// terminalIf stops the retries of an error that retrying cannot fix: the
// warning event tells the user what to do, and the pod's next change
// brings it back.
func terminalIf(err error) error {
	if errors.Is(err, errTerminal) {
		return reconcile.TerminalError(err)
	}
	return err
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// bind associates the address of a pod authorize granted with its target
// and marks the pod.
func (b *Binder) bind(ctx context.Context, pod *corev1.Pod, g grant) (reconcile.Result, error) {
	first := b.firstSeen(pod)
	node := &corev1.Node{}
	if err := b.Client.Get(ctx, client.ObjectKey{Name: pod.Spec.NodeName}, node); err != nil {
		return reconcile.Result{}, fmt.Errorf("reading node %s: %w", pod.Spec.NodeName, err)
	}
	target, err := b.enis.resolve(ctx, pod, node)
	if errors.Is(err, errIPNotFound) {
		// The CNI may not have finished; the next look asks EC2 again.
		return reconcile.Result{RequeueAfter: time.Second}, nil
	} else if err != nil {
		return reconcile.Result{}, err
	}
	group := b.zones.of(ctx, target.Zone)
	addr, err := b.obtain(ctx, pod, g, group)
	if r := (*refusal)(nil); errors.As(err, &r) {
		return b.refused(pod, r), nil
	} else if w := (*quotaWait)(nil); errors.As(err, &w) {
		if w.tell {
			b.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, api.EventQuotaExhausted, "Allocate", "%v", err)
		}
		return reconcile.Result{RequeueAfter: quotaRecheck}, nil
	} else if err != nil {
		b.warn(pod, "Obtain", err)
		return reconcile.Result{}, terminalIf(err)
	}
	b.quota.forget(client.ObjectKeyFromObject(pod)) // it has an address
	if !api.SameBorderGroup(addr.BorderGroup, group) {
		return b.wrongGroup(pod, g, addr, target, group), nil
	}
	associated := false
	if !addr.On(target) {
		if addr, err = b.associate(ctx, addr, g.res, target); err != nil {
			if isTargetGone(err) {
				b.enis.forget(node)
			}
			if cloud.IsWrongBorderGroup(err) {
				// The groups were not known ahead (see borderGroups.of).
				b.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, api.EventWrongBorderGroup, "Associate",
					"the pod's zone %s is in another network border group than its address %s: %v", target.Zone, addr.PublicIP, err)
				return reconcile.Result{RequeueAfter: capRecheck}, nil
			}
			b.warn(pod, "Associate", err)
			return reconcile.Result{}, terminalIf(err)
		}
		associated = true
	}
	changed, err := b.markBound(ctx, pod, addr)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := b.markReservationBound(ctx, pod, g.res, addr); err != nil {
		return reconcile.Result{}, err
	}
	if changed {
		bindLatency.Observe(b.Now().Sub(first).Seconds())
	}
	if associated {
		b.requestStatus()
		binds.WithLabelValues(modeOf(pod)).Inc()
		b.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, api.EventAssociated, "Associate",
			"Associated %s (%s) with %s %s", addr.PublicIP, addr.AllocationID, target.ENI, target.PrivateIP)
		log.FromContext(ctx).V(1).Info("associated", "publicIP", addr.PublicIP, "allocationID", addr.AllocationID, "eni", target.ENI, "privateIP", target.PrivateIP)
	}
	b.forgetSeen(pod)
	return reconcile.Result{}, nil
}

// markBound writes the address onto the pod: the label the wait container
// reads, the allocation and association, and the readiness condition. It
// reports whether anything had to be written. (Reconcile has made sure of
// the finalizer before anything was bound.)
func (b *Binder) markBound(ctx context.Context, pod *corev1.Pod, addr Address) (bool, error) {
	changed := false
	if pod.Labels[api.LabelPublicIP] != addr.PublicIP ||
		pod.Annotations[api.AnnotationAllocationID] != addr.AllocationID ||
		pod.Annotations[api.AnnotationAssociationID] != addr.AssociationID {
		base := pod.DeepCopy()
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Labels[api.LabelPublicIP] = addr.PublicIP
		pod.Annotations[api.AnnotationAllocationID] = addr.AllocationID
		pod.Annotations[api.AnnotationAssociationID] = addr.AssociationID
		if err := b.Client.Patch(ctx, pod, client.MergeFrom(base)); err != nil {
			return false, fmt.Errorf("labelling the pod with %s: %w", addr.PublicIP, err)
		}
		changed = true
	}
	if !eipReady(pod) {
		base := pod.DeepCopy()
		setCondition(pod, corev1.PodCondition{
			Type: api.ConditionEIPReady, Status: corev1.ConditionTrue, Reason: "Associated",
			Message: fmt.Sprintf("%s (%s) is associated with the pod", addr.PublicIP, addr.AllocationID),
		}, b.Now())
		if err := b.Client.Status().Patch(ctx, pod, client.StrategicMergeFrom(base)); err != nil {
			return changed, fmt.Errorf("setting the %s condition: %w", api.ConditionEIPReady, err)
		}
		changed = true
	}
	return changed, nil
}

func eipReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == api.ConditionEIPReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setCondition(pod *corev1.Pod, c corev1.PodCondition, now time.Time) {
	c.LastTransitionTime = metav1.NewTime(now)
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == c.Type {
			if pod.Status.Conditions[i].Status == c.Status {
				c.LastTransitionTime = pod.Status.Conditions[i].LastTransitionTime
			}
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

// finalize takes the address off a pod that is going (or finished), then
// lets the pod go. A release is done once per pod: the reconciles that
// follow until the finalizer is gone (the kubelet's status updates, the
// deletion) only drop the finalizer, with no EC2 call.
func (b *Binder) finalize(ctx context.Context, pod *corev1.Pod) error {
	b.forgetSeen(pod)
	b.quota.forget(client.ObjectKeyFromObject(pod))
	if !slices.Contains(pod.Finalizers, api.FinalizerRelease) && pod.Annotations[api.AnnotationAllocationID] == "" {
		return nil
	}
	if !b.released.has(pod.UID) {
		if err := b.release(ctx, pod); err != nil {
			b.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, api.EventReleaseFailed, "Release", "Releasing the address: %v", err)
			return err
		}
		b.released.add(pod.UID, b.Now())
	}
	return b.dropFinalizer(ctx, pod)
}

// dropFinalizer removes kube-eip's finalizer, and from a finished pod that
// stays what says it has an address, so that nothing is released twice.
// It is a JSON patch that tests the finalizer where it removes it: no
// resource version, so the kubelet's status updates of a terminating pod
// never make it conflict, and no other finalizer is ever lost.
func (b *Binder) dropFinalizer(ctx context.Context, pod *corev1.Pod) error {
	var ops []jsonpatch.Operation
	if i := slices.Index(pod.Finalizers, api.FinalizerRelease); i >= 0 {
		at := fmt.Sprintf("/metadata/finalizers/%d", i)
		ops = append(ops, jsonpatch.NewOperation("test", at, api.FinalizerRelease), jsonpatch.NewOperation("remove", at, nil))
	}
	if pod.DeletionTimestamp == nil {
		if _, ok := pod.Labels[api.LabelPublicIP]; ok {
			ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/labels/"+jsonpointer.Escape(api.LabelPublicIP), nil))
		}
		for _, k := range []string{api.AnnotationAllocationID, api.AnnotationAssociationID} {
			if _, ok := pod.Annotations[k]; ok {
				ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+jsonpointer.Escape(k), nil))
			}
		}
	}
	if len(ops) == 0 {
		return nil
	}
	data, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	if err := b.Client.Patch(ctx, pod, client.RawPatch(types.JSONPatchType, data)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		// A failed test: the finalizers moved. The next reconcile reads them
		// again.
		return fmt.Errorf("removing the finalizer: %w", err)
	}
	return nil
}

func modeOf(pod *corev1.Pod) string {
	if req, _, _ := api.ParseRequest(pod.Annotations); req != nil {
		return string(req.Mode)
	}
	return "unknown"
}

func (b *Binder) warn(pod *corev1.Pod, action string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	b.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, api.EventBindFailed, action, "%v", err)
}

// firstSeen remembers when the binder first saw the pod with an IP, for
// the bind latency metric.
func (b *Binder) firstSeen(pod *corev1.Pod) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.seen[string(pod.UID)]
	if !ok {
		t = b.Now()
		b.seen[string(pod.UID)] = t
	}
	return t
}

func (b *Binder) forgetSeen(pod *corev1.Pod) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.seen, string(pod.UID))
}
