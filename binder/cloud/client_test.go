package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-eip/kube-eip/e2e/ec2sim"
)

// TestMain gives the SDK's config chain a clean environment: no region, no
// endpoint, no profile or retry settings from the machine, and static
// credentials (the emulator takes any) so nothing asks IMDS.
func TestMain(m *testing.M) {
	if err := cleanAWSEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func cleanAWSEnv() error {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			if err := os.Unsetenv(k); err != nil {
				return err
			}
		}
	}
	for k, v := range map[string]string{ //nolint:gosec // the emulator accepts any credentials; these only keep the SDK from looking for real ones
		"AWS_ACCESS_KEY_ID":           "kube-eip-test",
		"AWS_SECRET_ACCESS_KEY":       "kube-eip-test",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             "/nonexistent/kube-eip-test/config",
		"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/kube-eip-test/credentials",
	} {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	return nil
}

func startSim(t *testing.T, opts ec2sim.Options) *ec2sim.Server {
	t.Helper()
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	srv, err := ec2sim.Start(opts)
	if err != nil {
		t.Fatalf("starting the EC2 emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing the EC2 emulator: %v", err)
		}
	})
	return srv
}

func unthrottled() ec2sim.Options {
	return ec2sim.Options{Throttle: ec2sim.ThrottleOptions{Disabled: true}}
}

// testCtx bounds a test's calls, so a hang fails instead of stalling.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testClient builds a client as NewClient does, on a fresh registry unless
// the options name one.
func testClient(t *testing.T, opts ClientOptions) (*ec2.Client, *limiter) {
	t.Helper()
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: closingTransport(t)}
	}
	c, lim, err := newClient(context.Background(), opts)
	if err != nil {
		t.Fatalf("building the client: %v", err)
	}
	return c, lim
}

// closingTransport closes its idle connections when the test ends, before
// the emulator shuts down: a connection the transport dialed but never
// used would otherwise hold up the emulator's Close for five seconds,
// which is how long http.Server.Shutdown waits for new connections.
func closingTransport(t *testing.T) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 2*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting until %s: %v", what, err)
	}
}

func describeAll(ctx context.Context, c API) error {
	_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	return err
}

// launchENI runs an instance in the emulator and returns its primary ENI.
func launchENI(t *testing.T, ctx context.Context, c *ec2.Client) string {
	t.Helper()
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId:      aws.String("ami-0abcdef1234567890"),
		InstanceType: types.InstanceTypeM5Large,
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		Placement:    &types.Placement{AvailabilityZone: aws.String("us-east-1a")},
	})
	if err != nil {
		t.Fatalf("launching an instance: %v", err)
	}
	return aws.ToString(out.Instances[0].NetworkInterfaces[0].NetworkInterfaceId)
}

func allocate(t *testing.T, ctx context.Context, c API) string {
	t.Helper()
	out, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc})
	if err != nil {
		t.Fatalf("allocating an address: %v", err)
	}
	return aws.ToString(out.AllocationId)
}

// A burst larger than EC2's buckets, from several goroutines, queues in the
// client instead of being refused: the emulator, whose buckets have the
// same shape and scale, throttles nothing, and the burst takes at least as
// long as the buckets' refill says.
func TestLimitsKeepBurstsWithinEC2Buckets(t *testing.T) {
	t.Parallel()
	// Small buckets, so that even a loaded machine under the race detector
	// sends faster than they refill; their shape is AWS's at any scale.
	const scale = 0.25
	// The emulator's buckets start at the first call's arrival, the
	// client's at its departure; moving the emulator's clock on by that
	// call's round trip lines the two up, so the client's jitter in
	// sending later calls cannot make it look early.
	var lead atomic.Int64
	srv := startSim(t, ec2sim.Options{
		Throttle: ec2sim.ThrottleOptions{Scale: scale},
		Clock:    func() time.Time { return time.Now().Add(time.Duration(lead.Load())) },
	})
	limits := AWSLimits().Scaled(scale)
	c, lim := testClient(t, ClientOptions{Endpoint: srv.URL, Limits: limits})
	ctx := testCtx(t)

	eni := launchENI(t, ctx, c)
	alloc := allocate(t, ctx, c)
	associate := func(ctx context.Context) error {
		// The same address to the same ENI: EC2 answers without moving it.
		_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: &alloc, NetworkInterfaceId: &eni})
		return err
	}
	describe := func(ctx context.Context) error { return describeAll(ctx, c) }

	// Each action gets its bucket's burst and about two seconds of refill
	// (a few times the burst would take ten: buckets refill in 5-10 s).
	const refill = 2 * time.Second
	type load struct {
		action string
		call   func(context.Context) error
		n      int
	}
	var minTime time.Duration
	loads := []load{{action: "DescribeAddresses", call: describe}, {action: "AssociateAddress", call: associate}}
	for i := range loads {
		b := limits[loads[i].action]
		loads[i].n = b.Burst + int(b.Rate*refill.Seconds())
		// The client can send the calls beyond the burst no faster.
		minTime = max(minTime, time.Duration(float64(loads[i].n-b.Burst)/b.Rate*float64(time.Second)))
	}

	start := time.Now()
	for _, l := range loads {
		if err := l.call(ctx); err != nil {
			t.Fatalf("first %s: %v", l.action, err)
		}
	}
	lead.Store(int64(time.Since(start)))

	g, gctx := errgroup.WithContext(ctx)
	for _, l := range loads {
		var sent atomic.Int64
		sent.Store(1)
		for range 6 {
			g.Go(func() error {
				for sent.Add(1) <= int64(l.n) {
					if err := l.call(gctx); err != nil {
						return fmt.Errorf("%s: %w", l.action, err)
					}
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)

	stats := srv.Stats()
	if n := stats.Errors["RequestLimitExceeded"]; n != 0 {
		t.Errorf("the emulator throttled %d calls: %+v", n, stats.Actions)
	}
	for _, l := range loads {
		if got := stats.Actions[l.action].Calls; got != int64(l.n) {
			t.Errorf("the emulator saw %d %s calls, want %d", got, l.action, l.n)
		}
		if waited := testutil.ToFloat64(lim.waited.WithLabelValues(l.action)); waited <= 0 {
			t.Errorf("no %s call waited for the limiter: the burst did not exceed the bucket", l.action)
		}
	}
	// Loosely: a broken limiter finishes in a fraction of this.
	if elapsed < minTime*9/10 {
		t.Errorf("the burst took %v, want at least about %v", elapsed, minTime)
	}
	t.Logf("%d calls in %v", stats.Calls, elapsed)
}

// The calls counter counts per action and outcome, and a second client on
// the same registry shares the collectors instead of panicking.
func TestMetricsCountPerActionAndCode(t *testing.T) {
	t.Parallel()
	srv := startSim(t, unthrottled())
	reg := prometheus.NewRegistry()
	c1, _ := testClient(t, ClientOptions{Endpoint: srv.URL, Registerer: reg})
	c2, _ := testClient(t, ClientOptions{Endpoint: srv.URL, Registerer: reg})
	dead, _ := testClient(t, ClientOptions{Endpoint: hangUpServer(t), Registerer: reg})
	ctx := testCtx(t)

	for _, c := range []API{c1, c2} {
		if err := describeAll(ctx, c); err != nil {
			t.Fatalf("DescribeAddresses: %v", err)
		}
	}
	if _, err := c1.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0")}); Code(err) != "InvalidAllocationID.NotFound" {
		t.Fatalf("releasing an unknown allocation: %v", err)
	}
	if err := srv.SetFaults(ec2sim.Faults{Actions: map[string]ec2sim.FaultSpec{"CreateTags": {InternalErrorRate: 1}}}); err != nil {
		t.Fatal(err)
	}
	_, err := c2.CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: []string{"eipalloc-0123456789abcdef0"},
		Tags:      []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}},
	})
	if Code(err) != "InternalError" {
		t.Fatalf("CreateTags under a fault: %v", err)
	}
	if err := describeAll(ctx, dead); err == nil || Code(err) != "" {
		t.Fatalf("DescribeAddresses from a server that hangs up: %v, want a non-API error", err)
	}

	want := `
# HELP kube_eip_ec2_calls_total EC2 API calls sent, by action and outcome: "OK", EC2's error code, or "transport" when no answer from EC2 came back.
# TYPE kube_eip_ec2_calls_total counter
kube_eip_ec2_calls_total{action="CreateTags",code="InternalError"} 1
kube_eip_ec2_calls_total{action="DescribeAddresses",code="OK"} 2
kube_eip_ec2_calls_total{action="DescribeAddresses",code="transport"} 1
kube_eip_ec2_calls_total{action="ReleaseAddress",code="InvalidAllocationID.NotFound"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kube_eip_ec2_calls_total"); err != nil {
		t.Error(err)
	}
	if got := histogramCounts(t, reg, "kube_eip_ec2_call_duration_seconds"); got["DescribeAddresses"] != 3 || got["ReleaseAddress"] != 1 || got["CreateTags"] != 1 {
		t.Errorf("duration samples per action = %v, want DescribeAddresses 3, ReleaseAddress 1, CreateTags 1", got)
	}
}

// histogramCounts is the sample count of each action's series.
func histogramCounts(t *testing.T, reg prometheus.Gatherer, name string) map[string]uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "action" {
					out[l.GetValue()] = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return out
}

// hangUpServer is an endpoint that accepts connections and closes them
// unanswered: a failure on the way to EC2, not of EC2.
func hangUpServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestMetricsRefuseAConflictingCollector(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "kube_eip_ec2_calls_total", Help: "not ours"}))
	if _, err := NewClient(context.Background(), ClientOptions{Registerer: reg}); err == nil {
		t.Fatal("NewClient adopted a collector of another kind")
	}
}

// slowBucket lets one DescribeAddresses through, then none for a long time.
var slowBucket = Limits{"DescribeAddresses": {Burst: 1, Rate: 0.001}}

// A call waiting for a token returns when its context is cancelled, with
// the context's error, gives the token back, and never reaches EC2.
func TestCancelWhileWaitingForAToken(t *testing.T) {
	t.Parallel()
	srv := startSim(t, unthrottled())
	c, lim := testClient(t, ClientOptions{Endpoint: srv.URL, Limits: slowBucket})
	ctx := testCtx(t)
	if err := describeAll(ctx, c); err != nil {
		t.Fatal(err)
	}

	// Not derived from ctx: a wait that cannot end before a deadline fails
	// at once (see the next test), and this one must wait.
	callCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- describeAll(callCtx, c) }()
	bucket := lim.buckets["DescribeAddresses"].lim
	waitFor(t, "the call reserves a token", func() bool { return bucket.Tokens() < -0.5 })
	cancel()

	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
		if Classify(err) != ClassTransient {
			t.Errorf("Classify(%v) = %s, want %s", err, Classify(err), ClassTransient)
		}
	case <-ctx.Done():
		t.Fatal("the call kept waiting after its context was cancelled")
	}
	if tokens := bucket.Tokens(); tokens < -0.5 {
		t.Errorf("the bucket holds %.2f tokens after the cancelled wait: the reservation was kept", tokens)
	}
	if n := srv.Stats().Actions["DescribeAddresses"].Calls; n != 1 {
		t.Errorf("the emulator saw %d calls, want only the first", n)
	}
}

// A wait that would outlast the context's deadline fails at once, as a
// deadline error.
func TestWaitPastTheDeadlineFailsAtOnce(t *testing.T) {
	t.Parallel()
	srv := startSim(t, unthrottled())
	c, _ := testClient(t, ClientOptions{Endpoint: srv.URL, Limits: slowBucket})
	ctx := testCtx(t)
	if err := describeAll(ctx, c); err != nil {
		t.Fatal(err)
	}
	err := describeAll(ctx, c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want context.DeadlineExceeded", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the call waited out its deadline before failing")
	}
	if !Retryable(err) {
		t.Errorf("Retryable(%v) = false", err)
	}
}

// The SDK does not retry: one failed call is one call at EC2.
func TestNoSDKRetries(t *testing.T) {
	t.Parallel()
	srv := startSim(t, ec2sim.Options{
		Throttle: ec2sim.ThrottleOptions{Disabled: true},
		Faults:   ec2sim.Faults{Default: ec2sim.FaultSpec{UnavailableRate: 1}},
	})
	c, _ := testClient(t, ClientOptions{Endpoint: srv.URL})
	ctx := testCtx(t)
	if _, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{}); Code(err) != "Unavailable" {
		t.Fatalf("AllocateAddress: %v, want Unavailable", err)
	}
	if n := srv.Stats().Calls; n != 1 {
		t.Errorf("the emulator saw %d calls, want 1", n)
	}
}

// An action without a bucket is not limited.
func TestUnlistedActionsAreNotLimited(t *testing.T) {
	t.Parallel()
	srv := startSim(t, unthrottled())
	c, lim := testClient(t, ClientOptions{Endpoint: srv.URL, Limits: Limits{"AllocateAddress": {Burst: 1, Rate: 0.001}}})
	ctx := testCtx(t)
	for range 20 {
		if err := describeAll(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := lim.buckets["DescribeAddresses"]; ok {
		t.Error("DescribeAddresses has a bucket")
	}
	if n := testutil.CollectAndCount(lim.waited); n != 1 {
		t.Errorf("throttle-wait series = %d, want only AllocateAddress's", n)
	}
}

// The options and the environment both reach the SDK. These tests set the
// environment, so they run alone.
func TestRegion(t *testing.T) {
	for _, tc := range []struct {
		name, env, opt, want string
	}{
		{name: "default", want: "us-east-1"},
		{name: "environment", env: "eu-west-1", want: "eu-west-1"},
		{name: "option wins", env: "eu-west-1", opt: "ap-south-1", want: "ap-south-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("AWS_REGION", tc.env)
			}
			c, _ := testClient(t, ClientOptions{Region: tc.opt})
			if got := c.Options().Region; got != tc.want {
				t.Errorf("region = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEndpointFromEnvironment(t *testing.T) {
	srv := startSim(t, unthrottled())
	t.Setenv("AWS_ENDPOINT_URL_EC2", srv.URL)
	c, _ := testClient(t, ClientOptions{})
	if err := describeAll(testCtx(t), c); err != nil {
		t.Fatalf("DescribeAddresses through AWS_ENDPOINT_URL_EC2: %v", err)
	}
	if n := srv.Stats().Calls; n != 1 {
		t.Errorf("the emulator saw %d calls, want 1", n)
	}
}

type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func TestHTTPClientOption(t *testing.T) {
	t.Parallel()
	srv := startSim(t, unthrottled())
	rt := &countingTransport{next: closingTransport(t)}
	c, _ := testClient(t, ClientOptions{Endpoint: srv.URL, HTTPClient: &http.Client{Transport: rt}})
	if err := describeAll(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load(); n != 1 {
		t.Errorf("the given HTTP client sent %d requests, want 1", n)
	}
}
