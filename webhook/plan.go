// Package webhook is kube-eip's mutating admission webhook for pods: it
// validates the kube-eip.io/ annotations, reserves an address of an EIPPool
// for pool and sticky pods, and injects the init container that waits until
// the binder has attached the address.
package webhook

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// State is what admission knows of the cluster, read from informer caches:
// no call leaves the process while a request is decided.
type State interface {
	authz.Pools
	// Reserved reports whether an address is held by a reservation.
	Reserved(allocationID string) bool
	// StickyReservation returns the reservation held for a pod identity
	// ("<namespace>/<name>") in a pool.
	StickyReservation(pool, owner string) (*v1alpha1.EIPReservation, bool)
	// ClaimInUse reports whether an existing pod, in any namespace, carries
	// the claim token.
	ClaimInUse(claim string) bool
	// AddressesHeld counts the namespace's pods that hold an address or
	// wait for one (they carry kube-eip's release finalizer).
	AddressesHeld(namespace string) int
	// Account is the binder's last count of the AWS account's Elastic IPs;
	// known is false until it published one.
	Account() (acct api.Account, known bool)
}

// Input is one pod's creation, decoded.
type Input struct {
	Pod       *corev1.Pod
	Namespace *corev1.Namespace
	State     State
	// Prior is the reservation named by the pod's kube-eip.io/reservation
	// annotation at CREATE, read from the API server: it tells a
	// reinvocation (our reservation, unclaimed) from a manifest copied
	// from a live pod (someone else's reservation, or none).
	Prior *v1alpha1.EIPReservation
}

// Plan is the decision on a request, before any side effect.
type Plan struct {
	// Denial, when set, refuses the request; nothing else applies.
	Denial []api.Problem
	// Warnings are returned to the user either way.
	Warnings []string
	// Request is what the pod asks for; nil when it asks nothing.
	Request *api.Request
	// Pool is the resolved EIPPool for pool and sticky requests.
	Pool *v1alpha1.EIPPool
	// Existing is the sticky reservation the pod takes over, if any.
	Existing *v1alpha1.EIPReservation
	// Candidates are the pool's addresses to try to reserve, in order.
	Candidates []v1alpha1.PoolAddress
	// Admitted is true when admission already handled this pod (a
	// reinvocation): no new reservation is made.
	Admitted bool
	// Reservation is the reservation a reinvocation keeps.
	Reservation *v1alpha1.EIPReservation
	// Claim is the pod's claim token when it is kept (a reinvocation);
	// empty means a new one is made.
	Claim string
	// Group is the network border group the candidates are of; empty
	// when admission cannot tell where the pod runs.
	Group string
}

// Decide validates a request against the cluster's state. It is a pure
// function of its input.
func Decide(in Input) Plan {
	pod := in.Pod
	t := DecideTemplate(TemplateInput{
		Annotations: pod.Annotations, Spec: &pod.Spec, Named: pod.Name != "",
		Namespace: in.Namespace, Pools: in.State,
	})
	plan := Plan{Request: t.Request, Warnings: t.Warnings, Denial: t.Denial}
	if len(plan.Denial) > 0 || plan.Request == nil {
		return plan
	}
	req, pool := t.Request, t.Pool
	// A claim already on the pod is kept only on a reinvocation, when no
	// pod carries it yet. Copied from a live pod's manifest it would tie
	// this pod to that pod's address.
	if claim := pod.Annotations[api.AnnotationClaim]; api.ValidClaim(claim) && !in.State.ClaimInUse(claim) {
		plan.Claim = claim
		if p := in.Prior; p != nil && p.Spec.Claim == claim && p.Spec.PodNamespace == pod.Namespace && p.Status.PodUID == "" {
			// The first pass reserved this for the same pod.
			plan.Admitted, plan.Reservation = true, p
		}
	}
	if plan.Admitted {
		// The first pass counted and reserved for this pod already.
		plan.Pool = pool
		return plan
	}
	if _, capped, _ := authz.Cap(in.Namespace); capped {
		// Counted only where an admin set a cap: the count reads every
		// managed pod of the namespace.
		if problem := authz.OverCap(in.Namespace, in.State.AddressesHeld(pod.Namespace)); problem != nil {
			return deny(plan, problem.Key, problem.Message)
		}
	}
	if pool == nil {
		return plan // the binder allocates; nothing to reserve
	}
	plan.Pool = pool
	owner := ""
	if req.Mode == api.ModeSticky {
		owner = pod.Namespace + "/" + pod.Name
		if r, ok := in.State.StickyReservation(pool.Name, owner); ok {
			plan.Existing = r
			return plan
		}
	}
	acct, known := in.State.Account()
	group, problem := borderGroup(&pod.Spec, acct, known)
	if problem != nil {
		return deny(plan, problem.Key, problem.Message)
	}
	plan.Group = group
	plan.Candidates = candidates(pool, pinnedForms(pod.Namespace, owner, pod.Name), in.State, group)
	if len(plan.Candidates) == 0 {
		return deny(plan, authz.PoolKey(req), exhausted(pool, group))
	}
	return plan
}

// pinnedForms are the values a pool's stickyTag may hold for a pod
// identity: owner, and the shortened form of a stickyTag too long for
// EC2. An empty owner (not sticky) pins nothing.
func pinnedForms(namespace, owner, name string) []string {
	if owner == "" {
		return nil
	}
	return []string{owner, api.OwnerTag(namespace, name)}
}

func deny(plan Plan, key, msg string) Plan {
	plan.Denial = append(plan.Denial, api.Problem{Key: key, Message: msg})
	return plan
}

// candidates lists the pool's addresses that can be reserved: pinned to
// the pod's identity first (sticky: owner, in each form it may be written),
// then free ones, of the pod's network border group (group). Addresses
// pinned to another pod identity, associated outside kube-eip or reserved
// are left out.
func candidates(pool *v1alpha1.EIPPool, owner []string, state State, group string) []v1alpha1.PoolAddress {
	var pinned, free []v1alpha1.PoolAddress
	for _, a := range pool.Status.Addresses {
		if a.AssociatedElsewhere || a.Node != "" || state.Reserved(a.AllocationID) || !api.SameBorderGroup(a.NetworkBorderGroup, group) {
			continue
		}
		switch {
		case a.StickyOwner != "" && slices.Contains(owner, a.StickyOwner):
			pinned = append(pinned, a)
		case a.StickyOwner == "":
			free = append(free, a)
		}
	}
	return append(pinned, free...)
}

func exhausted(pool *v1alpha1.EIPPool, group string) string {
	what, held := "free address", "all reserved, bound or in use elsewhere"
	if group != "" && slices.ContainsFunc(pool.Status.Addresses, func(a v1alpha1.PoolAddress) bool {
		return !api.SameBorderGroup(a.NetworkBorderGroup, group)
	}) {
		what = "free address of network border group " + group + ", where the pod runs (an Elastic IP is associated only within its group)"
		held = "reserved, bound, in use elsewhere or of another group"
	}
	return fmt.Sprintf("EIPPool %q has no %s (%d in the pool, %s); "+
		"add Elastic IPs carrying its tags%s, or wait for pods holding one to go (kubectl get eipreservations)",
		pool.Name, what, len(pool.Status.Addresses), held, growthHint(pool))
}

func growthHint(pool *v1alpha1.EIPPool) string {
	if pool.Spec.Growth == nil {
		return ", enable spec.growth"
	}
	return ""
}
