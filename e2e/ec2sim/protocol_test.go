package ec2sim

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Every action answers DryRun=true with DryRunOperation and HTTP 412, and
// changes nothing.
func TestDryRunEveryAction(t *testing.T) {
	srv, c, ctx := setup(t)
	dry := aws.Bool(true)
	s, id := aws.String, aws.String("x-0123456789abcdef0")
	calls := map[string]func(context.Context) error{
		"AllocateAddress": func(ctx context.Context) error {
			_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{DryRun: dry})
			return err
		},
		"AssociateAddress": func(ctx context.Context) error {
			_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{DryRun: dry, AllocationId: id, InstanceId: id})
			return err
		},
		"DisassociateAddress": func(ctx context.Context) error {
			_, err := c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{DryRun: dry, AssociationId: id})
			return err
		},
		"ReleaseAddress": func(ctx context.Context) error {
			_, err := c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{DryRun: dry, AllocationId: id})
			return err
		},
		"DescribeAddresses": func(ctx context.Context) error {
			_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{DryRun: dry})
			return err
		},
		"CreateTags": func(ctx context.Context) error {
			_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{DryRun: dry, Resources: []string{"i-0123456789abcdef0"},
				Tags: []types.Tag{{Key: s("k"), Value: s("v")}}})
			return err
		},
		"DeleteTags": func(ctx context.Context) error {
			_, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{DryRun: dry, Resources: []string{"i-0123456789abcdef0"}})
			return err
		},
		"RunInstances": func(ctx context.Context) error {
			_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{DryRun: dry, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: s("ami-1")})
			return err
		},
		"TerminateInstances": func(ctx context.Context) error {
			_, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{DryRun: dry, InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		},
		"DescribeInstances": func(ctx context.Context) error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{DryRun: dry})
			return err
		},
		"CreateNetworkInterface": func(ctx context.Context) error {
			_, err := c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{DryRun: dry, SubnetId: id})
			return err
		},
		"DeleteNetworkInterface": func(ctx context.Context) error {
			_, err := c.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{DryRun: dry, NetworkInterfaceId: id})
			return err
		},
		"AttachNetworkInterface": func(ctx context.Context) error {
			_, err := c.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{DryRun: dry, NetworkInterfaceId: id, InstanceId: id, DeviceIndex: aws.Int32(1)})
			return err
		},
		"DetachNetworkInterface": func(ctx context.Context) error {
			_, err := c.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{DryRun: dry, AttachmentId: id})
			return err
		},
		"DescribeNetworkInterfaces": func(ctx context.Context) error {
			_, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{DryRun: dry})
			return err
		},
		// These two have no DryRun member in the API; the emulator still
		// honours the parameter, checked over raw HTTP below.
		"AssignPrivateIpAddresses":   nil,
		"UnassignPrivateIpAddresses": nil,
		"DescribeSubnets": func(ctx context.Context) error {
			_, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{DryRun: dry})
			return err
		},
		"DescribeVpcs": func(ctx context.Context) error {
			_, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{DryRun: dry})
			return err
		},
		"DescribeAccountAttributes": func(ctx context.Context) error {
			_, err := c.DescribeAccountAttributes(ctx, &ec2.DescribeAccountAttributesInput{DryRun: dry})
			return err
		},
		"DescribeAvailabilityZones": func(ctx context.Context) error {
			_, err := c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{DryRun: dry})
			return err
		},
		"StopInstances": func(ctx context.Context) error {
			_, err := c.StopInstances(ctx, &ec2.StopInstancesInput{DryRun: dry, InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		},
		"StartInstances": func(ctx context.Context) error {
			_, err := c.StartInstances(ctx, &ec2.StartInstancesInput{DryRun: dry, InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		},
	}
	for _, action := range Actions() {
		call, ok := calls[action]
		if !ok {
			t.Errorf("action %s has no dry-run case", action)
			continue
		}
		t.Run(action, func(t *testing.T) {
			if call == nil {
				status, code := rawCall(t, srv.URL, url.Values{"Action": {action}, "DryRun": {"true"}})
				if status != http.StatusPreconditionFailed || code != "DryRunOperation" {
					t.Errorf("raw dry run answered %d %s", status, code)
				}
				return
			}
			err := call(ctx)
			wantCode(t, err, "DryRunOperation")
			if s := httpStatus(err); s != http.StatusPreconditionFailed {
				t.Errorf("HTTP status %d, want 412", s)
			}
		})
	}
	if st := srv.Snapshot(); len(st.Addresses)+len(st.Instances)+len(st.NetworkInterfaces) != 0 {
		t.Errorf("dry runs changed the state: %+v", st)
	}
}

// rawCall posts a Query request by hand and returns the status and error code.
func rawCall(t *testing.T, endpoint string, form url.Values) (int, string) {
	t.Helper()
	status, b := rawPost(t, endpoint, form)
	var e xmlErrorResponse
	_ = xml.Unmarshal(b, &e)
	return status, e.Code
}

// rawPost posts a Query request by hand and returns the status and body.
func rawPost(t *testing.T, endpoint string, form url.Values) (int, []byte) {
	t.Helper()
	form.Set("Version", "2016-11-15")
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	noErr(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	noErr(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	noErr(t, err)
	return resp.StatusCode, b
}

func TestProtocolErrors(t *testing.T) {
	srv, _, _ := setup(t)
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"no action", url.Values{}, 400, "MissingAction"},
		{"unknown action", url.Values{"Action": {"LaunchRocket"}}, 400, "InvalidAction"},
		{"bad boolean", url.Values{"Action": {"DescribeVpcs"}, "DryRun": {"perhaps"}}, 400, "InvalidParameterValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code := rawCall(t, srv.URL, tc.form)
			if status != tc.status || code != tc.code {
				t.Errorf("got %d %s, want %d %s", status, code, tc.status, tc.code)
			}
		})
	}
	stats := srv.Stats()
	if stats.Errors["InvalidAction"] != 1 || stats.Errors["MissingAction"] != 1 {
		t.Errorf("error counters %v", stats.Errors)
	}
}

// The answers carry EC2's namespace and a request id, as the SDK's
// deserializers and request-id middleware expect.
func TestAnswerShape(t *testing.T) {
	srv, _, _ := setup(t)
	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("Action=DescribeVpcs&Version=2016-11-15"))
	noErr(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	noErr(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	noErr(t, err)
	var root struct {
		XMLName   xml.Name
		RequestID string `xml:"requestId"`
	}
	noErr(t, xml.Unmarshal(b, &root))
	if root.XMLName.Space != ec2Namespace || root.XMLName.Local != "DescribeVpcsResponse" || root.RequestID == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
		t.Errorf("answer root %v request id %q content type %q", root.XMLName, root.RequestID, resp.Header.Get("Content-Type"))
	}
}

// Long answers must survive the SDK's habit of closing the request body as
// soon as headers arrive (see singleReadAnswer): without the emulator's
// care, about one such call in ten failed on loopback.
func TestLongAnswersThroughSDK(t *testing.T) {
	srv, c, ctx := setup(t)
	for _, zone := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		sub := subnetIn(t, ctx, c, zone)
		for range 10 {
			_, err := c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{
				SubnetId: sub.SubnetId, SecondaryPrivateIpAddressCount: aws.Int32(20),
			})
			noErr(t, err)
		}
	}
	// The answer is long even gzipped, as Go's transport asks for it.
	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("Action=DescribeNetworkInterfaces"))
	noErr(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	noErr(t, err)
	_ = resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.ContentLength <= singleReadAnswer {
		t.Fatalf("answer of %d bytes (%s) is too short to test anything", resp.ContentLength, resp.Header.Get("Content-Encoding"))
	}
	for i := range 25 {
		out, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if len(out.NetworkInterfaces) != 30 {
			t.Fatalf("call %d: %d ENIs", i, len(out.NetworkInterfaces))
		}
	}
}
