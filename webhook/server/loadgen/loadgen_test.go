package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsAnswersAndErrors(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || string(body) != `{"review":1}` {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		// Every fifth request fails, to see errors counted apart.
		if served.Add(1)%5 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	client := NewClient(srv.Client().Transport.(*http.Transport).TLSClientConfig, 4)

	res := Run(context.Background(), client, srv.URL, []byte(`{"review":1}`), 4, 200*time.Millisecond)
	if res.Count == 0 || res.Errors == 0 {
		t.Fatalf("result %s: want both answers and errors", res)
	}
	if total := int64(res.Count + res.Errors); total != served.Load() {
		t.Fatalf("counted %d requests, server saw %d", total, served.Load())
	}
	if res.FirstError == nil || !strings.Contains(res.FirstError.Error(), "500") {
		t.Fatalf("FirstError = %v, want the 500", res.FirstError)
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max || res.Throughput <= 0 {
		t.Fatalf("inconsistent figures: %s", res)
	}
}

func TestRunStopsWhenCalledOff(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	client := NewClient(srv.Client().Transport.(*http.Transport).TLSClientConfig, 2)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() { done <- Run(ctx, client, srv.URL, []byte("{}"), 2, time.Hour) }()
	cancel()
	select {
	case res := <-done:
		if res.Errors != 0 {
			t.Fatalf("a called-off run counted %d errors: %v", res.Errors, res.FirstError)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop when its context ended")
	}
}

func TestQuantile(t *testing.T) {
	sorted := make([]time.Duration, 100)
	for i := range sorted {
		sorted[i] = time.Duration(i+1) * time.Millisecond
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := quantile(sorted, q); got != want {
			t.Errorf("quantile(%v) = %s, want %s", q, got, want)
		}
	}
	if got := quantile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("quantile of one = %s", got)
	}
}

func TestReviewIsARealisticPodCreate(t *testing.T) {
	body, err := Review("uid-1", ExamplePod())
	if err != nil {
		t.Fatalf("Review: %v", err)
	}
	if n := len(body); n < 3000 || n > 5500 {
		t.Fatalf("review is %d bytes, want a 3-5 KB pod", n)
	}
	for _, want := range []string{`"apiVersion":"admission.k8s.io/v1"`, `"kind":"AdmissionReview"`, `"uid":"uid-1"`, `"operation":"CREATE"`, `"kube-eip.io/mode":"pool"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("review lacks %s", want)
		}
	}
}
