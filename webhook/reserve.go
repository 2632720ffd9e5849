package webhook

import (
	"context"
	"fmt"
	"hash/fnv"

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
	for _, addr := range spread(plan.Candidates, claim) {
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

// spread orders a plan's candidates for one admission: the addresses
// pinned to the pod first, as the plan has them, then the free ones from
// an offset the pod's claim picks. Concurrent admissions of one pool then
// mostly try different addresses first, instead of all racing for the
// first free one and retrying down the same list: a burst of n pods costs
// about n creates rather than n².
func spread(cands []v1alpha1.PoolAddress, claim string) []v1alpha1.PoolAddress {
	pinned := 0
	for pinned < len(cands) && cands[pinned].StickyOwner != "" {
		pinned++
	}
	free := cands[pinned:]
	if len(free) < 2 {
		return cands
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(claim))
	at := int(h.Sum32() % uint32(len(free))) //nolint:gosec // len(free) is a count of addresses, far below 2³²
	out := make([]v1alpha1.PoolAddress, 0, len(cands))
	out = append(out, cands[:pinned]...)
	out = append(out, free[at:]...)
	return append(out, free[:at]...)
}
