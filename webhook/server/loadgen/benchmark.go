package loadgen

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Benchmark drives target from b.RunParallel with parallelism goroutines
// per GOMAXPROCS, after one warm-up request per connection (the API server's
// connection pool is warm too), and reports reviews/s, p50-ms and p99-ms.
// Any failed request fails the benchmark.
func Benchmark(ctx context.Context, b *testing.B, target Target, conns, parallelism int) {
	b.Helper()
	var warm sync.WaitGroup
	for range conns {
		warm.Go(func() {
			if err := target.Post(ctx); err != nil {
				b.Errorf("warm-up review: %v", err)
			}
		})
	}
	warm.Wait()
	if b.Failed() {
		b.FailNow()
	}

	rec := NewRecorder()
	b.SetParallelism(parallelism)
	b.SetBytes(int64(len(target.Body)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		w := rec.Worker()
		for pb.Next() {
			w.Post(ctx, target)
		}
	})
	b.StopTimer()
	res := rec.Result(time.Since(start))
	if res.Errors > 0 {
		b.Fatalf("%d of %d reviews failed, first: %v", res.Errors, res.Errors+res.Count, res.FirstError)
	}
	b.ReportMetric(res.Throughput, "reviews/s")
	b.ReportMetric(float64(res.P50)/float64(time.Millisecond), "p50-ms")
	b.ReportMetric(float64(res.P99)/float64(time.Millisecond), "p99-ms")
}
