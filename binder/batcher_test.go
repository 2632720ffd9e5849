package binder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// execLog is an Exec that answers key → "v"+key, fails batches as told,
// and records every batch it was given.
type execLog struct {
	mu      sync.Mutex
	batches [][]string
	// fail makes a batch fail; nil fails none.
	fail func(keys []string) error
	// skip leaves these keys out of the answer.
	skip map[string]bool
}

func (x *execLog) exec(ctx context.Context, keys []string) (map[string]string, error) {
	x.mu.Lock()
	x.batches = append(x.batches, slices.Clone(keys))
	x.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if x.fail != nil {
		if err := x.fail(keys); err != nil {
			return nil, err
		}
	}
	out := map[string]string{}
	for _, k := range keys {
		if !x.skip[k] {
			out[k] = "v" + k
		}
	}
	return out, nil
}

func (x *execLog) calls() [][]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.batches)
}

// getAll runs one Get per key concurrently and returns the answers in
// the keys' order.
func getAll(ctx context.Context, b *Batcher[string, string], keys []string) ([]string, []error) {
	vals, errs := make([]string, len(keys)), make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { vals[i], errs[i] = b.Get(ctx, k) })
	}
	wg.Wait()
	return vals, errs
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Concurrent Gets, duplicates included, share one Exec with each key once,
// and each caller gets its own key's value.
func TestBatcherSharesOneExec(t *testing.T) {
	x := &execLog{}
	b := &Batcher[string, string]{Idle: 200 * time.Millisecond, Max: 5 * time.Second, MaxItems: 100, Exec: x.exec}
	keys := []string{"a", "b", "c", "a", "d", "b", "e"}
	vals, errs := getAll(testContext(t), b, keys)

	for i, k := range keys {
		if errs[i] != nil || vals[i] != "v"+k {
			t.Errorf("Get(%s) = %q, %v; want %q", k, vals[i], errs[i], "v"+k)
		}
	}
	calls := x.calls()
	if len(calls) != 1 {
		t.Fatalf("Exec called %d times (%v), want once", len(calls), calls)
	}
	got := slices.Sorted(slices.Values(calls[0]))
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("Exec got keys %v, want each key once: %v", got, want)
	}
}

// A batch holding MaxItems keys goes at once, without waiting for the
// idle window.
func TestBatcherSendsAFullBatchAtOnce(t *testing.T) {
	x := &execLog{}
	b := &Batcher[string, string]{Idle: time.Hour, Max: time.Hour, MaxItems: 3, Exec: x.exec}
	vals, errs := getAll(testContext(t), b, []string{"a", "b", "c"})
	for i, err := range errs {
		if err != nil {
			t.Errorf("Get #%d: %v (a full batch waited for its window)", i, err)
		}
	}
	if !slices.Equal(vals, []string{"va", "vb", "vc"}) {
		t.Errorf("values = %v", vals)
	}
	if n := len(x.calls()); n != 1 {
		t.Errorf("Exec called %d times, want once", n)
	}
}

// A batch is sent Max after its first key at the latest, however long the
// idle window.
func TestBatcherSendsByMax(t *testing.T) {
	x := &execLog{}
	b := &Batcher[string, string]{Idle: time.Hour, Max: 10 * time.Millisecond, MaxItems: 100, Exec: x.exec}
	if v, err := b.Get(testContext(t), "a"); err != nil || v != "va" {
		t.Errorf("Get = %q, %v; want va within Max", v, err)
	}
}

// When a batch fails, each key is asked alone: one bad key cannot fail the
// others. A lone key's failure is its own.
func TestBatcherFallsBackToOneKeyAtATime(t *testing.T) {
	errBad := errors.New("bad key")
	x := &execLog{fail: func(keys []string) error {
		if slices.Contains(keys, "bad") {
			return errBad
		}
		return nil
	}}
	b := &Batcher[string, string]{Idle: time.Hour, Max: time.Hour, MaxItems: 3, Exec: x.exec}
	keys := []string{"a", "bad", "b"}
	vals, errs := getAll(testContext(t), b, keys)

	for i, k := range keys {
		switch {
		case k == "bad" && !errors.Is(errs[i], errBad):
			t.Errorf("Get(bad) error = %v, want %v", errs[i], errBad)
		case k != "bad" && (errs[i] != nil || vals[i] != "v"+k):
			t.Errorf("Get(%s) = %q, %v; want %q despite the bad key", k, vals[i], errs[i], "v"+k)
		}
	}
	calls := x.calls()
	if len(calls) != 4 {
		t.Fatalf("Exec calls = %v, want the batch then each key alone", calls)
	}
	for _, c := range calls[1:] {
		if len(c) != 1 {
			t.Errorf("fallback call with keys %v, want one key", c)
		}
	}

	// A batch of one that fails is not asked again.
	one := &Batcher[string, string]{Idle: time.Millisecond, Max: time.Second, MaxItems: 10, Exec: x.exec}
	if _, err := one.Get(testContext(t), "bad"); !errors.Is(err, errBad) {
		t.Errorf("Get(bad) alone = %v, want %v", err, errBad)
	}
	if n := len(x.calls()); n != 5 {
		t.Errorf("Exec called %d times in all, want 5: a lone failing key is asked once", n)
	}
}

// A key the answer leaves out gets errNoResult; the others their values.
func TestBatcherKeysMissingFromTheAnswer(t *testing.T) {
	x := &execLog{skip: map[string]bool{"gone": true}}
	b := &Batcher[string, string]{Idle: time.Hour, Max: time.Hour, MaxItems: 2, Exec: x.exec}
	vals, errs := getAll(testContext(t), b, []string{"here", "gone"})
	if errs[0] != nil || vals[0] != "vhere" {
		t.Errorf("Get(here) = %q, %v", vals[0], errs[0])
	}
	if !errors.Is(errs[1], errNoResult) {
		t.Errorf("Get(gone) error = %v, want errNoResult", errs[1])
	}
}

// A caller whose context ends stops waiting at once, while its batch is
// still in flight; the batch itself goes on, since it serves other callers
// and no single caller's context governs it.
func TestBatcherCallerContext(t *testing.T) {
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	var execErrs []error
	var mu sync.Mutex
	b := &Batcher[string, string]{Idle: time.Millisecond, Max: time.Second, MaxItems: 100,
		Exec: func(ctx context.Context, keys []string) (map[string]string, error) {
			entered <- struct{}{}
			<-release
			mu.Lock()
			execErrs = append(execErrs, ctx.Err())
			mu.Unlock()
			return map[string]string{"a": "va"}, nil
		}}

	ctx, cancel := context.WithCancel(testContext(t))
	gone := make(chan error, 1)
	go func() {
		_, err := b.Get(ctx, "a")
		gone <- err
	}()
	<-entered // the cancellable caller's batch is in flight

	other := make(chan error, 1)
	go func() {
		v, err := b.Get(testContext(t), "a")
		if err == nil && v != "va" {
			err = fmt.Errorf("value %q, want va", v)
		}
		other <- err
	}()

	cancel()
	// Exec is held until release: returning at all is returning promptly.
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Get = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-other; err != nil {
		t.Errorf("the other caller: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, err := range execErrs {
		if err != nil {
			t.Errorf("a batch ran with an ended context (%v): the cancelled caller's context reached it", err)
		}
	}
}
