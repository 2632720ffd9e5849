package stack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kube-eip/kube-eip/deploy"
)

// auditPolicy records, at the Metadata level, every request of kube-eip's
// service accounts and nothing else: what the components and the chart's
// hooks ask of the API server, to check the generated roles against.
func auditPolicy(namespace string) string {
	return fmt.Sprintf(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts:%s"]
- level: None
`, namespace)
}

// AuditDirEnv names a directory that collects the audit logs of every
// stack started with Options.Audit (make test sets it), for a check of the
// generated roles across suites (hack/rbaccheck).
const AuditDirEnv = "KUBE_EIP_AUDIT_DIR"

// auditLogPath is where the stack's audit log goes: in AuditDirEnv's
// directory if set, under a name of its own, else in dir.
func auditLogPath(dir string) (string, error) {
	shared := os.Getenv(AuditDirEnv)
	if shared == "" {
		return filepath.Join(dir, "audit.log"), nil
	}
	if err := os.MkdirAll(shared, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(shared, "audit-*.log")
	if err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// auditArgs are the API server flags that write the audit log of
// auditPolicy to logPath, one JSON event per line.
func auditArgs(dir, logPath, namespace string) ([]string, error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy(namespace)), 0o644); err != nil {
		return nil, err
	}
	return []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + logPath,
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
	}, nil
}

// Request is one request kube-eip made of the API server, as the audit
// log has it.
type Request struct {
	User        string
	Verb        string
	Group       string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	Code        int
	// Forbidden is the authorizer's refusal.
	Forbidden bool
}

// AuditedRequests reads the audit log (Options.Audit) of kube-eip's
// service accounts.
func (s *Stack) AuditedRequests() ([]Request, error) {
	if !s.opts.Audit {
		return nil, fmt.Errorf("the stack was started without Options.Audit")
	}
	return ReadAuditLog(s.auditLog)
}

// ReadAuditLog reads an audit log of the stack's policy.
func ReadAuditLog(path string) ([]Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []Request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			User      struct{ Username string }
			Verb      string
			ObjectRef *struct {
				APIGroup, Resource, Subresource, Namespace, Name string
			}
			ResponseStatus *struct{ Code int }
			Annotations    map[string]string
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("parsing the audit log: %w", err)
		}
		if ev.ObjectRef == nil || !strings.HasPrefix(ev.User.Username, "system:serviceaccount:") {
			continue // a discovery or health request, no resource
		}
		r := Request{
			User: ev.User.Username, Verb: ev.Verb,
			Group: ev.ObjectRef.APIGroup, Resource: ev.ObjectRef.Resource, Subresource: ev.ObjectRef.Subresource,
			Namespace: ev.ObjectRef.Namespace, Name: ev.ObjectRef.Name,
		}
		if ev.ResponseStatus != nil {
			r.Code = ev.ResponseStatus.Code
		}
		// RBAC's own refusal, not a namespace being deleted (also 403).
		r.Forbidden = ev.Annotations["authorization.k8s.io/decision"] == "forbid"
		out = append(out, r)
	}
	return out, sc.Err()
}

// RoleCheck is what the audited requests say of the generated roles.
type RoleCheck struct {
	// Unused are verbs of rules that no request of the component used.
	Unused []string
	// Forbidden are requests of kube-eip's that RBAC refused.
	Forbidden []string
}

// CheckRoles compares the roles generated for the webhook and the binder
// (deploy.RBAC) with what their service accounts asked of the API server.
func CheckRoles(requests []Request) (RoleCheck, error) {
	var c RoleCheck
	// A refusal counts only if the same request was never allowed: at
	// install the pods may start a moment before the authorizer has seen
	// their bindings.
	allowed := map[string]bool{}
	for _, r := range requests {
		if !r.Forbidden {
			allowed[r.User+" "+r.Verb+" "+r.Group+"/"+r.Resource+"/"+r.Subresource+" "+r.Namespace] = true
		}
	}
	for _, r := range requests {
		if r.Forbidden && !allowed[r.User+" "+r.Verb+" "+r.Group+"/"+r.Resource+"/"+r.Subresource+" "+r.Namespace] {
			c.Forbidden = append(c.Forbidden, r.User+" "+r.describe())
		}
	}
	for _, component := range []struct{ name, sa string }{{"webhook", deploy.WebhookServiceAccount}, {"binder", deploy.BinderServiceAccount}} {
		roles, err := deploy.RBAC(component.name)
		if err != nil {
			return c, err
		}
		user := "system:serviceaccount:" + deploy.Namespace + ":" + component.sa
		var mine []Request
		for _, r := range requests {
			if r.User == user {
				mine = append(mine, r)
			}
		}
		for _, u := range unused(roles.ClusterRole.Rules, "", mine) {
			c.Unused = append(c.Unused, fmt.Sprintf("%s's ClusterRole: %s", component.name, u))
		}
		for _, u := range unused(roles.Role.Rules, deploy.Namespace, mine) {
			c.Unused = append(c.Unused, fmt.Sprintf("%s's Role in %s: %s", component.name, deploy.Namespace, u))
		}
	}
	return c, nil
}

// unused lists the verbs of rules that none of requests used; namespace,
// if not empty, is where a Role's rules apply.
func unused(rules []rbacv1.PolicyRule, namespace string, requests []Request) []string {
	var out []string
	for _, rule := range rules {
		for _, group := range rule.APIGroups {
			for _, res := range rule.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				for _, verb := range rule.Verbs {
					used := slices.ContainsFunc(requests, func(r Request) bool {
						return r.Group == group && r.Resource == resource && r.Subresource == sub &&
							uses(r, verb) &&
							(namespace == "" || r.Namespace == namespace) &&
							(len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, r.Name))
					})
					if !used {
						names := ""
						if len(rule.ResourceNames) > 0 {
							names = ", names " + strings.Join(rule.ResourceNames, ", ")
						}
						out = append(out, fmt.Sprintf("%s %s (group %q%s)", verb, res, group, names))
					}
				}
			}
		}
	}
	return out
}

// uses tells whether r needed verb. Two requests need a verb other than
// their own:
//   - an informer's list is a watch that streams the initial state
//     (client-go's watch-list), and the list verb stays needed for its
//     fallback to a LIST;
//   - a server-side apply that creates its object (201 Created) is
//     authorized as a create too, and the audit log names it a patch.
func uses(r Request, verb string) bool {
	switch {
	case r.Verb == verb:
		return true
	case verb == "list":
		return r.Verb == "watch"
	case verb == "create":
		return r.Verb == "patch" && r.Code == http.StatusCreated
	}
	return false
}

func (r Request) describe() string {
	what := r.Resource
	if r.Subresource != "" {
		what += "/" + r.Subresource
	}
	return fmt.Sprintf("%s %s %s/%s (group %q)", r.Verb, what, r.Namespace, r.Name, r.Group)
}
