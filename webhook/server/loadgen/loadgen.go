// Package loadgen drives an admission endpoint the way the API server does
// (POSTs of one AdmissionReview over pooled keep-alive HTTP/1.1 connections)
// and reports throughput and latency. The server's benchmark and a stand-alone
// bench program share it, and the review it sends (ExamplePod, Review), so
// their figures are comparable.
//
// It is built to cost the machine little per request: no per-request
// locking, the answer discarded unread, latencies kept in per-worker slices
// and sorted once at the end.
package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// requestTimeout matches the longest timeout the API server allows a webhook.
const requestTimeout = 30 * time.Second

// Result summarises a run.
type Result struct {
	// Count is the number of requests answered 200.
	Count int
	// Errors counts transport failures and other status codes.
	Errors int
	// FirstError is the first failure seen, to say why Errors is not zero.
	FirstError error
	// Elapsed is the wall time the run took.
	Elapsed time.Duration
	// Throughput is Count per second of Elapsed.
	Throughput float64
	// P50, P99 and Max are latencies of the answered requests.
	P50, P99, Max time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%d answered (%d errors) in %s: %.0f/s, p50 %s, p99 %s, max %s",
		r.Count, r.Errors, r.Elapsed.Round(time.Millisecond), r.Throughput, r.P50, r.P99, r.Max)
}

// NewClient returns a client that keeps up to conns HTTP/1.1 connections
// alive to one server and trusts what tlsConfig trusts. HTTP/2 is not
// offered: the API server's webhook client, like the webhook server, speaks
// HTTP/1.1.
func NewClient(tlsConfig *tls.Config, conns int) *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			TLSClientConfig:     tlsConfig,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}

// Target is one endpoint and the body posted to it.
type Target struct {
	Client *http.Client
	URL    string
	Body   []byte
}

// Post sends the body once and drains the answer so the connection is
// reused. Anything but 200 is an error.
func (t Target) Post(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.Client.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", t.URL, err)
	}
	_, copyErr := io.Copy(io.Discard, resp.Body)
	closeErr := resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("posting to %s: status %s", t.URL, resp.Status)
	case copyErr != nil:
		return fmt.Errorf("reading answer from %s: %w", t.URL, copyErr)
	case closeErr != nil:
		return fmt.Errorf("closing answer from %s: %w", t.URL, closeErr)
	}
	return nil
}

// Recorder collects the latencies of many concurrent workers.
type Recorder struct {
	mu      sync.Mutex
	workers []*Worker
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{}
}

// Worker returns a recorder for one goroutine's requests; each goroutine
// needs its own, which is what keeps the hot path free of locks.
func (r *Recorder) Worker() *Worker {
	w := &Worker{latencies: make([]time.Duration, 0, 4096)}
	r.mu.Lock()
	r.workers = append(r.workers, w)
	r.mu.Unlock()
	return w
}

// Result merges what the workers recorded. Call it after they have stopped.
func (r *Recorder) Result(elapsed time.Duration) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Elapsed: elapsed}
	var all []time.Duration
	for _, w := range r.workers {
		all = append(all, w.latencies...)
		res.Errors += w.errors
		if res.FirstError == nil {
			res.FirstError = w.firstErr
		}
	}
	res.Count = len(all)
	if res.Count == 0 {
		return res
	}
	slices.Sort(all)
	res.P50 = quantile(all, 0.50)
	res.P99 = quantile(all, 0.99)
	res.Max = all[len(all)-1]
	if elapsed > 0 {
		res.Throughput = float64(res.Count) / elapsed.Seconds()
	}
	return res
}

// quantile is the nearest-rank quantile q of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Worker records one goroutine's requests.
type Worker struct {
	latencies []time.Duration
	errors    int
	firstErr  error
}

// Post sends one request to t and records how it went.
func (w *Worker) Post(ctx context.Context, t Target) {
	start := time.Now()
	if err := t.Post(ctx); err != nil {
		if ctx.Err() != nil {
			// The run was called off; the server did nothing wrong.
			return
		}
		w.errors++
		if w.firstErr == nil {
			w.firstErr = err
		}
		return
	}
	w.latencies = append(w.latencies, time.Since(start))
}

// Run posts body to url from concurrency goroutines, each sending its next
// request as soon as the previous one is answered, until duration has passed
// or ctx ends. Requests in flight at the end of duration are waited for, so
// the slowest ones are not cut from the figures.
func Run(ctx context.Context, client *http.Client, url string, body []byte, concurrency int, duration time.Duration) Result {
	target := Target{Client: client, URL: url, Body: body}
	rec := NewRecorder()
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(duration)
	for range max(1, concurrency) {
		w := rec.Worker()
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				w.Post(ctx, target)
			}
		})
	}
	wg.Wait()
	return rec.Result(time.Since(start))
}
