package stack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// auditArgs are the API server flags that write the audit log of
// auditPolicy to dir/audit.log, one JSON event per line.
func auditArgs(dir, namespace string) ([]string, error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy(namespace)), 0o644); err != nil {
		return nil, err
	}
	return []string{
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + filepath.Join(dir, "audit.log"),
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
}

// AuditedRequests reads the audit log (Options.Audit) of kube-eip's
// service accounts.
func (s *Stack) AuditedRequests() ([]Request, error) {
	if !s.opts.Audit {
		return nil, fmt.Errorf("the stack was started without Options.Audit")
	}
	f, err := os.Open(filepath.Join(s.auditDir, "audit.log"))
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
		out = append(out, r)
	}
	return out, sc.Err()
}
