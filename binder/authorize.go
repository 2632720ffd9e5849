package binder

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/pools"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// grant is what a pod may have, decided before any EC2 call from what only
// a cluster admin or kube-eip controls: the namespace's labels and
// annotations, the EIPPools, and the reservation admission made.
type grant struct {
	req *api.Request
	// pool is the pool a pool-drawn request draws from.
	pool *v1alpha1.EIPPool
	// res is the reservation admission made for the pod (pool-drawn
	// requests); it has been checked to be this pod's.
	res *v1alpha1.EIPReservation
	ns  *corev1.Namespace
}

// refusal is why a pod gets no address: nothing is allocated, reserved or
// moved for it. It is not an error: the pod is looked at again when its
// namespace or the pools change, or after retry when it waits on something
// else (the holder of its reservation, the namespace's cap).
type refusal struct {
	msg   string
	retry time.Duration
}

func (r *refusal) Error() string { return r.msg }

func refuse(format string, args ...any) *refusal {
	return &refusal{msg: fmt.Sprintf(format, args...)}
}

// authorize decides whether the pod may be bound now. Nothing the pod's
// author wrote proves anything alone: the annotations only say what is
// asked, and each answer comes from the namespace, the pools and the
// reservation.
func (b *Binder) authorize(ctx context.Context, pod *corev1.Pod) (grant, error) {
	ns := &corev1.Namespace{}
	if err := b.Client.Get(ctx, client.ObjectKey{Name: pod.Namespace}, ns); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return grant{}, refuse("namespace %q does not exist", pod.Namespace)
		}
		return grant{}, fmt.Errorf("reading namespace %s: %w", pod.Namespace, err)
	}
	req, problems, _ := api.ParseRequest(pod.Annotations)
	if len(problems) > 0 || req == nil || !api.ValidClaim(pod.Annotations[api.AnnotationClaim]) {
		return grant{}, refuse("the pod carries kube-eip's label but was not admitted by kube-eip (no valid request and claim); recreate it in a namespace labelled %s=%s",
			api.LabelInjection, api.InjectionEnabled)
	}
	pool, problem := authz.Check(req, ns, cachePools{ctx: ctx, reader: b.Client})
	if problem != nil {
		return grant{}, &refusal{msg: problem.Error()}
	}
	g := grant{req: req, pool: pool, ns: ns}
	if pool == nil {
		return g, nil
	}
	name := pod.Annotations[api.AnnotationReservation]
	if name == "" {
		return grant{}, refuse("mode %s draws from EIPPool %s through a reservation, and admission made none for this pod; recreate the pod", req.Mode, pool.Name)
	}
	res := &v1alpha1.EIPReservation{}
	if err := b.Client.Get(ctx, client.ObjectKey{Name: name}, res); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return grant{}, refuse("reservation %s does not exist (a reservation whose pod did not appear in time is reclaimed); recreate the pod", name)
		}
		return grant{}, fmt.Errorf("reading reservation %s: %w", name, err)
	}
	if why := reservedFor(res, pod, pool.Name, req.Mode); why != "" {
		return grant{}, refuse("reservation %s of %s was not made for this pod (%s); recreate the pod", name, res.Spec.PublicIP, why)
	}
	if uid := res.Status.PodUID; uid != "" && uid != string(pod.UID) {
		if holder := b.podByUID(ctx, uid); holder != nil {
			r := refuse("reservation %s of %s is held by pod %s/%s; this pod gets it once that pod is gone", name, res.Spec.PublicIP, holder.Namespace, holder.Name)
			r.retry = heldRecheck
			return grant{}, r
		}
	}
	if a, ok := b.inv.get(res.Spec.AllocationID); ok && (a.AssociationID == "" || a.PrivateIP != pod.Status.PodIP) {
		// Not bound to the pod yet: an address two pools select is served
		// by neither.
		if owners := pools.Of(a.Tags, cachePools{ctx: ctx, reader: b.Client}.Pools()); len(owners) > 1 {
			r := refuse("reserved address %s is selected by pools %s, and an address belongs to one pool only; no pool serves it until an admin changes its tags or the selectors",
				res.Spec.PublicIP, pools.Names(owners))
			r.retry = DefaultSweepInterval // tags change in EC2, which the sweep reads
			return grant{}, r
		}
	}
	g.res = res
	return g, nil
}

// heldRecheck is how often a pod whose reservation another pod still holds
// looks again.
const heldRecheck = 5 * time.Second

// reservedFor says why a reservation does not serve what pod asks, or ""
// when it does: it must have been made for the pod (madeFor), of the pool
// and in the mode the pod asks for.
func reservedFor(res *v1alpha1.EIPReservation, pod *corev1.Pod, pool string, mode api.Mode) string {
	why := madeFor(res, pod)
	if res.Spec.Pool != pool {
		why = append(why, fmt.Sprintf("it is of EIPPool %q", res.Spec.Pool))
	}
	if string(res.Spec.Mode) != string(mode) {
		why = append(why, fmt.Sprintf("it is for mode %s", res.Spec.Mode))
	}
	return strings.Join(why, ", ")
}

// cachePools reads the pools from the binder's cache for authz.
type cachePools struct {
	ctx    context.Context
	reader client.Reader
}

func (c cachePools) Pool(name string) (*v1alpha1.EIPPool, bool) {
	p := &v1alpha1.EIPPool{}
	if err := c.reader.Get(c.ctx, client.ObjectKey{Name: name}, p); err != nil {
		return nil, false
	}
	return p, true
}

func (c cachePools) Pools() []v1alpha1.EIPPool {
	var list v1alpha1.EIPPoolList
	if err := c.reader.List(c.ctx, &list); err != nil {
		return nil
	}
	return list.Items
}

// podByUID returns the pod with this UID from the cache, or nil.
func (b *Binder) podByUID(ctx context.Context, uid string) *corev1.Pod {
	var pods corev1.PodList
	if err := b.Client.List(ctx, &pods, client.MatchingFields{indexUID: uid}); err != nil || len(pods.Items) == 0 {
		return nil
	}
	return &pods.Items[0]
}
