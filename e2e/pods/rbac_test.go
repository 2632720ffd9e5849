package pods

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kube-eip/kube-eip/deploy"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// Every permission of the generated roles is used: each verb of each rule
// was asked for at least once, by the component the role is for, in this
// suite's run (the API server's audit log of kube-eip's service accounts),
// and no request of theirs was forbidden. The suite's other tests are what
// exercises the components, so this one runs last (files run in name
// order) and means nothing on its own with -run.
func TestEveryGeneratedPermissionIsUsed(t *testing.T) {
	requests, err := env.AuditedRequests()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range requests {
		if r.Code == 403 {
			t.Errorf("forbidden: %s %s", r.User, describe(r))
		}
	}
	for component, sa := range map[string]string{"webhook": deploy.WebhookServiceAccount, "binder": deploy.BinderServiceAccount} {
		roles, err := deploy.RBAC(component)
		if err != nil {
			t.Fatal(err)
		}
		user := "system:serviceaccount:" + deploy.Namespace + ":" + sa
		var mine []stack.Request
		for _, r := range requests {
			if r.User == user {
				mine = append(mine, r)
			}
		}
		for _, spare := range unused(roles.ClusterRole.Rules, "", mine) {
			t.Errorf("%s's ClusterRole allows %s, which it never did", component, spare)
		}
		for _, spare := range unused(roles.Role.Rules, deploy.Namespace, mine) {
			t.Errorf("%s's Role in %s allows %s, which it never did", component, deploy.Namespace, spare)
		}
	}
}

// unused lists the verbs of rules that none of requests used; namespace,
// if not empty, is where a Role's rules apply.
func unused(rules []rbacv1.PolicyRule, namespace string, requests []stack.Request) []string {
	var out []string
	for _, rule := range rules {
		for _, group := range rule.APIGroups {
			for _, res := range rule.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				for _, verb := range rule.Verbs {
					used := slices.ContainsFunc(requests, func(r stack.Request) bool {
						return r.Group == group && r.Resource == resource && r.Subresource == sub && r.Verb == verb &&
							(namespace == "" || r.Namespace == namespace) &&
							(len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, r.Name))
					})
					if !used {
						out = append(out, fmt.Sprintf("%s %s (group %q%s)", verb, res, group, names(rule.ResourceNames)))
					}
				}
			}
		}
	}
	return out
}

func names(resourceNames []string) string {
	if len(resourceNames) == 0 {
		return ""
	}
	return ", names " + strings.Join(resourceNames, ", ")
}

func describe(r stack.Request) string {
	what := r.Resource
	if r.Subresource != "" {
		what += "/" + r.Subresource
	}
	return fmt.Sprintf("%s %s %s/%s (group %q)", r.Verb, what, r.Namespace, r.Name, r.Group)
}
