package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/webhook"
)

// What kubectl prints when the workload webhook refuses what it applies
// from standard input, before the webhook's own words.
func workloadDenied(webhookName string) string {
	return fmt.Sprintf(`Error from server (Forbidden): error when creating "STDIN": admission webhook %q denied the request: `, webhookName)
}

// podSpecYAML is the pod spec of the manifests below, indented for a
// template: nothing schedules (no node matches), so only admission acts.
const podSpecYAML = `
      nodeSelector: {e2e.kube-eip.io/no-such-node: "true"}
      terminationGracePeriodSeconds: 0
      containers: [{name: app, image: registry.k8s.io/pause:3.10}]`

// manifest is a workload of kind named name, its pod template annotated
// with annotations (YAML flow mapping entries), for replicas pods.
func manifest(kind, name string, replicas int, annotations string) string {
	template := fmt.Sprintf(`
    metadata:
      labels: {app: %s}
      annotations: {%s}
    spec:%s`, name, annotations, podSpecYAML)
	switch kind {
	case "Deployment", "StatefulSet", "ReplicaSet":
		extra := ""
		if kind == "StatefulSet" {
			extra = "\n  serviceName: " + name
		}
		return fmt.Sprintf(`apiVersion: apps/v1
kind: %s
metadata: {name: %s}
spec:
  replicas: %d%s
  selector: {matchLabels: {app: %s}}
  template:%s
`, kind, name, replicas, extra, name, template)
	case "DaemonSet":
		return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: %s}
spec:
  selector: {matchLabels: {app: %s}}
  template:%s
`, name, name, template)
	case "Job":
		return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata: {name: %s}
spec:
  parallelism: %d
  template:%s
      restartPolicy: Never
`, name, replicas, template)
	case "CronJob":
		return fmt.Sprintf(`apiVersion: batch/v1
kind: CronJob
metadata: {name: %s}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      parallelism: %d
      template:%s
          restartPolicy: Never
`, name, replicas, strings.ReplaceAll(template, "\n", "\n    "))
	}
	panic("no manifest of kind " + kind)
}

func apply(t *testing.T, ns, manifest string) (stdout, stderr string, err error) {
	t.Helper()
	return env.Kubectl(t.Context(), manifest, "apply", "--namespace="+ns, "-f", "-")
}

// A user applies a workload whose template has a typo in kube-eip.io/mode:
// kubectl prints the refusal, in the words pod admission would have used
// for each pod, naming the workload, and nothing is created. Before, the
// refusal was only in the events of a ReplicaSet, retried forever.
func TestAWorkloadWithATypoIsRefusedAtApply(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "typos"})
	typo := "kube-eip.io/mode: autoo"
	for _, tc := range []struct {
		kind, webhook, template string
	}{
		{"Deployment", webhook.WorkloadsWebhookName, "spec.template"},
		{"StatefulSet", webhook.WorkloadsWebhookName, "spec.template"},
		{"DaemonSet", webhook.WorkloadsWebhookName, "spec.template"},
		{"Job", webhook.WorkloadsWebhookName, "spec.template"},
		{"CronJob", webhook.CronJobsWebhookName, "spec.jobTemplate.spec.template"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			_, stderr, err := apply(t, ns, manifest(tc.kind, "typo", 2, typo))
			if err == nil {
				t.Fatalf("kubectl apply of a %s with a typo succeeded", tc.kind)
			}
			want := workloadDenied(tc.webhook) + fmt.Sprintf(`%s "typo" (%s): kube-eip.io/mode: unknown mode "autoo"; did you mean "auto"? (one of auto, pool, sticky)`, tc.kind, tc.template)
			if strings.TrimSpace(stderr) != want {
				t.Errorf("kubectl printed:\n  %s\nwant:\n  %s", stderr, want)
			}
			if _, _, err := env.Kubectl(t.Context(), "", "get", "--namespace="+ns, strings.ToLower(tc.kind), "typo"); err == nil {
				t.Errorf("the refused %s exists", tc.kind)
			}
		})
	}
}

// A Deployment of 3 replicas on a pool with 1 free address is legal: the
// pool may fill up by the time its pods come. It is admitted with a
// warning that gives both numbers; the two pods admission then refuses
// are told on the Deployment, where `kubectl describe` shows them.
func TestADeploymentLargerThanItsPoolIsAdmittedWithAWarning(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "small-pool"})
	pool := newPool(t, ns, "small", map[string]string{"tenant": "small-pool"}, 1)
	stdout, stderr, err := apply(t, ns, manifest("Deployment", "big", 3, fmt.Sprintf("kube-eip.io/mode: pool, kube-eip.io/pool: %s", pool)))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(stdout) != "deployment.apps/big created" {
		t.Errorf("stdout %q, want the Deployment created", stdout)
	}
	want := fmt.Sprintf(`Warning: Deployment "big": EIPPool %q has 1 free address for 3 pods (spec.replicas): 2 of them will be refused at creation until addresses are free (kubectl get eippool %s)`, pool, pool)
	if strings.TrimSpace(stderr) != want {
		t.Errorf("kubectl printed:\n  %s\nwant:\n  %s", stderr, want)
	}
	wantDescribed(t, ns, "deployment", "big", "EIPRefused",
		fmt.Sprintf(`pods are refused at creation: kube-eip.io/pool: EIPPool %q has no free address (1 in the pool, all reserved, bound or in use elsewhere)`, pool))
}

// A CronJob's pods come through its Jobs: those admission refuses are told
// on the CronJob the user applied, through the Job (kubectl create job
// --from makes one, owned by the CronJob, as its schedule would).
func TestACronJobsRefusedPodsAreToldOnTheCronJob(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "nightly-pool"})
	pool := newPool(t, ns, "nightly", map[string]string{"tenant": "nightly-pool"}, 1)
	if _, _, err := apply(t, ns, manifest("CronJob", "nightly", 2, fmt.Sprintf("kube-eip.io/mode: pool, kube-eip.io/pool: %s", pool))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Kubectl(t.Context(), "", "create", "job", "--namespace="+ns, "manual", "--from=cronjob/nightly"); err != nil {
		t.Fatal(err)
	}
	wantDescribed(t, ns, "cronjob", "nightly", "EIPRefused",
		fmt.Sprintf(`Job manual: pods are refused at creation: kube-eip.io/pool: EIPPool %q has no free address`, pool))
}

// A Deployment without kube-eip's keys, in an opted-in namespace, never
// reaches the webhook: its match conditions are decided in the API server.
// The webhook's own request count says so; a Deployment with the keys,
// applied after, moves it, so the count is the one that would.
func TestAWorkloadWithoutKubeEIPKeysNeverReachesTheWebhook(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "unrelated"})
	before := workloadRequests(t)
	if _, _, err := apply(t, ns, manifest("Deployment", "unrelated", 1, "example.com/owner: team-a")); err != nil {
		t.Fatal(err)
	}
	// Its update (a new template) and its ReplicaSet do not either.
	if _, _, err := apply(t, ns, manifest("Deployment", "unrelated", 2, "example.com/owner: team-b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the Deployment's ReplicaSets", func(ctx context.Context) (bool, string, error) {
		sets, err := kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		return len(sets.Items) == 2, fmt.Sprintf("%d ReplicaSets", len(sets.Items)), nil
	})
	if after := workloadRequests(t); after != before {
		t.Fatalf("the webhook served %v workload reviews for a Deployment without kube-eip's keys", after-before)
	}
	if _, _, err := apply(t, ns, manifest("Deployment", "asks", 1, "kube-eip.io/mode: auto")); err != nil {
		t.Fatal(err)
	}
	// The server counts a review once it has answered it: the count may
	// trail kubectl's return by a moment.
	eventually(t, 10*time.Second, "one workload review counted", func(context.Context) (bool, string, error) {
		after := workloadRequests(t)
		return after == before+1, fmt.Sprintf("%v reviews", after-before), nil
	})
}

// workloadRequests is how many reviews the webhook served on its workload
// path, by its own request metric.
func workloadRequests(t *testing.T) float64 {
	t.Helper()
	page, err := env.WebhookMetrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return stack.SumSamples(page, "kube_eip_webhook_request_duration_seconds_count", fmt.Sprintf("path=%q", webhook.WorkloadsPath))
}

// A template that was fine when applied, whose pool an admin deletes
// later: the next apply that scales it warns, and the pods admission
// refuses from then on are told on the Deployment.
func TestAPoolDeletedLaterShowsOnTheWorkload(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "pool-goes"})
	pool := newPool(t, ns, "goes", map[string]string{"tenant": "pool-goes"}, 2)
	asks := fmt.Sprintf("kube-eip.io/mode: pool, kube-eip.io/pool: %s", pool)
	if _, stderr, err := apply(t, ns, manifest("Deployment", "relay", 1, asks)); err != nil || stderr != "" {
		t.Fatalf("apply: %v, printed %q; want it created without a word", err, stderr)
	}
	eventually(t, time.Minute, "the Deployment's pod admitted", func(ctx context.Context) (bool, string, error) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=relay"})
		if err != nil {
			return false, "", err
		}
		return len(pods.Items) == 1, podSummary(pods.Items), nil
	})

	if err := crClient.Delete(t.Context(), &v1alpha1.EIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool}}); err != nil {
		t.Fatalf("deleting the pool: %v", err)
	}
	eventually(t, 30*time.Second, "the webhook sees the pool gone", func(ctx context.Context) (bool, string, error) {
		err := crClient.Get(ctx, client.ObjectKey{Name: pool}, &v1alpha1.EIPPool{})
		if err == nil {
			return false, "the pool is still there", nil
		}
		_, err = kube.CoreV1().Pods(ns).Create(ctx, eipPod("probe", map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: pool}), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "does not exist"), fmt.Sprint(err), nil
	})

	gone := fmt.Sprintf(`kube-eip.io/pool: EIPPool %q does not exist`, pool)
	stdout, stderr, err := apply(t, ns, manifest("Deployment", "relay", 2, asks))
	if err != nil {
		t.Fatalf("scaling a Deployment whose pool is gone was refused: %v", err)
	}
	if strings.TrimSpace(stdout) != "deployment.apps/relay configured" || !strings.HasPrefix(strings.TrimSpace(stderr), `Warning: Deployment "relay": its pods are refused at creation: `+gone) {
		t.Errorf("kubectl printed:\n  %s  %s\nwant the Deployment configured, and the warning: %s", stdout, stderr, gone)
	}
	wantDescribed(t, ns, "deployment", "relay", "EIPRefused", "pods are refused at creation: "+gone)
}

// wantDescribed waits until `kubectl describe` of the object shows an event
// of reason whose message contains note.
func wantDescribed(t *testing.T, ns, kind, name, reason, note string) {
	t.Helper()
	eventually(t, time.Minute, fmt.Sprintf("kubectl describe %s %s shows %s", kind, name, reason), func(ctx context.Context) (bool, string, error) {
		out, _, err := env.Kubectl(ctx, "", "describe", "--namespace="+ns, kind, name)
		if err != nil {
			return false, "", err
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, reason) && strings.Contains(line, note) {
				return true, "", nil
			}
		}
		_, events, _ := strings.Cut(out, "Events:")
		return false, "events:" + events, nil
	})
}

// An auto workload that asks for more addresses than its namespace's cap
// or the account's quota leaves room for is admitted with a warning for
// each: the binder publishes the account's count (quota from
// DescribeAccountAttributes) where the webhook reads it. A CronJob asks
// nothing of anyone until it runs, so only the warning is tested here.
func TestAutoPastTheCapOrTheQuotaIsWarned(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "capped"})
	var acct api.Account
	eventually(t, 30*time.Second, "the binder publishes the account's count", func(ctx context.Context) (bool, string, error) {
		cm, err := kube.CoreV1().ConfigMaps(stack.Namespace).Get(ctx, api.AccountConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		var ok bool
		acct, ok = api.ParseAccount(cm.Data)
		return ok, fmt.Sprint(cm.Data), nil
	})
	if acct.Quota != accountQuota {
		t.Fatalf("published quota %d, want the emulator's %d", acct.Quota, accountQuota)
	}
	if _, err := kube.CoreV1().Namespaces().Patch(t.Context(), ns, "application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"kube-eip.io/max-addresses":"2"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	capWarning := fmt.Sprintf(`Warning: CronJob "nightly": namespace %q holds 0 of its 2 addresses (kube-eip.io/max-addresses) for 3 pods (spec.jobTemplate.spec.parallelism): 1 of them will be refused at creation; ask a cluster admin to raise the cap`, ns)
	eventually(t, 10*time.Second, "the cap warned of", func(ctx context.Context) (bool, string, error) {
		// The webhook reads the namespace's cap from its cache.
		_, stderr, err := env.Kubectl(ctx, manifest("CronJob", "nightly", 3, "kube-eip.io/mode: auto"), "apply", "--namespace="+ns, "-f", "-")
		if err != nil {
			return false, "", err
		}
		return strings.TrimSpace(stderr) == capWarning, stderr, nil
	})

	many := accountQuota + 100
	_, stderr, err := apply(t, ns, manifest("CronJob", "nightly", many, "kube-eip.io/mode: auto"))
	if err != nil {
		t.Fatal(err)
	}
	warnings := strings.Split(strings.TrimSpace(stderr), "\n")
	quotaWarning := fmt.Sprintf(` of its %d Elastic IPs in the region allocated (kube-eip's last count) for %d more pods (spec.jobTemplate.spec.parallelism): `, accountQuota, many-3)
	if len(warnings) != 2 || !strings.Contains(warnings[0], "holds 0 of its 2 addresses") ||
		!strings.HasPrefix(warnings[1], `Warning: CronJob "nightly": the AWS account has `) || !strings.Contains(warnings[1], quotaWarning) ||
		!strings.HasSuffix(warnings[1], "will wait without an address until Elastic IPs are released or the quota is raised (Service Quotas: EC2-VPC Elastic IPs)") {
		t.Errorf("kubectl printed:\n  %s\nwant the cap's warning, then the quota's, containing %q", stderr, quotaWarning)
	}
}
