package binder

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errNoResult is what a batched Get returns for a key its batch did not
// answer.
var errNoResult = errors.New("not in the batch's answer")

// Batcher gathers concurrent lookups into one call: a burst of pods on a
// few nodes costs one DescribeNetworkInterfaces, not one per pod. A batch
// is sent once no new key arrived for Idle, at the latest Max after its
// first key, or as soon as it holds MaxItems keys. If the batched call
// fails, each key is retried alone, so one bad key cannot fail the rest.
type Batcher[K comparable, V any] struct {
	Idle     time.Duration
	Max      time.Duration
	MaxItems int
	// Exec answers a batch; keys missing from its map get errNoResult.
	Exec func(ctx context.Context, keys []K) (map[K]V, error)

	mu      sync.Mutex
	pending *batch[K, V]
}

type batch[K comparable, V any] struct {
	keys    []K
	waiters map[K][]chan result[V]
	idle    *time.Timer
	first   time.Time
	sent    bool
}

type result[V any] struct {
	v   V
	err error
}

// Get returns the value for key, sharing a call with concurrent Gets.
func (b *Batcher[K, V]) Get(ctx context.Context, key K) (V, error) {
	ch := make(chan result[V], 1)
	b.mu.Lock()
	p := b.pending
	if p == nil {
		p = &batch[K, V]{waiters: map[K][]chan result[V]{}, first: time.Now()}
		b.pending = p
	}
	if _, dup := p.waiters[key]; !dup {
		p.keys = append(p.keys, key)
	}
	p.waiters[key] = append(p.waiters[key], ch)
	switch {
	case len(p.keys) >= b.MaxItems:
		b.sendLocked(p)
	case p.idle == nil:
		p.idle = time.AfterFunc(min(b.Idle, b.Max), func() { b.flush(p) })
	default:
		// Wait Idle more, but never past Max from the first key.
		wait := min(b.Idle, b.Max-time.Since(p.first))
		p.idle.Reset(max(wait, 0))
	}
	b.mu.Unlock()

	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

func (b *Batcher[K, V]) flush(p *batch[K, V]) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sendLocked(p)
}

func (b *Batcher[K, V]) sendLocked(p *batch[K, V]) {
	if p.sent {
		return
	}
	p.sent = true
	if p.idle != nil {
		p.idle.Stop()
	}
	if b.pending == p {
		b.pending = nil
	}
	go b.run(p)
}

func (b *Batcher[K, V]) run(p *batch[K, V]) {
	// The batch serves several callers: no single caller's context may
	// cancel it, but it must not hang either.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := b.Exec(ctx, p.keys)
	if err != nil && len(p.keys) > 1 {
		for _, k := range p.keys {
			one, oneErr := b.Exec(ctx, []K{k})
			b.deliver(p, k, one, oneErr)
		}
		return
	}
	for _, k := range p.keys {
		b.deliver(p, k, out, err)
	}
}

func (b *Batcher[K, V]) deliver(p *batch[K, V], k K, out map[K]V, err error) {
	r := result[V]{err: err}
	if err == nil {
		var ok bool
		if r.v, ok = out[k]; !ok {
			r.err = errNoResult
		}
	}
	for _, ch := range p.waiters[k] {
		ch <- r
	}
}
