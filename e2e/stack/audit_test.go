package stack

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kube-eip/kube-eip/deploy"
)

// everyPermission is one request of each verb of each rule of the
// generated roles, by the component the role is for.
func everyPermission(t *testing.T) []Request {
	t.Helper()
	var out []Request
	for component, sa := range map[string]string{"webhook": deploy.WebhookServiceAccount, "binder": deploy.BinderServiceAccount} {
		roles, err := deploy.RBAC(component)
		if err != nil {
			t.Fatal(err)
		}
		user := "system:serviceaccount:" + deploy.Namespace + ":" + sa
		for ns, rules := range map[string][]rbacv1.PolicyRule{"": roles.ClusterRole.Rules, deploy.Namespace: roles.Role.Rules} {
			for _, rule := range rules {
				for _, group := range rule.APIGroups {
					for _, res := range rule.Resources {
						resource, sub, _ := strings.Cut(res, "/")
						name := ""
						if len(rule.ResourceNames) > 0 {
							name = rule.ResourceNames[0]
						}
						for _, verb := range rule.Verbs {
							out = append(out, Request{User: user, Verb: verb, Group: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name, Code: 200})
						}
					}
				}
			}
		}
	}
	return out
}

func TestCheckRolesFindsTheSpareVerbAndTheRefusal(t *testing.T) {
	all := everyPermission(t)
	c, err := CheckRoles(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Unused) != 0 || len(c.Forbidden) != 0 {
		t.Fatalf("every verb used: %+v", c)
	}
	// One verb fewer is one spare permission; a request of another user
	// or namespace does not stand in for it. (A list is dropped only with
	// the watch, which uses it.)
	i := slices.IndexFunc(all, func(r Request) bool { return r.Verb == "get" })
	dropped := all[i]
	rest := slices.Delete(slices.Clone(all), i, i+1)
	other := dropped
	other.User = "system:serviceaccount:tenant:default"
	rest = append(rest, other)
	if dropped.Namespace != "" {
		elsewhere := dropped
		elsewhere.Namespace = "tenant"
		rest = append(rest, elsewhere)
	}
	c, err = CheckRoles(append(rest, Request{User: dropped.User, Verb: "get", Resource: "secrets", Namespace: "x", Code: 403, Forbidden: true}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Unused) != 1 || !strings.Contains(c.Unused[0], dropped.Verb+" ") {
		t.Errorf("unused = %v, want the one dropped (%+v)", c.Unused, dropped)
	}
	if len(c.Forbidden) != 1 {
		t.Errorf("forbidden = %v, want the refused request", c.Forbidden)
	}
}

// An apply that created its object stands for the create it needed; one
// that changed an existing object does not.
func TestCheckRolesTakesACreatingApplyForACreate(t *testing.T) {
	all := everyPermission(t)
	i := slices.IndexFunc(all, func(r Request) bool { return r.Verb == "create" && r.Resource == "configmaps" })
	if i < 0 {
		t.Fatal("no role creates ConfigMaps")
	}
	apply := all[i]
	apply.Verb = "patch"
	rest := slices.Delete(slices.Clone(all), i, i+1)
	for _, tc := range []struct {
		code   int
		unused int
	}{{code: 201, unused: 0}, {code: 200, unused: 1}} {
		apply.Code = tc.code
		c, err := CheckRoles(append(slices.Clone(rest), apply))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Unused) != tc.unused {
			t.Errorf("an apply answered %d: unused = %v, want %d", tc.code, c.Unused, tc.unused)
		}
	}
}
