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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
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
		plain := median(took[0])
		for i, k := range kinds {
			b.ReportMetric(ms(median(took[i])), k.name+"-p50-ms")
			b.ReportMetric(ms(percentile(took[i], 99)), k.name+"-p99-ms")
			if i > 0 {
				b.ReportMetric(float64(median(took[i]))/float64(plain), k.name+"-ratio")
			}
		}
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

func median(d []time.Duration) time.Duration { return percentile(d, 50) }

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
