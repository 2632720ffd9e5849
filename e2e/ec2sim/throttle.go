package ec2sim

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// bucketShape is one of EC2's documented token buckets: how many calls a
// burst may make and how many tokens come back per second.
type bucketShape struct {
	burst  float64
	refill float64
}

var (
	mutatingBucket           = bucketShape{burst: 50, refill: 5}
	describeBucket           = bucketShape{burst: 100, refill: 20}
	unfilteredDescribeBucket = bucketShape{burst: 50, refill: 10}
	tagsBucket               = bucketShape{burst: 100, refill: 10}
)

// throttler keeps one token bucket per action (and per unfiltered variant),
// as EC2 does per account and region.
type throttler struct {
	mu       sync.Mutex
	opts     ThrottleOptions
	now      func() time.Time
	limiters map[string]*rate.Limiter
}

func newThrottler(o ThrottleOptions, now func() time.Time) *throttler {
	return &throttler{opts: o, now: now, limiters: map[string]*rate.Limiter{}}
}

// allow takes a token from the named bucket, creating it full on first use.
func (t *throttler) allow(key string, shape bucketShape) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.opts.Disabled {
		return true
	}
	l := t.limiters[key]
	if l == nil {
		burst := max(1, int(math.Round(shape.burst*t.opts.Scale)))
		l = rate.NewLimiter(rate.Limit(shape.refill*t.opts.Scale), burst)
		t.limiters[key] = l
	}
	return l.AllowN(t.now(), 1)
}

// set changes the configuration; buckets start over, full.
func (t *throttler) set(o ThrottleOptions) {
	if o.Scale <= 0 {
		o.Scale = 1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.opts = o
	t.limiters = map[string]*rate.Limiter{}
}

func (t *throttler) get() ThrottleOptions {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.opts
}
