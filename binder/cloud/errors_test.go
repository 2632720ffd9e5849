package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kube-eip/kube-eip/e2e/ec2sim"
)

// classified is what a test expects of an error: its code, class and the
// predicates that hold (all others must not).
type classified struct {
	code  string
	class Class
	is    []string
}

var predicates = map[string]func(error) bool{
	"NotFound":          IsNotFound,
	"Throttled":         IsThrottled,
	"AlreadyAssociated": IsAlreadyAssociated,
	"InUse":             IsInUse,
	"QuotaExceeded":     IsQuotaExceeded,
	"Unavailable":       IsUnavailable,
	"Retryable":         Retryable,
}

func checkClassified(t *testing.T, err error, want classified) {
	t.Helper()
	if got := Code(err); got != want.code {
		t.Errorf("Code(%v) = %q, want %q", err, got, want.code)
	}
	if got := Classify(err); got != want.class {
		t.Errorf("Classify(%v) = %s, want %s", err, got, want.class)
	}
	for name, p := range predicates {
		wantTrue := false
		for _, w := range want.is {
			wantTrue = wantTrue || w == name
		}
		if got := p(err); got != wantTrue {
			t.Errorf("%s(%v) = %t, want %t", name, err, got, wantTrue)
		}
	}
}

// The emulator's real answers, through the real SDK, classify as the
// binder needs. The steps share one emulator and run in order.
func TestClassifyEmulatorErrors(t *testing.T) {
	t.Parallel()
	srv := startSim(t, unthrottled())
	c, _ := testClient(t, ClientOptions{Endpoint: srv.URL})
	ctx := testCtx(t)
	eni1, eni2 := launchENI(t, ctx, c), launchENI(t, ctx, c)
	alloc := allocate(t, ctx, c)
	if _, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: &alloc, NetworkInterfaceId: &eni1}); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		call func() error
		want classified
	}{{
		name: "release an unknown allocation",
		call: func() error {
			_, err := c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0")})
			return err
		},
		want: classified{code: "InvalidAllocationID.NotFound", class: ClassNotFound, is: []string{"NotFound"}},
	}, {
		name: "disassociate an unknown association",
		call: func() error {
			_, err := c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String("eipassoc-0123456789abcdef0")})
			return err
		},
		want: classified{code: "InvalidAssociationID.NotFound", class: ClassNotFound, is: []string{"NotFound"}},
	}, {
		name: "describe an unknown ENI",
		call: func() error {
			_, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-0123456789abcdef0"}})
			return err
		},
		want: classified{code: "InvalidNetworkInterfaceID.NotFound", class: ClassNotFound, is: []string{"NotFound"}},
	}, {
		name: "move an associated address without reassociation",
		call: func() error {
			_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{
				AllocationId: &alloc, NetworkInterfaceId: &eni2, AllowReassociation: aws.Bool(false),
			})
			return err
		},
		want: classified{code: "Resource.AlreadyAssociated", class: ClassConflict, is: []string{"AlreadyAssociated"}},
	}, {
		name: "release an associated address",
		call: func() error {
			_, err := c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: &alloc})
			return err
		},
		want: classified{code: "InvalidIPAddress.InUse", class: ClassConflict, is: []string{"InUse"}},
	}, {
		name: "allocate in EC2-Classic",
		call: func() error {
			_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeStandard})
			return err
		},
		want: classified{code: "InvalidParameterValue", class: ClassFatal},
	}, {
		name: "a malformed ENI id",
		call: func() error {
			_, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-nothex"}})
			return err
		},
		want: classified{code: "InvalidNetworkInterfaceID.Malformed", class: ClassFatal},
	}, {
		name: "exceed the quota of 5",
		call: func() error {
			for range 4 {
				allocate(t, ctx, c)
			}
			_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc})
			return err
		},
		want: classified{code: "AddressLimitExceeded", class: ClassQuota, is: []string{"QuotaExceeded"}},
	}, {
		name: "an injected internal error",
		call: func() error {
			if err := srv.SetFaults(ec2sim.Faults{Default: ec2sim.FaultSpec{InternalErrorRate: 1}}); err != nil {
				t.Fatal(err)
			}
			return describeAll(ctx, c)
		},
		want: classified{code: "InternalError", class: ClassTransient, is: []string{"Unavailable", "Retryable"}},
	}, {
		name: "an injected unavailable",
		call: func() error {
			if err := srv.SetFaults(ec2sim.Faults{Default: ec2sim.FaultSpec{UnavailableRate: 1}}); err != nil {
				t.Fatal(err)
			}
			return describeAll(ctx, c)
		},
		want: classified{code: "Unavailable", class: ClassTransient, is: []string{"Unavailable", "Retryable"}},
	}}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := s.call()
			if err == nil {
				t.Fatal("no error")
			}
			checkClassified(t, err, s.want)
		})
	}
}

// EC2's throttling comes as a 503 like an outage, but is its own class.
func TestClassifyEmulatorThrottling(t *testing.T) {
	t.Parallel()
	// A bucket of one DescribeAddresses, refilled every five seconds.
	srv := startSim(t, ec2sim.Options{Throttle: ec2sim.ThrottleOptions{Scale: 0.01}})
	c, _ := testClient(t, ClientOptions{Endpoint: srv.URL, Limits: Limits{}})
	ctx := testCtx(t)
	if err := describeAll(ctx, c); err != nil {
		t.Fatal(err)
	}
	err := describeAll(ctx, c)
	checkClassified(t, err, classified{code: "RequestLimitExceeded", class: ClassThrottled, is: []string{"Throttled", "Retryable"}})
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
		t.Errorf("throttling came as %v, want HTTP 503", err)
	}
}

// A connection that closes unanswered is transient, with no code.
func TestClassifyTransportError(t *testing.T) {
	t.Parallel()
	c, _ := testClient(t, ClientOptions{Endpoint: hangUpServer(t)})
	checkClassified(t, describeAll(testCtx(t), c), classified{class: ClassTransient, is: []string{"Retryable"}})
}

// The codes the emulator does not send, and wrappings of the SDK's error
// types, classify by the same rules.
func TestClassify(t *testing.T) {
	t.Parallel()
	api := func(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }
	// answered wraps an API error (or any error) the way the SDK does.
	answered := func(status int, err error) error {
		return &smithy.OperationError{ServiceID: "EC2", OperationName: "AssociateAddress", Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err},
		}}
	}
	fatal := func(code string) classified { return classified{code: code, class: ClassFatal} }
	for _, tc := range []struct {
		name string
		err  error
		want classified
	}{
		{"nil", nil, classified{class: ClassNone}},
		{"Throttling", api("Throttling"), classified{code: "Throttling", class: ClassThrottled, is: []string{"Throttled", "Retryable"}}},
		{"ThrottlingException", api("ThrottlingException"), classified{code: "ThrottlingException", class: ClassThrottled, is: []string{"Throttled", "Retryable"}}},
		{"other NotFound", answered(400, api("InvalidSubnetID.NotFound")), classified{code: "InvalidSubnetID.NotFound", class: ClassNotFound, is: []string{"NotFound"}}},
		{"InvalidInstanceID.NotFound", api("InvalidInstanceID.NotFound"), classified{code: "InvalidInstanceID.NotFound", class: ClassNotFound, is: []string{"NotFound"}}},
		{"InvalidAddress.NotFound", api("InvalidAddress.NotFound"), classified{code: "InvalidAddress.NotFound", class: ClassNotFound, is: []string{"NotFound"}}},
		{"IncorrectState", api("IncorrectState"), classified{code: "IncorrectState", class: ClassConflict}},
		{"UnauthorizedOperation", answered(403, api("UnauthorizedOperation")), fatal("UnauthorizedOperation")},
		{"AuthFailure", answered(401, api("AuthFailure")), fatal("AuthFailure")},
		{"InvalidParameterCombination", api("InvalidParameterCombination"), fatal("InvalidParameterCombination")},
		{"MissingParameter", api("MissingParameter"), fatal("MissingParameter")},
		{"unknown code", answered(400, api("SomethingNew")), fatal("SomethingNew")},
		{"ServiceUnavailable", api("ServiceUnavailable"), classified{code: "ServiceUnavailable", class: ClassTransient, is: []string{"Unavailable", "Retryable"}}},
		{"InternalFailure", api("InternalFailure"), classified{code: "InternalFailure", class: ClassTransient, is: []string{"Unavailable", "Retryable"}}},
		{"unknown code with a 5xx", answered(502, api("SomethingNew")), classified{code: "SomethingNew", class: ClassTransient, is: []string{"Unavailable", "Retryable"}}},
		{"5xx without a code", answered(502, errors.New("bad gateway")), classified{class: ClassTransient, is: []string{"Unavailable", "Retryable"}}},
		{"wrapped by the caller", fmt.Errorf("associating: %w", answered(400, api("Resource.AlreadyAssociated"))),
			classified{code: "Resource.AlreadyAssociated", class: ClassConflict, is: []string{"AlreadyAssociated"}}},
		{"deadline", fmt.Errorf("calling: %w", context.DeadlineExceeded), classified{class: ClassTransient, is: []string{"Retryable"}}},
		{"cancelled", &smithy.CanceledError{Err: context.Canceled}, classified{class: ClassTransient, is: []string{"Retryable"}}},
		{"connection refused", &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}},
			classified{class: ClassTransient, is: []string{"Retryable"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkClassified(t, tc.err, tc.want) })
	}
}
