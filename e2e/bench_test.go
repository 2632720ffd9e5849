package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
)

// BenchmarkPodCreation compares creating a pod that asks for an address in a
// namespace opted in to kube-eip (through the webhook) with the same pod in
// a namespace that is not (the API server never calls the webhook). The
// two kinds of create alternate, so that both meet the same cluster (the
// pods created so far, the scheduler's and controllers' work on them) and
// the same load on the machine. The figure to reach: with-webhook no
// slower than 1.5x without.
//
//	go test -run '^$' -bench PodCreation -benchtime 300x ./e2e/
func BenchmarkPodCreation(b *testing.B) {
	annotations := map[string]string{api.AnnotationMode: "auto"}
	plainNS := newNamespace(b)
	eipNS := newEIPNamespace(b, map[string]string{"tenant": "bench"})
	// Warm both paths (connections, caches) before measuring.
	for _, ns := range []string{plainNS, eipNS} {
		if _, err := kube.CoreV1().Pods(ns).Create(b.Context(), eipPod("warm", annotations), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	// Names are never reused: deleted pods of the opted-in namespace wait
	// for the binder's finalizer a moment.
	var seq atomic.Int64
	create := func(ns, name string) time.Duration {
		name = fmt.Sprintf("%s-%d", name, seq.Add(1))
		start := time.Now()
		if _, err := kube.CoreV1().Pods(ns).Create(context.Background(), eipPod(name, annotations), metav1.CreateOptions{}); err != nil {
			b.Errorf("create: %v", err)
		}
		return time.Since(start)
	}
	cleanup := func() {
		for _, ns := range []string{plainNS, eipNS} {
			_ = kube.CoreV1().Pods(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
		}
	}

	b.Run("sequential", func(b *testing.B) {
		var without, with []time.Duration
		for i := range b.N {
			without = append(without, create(plainNS, fmt.Sprintf("p-%d", i)))
			with = append(with, create(eipNS, fmt.Sprintf("p-%d", i)))
		}
		b.StopTimer()
		w, wo := median(with), median(without)
		b.ReportMetric(ms(wo), "without-p50-ms")
		b.ReportMetric(ms(w), "with-p50-ms")
		b.ReportMetric(ms(percentile(without, 99)), "without-p99-ms")
		b.ReportMetric(ms(percentile(with, 99)), "with-p99-ms")
		b.ReportMetric(float64(w)/float64(wo), "ratio-p50")
		cleanup()
	})
	// Many clients at once, as a ReplicaSet scale-up: throughput matters.
	// Four clients each alternate the two kinds.
	b.Run("parallel", func(b *testing.B) {
		var n atomic.Int64
		var withTotal, withoutTotal atomic.Int64
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				withoutTotal.Add(int64(create(plainNS, fmt.Sprintf("q-%d", i))))
				withTotal.Add(int64(create(eipNS, fmt.Sprintf("q-%d", i))))
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(withTotal.Load())/float64(withoutTotal.Load()), "ratio-mean")
		cleanup()
	})
}

func median(d []time.Duration) time.Duration { return percentile(d, 50) }

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
