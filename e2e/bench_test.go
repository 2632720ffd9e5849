package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/webhook"
)

// BenchmarkPodCreation measures what kube-eip's webhook adds to creating a
// pod that asks for an address. The figure to reach: no slower than 1.5x
// the same create in a namespace no webhook selects.
//
// Three reference webhooks, served by this process and answering at once,
// show how much of that the API server spends on any webhook call:
//
//   - allow: admits without a patch (the call itself);
//   - label: adds one label (any mutation, which makes the API server run
//     its own mutating plugins a second time);
//   - replay: kube-eip's registration (match conditions included), answered
//     at once with the patch kube-eip would send (this mutation's size).
//
// Each round creates one pod of every kind in a random order, so that no
// kind always follows another's work (watch events, the scheduler's try).
// Reported: each kind's p50 and p99, and its p50 over the plain create's.
//
//	go test -run '^$' -bench PodCreation -benchtime 600x ./e2e/
func BenchmarkPodCreation(b *testing.B) {
	refs := startReferenceWebhooks(b)
	kinds := []struct{ name, ns string }{
		{"plain", newNamespace(b)},
		{"allow", refs.namespace(b, refAllow)},
		{"label", refs.namespace(b, refLabel)},
		{"replay", refs.namespace(b, refReplay)},
		{"kube-eip", newEIPNamespace(b, map[string]string{"tenant": "bench"})},
	}
	create := podCreator(b)
	cleanup := func() {
		for _, k := range kinds {
			_ = kube.CoreV1().Pods(k.ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
		}
	}
	refs.waitServing(b, map[refKind]string{refAllow: kinds[1].ns, refLabel: kinds[2].ns, refReplay: kinds[3].ns})
	// Warm every path (connections, caches) before measuring.
	for range 20 {
		for _, k := range kinds {
			create(k.ns)
		}
	}

	b.Run("sequential", func(b *testing.B) {
		took := make([][]time.Duration, len(kinds))
		for range b.N {
			for _, i := range rand.Perm(len(kinds)) { //nolint:gosec // an order, not a secret
				took[i] = append(took[i], create(kinds[i].ns))
			}
		}
		b.StopTimer()
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = k.name
		}
		reportLatencies(b, names, took)
		cleanup()
	})
	// Two clients at once, as a ReplicaSet scale-up: each does a plain and
	// a kube-eip create per round, in a random order.
	b.Run("parallel", func(b *testing.B) {
		plainNS, eipNS := kinds[0].ns, kinds[len(kinds)-1].ns
		var mu sync.Mutex
		var plain, eip time.Duration
		b.SetParallelism(1) // GOMAXPROCS (2) clients
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				var p, e time.Duration
				if rand.IntN(2) == 0 { //nolint:gosec // an order, not a secret
					p, e = create(plainNS), create(eipNS)
				} else {
					e, p = create(eipNS), create(plainNS)
				}
				mu.Lock()
				plain, eip = plain+p, eip+e
				mu.Unlock()
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(eip)/float64(plain), "kube-eip-ratio-mean")
		cleanup()
	})
}

// podCreator returns a function that creates one pod asking for an address
// in a namespace and returns how long the create took. Names are never
// reused: deleted pods of an opted-in namespace wait a moment for the
// binder's finalizer.
func podCreator(b *testing.B) func(ns string) time.Duration {
	annotations := map[string]string{api.AnnotationMode: "auto"}
	var seq atomic.Int64
	return func(ns string) time.Duration {
		name := fmt.Sprintf("p-%d", seq.Add(1))
		start := time.Now()
		if _, err := kube.CoreV1().Pods(ns).Create(context.Background(), eipPod(name, annotations), metav1.CreateOptions{}); err != nil {
			b.Errorf("create: %v", err)
		}
		return time.Since(start)
	}
}

// reportLatencies reports each kind's p50 and p99, and its p50 over the
// first kind's, the baseline.
func reportLatencies(b *testing.B, kinds []string, took [][]time.Duration) {
	base := median(took[0])
	for i, k := range kinds {
		b.ReportMetric(ms(median(took[i])), k+"-p50-ms")
		b.ReportMetric(ms(percentile(took[i], 99)), k+"-p99-ms")
		if i > 0 {
			b.ReportMetric(float64(median(took[i]))/float64(base), k+"-ratio")
		}
	}
}

func median(d []time.Duration) time.Duration { return percentile(d, 50) }

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkDeploymentCreation measures what kube-eip's workload webhook
// adds to creating a Deployment without kube-eip's keys in an opted-in
// namespace: nothing measurable, because its match conditions are decided
// in the API server and it is never called. Each round creates, in a
// random order, one Deployment in a namespace no webhook selects
// ("plain"), one without kube-eip's keys in an opted-in namespace
// ("unrelated"), and one with them ("asks", which the webhook answers: the
// cost of a call, for scale). Replicas are 0, so no pod is made.
//
// Reported: each kind's p50 and p99, unrelated's and asks' p50 over
// plain's, the API server's mean time deciding the webhook's match
// conditions (its apiserver_admission_match_condition_evaluation_seconds),
// and the webhook's workload reviews per asks Deployment, which must be
// exactly 1: a review for an unrelated Deployment, or for what the
// Deployment controller writes after, fails the benchmark.
//
//	go test -run '^$' -bench DeploymentCreation -benchtime 300x ./e2e/
func BenchmarkDeploymentCreation(b *testing.B) {
	kinds := []struct {
		name, ns    string
		annotations map[string]string
	}{
		{"plain", newNamespace(b), map[string]string{"example.com/owner": "team-a"}},
		{"unrelated", newEIPNamespace(b, map[string]string{"tenant": "bench-workloads"}), map[string]string{"example.com/owner": "team-a"}},
		{"asks", newEIPNamespace(b, map[string]string{"tenant": "bench-workloads-asks"}), map[string]string{api.AnnotationMode: "auto"}},
	}
	var seq atomic.Int64
	create := func(ns string, annotations map[string]string) time.Duration {
		name := fmt.Sprintf("d-%d", seq.Add(1))
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](0),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: annotations},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
				},
			},
		}
		start := time.Now()
		if _, err := kube.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
			b.Errorf("create: %v", err)
		}
		return time.Since(start)
	}
	// reviews is the webhook's count of workload reviews once it holds
	// still: it counts each review just after answering it.
	reviews := func() float64 {
		last := -1.0
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			page, err := env.WebhookMetrics(ctx)
			if err != nil {
				return false, err
			}
			n := stack.SumSamples(page, "kube_eip_webhook_request_duration_seconds_count", fmt.Sprintf("path=%q", webhook.WorkloadsPath))
			settled := n == last
			last = n
			return settled, nil
		})
		if err != nil {
			b.Fatalf("reading the webhook's review count: %v", err)
		}
		return last
	}
	for range 20 {
		for _, k := range kinds {
			create(k.ns, k.annotations)
		}
	}
	// The API server's own time deciding the workload webhook's match
	// conditions, which every Deployment of an opted-in namespace costs.
	matching := func() (seconds, count float64) {
		raw, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
		if err != nil {
			b.Fatalf("reading API server metrics: %v", err)
		}
		name := fmt.Sprintf("name=%q", webhook.WorkloadsWebhookName)
		return stack.SumSamples(string(raw), "apiserver_admission_match_condition_evaluation_seconds_sum", name),
			stack.SumSamples(string(raw), "apiserver_admission_match_condition_evaluation_seconds_count", name)
	}
	before := reviews()
	matchedSeconds, matchedCount := matching()
	b.ResetTimer()
	took := make([][]time.Duration, len(kinds))
	for range b.N {
		for _, i := range rand.Perm(len(kinds)) { //nolint:gosec // an order, not a secret
			took[i] = append(took[i], create(kinds[i].ns, kinds[i].annotations))
		}
	}
	b.StopTimer()
	afterSeconds, afterCount := matching()
	if n := afterCount - matchedCount; n > 0 {
		b.ReportMetric((afterSeconds-matchedSeconds)/n*1e6, "match-conditions-us")
	}
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	reportLatencies(b, names, took)
	// Let the Deployment controller write what it writes on the new ones
	// (revision annotations, ReplicaSets) before counting: it writes at
	// the controller manager's 20 requests/s, shared by all kinds here.
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		sets, err := kube.AppsV1().ReplicaSets(kinds[2].ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(sets.Items) >= b.N+20, nil
	})
	if err != nil {
		b.Fatalf("waiting for the ReplicaSets of the asks Deployments: %v", err)
	}
	perAsks := (reviews() - before) / float64(b.N)
	b.ReportMetric(perAsks, "reviews-per-asks")
	if perAsks != 1 {
		b.Fatalf("the workload webhook served %.2f reviews per Deployment with kube-eip's keys, want exactly 1: it was called for something else", perAsks)
	}
	for _, k := range kinds {
		_ = kube.AppsV1().Deployments(k.ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
	}
}
