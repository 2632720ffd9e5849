package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// LabelPool on a reservation names its pool, for kubectl -l.
const LabelPool = api.Prefix + "pool"

// APIReserver reserves by creating an EIPReservation named after the
// address: the API server lets exactly one create of a name succeed, which
// makes reservations atomic across webhook replicas without a lock.
type APIReserver struct {
	Client client.Client
}

// Reserve tries the plan's candidates in order until one create succeeds.
func (r APIReserver) Reserve(ctx context.Context, plan Plan, pod *corev1.Pod, claim string) (*v1alpha1.EIPReservation, error) {
	mode, owner := v1alpha1.ReservationModePool, ""
	if plan.Request.Mode == api.ModeSticky {
		mode, owner = v1alpha1.ReservationModeSticky, pod.Namespace+"/"+pod.Name
	}
	for _, addr := range plan.Candidates {
		res := &v1alpha1.EIPReservation{
			ObjectMeta: metav1.ObjectMeta{Name: addr.AllocationID, Labels: map[string]string{LabelPool: plan.Pool.Name}},
			Spec: v1alpha1.EIPReservationSpec{
				Pool: plan.Pool.Name, AllocationID: addr.AllocationID, PublicIP: addr.PublicIP, Mode: mode,
				PodNamespace: pod.Namespace, PodName: pod.Name, Claim: claim, StickyOwner: owner,
			},
		}
		err := r.Client.Create(ctx, res)
		switch {
		case err == nil:
			reservationAttempts.WithLabelValues("reserved").Inc()
			return res, nil
		case apierrors.IsAlreadyExists(err):
			// Another admission took it after our cache last saw it.
			reservationAttempts.WithLabelValues("taken").Inc()
		default:
			reservationAttempts.WithLabelValues("error").Inc()
			return nil, fmt.Errorf("reserving %s (%s) of pool %s: %w", addr.PublicIP, addr.AllocationID, plan.Pool.Name, err)
		}
	}
	return nil, errExhausted
}
