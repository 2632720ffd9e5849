package ec2sim

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	clocktesting "k8s.io/utils/clock/testing"
)

// probe is one call that draws from a bucket without changing anything:
// the ids do not exist, which the emulator only finds out after throttling.
type probe func(context.Context, *ec2.Client) error

var (
	probeMutating probe = func(ctx context.Context, c *ec2.Client) error {
		_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0"), InstanceId: aws.String("i-0123456789abcdef0")})
		return err
	}
	probeOtherMutating probe = func(ctx context.Context, c *ec2.Client) error {
		_, err := c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0")})
		return err
	}
	probeDescribeAddresses probe = func(ctx context.Context, c *ec2.Client) error {
		_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
		return err
	}
	probeENIsFiltered probe = func(ctx context.Context, c *ec2.Client) error {
		_, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{sdkFilter("subnet-id", "subnet-0123456789abcdef0")}})
		return err
	}
	probeENIsUnfiltered probe = func(ctx context.Context, c *ec2.Client) error {
		_, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{})
		return err
	}
	probeTags probe = func(ctx context.Context, c *ec2.Client) error {
		_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"i-0123456789abcdef0"}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
		return err
	}
	probeSubnets probe = func(ctx context.Context, c *ec2.Client) error {
		_, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
		return err
	}
	probeAccountAttributes probe = func(ctx context.Context, c *ec2.Client) error {
		_, err := c.DescribeAccountAttributes(ctx, &ec2.DescribeAccountAttributesInput{})
		return err
	}
)

// throttled tells a RequestLimitExceeded (which must come as HTTP 503)
// from any other answer.
func throttled(t *testing.T, err error) bool {
	t.Helper()
	is, werr := throttleOf(err)
	if werr != nil {
		t.Fatal(werr)
	}
	return is
}

// throttleOf reports whether err is EC2's throttling answer, and an error
// if that answer came with the wrong HTTP status.
func throttleOf(err error) (bool, error) {
	if errorCode(err) != "RequestLimitExceeded" {
		return false, nil
	}
	if s := httpStatus(err); s != http.StatusServiceUnavailable {
		return true, fmt.Errorf("RequestLimitExceeded with HTTP %d, want 503", s)
	}
	return true, nil
}

// untilThrottled counts the calls that pass before the first throttled one.
func untilThrottled(t *testing.T, ctx context.Context, c *ec2.Client, p probe, limit int) int {
	t.Helper()
	for n := 0; n < limit; n++ {
		if throttled(t, p(ctx, c)) {
			return n
		}
	}
	t.Fatalf("no throttling after %d calls", limit)
	return 0
}

// With the clock held still, the buckets show their exact documented shape.
func TestThrottleBucketsExactly(t *testing.T) {
	for _, tc := range []struct {
		name          string
		probe         probe
		scale         float64
		burst, refill int
	}{
		{"mutating", probeMutating, 1, 50, 5},
		{"DescribeAddresses", probeDescribeAddresses, 1, 100, 20},
		{"DescribeNetworkInterfaces filtered", probeENIsFiltered, 1, 100, 20},
		{"DescribeNetworkInterfaces unfiltered", probeENIsUnfiltered, 1, 50, 10},
		{"CreateTags", probeTags, 1, 100, 10},
		{"other Describe", probeSubnets, 1, 100, 20},
		{"DescribeAccountAttributes", probeAccountAttributes, 1, 100, 20},
		{"mutating at scale 10", probeMutating, 10, 500, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
			_, c, ctx := setupWith(t, Options{Clock: clk.Now, Throttle: ThrottleOptions{Scale: tc.scale}})
			if got := untilThrottled(t, ctx, c, tc.probe, 2*tc.burst); got != tc.burst {
				t.Errorf("burst %d, want %d", got, tc.burst)
			}
			clk.Step(time.Second)
			if got := untilThrottled(t, ctx, c, tc.probe, 2*tc.burst); got != tc.refill {
				t.Errorf("refill in one second %d, want %d", got, tc.refill)
			}
			clk.Step(time.Hour)
			if got := untilThrottled(t, ctx, c, tc.probe, 2*tc.burst); got != tc.burst {
				t.Errorf("bucket refilled to %d, want it capped at %d", got, tc.burst)
			}
		})
	}
}

func TestThrottleBucketsArePerAction(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
	srv, c, ctx := setupWith(t, Options{Clock: clk.Now})
	untilThrottled(t, ctx, c, probeMutating, 100)
	if err := probeOtherMutating(ctx, c); throttled(t, err) {
		t.Errorf("ReleaseAddress throttled by AssociateAddress's bucket")
	}
	if err := probeENIsFiltered(ctx, c); throttled(t, err) {
		t.Errorf("DescribeNetworkInterfaces throttled by a mutating bucket")
	}
	if n := srv.Stats().Actions["AssociateAddress"].Errors["RequestLimitExceeded"]; n != 1 {
		t.Errorf("counted %d throttled AssociateAddress calls, want 1", n)
	}
	srv.SetThrottle(ThrottleOptions{Disabled: true})
	for range 200 {
		if err := probeMutating(ctx, c); throttled(t, err) {
			t.Fatalf("throttled with throttling disabled")
		}
	}
}

// measureBucket drains a bucket through the SDK on the real clock, then
// watches tokens come back. The burst is corrected for the tokens that
// arrived while draining, from the first call's answer on.
func measureBucket(t *testing.T, ctx context.Context, c *ec2.Client, p probe, watch time.Duration) (burst, rate float64) {
	t.Helper()
	// The bucket refills only once a call took a token: the clock starts
	// when the first call is answered, not before the client's first
	// connection, which a loaded machine can take a good part of a second
	// to make while the bucket sits full.
	if throttled(t, p(ctx, c)) {
		t.Fatal("throttled on the first call")
	}
	start := time.Now()
	passed := 1 + untilThrottled(t, ctx, c, p, 100_000)
	drained := time.Now()
	// Several callers, each on a short tick: one caller alone cannot keep
	// up with 200 tokens a second on a loaded machine, and would measure
	// its own speed (and, through it, too large a burst).
	// Their connections are closed after, so that none, dialed but never
	// used, holds up the emulator's shutdown.
	const callers = 4
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	wc := ec2.New(c.Options(), func(o *ec2.Options) { o.HTTPClient = hc })
	var (
		mu  sync.Mutex
		got []time.Time
		wg  sync.WaitGroup
	)
	deadline := drained.Add(watch)
	for range callers {
		wg.Go(func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for ; time.Now().Before(deadline); <-tick.C {
				is, err := throttleOf(p(ctx, wc))
				if err != nil {
					t.Error(err)
					return
				}
				if !is {
					mu.Lock()
					got = append(got, time.Now())
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	slices.SortFunc(got, time.Time.Compare)
	if len(got) < 3 {
		t.Fatalf("only %d tokens came back in %v", len(got), watch)
	}
	rate = float64(len(got)-1) / got[len(got)-1].Sub(got[0]).Seconds()
	burst = float64(passed) - rate*drained.Sub(start).Seconds()
	return burst, rate
}

func within(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance*want }

// On the real clock, through the SDK, bursts and refill rates are within
// 10% of AWS's documented buckets: quickly at scale 10 (same shape, ten
// times the size and speed), and once at scale 1.
func TestThrottleRealClock(t *testing.T) {
	for _, tc := range []struct {
		name        string
		probe       probe
		scale       float64
		burst, rate float64
		watch       time.Duration
	}{
		{"mutating at scale 10", probeMutating, 10, 500, 50, time.Second},
		{"DescribeAddresses at scale 10", probeDescribeAddresses, 10, 1000, 200, 500 * time.Millisecond},
		{"mutating at scale 1", probeMutating, 1, 50, 5, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c, ctx := setupWith(t, Options{Throttle: ThrottleOptions{Scale: tc.scale}})
			burst, rate := measureBucket(t, ctx, c, tc.probe, tc.watch)
			t.Logf("burst %.1f (want %v), refill %.2f/s (want %v)", burst, tc.burst, rate, tc.rate)
			if !within(burst, tc.burst, 0.1) {
				t.Errorf("burst %.1f not within 10%% of %v", burst, tc.burst)
			}
			if !within(rate, tc.rate, 0.1) {
				t.Errorf("refill %.2f/s not within 10%% of %v/s", rate, tc.rate)
			}
		})
	}
}
