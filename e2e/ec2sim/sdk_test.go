package ec2sim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// startSim serves an emulator on a free loopback port for the test, with
// throttling off unless the test configures it, and closes it at cleanup.
func startSim(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	srv, err := Start(opts)
	if err != nil {
		tb.Fatalf("starting emulator: %v", err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Errorf("closing emulator: %v", err)
		}
	})
	return srv
}

func unthrottled() Options { return Options{Throttle: ThrottleOptions{Disabled: true}} }

// newClient is the unmodified SDK client, configured as the binder does,
// pointed at the emulator. Extra option functions adjust it (retries).
func newClient(url string, optFns ...func(*ec2.Options)) *ec2.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""),
	}
	return ec2.NewFromConfig(cfg, append([]func(*ec2.Options){func(o *ec2.Options) {
		o.BaseEndpoint = aws.String(url)
	}}, optFns...)...)
}

// noRetries makes every error reach the test as the emulator sent it.
func noRetries(o *ec2.Options) { o.Retryer = aws.NopRetryer{} }

// setup is the common start: an unthrottled emulator and a client that
// does not retry.
func setup(t *testing.T) (*Server, *ec2.Client, context.Context) {
	t.Helper()
	return setupWith(t, unthrottled())
}

func setupWith(t *testing.T, opts Options) (*Server, *ec2.Client, context.Context) {
	t.Helper()
	srv := startSim(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return srv, newClient(srv.URL, noRetries), ctx
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// wantCode fails unless err is an API error with the code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := errorCode(err); got != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	if s := httpStatus(err); code != "DryRunOperation" && code != "RequestLimitExceeded" && code != "InternalError" &&
		code != "Unavailable" && s != 400 {
		t.Fatalf("HTTP status of %s = %d, want 400", code, s)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func subnets(t *testing.T, ctx context.Context, c *ec2.Client) []types.Subnet {
	t.Helper()
	out, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	noErr(t, err)
	if len(out.Subnets) != 3 {
		t.Fatalf("got %d subnets, want 3", len(out.Subnets))
	}
	return out.Subnets
}

// subnetIn finds the subnet of a zone.
func subnetIn(t *testing.T, ctx context.Context, c *ec2.Client, zone string) types.Subnet {
	t.Helper()
	for _, s := range subnets(t, ctx, c) {
		if aws.ToString(s.AvailabilityZone) == zone {
			return s
		}
	}
	t.Fatalf("no subnet in %s", zone)
	return types.Subnet{}
}

// launch runs one m5.large in a zone and returns it.
func launch(t *testing.T, ctx context.Context, c *ec2.Client, zone string) types.Instance {
	t.Helper()
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId:      aws.String("ami-0abcdef1234567890"),
		InstanceType: types.InstanceTypeM5Large,
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		Placement:    &types.Placement{AvailabilityZone: aws.String(zone)},
	})
	noErr(t, err)
	return out.Instances[0]
}

func allocate(t *testing.T, ctx context.Context, c *ec2.Client) *ec2.AllocateAddressOutput {
	t.Helper()
	out, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc})
	noErr(t, err)
	return out
}

func describeAddress(t *testing.T, ctx context.Context, c *ec2.Client, allocID string) types.Address {
	t.Helper()
	out, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{allocID}})
	noErr(t, err)
	if len(out.Addresses) != 1 {
		t.Fatalf("DescribeAddresses(%s) returned %d addresses", allocID, len(out.Addresses))
	}
	return out.Addresses[0]
}

func describeENI(t *testing.T, ctx context.Context, c *ec2.Client, id string) types.NetworkInterface {
	t.Helper()
	out, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
	noErr(t, err)
	if len(out.NetworkInterfaces) != 1 {
		t.Fatalf("DescribeNetworkInterfaces(%s) returned %d", id, len(out.NetworkInterfaces))
	}
	return out.NetworkInterfaces[0]
}

func createENI(t *testing.T, ctx context.Context, c *ec2.Client, subnetID string) types.NetworkInterface {
	t.Helper()
	out, err := c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(subnetID)})
	noErr(t, err)
	return *out.NetworkInterface
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}
