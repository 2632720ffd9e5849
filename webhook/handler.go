package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/authz"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/internal/owners"
)

// Path is where the API server sends pod admission reviews.
const Path = "/mutate-pods"

// Handler is the admission.Handler for pods: decode, Decide, reserve, Inject.
type Handler struct {
	State State
	// Reservation reads a reservation from the API server (not a cache).
	Reservation func(ctx context.Context, name string) (*v1alpha1.EIPReservation, error)
	Namespaces  func(ctx context.Context, name string) (*corev1.Namespace, error)
	Reserver    Reserver
	Config      InjectConfig
	// Refusals, when set, hears of every pod refused outside a dry run,
	// so that the workload behind it is told (owners.Reporter).
	Refusals owners.Sink
}

// Reserver makes the reservation a plan asks for.
type Reserver interface {
	Reserve(ctx context.Context, plan Plan, pod *corev1.Pod, claim string) (*v1alpha1.EIPReservation, error)
}

// errExhausted is returned by a Reserver that lost every candidate to
// concurrent admissions.
var errExhausted = errors.New("no free address left")

// NewHandler returns the handler.
func NewHandler(h Handler) *Handler { return &h }

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		// Registered for creates only: what an update may change of
		// kube-eip's is the admission policy's to judge, in the API server,
		// so that no update waits on this webhook.
		return admission.Allowed("")
	}
	// The API server sends pods as JSON of core/v1, so plain unmarshalling
	// does (the scheme-driven decoder first scans the whole document for
	// its kind), of only the fields admission uses.
	pod, err := decodePod(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding pod: %w", err))
	}
	return h.admit(ctx, req, pod)
}

// admit decides on a decoded pod, and reserves and injects what the
// decision asks for.
func (h *Handler) admit(ctx context.Context, req admission.Request, pod *corev1.Pod) admission.Response {
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	in := Input{Pod: pod, State: h.State}
	ns, err := h.Namespaces(ctx, pod.Namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %s: %w", pod.Namespace, err))
	}
	in.Namespace = ns
	if name := pod.Annotations[api.AnnotationReservation]; name != "" && h.Reservation != nil {
		if in.Prior, err = h.Reservation(ctx, name); err != nil {
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading reservation %s: %w", name, err))
		}
	}

	plan := Decide(in)
	decisions.WithLabelValues(string(req.Operation), result(plan)).Inc()
	if len(plan.Denial) > 0 {
		return h.deny(req, pod, plan.Denial, plan.Warnings)
	}

	// A container or volume that bears kube-eip's name but is not what
	// kube-eip injects goes; kube-eip's own takes its place.
	orig, removals, warnings := withoutImpostors(pod, h.Config)
	warnings = append(plan.Warnings, warnings...)
	mutated := orig.DeepCopy()
	// Only kube-eip writes its keys. What admission wrote is kept only on a
	// reinvocation; copied from another pod it would tie this pod to that
	// pod's address, and what the binder writes would make the wait
	// container pass with another pod's address.
	stripSystemKeys(mutated)
	if plan.Request == nil {
		return patch(orig, mutated, removals, warnings)
	}
	claim := plan.Claim
	var res *v1alpha1.EIPReservation
	switch {
	case plan.Admitted:
		res = plan.Reservation
	case plan.Existing != nil:
		res, claim = plan.Existing, plan.Existing.Spec.Claim
	case len(plan.Candidates) > 0 && isDryRun(req):
		// A dry run reserves nothing (sideEffects: NoneOnDryRun).
	case len(plan.Candidates) > 0:
		if claim == "" {
			claim = newClaim()
		}
		var err error
		if res, err = h.Reserver.Reserve(ctx, plan, pod, claim); errors.Is(err, errExhausted) {
			decisions.WithLabelValues(string(req.Operation), "exhausted").Inc()
			return h.deny(req, pod, []api.Problem{{Key: authz.PoolKey(plan.Request), Message: exhausted(plan.Pool, plan.Group)}}, warnings)
		} else if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
	}
	if claim == "" {
		claim = newClaim()
	}
	Inject(mutated, h.Config, claim, res)
	return patch(orig, mutated, removals, warnings)
}

// deny refuses the pod and, outside a dry run, tells Refusals.
func (h *Handler) deny(req admission.Request, pod *corev1.Pod, problems []api.Problem, warnings []string) admission.Response {
	msg := denialMessage(problems)
	if h.Refusals != nil && !isDryRun(req) {
		h.Refusals.Report(pod, api.EventRefused, "Admit", "pods are refused at creation: "+msg)
	}
	return admission.Denied(msg).WithWarnings(warnings...)
}

// stripSystemKeys removes every key kube-eip writes; Inject puts back what
// admission owns.
func stripSystemKeys(pod *corev1.Pod) {
	for _, k := range api.SystemKeys() {
		delete(pod.Annotations, k)
		delete(pod.Labels, k)
	}
}

// patch answers with first, then the patch from orig to mutated.
func patch(orig, mutated *corev1.Pod, first []jsonpatch.JsonPatchOperation, warnings []string) admission.Response {
	return admission.Patched("", append(first, patchOps(orig, mutated)...)...).WithWarnings(warnings...)
}

func isDryRun(req admission.Request) bool { return req.DryRun != nil && *req.DryRun }

func denialMessage(problems []api.Problem) string {
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "; ")
}

func result(plan Plan) string {
	switch {
	case len(plan.Denial) > 0:
		return "denied"
	case plan.Request == nil:
		return "ignored"
	default:
		return "admitted"
	}
}

func newClaim() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
