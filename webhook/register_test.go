package webhook

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// The workload webhooks fail open and ask to see only what a user applied
// with kube-eip's keys in its template; the EIPPool webhook fails closed.
func TestTheWorkloadWebhooksFailOpenAndSeeOnlyWhatAsks(t *testing.T) {
	cfg := ValidatingConfiguration(Registration{Name: "kube-eip", URL: "https://127.0.0.1:9443", OwnNamespace: "kube-eip-system"})
	byName := map[string]admissionregistrationv1.ValidatingWebhook{}
	for _, w := range cfg.Webhooks {
		byName[w.Name] = w
	}
	if p := byName[PoolsWebhookName].FailurePolicy; p == nil || *p != admissionregistrationv1.Fail {
		t.Errorf("the EIPPool webhook's failure policy is %v, want Fail", p)
	}
	for name, template := range map[string]string{
		WorkloadsWebhookName: "object.spec.template",
		CronJobsWebhookName:  "object.spec.jobTemplate.spec.template",
	} {
		w, ok := byName[name]
		if !ok {
			t.Fatalf("no webhook %s in %v", name, cfg.Webhooks)
		}
		if *w.FailurePolicy != admissionregistrationv1.Ignore || *w.ClientConfig.URL != "https://127.0.0.1:9443"+WorkloadsPath {
			t.Errorf("%s: failure policy %s, URL %s", name, *w.FailurePolicy, *w.ClientConfig.URL)
		}
		if got := w.NamespaceSelector.MatchExpressions[0].Values; strings.Join(got, ",") != "kube-system,kube-eip-system" {
			t.Errorf("%s excludes %v, want kube-system and kube-eip's own namespace", name, got)
		}
		conds := map[string]string{}
		for _, c := range w.MatchConditions {
			conds[c.Name] = c.Expression
		}
		// Every field on the way to the template's annotations is tested
		// before it is read, so that an object without one is skipped,
		// not an evaluation error (which Ignore would also skip, but
		// count as an error).
		asks := conds["template-asks-for-an-eip"]
		path := "object"
		for _, field := range strings.Split(strings.TrimPrefix(template, "object."), ".") {
			path += "." + field
			if !strings.Contains(asks, "has("+path+")") {
				t.Errorf("%s: %q does not test %s", name, asks, path)
			}
		}
		if !strings.Contains(asks, template+".metadata.annotations.exists(") {
			t.Errorf("%s: %q does not read %s's annotations", name, asks, template)
		}
		if conds["not-owned-by-a-controller"] == "" || conds["spec-changed"] == "" {
			t.Errorf("%s: match conditions %v", name, conds)
		}
	}
	if rules := byName[WorkloadsWebhookName].Rules; len(rules) != 2 || strings.Join(rules[0].Resources, ",") != "deployments,statefulsets,daemonsets,replicasets" || rules[1].Resources[0] != "jobs" {
		t.Errorf("workload rules %v", rules)
	}
}
