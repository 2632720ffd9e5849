package webhook

import (
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// WebhookName is the name of kube-eip's webhook inside its configuration.
const WebhookName = "pods.kube-eip.io"

// Registration says how the API server reaches the webhook.
type Registration struct {
	// Name of the MutatingWebhookConfiguration.
	Name string
	// Either URL (a dev stack on loopback) or Service (in cluster).
	URL     string
	Service *admissionregistrationv1.ServiceReference
	// CABundle verifies the webhook's serving certificate.
	CABundle []byte
	// OwnNamespace is excluded, so the webhook never blocks itself.
	OwnNamespace string
	// TimeoutSeconds bounds each call (default 5).
	TimeoutSeconds int32
	// Exempt are users whose requests never reach the webhook: kube-eip's
	// own identities, so that no work of theirs waits on it.
	Exempt []string
}

// hasEIPAnnotations is api.HasEIPAnnotations in CEL, of obj's annotations.
func hasEIPAnnotations(obj string) string {
	return fmt.Sprintf("(has(%[1]s.metadata.annotations) && %[1]s.metadata.annotations.exists(k, (k.startsWith(%[2]q) && !(k in %[3]s)) || k.startsWith(%[4]q)))",
		obj, api.Prefix, celList(api.SystemKeys()), api.LegacyPrefix)
}

func celList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// clientConfig is how the API server reaches path of the webhook.
func (reg Registration) clientConfig(path string) admissionregistrationv1.WebhookClientConfig {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: reg.CABundle}
	if reg.URL != "" {
		cc.URL = ptr.To(strings.TrimSuffix(reg.URL, "/") + path)
	} else {
		svc := *reg.Service
		svc.Path = ptr.To(path)
		cc.Service = &svc
	}
	return cc
}

// Names of the validating webhooks inside their configuration.
const (
	PoolsWebhookName     = "eippools.kube-eip.io"
	WorkloadsWebhookName = "workloads.kube-eip.io"
	CronJobsWebhookName  = "cronjobs.kube-eip.io"
)

// ValidatingConfiguration returns the ValidatingWebhookConfiguration of
// kube-eip's validating webhooks:
//
//   - EIPPool creates and updates, refused when the pool's selector
//     certainly shares addresses with another's (PoolHandler);
//   - the pod templates of workloads applied in opted-in namespaces
//     (WorkloadHandler), so that a template its pods would be refused for is
//     refused where the user applied it.
func ValidatingConfiguration(reg Registration) *admissionregistrationv1.ValidatingWebhookConfiguration {
	if reg.TimeoutSeconds == 0 {
		reg.TimeoutSeconds = 5
	}
	pools := admissionregistrationv1.ValidatingWebhook{
		Name:                    PoolsWebhookName,
		ClientConfig:            reg.clientConfig(PoolsPath),
		AdmissionReviewVersions: []string{"v1"},
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
		TimeoutSeconds:          ptr.To(reg.TimeoutSeconds),
		MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{v1alpha1.GroupVersion.Group}, APIVersions: []string{"*"}, Resources: []string{"eippools"},
				Scope: ptr.To(admissionregistrationv1.ClusterScope),
			},
		}},
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: reg.Name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			pools,
			reg.workloadWebhook(WorkloadsWebhookName, "object.spec.template",
				admissionregistrationv1.Rule{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets", "replicasets"}},
				admissionregistrationv1.Rule{APIGroups: []string{"batch"}, Resources: []string{"jobs"}}),
			reg.workloadWebhook(CronJobsWebhookName, "object.spec.jobTemplate.spec.template",
				admissionregistrationv1.Rule{APIGroups: []string{"batch"}, Resources: []string{"cronjobs"}}),
		},
	}
}

// workloadWebhook sends the API server's creates and updates of rules'
// workloads whose pod template, at template, carries kube-eip's keys.
//
// It fails open (Ignore): a workload is not an address, and every pod it
// makes still meets pod admission, which fails closed. An outage of this
// webhook costs a user the early refusal, never a pod the wrong address.
//
// Not sent: objects a controller owns (a Deployment's ReplicaSets, a
// CronJob's Jobs), checked already as their owner and never applied by a
// user, so no controller's work waits on this webhook; and updates that
// leave the spec alone (status, labels, the Deployment controller's
// revision annotation).
func (reg Registration) workloadWebhook(name, template string, rules ...admissionregistrationv1.Rule) admissionregistrationv1.ValidatingWebhook {
	ops := make([]admissionregistrationv1.RuleWithOperations, len(rules))
	for i, r := range rules {
		r.APIVersions = []string{"v1"}
		r.Scope = ptr.To(admissionregistrationv1.NamespacedScope)
		ops[i] = admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule:       r,
		}
	}
	return admissionregistrationv1.ValidatingWebhook{
		Name:                    name,
		ClientConfig:            reg.clientConfig(WorkloadsPath),
		AdmissionReviewVersions: []string{"v1"},
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
		TimeoutSeconds:          ptr.To(reg.TimeoutSeconds),
		MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		Rules:                   ops,
		NamespaceSelector:       reg.namespaceSelector(),
		MatchConditions: []admissionregistrationv1.MatchCondition{
			{Name: "template-asks-for-an-eip", Expression: guarded(template, hasEIPAnnotations(template))},
			{Name: "not-owned-by-a-controller", Expression: "!has(object.metadata.ownerReferences) || !object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller)"},
			{Name: "spec-changed", Expression: "request.operation != 'UPDATE' || object.spec != oldObject.spec"},
		},
	}
}

// guarded is expr behind has() of each field on the way to path
// (object.spec.template: object.spec, then .template, then .metadata), so
// that an object without them is not an evaluation error but false.
func guarded(path, expr string) string {
	parts := strings.Split(path, ".")
	var guards []string
	for i := 2; i <= len(parts); i++ {
		guards = append(guards, "has("+strings.Join(parts[:i], ".")+")")
	}
	guards = append(guards, "has("+path+".metadata)", expr)
	return strings.Join(guards, " && ")
}

// namespaceSelector selects the opted-in namespaces, less kube-system and
// kube-eip's own, so that the webhook never blocks itself.
func (reg Registration) namespaceSelector() *metav1.LabelSelector {
	excluded := []string{metav1.NamespaceSystem}
	if reg.OwnNamespace != "" && reg.OwnNamespace != metav1.NamespaceSystem {
		excluded = append(excluded, reg.OwnNamespace)
	}
	return &metav1.LabelSelector{
		MatchLabels: map[string]string{api.LabelInjection: api.InjectionEnabled},
		MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excluded,
		}},
	}
}

// Configuration returns the MutatingWebhookConfiguration for reg.
func Configuration(reg Registration) *admissionregistrationv1.MutatingWebhookConfiguration {
	if reg.TimeoutSeconds == 0 {
		reg.TimeoutSeconds = 5
	}
	clientConfig := reg.clientConfig(Path)
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: reg.Name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    WebhookName,
			ClientConfig:            clientConfig,
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			TimeoutSeconds:          ptr.To(reg.TimeoutSeconds),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			// Creates only: what an update may change of kube-eip's is judged
			// by the admission policy (AdmissionPolicies), inside the API
			// server, so that no update waits on the webhook.
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			NamespaceSelector: reg.namespaceSelector(),
			MatchConditions:   matchConditions(reg.Exempt),
		}},
	}
}

// matchConditions send the webhook only pods that ask something of
// kube-eip (api.HasEIPAnnotations, in CEL), so a webhook outage blocks only
// pods that asked for an address, and none of exempt's requests.
func matchConditions(exempt []string) []admissionregistrationv1.MatchCondition {
	conds := []admissionregistrationv1.MatchCondition{{Name: "asks-for-an-eip", Expression: hasEIPAnnotations("object")}}
	if len(exempt) > 0 {
		conds = append(conds, admissionregistrationv1.MatchCondition{Name: "not-kube-eip", Expression: "!(request.userInfo.username in " + celList(exempt) + ")"})
	}
	return conds
}
