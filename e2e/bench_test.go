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
// figure to reach: with-webhook no slower than 1.5x without.
//
//	go test -run '^$' -bench PodCreation -benchtime 300x ./e2e/
func BenchmarkPodCreation(b *testing.B) {
	annotations := map[string]string{api.AnnotationMode: "auto"}
	run := func(b *testing.B, ns string) {
		latencies := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			if _, err := kube.CoreV1().Pods(ns).Create(b.Context(), eipPod(fmt.Sprintf("p-%d", i), annotations), metav1.CreateOptions{}); err != nil {
				b.Fatalf("create: %v", err)
			}
			latencies = append(latencies, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
		_ = kube.CoreV1().Pods(ns).DeleteCollection(b.Context(), metav1.DeleteOptions{}, metav1.ListOptions{})
	}
	plainNS := newNamespace(b)
	eipNS := newEIPNamespace(b, map[string]string{"tenant": "bench"})
	// Warm both paths (connections, caches) before measuring.
	for _, ns := range []string{plainNS, eipNS} {
		if _, err := kube.CoreV1().Pods(ns).Create(b.Context(), eipPod("warm", annotations), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("without-webhook", func(b *testing.B) { run(b, plainNS) })
	b.Run("with-webhook", func(b *testing.B) { run(b, eipNS) })
	// Many clients at once, as a ReplicaSet scale-up: throughput matters.
	parallel := func(b *testing.B, ns string) {
		var n atomic.Int64
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				name := fmt.Sprintf("q-%d", n.Add(1))
				if _, err := kube.CoreV1().Pods(ns).Create(context.Background(), eipPod(name, annotations), metav1.CreateOptions{}); err != nil {
					b.Errorf("create: %v", err)
					return
				}
			}
		})
		b.StopTimer()
		_ = kube.CoreV1().Pods(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
	}
	b.Run("parallel-without-webhook", func(b *testing.B) { parallel(b, plainNS) })
	b.Run("parallel-with-webhook", func(b *testing.B) { parallel(b, eipNS) })
}
