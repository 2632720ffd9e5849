package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// WorkloadsPath is where the API server sends workload admission reviews.
const WorkloadsPath = "/validate-workloads"

// WorkloadHandler is the admission.Handler for workloads: decode, then
// DecideWorkload. It only validates; nothing is reserved for a workload.
type WorkloadHandler struct {
	State      State
	Namespaces func(ctx context.Context, name string) (*corev1.Namespace, error)
}

// Handle implements admission.Handler.
func (h *WorkloadHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	w, err := decodeWorkload(req.Kind, req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the %s: %w", req.Kind.Kind, err))
	}
	if w.Name == "" {
		w.Name = req.Name
	}
	in := WorkloadInput{Workload: w, State: h.State}
	if req.Operation == admissionv1.Update {
		if in.Old, err = decodeWorkload(req.Kind, req.OldObject.Raw); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the old %s: %w", req.Kind.Kind, err))
		}
	}
	if in.Namespace, err = h.Namespaces(ctx, req.Namespace); err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %s: %w", req.Namespace, err))
	}
	plan := DecideWorkload(in)
	workloadDecisions.WithLabelValues(w.Kind, string(req.Operation), workloadResult(plan)).Inc()
	if len(plan.Denial) > 0 {
		return admission.Denied(plan.Message(w)).WithWarnings(plan.Warnings...)
	}
	return admission.Allowed("").WithWarnings(plan.Warnings...)
}

func workloadResult(plan WorkloadPlan) string {
	switch {
	case len(plan.Denial) > 0:
		return "denied"
	case len(plan.Warnings) > 0:
		return "warned"
	default:
		return "admitted"
	}
}

// decodeWorkload reads the workload of kind from its JSON: its pod
// template, and how many pods it runs and surges.
func decodeWorkload(kind metav1.GroupVersionKind, raw []byte) (*Workload, error) {
	switch kind.Group + "/" + kind.Kind {
	case "apps/Deployment":
		var d appsv1.Deployment
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, err
		}
		replicas := int(ptr.Deref(d.Spec.Replicas, 1))
		return &Workload{Kind: kind.Kind, Name: d.Name, TemplatePath: "spec.template", Template: d.Spec.Template,
			Pods: replicas, PodsField: "spec.replicas", Surge: surge(d.Spec.Strategy, replicas)}, nil
	case "apps/StatefulSet":
		var s appsv1.StatefulSet
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		// A rolling update replaces each pod in place: no surge.
		return &Workload{Kind: kind.Kind, Name: s.Name, TemplatePath: "spec.template", Template: s.Spec.Template,
			Pods: int(ptr.Deref(s.Spec.Replicas, 1)), PodsField: "spec.replicas"}, nil
	case "apps/ReplicaSet":
		var r appsv1.ReplicaSet
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		return &Workload{Kind: kind.Kind, Name: r.Name, TemplatePath: "spec.template", Template: r.Spec.Template,
			Pods: int(ptr.Deref(r.Spec.Replicas, 1)), PodsField: "spec.replicas"}, nil
	case "apps/DaemonSet":
		var d appsv1.DaemonSet
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, err
		}
		return &Workload{Kind: kind.Kind, Name: d.Name, TemplatePath: "spec.template", Template: d.Spec.Template, Pods: -1}, nil
	case "batch/Job":
		var j batchv1.Job
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &Workload{Kind: kind.Kind, Name: j.Name, TemplatePath: "spec.template", Template: j.Spec.Template,
			Pods: jobPods(j.Spec), PodsField: "spec.parallelism"}, nil
	case "batch/CronJob":
		var c batchv1.CronJob
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		return &Workload{Kind: kind.Kind, Name: c.Name, TemplatePath: "spec.jobTemplate.spec.template", Template: c.Spec.JobTemplate.Spec.Template,
			Pods: jobPods(c.Spec.JobTemplate.Spec), PodsField: "spec.jobTemplate.spec.parallelism"}, nil
	}
	return nil, fmt.Errorf("kind %s/%s is not a workload kube-eip validates", kind.Group, kind.Kind)
}

// surge is how many pods a Deployment's rolling update starts above its
// replicas, rounded up as the Deployment controller rounds it.
func surge(s appsv1.DeploymentStrategy, replicas int) int {
	if s.Type == appsv1.RecreateDeploymentStrategyType {
		return 0
	}
	maxSurge := intstr.FromString("25%") // the API server's default
	if s.RollingUpdate != nil && s.RollingUpdate.MaxSurge != nil {
		maxSurge = *s.RollingUpdate.MaxSurge
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&maxSurge, replicas, true)
	if err != nil {
		return 0 // the API server's validation refuses it first
	}
	return max(0, n)
}

// jobPods is how many of a Job's pods run at once.
func jobPods(s batchv1.JobSpec) int {
	if ptr.Deref(s.Suspend, false) {
		return 0
	}
	n := int(ptr.Deref(s.Parallelism, 1))
	if s.Completions != nil {
		n = min(n, int(*s.Completions))
	}
	return n
}
