package webhook

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// Workload is a controller of pods (a Deployment, StatefulSet, DaemonSet,
// ReplicaSet, Job or CronJob) as workload admission reads it.
type Workload struct {
	// Kind and Name name it in messages.
	Kind string
	Name string
	// TemplatePath is where its pod template sits: spec.template, or a
	// CronJob's spec.jobTemplate.spec.template.
	TemplatePath string
	Template     corev1.PodTemplateSpec
	// Pods is how many of its pods run at once: its replicas, or a Job's
	// parallelism (no more than its completions). Negative when that is not
	// known here: a DaemonSet runs one pod per node it selects.
	Pods int
	// PodsField is the field Pods comes from, for messages.
	PodsField string
	// Surge is how many new pods a rolling update starts before old ones
	// give their addresses back: a Deployment's maxSurge, resolved against
	// its replicas as the Deployment controller does.
	Surge int
}

// Named reports whether each of its pods has a name of its own when it is
// admitted, as a StatefulSet's have; other controllers create pods from
// generateName.
func (w *Workload) Named() bool { return w.Kind == "StatefulSet" }

func (w *Workload) String() string { return fmt.Sprintf("%s %q", w.Kind, w.Name) }

// WorkloadInput is one create or update of a workload, decoded.
type WorkloadInput struct {
	Workload *Workload
	// Old is the workload before an update; nil for a create.
	Old       *Workload
	Namespace *corev1.Namespace
	State     State
}

// WorkloadPlan is the decision on a workload.
type WorkloadPlan struct {
	// Denial, when set, refuses the request: the pod template's problems,
	// in the words pod admission would refuse each of its pods with.
	Denial []api.Problem
	// Warnings name the workload; they are returned either way.
	Warnings []string
}

// Message is the denial as the user reads it: the workload and where its
// template is, then what pod admission would say.
func (p WorkloadPlan) Message(w *Workload) string {
	return fmt.Sprintf("%s (%s): %s", w, w.TemplatePath, denialMessage(p.Denial))
}

// DecideWorkload judges a workload's pod template by the rules every one of
// its pods will meet at admission (DecideTemplate), and warns where the
// addresses it asks for are not there: the namespace's cap too small, a
// pool with fewer free addresses than its pods, a sticky StatefulSet larger
// than its pool, the account's quota too small for the addresses the binder
// allocates, or a rolling update whose surge needs addresses nobody has.
// Capacity only warns: it changes from one moment to the next, and a
// workload is not an address. It is a pure function of its input.
func DecideWorkload(in WorkloadInput) WorkloadPlan {
	w := in.Workload
	t := DecideTemplate(TemplateInput{
		Annotations: w.Template.Annotations, Spec: &w.Template.Spec, Named: w.Named(),
		Namespace: in.Namespace, Pools: in.State,
	})
	plan := WorkloadPlan{}
	for _, warning := range t.Warnings {
		plan.warn(w, "%s", warning)
	}
	templateChanged := in.Old == nil || !equality.Semantic.DeepEqual(in.Old.Template, w.Template)
	if len(t.Denial) > 0 {
		if templateChanged {
			plan.Denial = t.Denial
			return plan
		}
		// The template was admitted once, and its pods are refused now (its
		// pool went, the namespace was closed). This update is not about the
		// template: refusing it would refuse a scale-down too.
		plan.warn(w, "its pods are refused at creation: %s", denialMessage(t.Denial))
		return plan
	}
	if t.Request == nil || w.Pods < 0 {
		return plan
	}
	// start is how many pods this change starts; a rolling update of a
	// changed template also holds surge new pods beside the old ones.
	start, surge := w.Pods, w.Surge
	if in.Old != nil {
		start = max(0, w.Pods-in.Old.Pods)
	}
	if !templateChanged {
		surge = 0 // no rollout now; the next template change warns
	}
	ns := in.Namespace
	// A namespace's cap counts every address its pods hold, whatever the
	// mode, as pod admission counts them.
	limit, capped, problem := authz.Cap(ns)
	switch {
	case problem != nil:
		plan.warn(w, "its pods are refused at creation: %s", problem.Message)
	case capped:
		held := in.State.AddressesHeld(ns.Name)
		plan.check(w, room{
			free: max(0, limit-held),
			what: fmt.Sprintf("namespace %q holds %d of its %d addresses (%s)", ns.Name, held, limit, authz.AnnotationMaxAddresses),
			then: "will be refused at creation; ask a cluster admin to raise the cap",
		}, start, surge)
	}
	switch {
	case t.Pool != nil && t.Request.Mode == api.ModeSticky:
		plan.checkStickyPool(w, ns.Name, t.Pool, in.State)
	case t.Pool != nil:
		plan.check(w, poolRoom(t.Pool, in.State), start, surge)
	default:
		// The binder allocates, as far as the account's quota goes.
		if acct, known := in.State.Account(); known {
			plan.check(w, room{
				free: acct.Room(),
				what: fmt.Sprintf("the AWS account has %d of its %d Elastic IPs in the region allocated (kube-eip's last count)", acct.Allocated, acct.Quota),
				then: "will wait without an address until Elastic IPs are released or the quota is raised (Service Quotas: EC2-VPC Elastic IPs)",
			}, start, surge)
		}
	}
	return plan
}

// room is how many more pods a source of addresses can serve, and how to
// say it.
type room struct {
	free int
	// what states the source's numbers; then is what becomes of the pods
	// it cannot serve.
	what, then string
}

func poolRoom(pool *v1alpha1.EIPPool, state State) room {
	free := len(candidates(pool, nil, state, ""))
	r := room{free: free,
		what: fmt.Sprintf("EIPPool %q has %d free %s", pool.Name, free, plural(free, "address", "addresses")),
		then: fmt.Sprintf("will be refused at creation until addresses are free (kubectl get eippool %s)", pool.Name),
	}
	if g := pool.Spec.Growth; g != nil {
		if grow := int(g.MaxAddresses) - len(pool.Status.Addresses); grow > 0 {
			r.free += grow
			r.what += fmt.Sprintf(" and may grow by %d (spec.growth.maxAddresses %d)", grow, g.MaxAddresses)
			r.then = "will be refused at creation until the pool has grown or addresses are free"
		}
	}
	return r
}

// check warns when r cannot serve the start pods of this change, or, when
// it can, the surge a rolling update adds to them.
func (p *WorkloadPlan) check(w *Workload, r room, start, surge int) {
	if start > r.free {
		p.warn(w, "%s for %d %s (%s): %d of them %s", r.what, start, morePods(start, start != w.Pods), w.PodsField, start-r.free, r.then)
		return
	}
	if surge > 0 && start+surge > r.free {
		left := r.free - start
		p.warn(w, "%s, and a rolling update starts %d new %s (maxSurge) before old ones give theirs back, with room for %d after this change's pods: "+
			"the rollout would wait for an address; set spec.strategy.rollingUpdate.maxSurge to 0 and maxUnavailable to 1 or more, or make room",
			r.what, surge, plural(surge, "pod", "pods"), left)
	}
}

// checkStickyPool warns when a sticky StatefulSet's pod names cannot each
// keep an address of the pool: more replicas than the pool holds, or fewer
// free addresses than names without one.
func (p *WorkloadPlan) checkStickyPool(w *Workload, namespace string, pool *v1alpha1.EIPPool, state State) {
	usable := 0
	for _, a := range pool.Status.Addresses {
		if !a.AssociatedElsewhere {
			usable++
		}
	}
	if w.Pods > usable {
		p.warn(w, "%s is %d replicas and EIPPool %q has %d usable %s: each replica keeps an address of its own, so %d of its pods will never get one; add addresses to the pool or lower spec.replicas",
			w, w.Pods, pool.Name, usable, plural(usable, "address", "addresses"), w.Pods-usable)
		return
	}
	var pinned []string
	kept := 0
	for i := range w.Pods {
		name := fmt.Sprintf("%s-%d", w.Name, i)
		owner := namespace + "/" + name
		if _, ok := state.StickyReservation(pool.Name, owner); ok {
			kept++
			continue
		}
		pinned = append(pinned, pinnedForms(namespace, owner, name)...)
	}
	missing, free := w.Pods-kept, len(candidates(pool, pinned, state, ""))
	if missing > free {
		p.warn(w, "EIPPool %q has %d free %s for the %d of its pods that hold none yet (%d keep theirs): %d of them will be refused at creation until addresses are free (kubectl get eippool %s)",
			pool.Name, free, plural(free, "address", "addresses"), missing, kept, missing-free, pool.Name)
	}
}

func (p *WorkloadPlan) warn(w *Workload, format string, args ...any) {
	p.Warnings = append(p.Warnings, w.String()+": "+fmt.Sprintf(format, args...))
}

// morePods is "pods", or "more pods" when a change adds to those running.
func morePods(n int, more bool) string {
	s := plural(n, "pod", "pods")
	if more {
		return "more " + s
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
