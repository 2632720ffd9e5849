package webhook

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// Identities are the users kube-eip's components act as: only they may
// write kube-eip's keys on pods, and EIPReservations.
type Identities struct {
	// Webhook creates reservations and marks them claimed.
	Webhook string
	// Binder writes the bind's label, annotations and condition on pods,
	// and updates and deletes reservations.
	Binder string
}

// ServiceAccountUser is the user name a service account authenticates as.
func ServiceAccountUser(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// Names of kube-eip's ValidatingAdmissionPolicies (and of their bindings).
const (
	PodKeysPolicyName      = "kube-eip-pod-keys"
	ReservationsPolicyName = "kube-eip-reservations"
)

// AdmissionPolicies returns the ValidatingAdmissionPolicies that keep
// kube-eip's keys kube-eip's, and their bindings. The API server runs them
// itself, so they hold in namespaces that never opted in (where the webhook
// is never called) and while the webhook is down:
//   - a new pod may carry kube-eip's own keys only in a namespace that
//     opted in, and only with a request the webhook saw (which strips any it
//     did not write); the keys the binder writes on a bound pod never;
//   - on update, only the binder may add, change or remove them, and
//     nobody may change the image of kube-eip's wait container;
//   - only the webhook and the binder may create or change EIPReservations.
func AdmissionPolicies(ids Identities) ([]*admissionregistrationv1.ValidatingAdmissionPolicy, []*admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	policies := []*admissionregistrationv1.ValidatingAdmissionPolicy{podKeysPolicy(ids), reservationsPolicy(ids)}
	bindings := make([]*admissionregistrationv1.ValidatingAdmissionPolicyBinding, len(policies))
	for i, p := range policies {
		bindings[i] = binding(p.Name)
	}
	return policies, bindings
}

func podKeysPolicy(ids Identities) *admissionregistrationv1.ValidatingAdmissionPolicy {
	keys := celList(api.SystemKeys())
	present := func(obj string) string {
		return fmt.Sprintf("(%s || %s)", inMap(obj, "labels", "k"), inMap(obj, "annotations", "k"))
	}
	same := func(field string) string {
		return fmt.Sprintf("(%s ? (%s && oldObject.metadata.%s[k] == object.metadata.%s[k]) : !%s)",
			inMap("object", field, "k"), inMap("oldObject", field, "k"), field, field, inMap("oldObject", field, "k"))
	}
	touches := func(obj string) string {
		return fmt.Sprintf("(has(%[1]s.metadata.labels) && %[1]s.metadata.labels.exists(k, k.startsWith(%[2]q))) || "+
			"(has(%[1]s.metadata.annotations) && %[1]s.metadata.annotations.exists(k, k.startsWith(%[2]q))) || "+
			"(has(%[1]s.spec.initContainers) && %[1]s.spec.initContainers.exists(c, c.name == %[3]q))", obj, api.Prefix, api.WaitContainerName)
	}
	waitImages := func(obj string) string {
		return fmt.Sprintf("(has(%[1]s.spec.initContainers) ? %[1]s.spec.initContainers.filter(c, c.name == %[2]q).map(c, c.image) : [])", obj, api.WaitContainerName)
	}
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: PodKeysPolicyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					// pods/status too: a status update may change metadata.
					Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods", "pods/status"}},
				}}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{
				{Name: "not-the-binder", Expression: fmt.Sprintf("request.userInfo.username != %q", ids.Binder)},
				// Pods with nothing of kube-eip's are never evaluated: the
				// policy cannot stand in the way of anything else.
				{Name: "touches-kube-eip", Expression: touches("object") + " || (request.operation == 'UPDATE' && (" + touches("oldObject") + "))"},
			},
			Variables: []admissionregistrationv1.Variable{
				{Name: "keys", Expression: keys},
				{Name: "bindOnly", Expression: celList([]string{api.LabelPublicIP, api.AnnotationAllocationID, api.AnnotationAssociationID})},
				{Name: "carried", Expression: "variables.keys.filter(k, " + present("object") + ")"},
				{Name: "changed", Expression: "request.operation == 'UPDATE' ? variables.keys.filter(k, !(" + same("labels") + " && " + same("annotations") + ")) : []"},
				{Name: "served", Expression: fmt.Sprintf("namespaceObject.metadata.name != %q && %s && namespaceObject.metadata.labels[%q] == %q",
					metav1.NamespaceSystem, inMap("namespaceObject", "labels", fmt.Sprintf("%q", api.LabelInjection)), api.LabelInjection, api.InjectionEnabled)},
				{Name: "asks", Expression: hasEIPAnnotations("object")},
				// The annotations of a request (mode, pool, the legacy ones)
				// of a pod kube-eip admitted, that an update changes.
				{Name: "changedRequest", Expression: "request.operation == 'UPDATE' && " + inMap("oldObject", "labels", celQuote(api.LabelManaged)) + " ? (" +
					requestKeys("oldObject") + " + " + requestKeys("object") + ").filter(k, !" + same("annotations") + ") : []"},
			},
			Validations: []admissionregistrationv1.Validation{
				{
					Expression: "request.operation != 'CREATE' || !variables.carried.exists(k, k in variables.bindOnly)",
					MessageExpression: "variables.carried.filter(k, k in variables.bindOnly).join(', ') + " +
						"': written by kube-eip on a bound pod only; a new pod cannot carry it (remove it from the manifest)'",
					Reason: ptr.To(metav1.StatusReasonForbidden),
				},
				{
					Expression: "request.operation != 'CREATE' || size(variables.carried) == 0 || variables.served && variables.asks",
					MessageExpression: "variables.carried.join(', ') + ': written only by kube-eip; ' + " +
						"(variables.served ? 'this pod asks kube-eip for nothing (no kube-eip.io/mode)' : " +
						fmt.Sprintf("'namespace ' + namespaceObject.metadata.name + ' has not opted in to kube-eip (%s=%s)')", api.LabelInjection, api.InjectionEnabled),
					Reason: ptr.To(metav1.StatusReasonForbidden),
				},
				{
					Expression: "request.operation != 'UPDATE' || size(variables.changed) == 0",
					MessageExpression: "variables.changed.join(', ') + ': written by kube-eip only; ' + request.userInfo.username + " +
						"' may not add, change or remove it on a pod'",
					Reason: ptr.To(metav1.StatusReasonForbidden),
				},
				{
					Expression: "size(variables.changedRequest) == 0",
					MessageExpression: "variables.changedRequest[0] + ': kube-eip annotations cannot be added, changed or removed on an existing pod; " +
						"change the pod template of its controller (or delete and recreate the pod) instead'",
					Reason: ptr.To(metav1.StatusReasonForbidden),
				},
				{
					Expression: "request.operation != 'UPDATE' || " + waitImages("object") + " == " + waitImages("oldObject"),
					Message:    fmt.Sprintf("the image of %s, kube-eip's wait container, is kube-eip's and cannot be changed", api.WaitContainerName),
					Reason:     ptr.To(metav1.StatusReasonForbidden),
				},
			},
		},
	}
}

func reservationsPolicy(ids Identities) *admissionregistrationv1.ValidatingAdmissionPolicy {
	writers := celList([]string{ids.Webhook, ids.Binder})
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ReservationsPolicyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{v1alpha1.GroupVersion.Group}, APIVersions: []string{"*"},
						Resources: []string{"eipreservations", "eipreservations/status"}},
				}}},
			},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "request.userInfo.username in " + writers,
				MessageExpression: "'EIPReservations are written by kube-eip alone (its webhook and binder), not by ' + request.userInfo.username + " +
					"'; a pod gets one at admission, and deleting one frees its address'",
				Reason: ptr.To(metav1.StatusReasonForbidden),
			}},
		},
	}
}

func binding(policy string) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
}

// requestKeys lists, in CEL, the keys of obj's annotations that make up a
// request: under kube-eip's prefix but not its own keys, or the
// aws-pod-eip-controller's.
func requestKeys(obj string) string {
	return fmt.Sprintf("(has(%[1]s.metadata.annotations) ? %[1]s.metadata.annotations.filter(k, (k.startsWith(%[2]q) && !(k in variables.keys)) || k.startsWith(%[3]q)) : [])",
		obj, api.Prefix, api.LegacyPrefix)
}

func celQuote(s string) string { return fmt.Sprintf("%q", s) }

// inMap is a CEL test that key (a CEL expression) is in obj's metadata
// map field.
func inMap(obj, field, key string) string {
	return fmt.Sprintf("(has(%[1]s.metadata.%[2]s) && %[3]s in %[1]s.metadata.%[2]s)", obj, field, key)
}
