package ec2sim

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// readAccountAttributes reads attributes through the SDK as name → values.
func readAccountAttributes(t *testing.T, ctx context.Context, c *ec2.Client, names ...types.AccountAttributeName) map[string][]string {
	t.Helper()
	out, err := c.DescribeAccountAttributes(ctx, &ec2.DescribeAccountAttributesInput{AttributeNames: names})
	noErr(t, err)
	got := map[string][]string{}
	for _, a := range out.AccountAttributes {
		name := aws.ToString(a.AttributeName)
		if _, dup := got[name]; dup {
			t.Errorf("%s answered twice", name)
		}
		got[name] = []string{}
		for _, v := range a.AttributeValues {
			got[name] = append(got[name], aws.ToString(v.AttributeValue))
		}
	}
	return got
}

const vpcMaxElasticIPs types.AccountAttributeName = "vpc-max-elastic-ips"

// The binder asks EC2 for the account's Elastic IP quota: the SDK reads
// back the quota the emulator enforces, AWS's 5 unless configured, and
// nothing when there is no limit.
func TestAccountAttributesReportTheAddressQuota(t *testing.T) {
	for _, tc := range []struct {
		name  string
		quota int
		want  map[string][]string
	}{
		{"AWS's default", 0, map[string][]string{"vpc-max-elastic-ips": {"5"}}},
		{"configured", 2, map[string][]string{"vpc-max-elastic-ips": {"2"}}},
		{"no limit", -1, map[string][]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := unthrottled()
			opts.EIPQuota = tc.quota
			_, c, ctx := setupWith(t, opts)
			if got := readAccountAttributes(t, ctx, c, vpcMaxElasticIPs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if tc.quota < 0 {
				return
			}
			// The number reported is the one AllocateAddress holds to,
			// and holding addresses does not change it.
			n := tc.quota
			if n == 0 {
				n = 5
			}
			for range n {
				allocate(t, ctx, c)
			}
			_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
			wantCode(t, err, "AddressLimitExceeded")
			if got := readAccountAttributes(t, ctx, c, vpcMaxElasticIPs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("with the quota used up: got %v, want %v", got, tc.want)
			}
		})
	}
}

// Asked for nothing in particular, the emulator answers every attribute it
// knows, as EC2 does, in the shape of a VPC-only account with no default
// VPC; asked for some, it answers those once each.
func TestAccountAttributesAnswerWhatIsAsked(t *testing.T) {
	_, c, ctx := setup(t)
	for _, tc := range []struct {
		name  string
		names []types.AccountAttributeName
		want  map[string][]string
	}{
		{"everything", nil, map[string][]string{
			"supported-platforms": {"VPC"}, "max-elastic-ips": {"0"}, "vpc-max-elastic-ips": {"5"}, "default-vpc": {"none"},
		}},
		{"the SDK's named attributes", []types.AccountAttributeName{types.AccountAttributeNameSupportedPlatforms, types.AccountAttributeNameDefaultVpc},
			map[string][]string{"supported-platforms": {"VPC"}, "default-vpc": {"none"}}},
		{"EC2-Classic's quota", []types.AccountAttributeName{"max-elastic-ips"}, map[string][]string{"max-elastic-ips": {"0"}}},
		{"a name asked twice", []types.AccountAttributeName{vpcMaxElasticIPs, vpcMaxElasticIPs}, map[string][]string{"vpc-max-elastic-ips": {"5"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readAccountAttributes(t, ctx, c, tc.names...); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// One attribute EC2 does not know fails the whole call with
// InvalidParameterValue.
func TestUnknownAccountAttributeIsRefused(t *testing.T) {
	_, c, ctx := setup(t)
	_, err := c.DescribeAccountAttributes(ctx, &ec2.DescribeAccountAttributesInput{
		AttributeNames: []types.AccountAttributeName{vpcMaxElasticIPs, "colour"},
	})
	wantCode(t, err, "InvalidParameterValue")
}

// On the wire the answer is EC2's, element for element, so that a client
// other than the Go SDK reads it too.
func TestAccountAttributesWireShape(t *testing.T) {
	srv, _, _ := setup(t)
	status, b := rawPost(t, srv.URL, url.Values{"Action": {"DescribeAccountAttributes"}, "AttributeName.1": {"vpc-max-elastic-ips"}})
	got := regexp.MustCompile(`<requestId>[^<]+</requestId>`).ReplaceAllString(string(b), "<requestId>…</requestId>")
	want := xml.Header + `<DescribeAccountAttributesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
		`<requestId>…</requestId><accountAttributeSet><item><attributeName>vpc-max-elastic-ips</attributeName>` +
		`<attributeValueSet><item><attributeValue>5</attributeValue></item></attributeValueSet></item></accountAttributeSet>` +
		`</DescribeAccountAttributesResponse>`
	if status != http.StatusOK || got != want {
		t.Errorf("HTTP %d\n got %s\nwant %s", status, got, want)
	}
}
