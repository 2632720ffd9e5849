package server

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook/server/loadgen"
)

func TestMetricsExposedAfterRequest(t *testing.T) {
	p := newPKI(t)
	reg := prometheus.NewRegistry()
	srv := startServer(t, Options{
		Certs:           certs.NewStatic(p.issue(t, time.Hour)),
		Handlers:        map[string]http.Handler{"/mutate-pods": standInInjector()},
		MetricsRegistry: reg,
	})
	c := p.client(t)
	post(t, c, srv.url+"/mutate-pods", podReview(t, "metrics-1", loadgen.ExamplePod()))
	// A review that cannot be read is answered in the review (with HTTP 200,
	// as controller-runtime does) and still counted.
	resp, err := c.Post(srv.url+"/mutate-pods", "text/plain", bytes.NewReader([]byte("not a review")))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	_ = resp.Body.Close()
	if code, _ := get(c, srv.url+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d", code)
	}

	code, body := get(c, srv.url+"/metrics")
	if code != 200 {
		t.Fatalf("metrics = %d %q", code, body)
	}
	for _, want := range []string{
		`kube_eip_webhook_request_duration_seconds_count{code="200",path="/mutate-pods"} 2`,
		`kube_eip_webhook_request_duration_seconds_count{code="200",path="/readyz"} 1`,
		`kube_eip_webhook_request_duration_seconds_bucket{code="200",path="/mutate-pods",le="0.01"}`,
		// The scrape itself is in flight while the answer is written.
		`kube_eip_webhook_requests_in_flight{path="/metrics"} 1`,
		`kube_eip_webhook_requests_in_flight{path="/mutate-pods"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestSecondServerSharesRegisteredMetrics(t *testing.T) {
	p := newPKI(t)
	reg := prometheus.NewRegistry()
	for range 2 {
		startServer(t, Options{Certs: certs.NewStatic(p.issue(t, time.Hour)), MetricsRegistry: reg})
	}
}
