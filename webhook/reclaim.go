package webhook

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// DefaultClaimTTL is how long a reservation waits for its pod. A pod is
// stored within the API server's request timeout of its admission; longer
// than that, the create failed after admission (quota, another webhook,
// a client that gave up) and the pod will never come.
const DefaultClaimTTL = time.Minute

// Reclaimer ties reservations to the pods that carry their claim, and
// deletes reservations whose pod never appeared.
type Reclaimer struct {
	Client   client.Client
	Recorder events.EventRecorder
	// ClaimTTL is how long an unclaimed reservation lives.
	ClaimTTL time.Duration
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// SetupWithManager registers the reclaimer, driven by reservations and by
// managed pods appearing.
func (r *Reclaimer) SetupWithManager(mgr ctrl.Manager) error {
	if r.ClaimTTL == 0 {
		r.ClaimTTL = DefaultClaimTTL
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("reservation-reclaimer").
		For(&v1alpha1.EIPReservation{}).
		WatchesMetadata(podMeta(), handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
			if name := obj.GetAnnotations()[api.AnnotationReservation]; name != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
			}
			return nil
		})).
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *Reclaimer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res := &v1alpha1.EIPReservation{}
	if err := r.Client.Get(ctx, req.NamespacedName, res); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if res.DeletionTimestamp != nil || res.Status.PodUID != "" || res.Status.PodName != "" {
		// Claimed once: the binder owns it from here (a sticky reservation
		// outlives its pods).
		return reconcile.Result{}, nil
	}
	log := log.FromContext(ctx).WithValues("reservation", res.Name, "pool", res.Spec.Pool, "namespace", res.Spec.PodNamespace)

	pod, err := r.claimant(ctx, res)
	if err != nil {
		return reconcile.Result{}, err
	}
	if pod != nil {
		base := res.DeepCopy()
		res.Status.Phase = v1alpha1.ReservationClaimed
		res.Status.PodUID = string(pod.UID)
		res.Status.PodName = pod.Name
		if err := r.Client.Status().Patch(ctx, res, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, fmt.Errorf("recording pod %s as the claimant of %s: %w", pod.Name, res.Name, err)
		}
		r.Recorder.Eventf(pod, res, corev1.EventTypeNormal, api.EventReserved, "Reserve",
			"Reserved %s (%s) of EIPPool %s", res.Spec.PublicIP, res.Spec.AllocationID, res.Spec.Pool)
		log.V(1).Info("reservation claimed", "pod", pod.Name)
		return reconcile.Result{}, nil
	}

	if res.Status.Phase == "" {
		base := res.DeepCopy()
		res.Status.Phase = v1alpha1.ReservationReserved
		if err := r.Client.Status().Patch(ctx, res, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("marking %s reserved: %w", res.Name, err)
		}
	}
	age := r.Now().Sub(res.CreationTimestamp.Time)
	if age < r.ClaimTTL {
		return reconcile.Result{RequeueAfter: r.ClaimTTL - age}, nil
	}
	// Deleting with a UID precondition cannot remove a newer reservation
	// of the same address made meanwhile.
	uid := res.UID
	if err := r.Client.Delete(ctx, res, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, fmt.Errorf("reclaiming %s: %w", res.Name, err)
	}
	reclaimed.Inc()
	r.Recorder.Eventf(res, nil, corev1.EventTypeNormal, "Reclaimed", "Reclaim",
		"No pod claimed %s within %s of its admission; the address is free again", res.Spec.PublicIP, r.ClaimTTL)
	log.Info("reclaimed a reservation whose pod never appeared", "publicIP", res.Spec.PublicIP, "age", age.Round(time.Second))
	return reconcile.Result{}, nil
}

// claimant finds the pod carrying the reservation's claim token.
func (r *Reclaimer) claimant(ctx context.Context, res *v1alpha1.EIPReservation) (*metav1.PartialObjectMetadata, error) {
	pods := podMetaList()
	if err := r.Client.List(ctx, pods, client.InNamespace(res.Spec.PodNamespace), client.MatchingFields{indexClaim: res.Spec.Claim}); err != nil {
		return nil, fmt.Errorf("looking for the pod of %s: %w", res.Name, err)
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil || res.Spec.Mode == v1alpha1.ReservationModeSticky {
			return &pods.Items[i], nil
		}
	}
	return nil, nil
}
