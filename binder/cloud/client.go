package cloud

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kube-eip/kube-eip/internal/promreg"
)

// ClientOptions configure NewClient. The zero value is a client for the
// region the SDK's environment and config files name, limited to AWS's
// buckets, counting on controller-runtime's metrics registry.
type ClientOptions struct {
	// Region defaults to the SDK's env/config chain, then to us-east-1.
	Region string
	// Endpoint, when set, is the client's BaseEndpoint; when empty the SDK
	// resolves it, so AWS_ENDPOINT_URL_EC2 works.
	Endpoint string
	// Limits are the per-action token buckets; nil means AWSLimits(). An
	// empty, non-nil map limits nothing.
	Limits Limits
	// Registerer receives the call metrics; nil means controller-runtime's
	// registry, which the manager serves.
	Registerer prometheus.Registerer
	// HTTPClient replaces the SDK's default HTTP client.
	HTTPClient aws.HTTPClient
}

// defaultRegion is where a client goes when nothing names a region.
const defaultRegion = "us-east-1"

// The ids of our middleware in the SDK's stack.
const (
	rateLimitID = "kube-eip/RateLimit"
	metricsID   = "kube-eip/Metrics"
)

// NewClient builds the binder's EC2 client: the SDK's own client, with
// AWS's per-action rate limits and call metrics added to its middleware
// stack so that every caller gets them, and without the SDK's retries.
//
// Retries are off because the binder retries through its workqueue, with
// backoff per pod and a fresh look at EC2 first; AllocateAddress is not
// idempotent, so a blind retry after an ambiguous failure can leak an
// address.
//
// The limits hold per client, while EC2's buckets hold per account and
// region: a process should build one client and share it.
func NewClient(ctx context.Context, opts ClientOptions) (*ec2.Client, error) {
	c, _, err := newClient(ctx, opts)
	return c, err
}

// newClient also returns the limiter, whose buckets the tests watch.
func newClient(ctx context.Context, opts ClientOptions) (*ec2.Client, *limiter, error) {
	var load []func(*config.LoadOptions) error
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.HTTPClient != nil {
		load = append(load, config.WithHTTPClient(opts.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	reg := opts.Registerer
	if reg == nil {
		reg = ctrlmetrics.Registry
	}
	m, err := registerMetrics(reg)
	if err != nil {
		return nil, nil, fmt.Errorf("registering EC2 call metrics: %w", err)
	}
	limits := opts.Limits
	if limits == nil {
		limits = AWSLimits()
	}
	lim := newLimiter(limits, m.throttleWait)
	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.Retryer = aws.NopRetryer{}
		// A max-attempts setting from the environment would otherwise wrap
		// the retryer; it is moot without retries, but keeps intent plain.
		o.RetryMaxAttempts = 0
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return instrument(s, lim, m) })
	})
	return client, lim, nil
}

// instrument puts the limiter and then the metrics into the Finalize step
// right after the SDK's retry loop: once per attempt, before the request is
// signed and sent. The metrics come after the limiter so that a call's
// duration is EC2's latency, not the time it queued here.
func instrument(s *middleware.Stack, lim *limiter, m *callMetrics) error {
	if err := s.Finalize.Insert(middleware.FinalizeMiddlewareFunc(rateLimitID, lim.handle), "Retry", middleware.After); err != nil {
		return fmt.Errorf("adding the EC2 rate limiter: %w", err)
	}
	if err := s.Finalize.Insert(middleware.FinalizeMiddlewareFunc(metricsID, m.handle), rateLimitID, middleware.After); err != nil {
		return fmt.Errorf("adding the EC2 call metrics: %w", err)
	}
	return nil
}

// limiter holds one token bucket per limited action.
type limiter struct {
	buckets map[string]*bucket
	waited  *prometheus.CounterVec
}

// bucket is a rate.Limiter that is only ever told the time under a lock of
// its own. rate.Limiter adopts the time its caller passes even when it is
// older than the last it saw, and then counts the refill in between twice
// (golang/go#56287); Reserve reads the clock before taking the limiter's
// lock, so concurrent callers get a little more than the rate: enough for
// EC2, whose bucket is exactly as large, to refuse calls.
type bucket struct {
	mu  sync.Mutex
	lim *rate.Limiter
}

// reserve takes a token and says how long to wait before using it.
func (b *bucket) reserve() (*rate.Reservation, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	r := b.lim.ReserveN(now, 1)
	return r, r.DelayFrom(now)
}

// cancel hands back the token of a call that will not be made.
func (b *bucket) cancel(r *rate.Reservation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r.CancelAt(time.Now())
}

func newLimiter(limits Limits, waited *prometheus.CounterVec) *limiter {
	l := &limiter{buckets: make(map[string]*bucket, len(limits)), waited: waited}
	for action, b := range limits {
		if b.Rate <= 0 {
			continue
		}
		// Full from the start, as EC2's buckets are; a burst under one
		// would refuse every call.
		l.buckets[action] = &bucket{lim: rate.NewLimiter(rate.Limit(b.Rate), max(1, b.Burst))}
		// Zero series from the start, so rate() sees the first wait.
		waited.WithLabelValues(action)
	}
	return l
}

func (l *limiter) handle(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	action := awsmiddleware.GetOperationName(ctx)
	if b := l.buckets[action]; b != nil {
		if err := l.wait(ctx, action, b); err != nil {
			return middleware.FinalizeOutput{}, middleware.Metadata{}, err
		}
	}
	return next.HandleFinalize(ctx, in)
}

// wait takes a token, waiting for one as long as ctx allows. It reserves
// rather than calling rate.Limiter.Wait to keep the bucket's clock in
// order, and so that a wait that cannot finish before ctx's deadline fails
// at once with an error that is a context.DeadlineExceeded (Wait's own is
// not).
func (l *limiter) wait(ctx context.Context, action string, b *bucket) error {
	r, delay := b.reserve()
	if !r.OK() {
		return fmt.Errorf("waiting for the %s rate limit: the bucket can never hold a token", action)
	}
	if delay == 0 {
		return nil
	}
	start := time.Now()
	defer func() { l.waited.WithLabelValues(action).Add(time.Since(start).Seconds()) }()
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
		b.cancel(r)
		return fmt.Errorf("waiting %v for the %s rate limit would pass the deadline: %w", delay, action, context.DeadlineExceeded)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		b.cancel(r)
		return fmt.Errorf("waiting for the %s rate limit: %w", action, ctx.Err())
	}
}

// callMetrics are the client's Prometheus collectors.
type callMetrics struct {
	calls        *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	throttleWait *prometheus.CounterVec
}

const (
	metricsNamespace = "kube_eip"
	metricsSubsystem = "ec2"
)

// registerMetrics registers the collectors, or adopts the ones already on
// reg, so that two clients in one process (or test) share them.
func registerMetrics(reg prometheus.Registerer) (*callMetrics, error) {
	calls, err := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "calls_total",
		Help: `EC2 API calls sent, by action and outcome: "OK", EC2's error code, or "transport" when no answer from EC2 came back.`,
	}, []string{"action", "code"}))
	if err != nil {
		return nil, err
	}
	duration, err := promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "call_duration_seconds",
		Help: "Latency of EC2 API calls by action, from sending to the answer, without the time spent waiting for the rate limiter.",
		// From a quick Describe to a slow mutation under a degraded API.
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	}, []string{"action"}))
	if err != nil {
		return nil, err
	}
	wait, err := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "throttle_wait_seconds_total",
		Help: "Time EC2 API calls spent waiting for the client's per-action rate limiter.",
	}, []string{"action"}))
	if err != nil {
		return nil, err
	}
	return &callMetrics{calls: calls, duration: duration, throttleWait: wait}, nil
}

func (m *callMetrics) handle(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	action := awsmiddleware.GetOperationName(ctx)
	start := time.Now()
	out, md, err := next.HandleFinalize(ctx, in)
	m.duration.WithLabelValues(action).Observe(time.Since(start).Seconds())
	m.calls.WithLabelValues(action, outcome(err)).Inc()
	return out, md, err
}

// outcome is the code label of a call: a bounded set, since EC2's error
// codes are.
func outcome(err error) string {
	switch {
	case err == nil:
		return "OK"
	case Code(err) != "":
		return Code(err)
	default:
		return "transport"
	}
}
