package server

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook/server/loadgen"
)

// benchParallelism goroutines per GOMAXPROCS drive the server: on two cores,
// four requests in flight keep both cores busy (the load generator shares
// them). Two leave a core idle while a request crosses loopback; eight
// mostly measure the queue.
const benchParallelism = 2

// BenchmarkAdmissionReviewsTLS measures the server around a pod-mutating
// handler: TLS on loopback, keep-alive HTTP/1.1 connections, a 4 KB pod per
// review, the load generator on the same cores. One op is one review.
func BenchmarkAdmissionReviewsTLS(b *testing.B) {
	p := newPKI(b)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, Options{
		Addr:            "127.0.0.1:0",
		Certs:           certs.NewStatic(p.issue(b, time.Hour)),
		Handlers:        map[string]http.Handler{"/mutate-pods": standInInjector()},
		MetricsRegistry: prometheus.NewRegistry(),
		Log:             logr.Discard(),
	})
	if err != nil {
		cancel()
		b.Fatalf("Start: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		if err := srv.Wait(); err != nil {
			b.Errorf("server: %v", err)
		}
	})

	body := podReview(b, "0d7c3f1a-6b2e-4c8d-9e5f-1a2b3c4d5e6f", loadgen.ExamplePod())
	conns := benchParallelism * runtime.GOMAXPROCS(0)
	client := loadgen.NewClient(p.clientTLS(), conns)
	b.Cleanup(client.CloseIdleConnections)
	target := loadgen.Target{Client: client, URL: "https://" + srv.Addr() + "/mutate-pods", Body: body}

	loadgen.Benchmark(ctx, b, target, conns, benchParallelism)
}

// TestBenchmarkStandInPatches keeps the benchmark honest: the stand-in
// answers the review with a patch, as the real handler will.
func TestBenchmarkStandInPatches(t *testing.T) {
	p := newPKI(t)
	srv := startServer(t, Options{
		Certs:    certs.NewStatic(p.issue(t, time.Hour)),
		Handlers: map[string]http.Handler{"/mutate-pods": standInInjector()},
	})
	body := podReview(t, "size-check", loadgen.ExamplePod())
	resp := post(t, p.client(t), srv.url+"/mutate-pods", body).Response
	if !resp.Allowed || len(resp.Patch) == 0 {
		t.Fatalf("stand-in answered %+v, want an allowed review with a patch", resp)
	}
	t.Logf("review %d bytes, patch %d bytes", len(body), len(resp.Patch))
}
