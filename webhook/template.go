package webhook

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// TemplateInput is a pod, or the pod template of a workload, as far as the
// rules that do not depend on a live pod read it.
type TemplateInput struct {
	Annotations map[string]string
	Spec        *corev1.PodSpec
	// Named is true when each pod has a name of its own at admission: a pod
	// created with one, or a StatefulSet's. Pods from generateName (those
	// of Deployments, ReplicaSets, DaemonSets and Jobs) have none yet.
	Named     bool
	Namespace *corev1.Namespace
	Pools     authz.Pools
}

// TemplateDecision is what a template asks for and whether it may.
type TemplateDecision struct {
	// Request is what the pods ask for; nil when they ask nothing.
	Request *api.Request
	// Pool is the resolved EIPPool of pool and sticky-with-pool requests.
	Pool *v1alpha1.EIPPool
	// Denial, when set, refuses every pod of the template.
	Denial   []api.Problem
	Warnings []string
}

// DecideTemplate applies every admission rule that holds for all pods of a
// template alike: the annotations parse (modes, keys, BYOIP ids, legacy
// and new annotations agreeing), the spec can carry an address of its own,
// and the namespace may draw from the pool and BYOIP source asked for. Pod
// admission (Decide) and workload admission (DecideWorkload) both start
// from it, so a template is refused with the words its pods would be. It is
// a pure function of its input.
func DecideTemplate(in TemplateInput) TemplateDecision {
	req, problems, warnings := api.ParseRequest(in.Annotations)
	d := TemplateDecision{Request: req, Warnings: warnings, Denial: problems}
	if len(d.Denial) > 0 || req == nil {
		return d
	}
	if in.Spec.HostNetwork {
		return d.deny(api.AnnotationMode, "pods with hostNetwork: true share their node's address and cannot get an Elastic IP of their own; remove hostNetwork, or give the node an address instead")
	}
	for i, c := range in.Spec.Containers {
		if c.Name == api.WaitContainerName {
			return d.deny(api.AnnotationMode, fmt.Sprintf("spec.containers[%d]: the name %s is kube-eip's (its injected init container); rename the container", i, api.WaitContainerName))
		}
	}
	if req.Mode == api.ModeSticky && !in.Named {
		return d.deny(api.AnnotationMode, stickyNeedsName)
	}
	pool, problem := authz.Check(req, in.Namespace, in.Pools)
	if problem != nil {
		return d.deny(problem.Key, problem.Message)
	}
	d.Pool = pool
	return d
}

const stickyNeedsName = "mode sticky ties the address to the pod's name, and pods from generateName (those of Deployments, ReplicaSets, DaemonSets and Jobs) have none when they are admitted; " +
	"use a StatefulSet or a named pod, or mode pool"

func (d TemplateDecision) deny(key, msg string) TemplateDecision {
	d.Denial = append(d.Denial, api.Problem{Key: key, Message: msg})
	return d
}
