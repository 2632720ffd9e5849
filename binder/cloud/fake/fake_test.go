package fake_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/kube-eip/kube-eip/binder/cloud/fake"
)

// codeOf is the AWS error code, as the binder's error classification sees
// it; "" for success.
func codeOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v is not a smithy.APIError", err)
	}
	return apiErr.ErrorCode()
}

func wantCode(t *testing.T, err error, want string) {
	t.Helper()
	if got := codeOf(t, err); got != want {
		t.Fatalf("error code = %q (%v), want %q", got, err, want)
	}
}

func tagSpec(kv ...string) []types.TagSpecification {
	spec := types.TagSpecification{ResourceType: types.ResourceTypeElasticIp}
	for i := 0; i+1 < len(kv); i += 2 {
		spec.Tags = append(spec.Tags, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return []types.TagSpecification{spec}
}

func allocate(t *testing.T, f *fake.EC2, kv ...string) string {
	t.Helper()
	out, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{TagSpecifications: tagSpec(kv...)})
	if err != nil {
		t.Fatalf("AllocateAddress: %v", err)
	}
	return *out.AllocationId
}

func associate(t *testing.T, f *fake.EC2, alloc, eni, ip string) string {
	t.Helper()
	in := &ec2.AssociateAddressInput{AllocationId: &alloc, NetworkInterfaceId: &eni}
	if ip != "" {
		in.PrivateIpAddress = &ip
	}
	out, err := f.AssociateAddress(context.Background(), in)
	if err != nil {
		t.Fatalf("AssociateAddress(%s, %s, %s): %v", alloc, eni, ip, err)
	}
	return *out.AssociationId
}

func mustAddress(t *testing.T, f *fake.EC2, alloc string) fake.Address {
	t.Helper()
	a, ok := f.Address(alloc)
	if !ok {
		t.Fatalf("address %s does not exist", alloc)
	}
	return a
}

var (
	allocIDPattern = regexp.MustCompile(`^eipalloc-[0-9a-f]{17}$`)
	assocIDPattern = regexp.MustCompile(`^eipassoc-[0-9a-f]{17}$`)
	eniIDPattern   = regexp.MustCompile(`^eni-[0-9a-f]{17}$`)
)

func TestAllocateAddressTagsAtomically(t *testing.T) {
	f := fake.New()
	out, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{TagSpecifications: tagSpec("cluster", "a", "pod", "ns/p")})
	if err != nil {
		t.Fatal(err)
	}
	if !allocIDPattern.MatchString(*out.AllocationId) {
		t.Errorf("allocation id %q does not look like AWS's", *out.AllocationId)
	}
	if ip := netip.MustParseAddr(*out.PublicIp); !netip.MustParsePrefix("203.0.113.0/24").Contains(ip) {
		t.Errorf("public IP %s is outside 203.0.113.0/24", ip)
	}
	if aws.ToString(out.PublicIpv4Pool) != "amazon" {
		t.Errorf("pool = %q, want amazon", aws.ToString(out.PublicIpv4Pool))
	}
	a := mustAddress(t, f, *out.AllocationId)
	if a.PublicIP != *out.PublicIp || a.Tags["cluster"] != "a" || a.Tags["pod"] != "ns/p" || len(a.Tags) != 2 {
		t.Errorf("stored address = %+v", a)
	}
}

func TestAllocateAddressRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fake.EC2)
		in    ec2.AllocateAddressInput
		code  string
	}{
		{name: "tags for another resource type", code: "InvalidParameterValue",
			in: ec2.AllocateAddressInput{TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance,
				Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}}}},
		{name: "reserved tag key", code: "InvalidParameterValue", in: ec2.AllocateAddressInput{TagSpecifications: tagSpec("aws:x", "v")}},
		{name: "unknown pool", code: "InvalidPublicIpv4PoolID.NotFound",
			in: ec2.AllocateAddressInput{PublicIpv4Pool: aws.String("ipv4pool-ec2-0123456789abcdef0")}},
		{name: "quota reached by pre-existing addresses", code: "AddressLimitExceeded",
			setup: func(f *fake.EC2) {
				for range 5 {
					f.AddAddress(nil)
				}
			}},
		{name: "lowered quota", code: "AddressLimitExceeded",
			setup: func(f *fake.EC2) { f.SetQuota(1); f.AddAddress(nil) }},
		{name: "zero quota", code: "AddressLimitExceeded", setup: func(f *fake.EC2) { f.SetQuota(0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.New()
			if tt.setup != nil {
				tt.setup(f)
			}
			before := len(f.Addresses())
			_, err := f.AllocateAddress(context.Background(), &tt.in)
			wantCode(t, err, tt.code)
			if got := len(f.Addresses()); got != before {
				t.Errorf("a refused allocation changed the address count from %d to %d", before, got)
			}
		})
	}
}

func TestAllocateAddressQuota(t *testing.T) {
	f := fake.New()
	for i := range 5 {
		if _, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{}); err != nil {
			t.Fatalf("allocation %d within the default quota: %v", i+1, err)
		}
	}
	_, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{})
	wantCode(t, err, "AddressLimitExceeded")

	f.SetQuota(-1)
	seen := map[string]bool{}
	for _, a := range f.Addresses() {
		seen[a.PublicIP] = true
	}
	for range 300 {
		out, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{})
		if err != nil {
			t.Fatalf("unlimited quota: %v", err)
		}
		if seen[*out.PublicIp] {
			t.Fatalf("public IP %s handed out twice", *out.PublicIp)
		}
		seen[*out.PublicIp] = true
	}
}

// TestPublicIPsNeverShared fills the fake's address space: a public IP is
// never held by two addresses, even once allocation wraps around.
func TestPublicIPsNeverShared(t *testing.T) {
	f := fake.New()
	f.SetQuota(-1)
	held := map[string]string{}
	for {
		out, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{})
		if codeOf(t, err) == "InsufficientAddressCapacity" {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := held[*out.PublicIp]; dup {
			t.Fatalf("%s handed to %s and %s", *out.PublicIp, prev, *out.AllocationId)
		}
		held[*out.PublicIp] = *out.AllocationId
	}
	if len(held) < 500 {
		t.Fatalf("only %d public IPs before running out", len(held))
	}
	// Free one in the middle: wrapping around must find exactly that one.
	var freed string
	for ip, id := range held {
		freed = ip
		if _, err := f.ReleaseAddress(context.Background(), &ec2.ReleaseAddressInput{AllocationId: &id}); err != nil {
			t.Fatal(err)
		}
		break
	}
	out, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{})
	if err != nil {
		t.Fatal(err)
	}
	if *out.PublicIp != freed {
		t.Errorf("got %s, want the only free IP %s", *out.PublicIp, freed)
	}
}

func TestAllocateAddressFromRegisteredPool(t *testing.T) {
	f := fake.New()
	f.AddPublicIPv4Pool("ipv4pool-ec2-0123456789abcdef0")
	out, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{PublicIpv4Pool: aws.String("ipv4pool-ec2-0123456789abcdef0")})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustAddress(t, f, *out.AllocationId).PublicIPv4Pool; got != "ipv4pool-ec2-0123456789abcdef0" {
		t.Errorf("pool = %q", got)
	}
}

// world is a small account: eni1 on i-1 with two IPs and a prefix, eni2 on
// i-2, a branch ENI, and addresses a and b allocated by the "binder".
type world struct {
	f                  *fake.EC2
	eni1, eni2, branch string
	a, b               string
}

func newWorld(t *testing.T) world {
	t.Helper()
	f := fake.New()
	w := world{
		f:      f,
		eni1:   f.AddInterface("i-1", []string{"10.0.0.10", "10.0.0.11"}, []string{"10.0.1.16/28"}),
		eni2:   f.AddInterface("i-2", []string{"10.0.0.20", "10.0.0.21"}, nil),
		branch: f.AddBranchInterface("10.0.0.30"),
	}
	w.a = allocate(t, f, "cluster", "c1", "pod", "ns/a")
	w.b = allocate(t, f, "cluster", "c1", "pod", "ns/b")
	return w
}

func TestAssociateAddress(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, w world) // runs before the call
		in    func(w world) *ec2.AssociateAddressInput
		code  string
		// then checks the state after the call; before is the association
		// id of w.a before the call.
		then func(t *testing.T, w world, out *ec2.AssociateAddressOutput, before string)
	}{
		{
			name: "primary IP by default",
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1}
			},
			then: func(t *testing.T, w world, out *ec2.AssociateAddressOutput, _ string) {
				a := mustAddress(t, w.f, w.a)
				if a.PrivateIP != "10.0.0.10" || a.NetworkInterfaceID != w.eni1 || a.InstanceID != "i-1" || a.AssociationID != *out.AssociationId {
					t.Errorf("address = %+v", a)
				}
				if !assocIDPattern.MatchString(a.AssociationID) {
					t.Errorf("association id %q does not look like AWS's", a.AssociationID)
				}
			},
		},
		{
			name: "secondary IP",
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1, PrivateIpAddress: aws.String("10.0.0.11")}
			},
			then: wantOn("10.0.0.11"),
		},
		{
			name: "IP inside a delegated prefix",
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1, PrivateIpAddress: aws.String("10.0.1.20")}
			},
			then: wantOn("10.0.1.20"),
		},
		{
			name: "branch ENI has no instance",
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.branch}
			},
			then: func(t *testing.T, w world, _ *ec2.AssociateAddressOutput, _ string) {
				if a := mustAddress(t, w.f, w.a); a.PrivateIP != "10.0.0.30" || a.InstanceID != "" {
					t.Errorf("address = %+v", a)
				}
			},
		},
		{
			name: "IP not on the ENI",
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1, PrivateIpAddress: aws.String("10.0.0.20")}
			},
			code: "InvalidParameterValue",
			then: wantUnassociated,
		},
		{
			name: "IP just outside the prefix",
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1, PrivateIpAddress: aws.String("10.0.1.32")}
			},
			code: "InvalidParameterValue",
			then: wantUnassociated,
		},
		{
			name: "unknown allocation",
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0"), NetworkInterfaceId: &w.eni1}
			},
			code: "InvalidAllocationID.NotFound",
		},
		{
			name: "unknown ENI",
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: aws.String("eni-0123456789abcdef0")}
			},
			code: "InvalidNetworkInterfaceID.NotFound",
			then: wantUnassociated,
		},
		{
			name: "no ENI",
			in:   func(w world) *ec2.AssociateAddressInput { return &ec2.AssociateAddressInput{AllocationId: &w.a} },
			code: "MissingParameter",
		},
		{
			name:  "already there: same association, even with AllowReassociation false",
			setup: func(t *testing.T, w world) { associate(t, w.f, w.a, w.eni1, "10.0.0.11") },
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1,
					PrivateIpAddress: aws.String("10.0.0.11"), AllowReassociation: aws.Bool(false)}
			},
			then: func(t *testing.T, w world, out *ec2.AssociateAddressOutput, before string) {
				if *out.AssociationId != before || mustAddress(t, w.f, w.a).AssociationID != before {
					t.Errorf("association changed from %s to %s", before, *out.AssociationId)
				}
			},
		},
		{
			name:  "elsewhere with AllowReassociation false",
			setup: func(t *testing.T, w world) { associate(t, w.f, w.a, w.eni2, "") },
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1, AllowReassociation: aws.Bool(false)}
			},
			code: "Resource.AlreadyAssociated",
			then: func(t *testing.T, w world, _ *ec2.AssociateAddressOutput, before string) {
				if a := mustAddress(t, w.f, w.a); a.NetworkInterfaceID != w.eni2 || a.AssociationID != before {
					t.Errorf("a refused association moved the address: %+v", a)
				}
			},
		},
		{
			name:  "elsewhere with AllowReassociation unset moves it",
			setup: func(t *testing.T, w world) { associate(t, w.f, w.a, w.eni2, "") },
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1}
			},
			then: wantMoved,
		},
		{
			name:  "elsewhere with AllowReassociation true moves it",
			setup: func(t *testing.T, w world) { associate(t, w.f, w.a, w.eni2, "") },
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1, AllowReassociation: aws.Bool(true)}
			},
			then: wantMoved,
		},
		{
			name:  "displaces the address already on the IP",
			setup: func(t *testing.T, w world) { associate(t, w.f, w.b, w.eni1, "10.0.0.11") },
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1, PrivateIpAddress: aws.String("10.0.0.11")}
			},
			then: func(t *testing.T, w world, _ *ec2.AssociateAddressOutput, _ string) {
				if b := mustAddress(t, w.f, w.b); b.AssociationID != "" || b.NetworkInterfaceID != "" || b.PrivateIP != "" {
					t.Errorf("displaced address is still associated: %+v", b)
				}
				if a := mustAddress(t, w.f, w.a); a.PrivateIP != "10.0.0.11" {
					t.Errorf("address = %+v", a)
				}
			},
		},
		{
			name:  "other IPs of the ENI keep their addresses",
			setup: func(t *testing.T, w world) { associate(t, w.f, w.b, w.eni1, "10.0.0.10") },
			in: func(w world) *ec2.AssociateAddressInput {
				return &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1, PrivateIpAddress: aws.String("10.0.0.11")}
			},
			then: func(t *testing.T, w world, _ *ec2.AssociateAddressOutput, _ string) {
				if b := mustAddress(t, w.f, w.b); b.PrivateIP != "10.0.0.10" {
					t.Errorf("address on another IP was disturbed: %+v", b)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			if tt.setup != nil {
				tt.setup(t, w)
			}
			before := mustAddress(t, w.f, w.a).AssociationID
			out, err := w.f.AssociateAddress(context.Background(), tt.in(w))
			wantCode(t, err, tt.code)
			if tt.then != nil {
				tt.then(t, w, out, before)
			}
		})
	}
}

func wantOn(ip string) func(*testing.T, world, *ec2.AssociateAddressOutput, string) {
	return func(t *testing.T, w world, _ *ec2.AssociateAddressOutput, _ string) {
		t.Helper()
		if a := mustAddress(t, w.f, w.a); a.PrivateIP != ip || a.NetworkInterfaceID != w.eni1 {
			t.Errorf("address = %+v, want on %s %s", a, w.eni1, ip)
		}
	}
}

func wantUnassociated(t *testing.T, w world, _ *ec2.AssociateAddressOutput, _ string) {
	t.Helper()
	if a := mustAddress(t, w.f, w.a); a.AssociationID != "" || a.NetworkInterfaceID != "" || a.PrivateIP != "" {
		t.Errorf("a refused association left %+v", a)
	}
}

// wantMoved checks a move to eni1's primary IP: a new association, and the
// old one gone for good.
func wantMoved(t *testing.T, w world, out *ec2.AssociateAddressOutput, before string) {
	t.Helper()
	a := mustAddress(t, w.f, w.a)
	if a.NetworkInterfaceID != w.eni1 || a.PrivateIP != "10.0.0.10" || a.InstanceID != "i-1" {
		t.Errorf("address = %+v, want on %s", a, w.eni1)
	}
	if *out.AssociationId == before || a.AssociationID != *out.AssociationId {
		t.Errorf("association ids: before %s, returned %s, stored %s", before, *out.AssociationId, a.AssociationID)
	}
	_, err := w.f.DisassociateAddress(context.Background(), &ec2.DisassociateAddressInput{AssociationId: &before})
	wantCode(t, err, "InvalidAssociationID.NotFound")
}

func TestDisassociateAddress(t *testing.T) {
	w := newWorld(t)
	assoc := associate(t, w.f, w.a, w.eni1, "")
	if _, err := w.f.DisassociateAddress(context.Background(), &ec2.DisassociateAddressInput{AssociationId: &assoc}); err != nil {
		t.Fatal(err)
	}
	if a := mustAddress(t, w.f, w.a); a.AssociationID != "" || a.NetworkInterfaceID != "" || a.PrivateIP != "" || a.InstanceID != "" {
		t.Errorf("address after disassociation = %+v", a)
	}
	_, err := w.f.DisassociateAddress(context.Background(), &ec2.DisassociateAddressInput{AssociationId: &assoc})
	wantCode(t, err, "InvalidAssociationID.NotFound")
}

func TestReleaseAddress(t *testing.T) {
	w := newWorld(t)
	release := func(id string) error {
		_, err := w.f.ReleaseAddress(context.Background(), &ec2.ReleaseAddressInput{AllocationId: &id})
		return err
	}
	wantCode(t, release("eipalloc-0123456789abcdef0"), "InvalidAllocationID.NotFound")

	assoc := associate(t, w.f, w.a, w.eni1, "")
	wantCode(t, release(w.a), "InvalidIPAddress.InUse")
	if _, ok := w.f.Address(w.a); !ok {
		t.Fatal("a refused release removed the address")
	}
	if _, err := w.f.DisassociateAddress(context.Background(), &ec2.DisassociateAddressInput{AssociationId: &assoc}); err != nil {
		t.Fatal(err)
	}
	if err := release(w.a); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.f.Address(w.a); ok {
		t.Error("released address still exists")
	}
	wantCode(t, release(w.a), "InvalidAllocationID.NotFound")
}

func TestReleaseFreesQuota(t *testing.T) {
	f := fake.New()
	f.SetQuota(1)
	id := allocate(t, f)
	if _, err := f.ReleaseAddress(context.Background(), &ec2.ReleaseAddressInput{AllocationId: &id}); err != nil {
		t.Fatal(err)
	}
	allocate(t, f)
}

// The binder reads the account's Elastic IP quota from
// vpc-max-elastic-ips: the fake reports the quota it enforces, whatever
// the account holds, and nothing when it enforces none.
func TestDescribeAccountAttributes(t *testing.T) {
	quota := "vpc-max-elastic-ips"
	tests := []struct {
		name  string
		setup func(f *fake.EC2)
		names []types.AccountAttributeName
		want  map[string][]string
		code  string
	}{
		{name: "everything, with AWS's default quota", want: map[string][]string{quota: {"5"}, "supported-platforms": {"VPC"}}},
		{name: "the quota by name", names: []types.AccountAttributeName{types.AccountAttributeName(quota)},
			want: map[string][]string{quota: {"5"}}},
		{name: "a lowered quota", setup: func(f *fake.EC2) { f.SetQuota(1) },
			names: []types.AccountAttributeName{types.AccountAttributeName(quota)}, want: map[string][]string{quota: {"1"}}},
		{name: "a zero quota is still a quota", setup: func(f *fake.EC2) { f.SetQuota(0) },
			names: []types.AccountAttributeName{types.AccountAttributeName(quota)}, want: map[string][]string{quota: {"0"}}},
		{name: "addresses held do not change the quota", setup: func(f *fake.EC2) { f.AddAddress(nil); f.AddAddress(nil) },
			names: []types.AccountAttributeName{types.AccountAttributeName(quota)}, want: map[string][]string{quota: {"5"}}},
		{name: "no limit leaves the quota out", setup: func(f *fake.EC2) { f.SetQuota(-1) },
			names: []types.AccountAttributeName{types.AccountAttributeName(quota)}, want: map[string][]string{}},
		{name: "no limit, everything", setup: func(f *fake.EC2) { f.SetQuota(-1) },
			want: map[string][]string{"supported-platforms": {"VPC"}}},
		{name: "supported-platforms", names: []types.AccountAttributeName{types.AccountAttributeNameSupportedPlatforms},
			want: map[string][]string{"supported-platforms": {"VPC"}}},
		{name: "a name asked twice is answered once",
			names: []types.AccountAttributeName{types.AccountAttributeName(quota), types.AccountAttributeName(quota)},
			want:  map[string][]string{quota: {"5"}}},
		{name: "one unknown name fails the call", code: "InvalidParameterValue",
			names: []types.AccountAttributeName{types.AccountAttributeName(quota), "colour"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.New()
			if tt.setup != nil {
				tt.setup(f)
			}
			out, err := f.DescribeAccountAttributes(context.Background(), &ec2.DescribeAccountAttributesInput{AttributeNames: tt.names})
			wantCode(t, err, tt.code)
			if err != nil {
				return
			}
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
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func filter(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func TestDescribeAddresses(t *testing.T) {
	w := newWorld(t)
	assocA := associate(t, w.f, w.a, w.eni1, "10.0.0.11")
	other, otherIP := w.f.AddAddress(map[string]string{"cluster": "c2", "owner": "x"})
	onBranch := allocate(t, w.f)
	associate(t, w.f, onBranch, w.branch, "")

	tests := []struct {
		name string
		in   ec2.DescribeAddressesInput
		want []string
		code string
	}{
		{name: "everything", want: []string{w.a, w.b, other, onBranch}},
		{name: "tag", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("tag:cluster", "c1")}}, want: []string{w.a, w.b}},
		{name: "tag values are ORed", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("tag:cluster", "c2", "c1")}},
			want: []string{w.a, w.b, other}},
		{name: "filters are ANDed", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("tag:cluster", "c1"), filter("tag:pod", "ns/b", "ns/z")}},
			want: []string{w.b}},
		{name: "AND with nothing in common", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("tag:cluster", "c2"), filter("tag:pod", "ns/a")}}},
		{name: "tag-key", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("tag-key", "owner")}}, want: []string{other}},
		{name: "tag value must match exactly", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("tag:cluster", "c")}}},
		{name: "allocation-id", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("allocation-id", w.b)}}, want: []string{w.b}},
		{name: "association-id", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("association-id", assocA)}}, want: []string{w.a}},
		{name: "network-interface-id", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("network-interface-id", w.eni1, w.branch)}},
			want: []string{w.a, onBranch}},
		{name: "private-ip-address", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("private-ip-address", "10.0.0.30")}},
			want: []string{onBranch}},
		{name: "public-ip", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("public-ip", otherIP)}}, want: []string{other}},
		{name: "instance-id", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("instance-id", "i-1", "i-2")}}, want: []string{w.a}},
		{name: "unknown filter", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("colour", "blue")}}, code: "InvalidParameterValue"},
		{name: "filter without values", in: ec2.DescribeAddressesInput{Filters: []types.Filter{filter("tag:cluster")}}, code: "InvalidParameterValue"},
		{name: "by allocation id", in: ec2.DescribeAddressesInput{AllocationIds: []string{other, w.a}}, want: []string{w.a, other}},
		{name: "by allocation id and filter", in: ec2.DescribeAddressesInput{AllocationIds: []string{other, w.a},
			Filters: []types.Filter{filter("tag:cluster", "c1")}}, want: []string{w.a}},
		{name: "one unknown allocation id fails the call", in: ec2.DescribeAddressesInput{AllocationIds: []string{w.a, "eipalloc-0123456789abcdef0"}},
			code: "InvalidAllocationID.NotFound"},
		{name: "by public IP", in: ec2.DescribeAddressesInput{PublicIps: []string{otherIP}}, want: []string{other}},
		{name: "unknown public IP", in: ec2.DescribeAddressesInput{PublicIps: []string{"192.0.2.250"}}, code: "InvalidAddress.NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := w.f.DescribeAddresses(context.Background(), &tt.in)
			wantCode(t, err, tt.code)
			if err != nil {
				return
			}
			var got []string
			for _, a := range out.Addresses {
				got = append(got, *a.AllocationId)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestDescribeAddressesFields(t *testing.T) {
	w := newWorld(t)
	assoc := associate(t, w.f, w.a, w.eni1, "10.0.1.17")
	out, err := w.f.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{AllocationIds: []string{w.a, w.b}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Addresses) != 2 {
		t.Fatalf("got %d addresses", len(out.Addresses))
	}
	a, b := out.Addresses[0], out.Addresses[1]
	if *a.AllocationId != w.a {
		a, b = b, a
	}
	stored := mustAddress(t, w.f, w.a)
	if aws.ToString(a.PublicIp) != stored.PublicIP || aws.ToString(a.AssociationId) != assoc ||
		aws.ToString(a.NetworkInterfaceId) != w.eni1 || aws.ToString(a.PrivateIpAddress) != "10.0.1.17" ||
		aws.ToString(a.InstanceId) != "i-1" || a.Domain != types.DomainTypeVpc {
		t.Errorf("associated address = %+v", a)
	}
	if tags := tagsOf(a.Tags); tags["cluster"] != "c1" || tags["pod"] != "ns/a" || len(tags) != 2 {
		t.Errorf("tags = %v", tags)
	}
	// The SDK leaves absent fields nil, and callers test them that way.
	if b.AssociationId != nil || b.NetworkInterfaceId != nil || b.PrivateIpAddress != nil || b.InstanceId != nil {
		t.Errorf("unassociated address carries association fields: %+v", b)
	}
}

func tagsOf(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func TestDescribeNetworkInterfaces(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name string
		in   ec2.DescribeNetworkInterfacesInput
		want []string
		code string
	}{
		{name: "everything", want: []string{w.eni1, w.eni2, w.branch}},
		{name: "by id", in: ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{w.eni2}}, want: []string{w.eni2}},
		{name: "unknown id", in: ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{w.eni2, "eni-0123456789abcdef0"}},
			code: "InvalidNetworkInterfaceID.NotFound"},
		{name: "attachment.instance-id", in: ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{filter("attachment.instance-id", "i-2", "i-9")}},
			want: []string{w.eni2}},
		{name: "addresses.private-ip-address", in: ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{filter("addresses.private-ip-address", "10.0.0.11")}},
			want: []string{w.eni1}},
		{name: "private-ip-address", in: ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{filter("private-ip-address", "10.0.0.30", "10.0.0.20")}},
			want: []string{w.eni2, w.branch}},
		{name: "network-interface-id", in: ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{filter("network-interface-id", w.eni1)}},
			want: []string{w.eni1}},
		{name: "interface-type", in: ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{filter("interface-type", "branch")}},
			want: []string{w.branch}},
		{name: "filters are ANDed", in: ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{
			filter("interface-type", "interface"), filter("private-ip-address", "10.0.0.30", "10.0.0.10")}},
			want: []string{w.eni1}},
		{name: "unknown filter", in: ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{filter("tag:x", "y")}}, code: "InvalidParameterValue"},
		{name: "MaxResults below EC2's minimum", in: ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(1)}, code: "InvalidParameterValue"},
		{name: "MaxResults with ids", in: ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(5), NetworkInterfaceIds: []string{w.eni1}},
			code: "InvalidParameterCombination"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := w.f.DescribeNetworkInterfaces(context.Background(), &tt.in)
			wantCode(t, err, tt.code)
			if err != nil {
				return
			}
			var got []string
			for _, e := range out.NetworkInterfaces {
				got = append(got, *e.NetworkInterfaceId)
			}
			slices.Sort(got)
			if want := slices.Sorted(slices.Values(tt.want)); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestDescribeNetworkInterfacesFields(t *testing.T) {
	w := newWorld(t)
	if !eniIDPattern.MatchString(w.eni1) {
		t.Errorf("ENI id %q does not look like AWS's", w.eni1)
	}
	assoc := associate(t, w.f, w.a, w.eni1, "10.0.0.11")
	associate(t, w.f, w.b, w.eni1, "10.0.1.18") // inside the prefix: not a listed private IP
	out, err := w.f.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{w.eni1, w.branch}})
	if err != nil {
		t.Fatal(err)
	}
	var eni, branch types.NetworkInterface
	for _, e := range out.NetworkInterfaces {
		switch *e.NetworkInterfaceId {
		case w.eni1:
			eni = e
		case w.branch:
			branch = e
		}
	}
	if eni.InterfaceType != types.NetworkInterfaceTypeInterface || eni.Attachment == nil || aws.ToString(eni.Attachment.InstanceId) != "i-1" {
		t.Errorf("ENI = %+v", eni)
	}
	if aws.ToString(eni.PrivateIpAddress) != "10.0.0.10" || len(eni.PrivateIpAddresses) != 2 {
		t.Fatalf("private IPs = %+v", eni.PrivateIpAddresses)
	}
	primary, secondary := eni.PrivateIpAddresses[0], eni.PrivateIpAddresses[1]
	if aws.ToString(primary.PrivateIpAddress) != "10.0.0.10" || !aws.ToBool(primary.Primary) || primary.Association != nil || eni.Association != nil {
		t.Errorf("primary = %+v", primary)
	}
	if aws.ToString(secondary.PrivateIpAddress) != "10.0.0.11" || aws.ToBool(secondary.Primary) || secondary.Association == nil {
		t.Fatalf("secondary = %+v", secondary)
	}
	if got := secondary.Association; aws.ToString(got.AllocationId) != w.a || aws.ToString(got.AssociationId) != assoc ||
		aws.ToString(got.PublicIp) != mustAddress(t, w.f, w.a).PublicIP {
		t.Errorf("association = %+v", got)
	}
	if len(eni.Ipv4Prefixes) != 1 || aws.ToString(eni.Ipv4Prefixes[0].Ipv4Prefix) != "10.0.1.16/28" {
		t.Errorf("prefixes = %+v", eni.Ipv4Prefixes)
	}
	if branch.InterfaceType != types.NetworkInterfaceTypeBranch || branch.Attachment != nil {
		t.Errorf("branch = %+v", branch)
	}

	// An address on the primary IP also shows on the ENI itself.
	associate(t, w.f, w.b, w.eni1, "")
	out, err = w.f.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{w.eni1}})
	if err != nil {
		t.Fatal(err)
	}
	if e := out.NetworkInterfaces[0]; e.Association == nil || aws.ToString(e.Association.AllocationId) != w.b ||
		e.PrivateIpAddresses[0].Association == nil {
		t.Errorf("primary association missing: %+v", e)
	}
}

func TestDescribeNetworkInterfacesPages(t *testing.T) {
	f := fake.New()
	want := map[string]bool{}
	for i := range 12 {
		want[f.AddInterface(fmt.Sprintf("i-%d", i), []string{fmt.Sprintf("10.0.0.%d", i+1)}, nil)] = true
	}
	var pages int
	p := ec2.NewDescribeNetworkInterfacesPaginator(f, &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(out.NetworkInterfaces) > 5 {
			t.Fatalf("page of %d", len(out.NetworkInterfaces))
		}
		for _, e := range out.NetworkInterfaces {
			if !want[*e.NetworkInterfaceId] {
				t.Fatalf("%s returned twice or never created", *e.NetworkInterfaceId)
			}
			delete(want, *e.NetworkInterfaceId)
		}
	}
	if pages != 3 || len(want) != 0 {
		t.Errorf("%d pages, %d ENIs never returned", pages, len(want))
	}
}

func TestCreateTags(t *testing.T) {
	w := newWorld(t)
	other, _ := w.f.AddAddress(nil)
	_, err := w.f.CreateTags(context.Background(), &ec2.CreateTagsInput{
		Resources: []string{w.a, other},
		Tags:      []types.Tag{{Key: aws.String("pod"), Value: aws.String("ns/new")}, {Key: aws.String("extra"), Value: aws.String("1")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tags := mustAddress(t, w.f, w.a).Tags; tags["pod"] != "ns/new" || tags["cluster"] != "c1" || tags["extra"] != "1" || len(tags) != 3 {
		t.Errorf("tags = %v", tags)
	}
	if tags := mustAddress(t, w.f, other).Tags; tags["pod"] != "ns/new" || len(tags) != 2 {
		t.Errorf("tags of an untagged address = %v", tags)
	}

	_, err = w.f.CreateTags(context.Background(), &ec2.CreateTagsInput{
		Resources: []string{w.b, "eipalloc-0123456789abcdef0"},
		Tags:      []types.Tag{{Key: aws.String("pod"), Value: aws.String("ns/lost")}},
	})
	wantCode(t, err, "InvalidAllocationID.NotFound")
	if got := mustAddress(t, w.f, w.b).Tags["pod"]; got != "ns/b" {
		t.Errorf("a failed CreateTags tagged %s anyway: pod=%s", w.b, got)
	}
}

// TestDryRun checks every action answers DryRunOperation and changes
// nothing.
func TestDryRun(t *testing.T) {
	w := newWorld(t)
	assoc := associate(t, w.f, w.a, w.eni1, "")
	ctx, yes := context.Background(), aws.Bool(true)
	calls := map[string]func() error{
		"AllocateAddress": func() error {
			_, err := w.f.AllocateAddress(ctx, &ec2.AllocateAddressInput{DryRun: yes})
			return err
		},
		"AssociateAddress": func() error {
			_, err := w.f.AssociateAddress(ctx, &ec2.AssociateAddressInput{DryRun: yes, AllocationId: &w.b, NetworkInterfaceId: &w.eni2})
			return err
		},
		"DisassociateAddress": func() error {
			_, err := w.f.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{DryRun: yes, AssociationId: &assoc})
			return err
		},
		"ReleaseAddress": func() error {
			_, err := w.f.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{DryRun: yes, AllocationId: &w.b})
			return err
		},
		"DescribeAddresses": func() error {
			_, err := w.f.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{DryRun: yes})
			return err
		},
		"DescribeNetworkInterfaces": func() error {
			_, err := w.f.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{DryRun: yes})
			return err
		},
		"CreateTags": func() error {
			_, err := w.f.CreateTags(ctx, &ec2.CreateTagsInput{DryRun: yes, Resources: []string{w.b},
				Tags: []types.Tag{{Key: aws.String("pod"), Value: aws.String("x")}}})
			return err
		},
		"DescribeAccountAttributes": func() error {
			_, err := w.f.DescribeAccountAttributes(ctx, &ec2.DescribeAccountAttributesInput{DryRun: yes})
			return err
		},
	}
	before := w.f.Addresses()
	for action, call := range calls {
		t.Run(action, func(t *testing.T) {
			n := w.f.Calls(action)
			wantCode(t, call(), "DryRunOperation")
			if got := w.f.Calls(action); got != n+1 {
				t.Errorf("Calls(%s) went from %d to %d, want one more", action, n, got)
			}
		})
	}
	if after := w.f.Addresses(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("dry runs changed the addresses:\n%v\n%v", before, after)
	}
}

func TestFailNext(t *testing.T) {
	f := fake.New()
	f.FailNext("AllocateAddress", "RequestLimitExceeded", 2)
	f.FailNext("AllocateAddress", "InternalError", 1)
	wants := []struct {
		code  string
		fault smithy.ErrorFault
	}{{"RequestLimitExceeded", smithy.FaultClient}, {"RequestLimitExceeded", smithy.FaultClient}, {"InternalError", smithy.FaultServer}}
	for i, want := range wants {
		_, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{TagSpecifications: tagSpec("try", fmt.Sprint(i))})
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != want.code || apiErr.ErrorFault() != want.fault {
			t.Fatalf("call %d: %v, want %s (%v)", i+1, err, want.code, want.fault)
		}
		if n := len(f.Addresses()); n != 0 {
			t.Fatalf("an injected failure allocated anyway: %d addresses", n)
		}
	}
	allocate(t, f, "try", "last")
	if got := f.Calls("AllocateAddress"); got != 4 {
		t.Errorf("Calls = %d, want 4", got)
	}
	inputs := f.Inputs("AllocateAddress")
	if len(inputs) != 4 {
		t.Fatalf("%d inputs recorded", len(inputs))
	}
	if in, ok := inputs[3].(*ec2.AllocateAddressInput); !ok || aws.ToString(in.TagSpecifications[0].Tags[0].Value) != "last" {
		t.Errorf("last input = %#v", inputs[3])
	}
	// Other actions are not affected.
	if _, err := f.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{}); err != nil {
		t.Error(err)
	}
}

func TestFailAfterApply(t *testing.T) {
	f := fake.New()
	f.FailAfterApply("AllocateAddress", "RequestTimeout", 1)
	_, err := f.AllocateAddress(context.Background(), &ec2.AllocateAddressInput{TagSpecifications: tagSpec("pod", "ns/a")})
	wantCode(t, err, "RequestTimeout")
	got := f.Addresses()
	if len(got) != 1 || got[0].Tags["pod"] != "ns/a" {
		t.Fatalf("the lost response should still have allocated a tagged address: %+v", got)
	}
	allocate(t, f)
	if n := len(f.Addresses()); n != 2 {
		t.Errorf("%d addresses, want 2", n)
	}

	// A call that fails on its own does not use up the lost response.
	f.FailAfterApply("ReleaseAddress", "RequestTimeout", 1)
	_, err = f.ReleaseAddress(context.Background(), &ec2.ReleaseAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0")})
	wantCode(t, err, "InvalidAllocationID.NotFound")
	_, err = f.ReleaseAddress(context.Background(), &ec2.ReleaseAddressInput{AllocationId: &got[0].AllocationID})
	wantCode(t, err, "RequestTimeout")
	if _, ok := f.Address(got[0].AllocationID); ok {
		t.Error("release with a lost response did not release")
	}
}

func TestSetHook(t *testing.T) {
	w := newWorld(t)
	var seen []string
	// The hook may change the fake: here the instance dies while the
	// binder's AssociateAddress is in flight.
	w.f.SetHook(func(action string) error {
		seen = append(seen, action)
		switch action {
		case "AssociateAddress":
			w.f.DeleteInterface(w.eni1)
		case "CreateTags":
			return errors.New("boom")
		}
		return nil
	})
	_, err := w.f.AssociateAddress(context.Background(), &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni1})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")
	_, err = w.f.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{w.a}, Tags: []types.Tag{{Key: aws.String("k")}}})
	if err == nil || err.Error() != "boom" {
		t.Errorf("CreateTags error = %v, want the hook's", err)
	}
	if _, ok := mustAddress(t, w.f, w.a).Tags["k"]; ok {
		t.Error("CreateTags applied although the hook failed it")
	}
	if !slices.Equal(seen, []string{"AssociateAddress", "CreateTags"}) {
		t.Errorf("hook saw %v", seen)
	}
	w.f.SetHook(nil)
	if _, err := w.f.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{w.a}, Tags: []types.Tag{{Key: aws.String("k")}}}); err != nil {
		t.Error(err)
	}
}

func TestCanceledContext(t *testing.T) {
	f := fake.New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if len(f.Addresses()) != 0 {
		t.Error("a canceled call allocated")
	}
}

// TestOutsideChangesDisassociate checks that an Elastic IP loses its
// association with the private address it sat on, and only with it.
func TestOutsideChangesDisassociate(t *testing.T) {
	tests := []struct {
		name   string
		change func(w world) bool
		// which of the addresses on eni1's primary IP, secondary IP and
		// prefix stay associated; the one on eni2 always does.
		primary, secondary, prefix bool
	}{
		{name: "instance terminated", change: func(w world) bool { w.f.DeleteInterface(w.eni1); return true }},
		{name: "secondary IP unassigned", change: func(w world) bool { return w.f.UnassignIP(w.eni1, "10.0.0.11") },
			primary: true, prefix: true},
		{name: "prefix unassigned", change: func(w world) bool { return w.f.UnassignPrefix(w.eni1, "10.0.1.16/28") },
			primary: true, secondary: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			onPrimary, onOther := allocate(t, w.f), allocate(t, w.f)
			associate(t, w.f, onPrimary, w.eni1, "")
			associate(t, w.f, w.a, w.eni1, "10.0.0.11")
			associate(t, w.f, w.b, w.eni1, "10.0.1.20")
			associate(t, w.f, onOther, w.eni2, "")
			if !tt.change(w) {
				t.Fatal("the change found nothing to change")
			}
			want := map[string]bool{onPrimary: tt.primary, w.a: tt.secondary, w.b: tt.prefix, onOther: true}
			for id, wantKept := range want {
				a := mustAddress(t, w.f, id)
				if kept := a.AssociationID != ""; kept != wantKept {
					t.Errorf("%s: associated = %v, want %v (%+v)", id, kept, wantKept, a)
				}
				if a.AssociationID == "" && (a.NetworkInterfaceID != "" || a.PrivateIP != "" || a.InstanceID != "") {
					t.Errorf("%s: half disassociated: %+v", id, a)
				}
			}
		})
	}
}

func TestUnassignAndAssignIP(t *testing.T) {
	w := newWorld(t)
	if w.f.UnassignIP(w.eni1, "10.0.0.10") {
		t.Error("the primary IP was unassigned")
	}
	if !w.f.UnassignIP(w.eni1, "10.0.0.11") {
		t.Fatal("UnassignIP found nothing")
	}
	_, err := w.f.AssociateAddress(context.Background(), &ec2.AssociateAddressInput{AllocationId: &w.a,
		NetworkInterfaceId: &w.eni1, PrivateIpAddress: aws.String("10.0.0.11")})
	wantCode(t, err, "InvalidParameterValue")
	if !w.f.AssignIP(w.eni1, "10.0.0.12") {
		t.Fatal("AssignIP found no ENI")
	}
	associate(t, w.f, w.a, w.eni1, "10.0.0.12")
}

func TestDeletedInterfaceIsGone(t *testing.T) {
	w := newWorld(t)
	w.f.DeleteInterface(w.eni2)
	_, err := w.f.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{w.eni2}})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")
	_, err = w.f.AssociateAddress(context.Background(), &ec2.AssociateAddressInput{AllocationId: &w.a, NetworkInterfaceId: &w.eni2})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")
}

// TestOutputsAreCopies checks that callers mutating what they got, or the
// inputs they sent, cannot change the fake's state or its records.
func TestOutputsAreCopies(t *testing.T) {
	w := newWorld(t)
	associate(t, w.f, w.a, w.eni1, "10.0.0.11")

	a := mustAddress(t, w.f, w.a)
	a.Tags["cluster"] = "mutated"
	all := w.f.Addresses()
	all[0].Tags["cluster"] = "mutated"
	out, err := w.f.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{AllocationIds: []string{w.a}})
	if err != nil {
		t.Fatal(err)
	}
	*out.Addresses[0].Tags[0].Value = "mutated"
	*out.Addresses[0].PrivateIpAddress = "mutated"
	enis, err := w.f.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{w.eni1}})
	if err != nil {
		t.Fatal(err)
	}
	*enis.NetworkInterfaces[0].PrivateIpAddresses[1].PrivateIpAddress = "mutated"

	for _, ad := range w.f.Addresses() {
		if ad.Tags["cluster"] != "c1" {
			t.Errorf("tags changed through a copy: %v", ad.Tags)
		}
	}
	if got := mustAddress(t, w.f, w.a).PrivateIP; got != "10.0.0.11" {
		t.Errorf("private IP changed through an output: %s", got)
	}
	associate(t, w.f, w.b, w.eni1, "10.0.0.11") // the ENI still holds its IP

	in := &ec2.ReleaseAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0")}
	_, _ = w.f.ReleaseAddress(context.Background(), in)
	in.DryRun = aws.Bool(true)
	if rec := w.f.Inputs("ReleaseAddress")[0].(*ec2.ReleaseAddressInput); rec.DryRun != nil {
		t.Error("the recorded input changed with the caller's")
	}
}

func TestNilInput(t *testing.T) {
	w := newWorld(t)
	out, err := w.f.DescribeAddresses(context.Background(), nil)
	if err != nil || len(out.Addresses) != 2 {
		t.Errorf("DescribeAddresses(nil) = %v, %v", out, err)
	}
	_, err = w.f.ReleaseAddress(context.Background(), nil)
	wantCode(t, err, "MissingParameter")
	attrs, err := w.f.DescribeAccountAttributes(context.Background(), nil)
	if err != nil || len(attrs.AccountAttributes) != 2 {
		t.Errorf("DescribeAccountAttributes(nil) = %v, %v", attrs, err)
	}
}

// TestConcurrentUse runs binders on many goroutines against one account;
// under -race it checks the locking, and afterwards that EC2's invariant
// holds: at most one address per private IP of an ENI.
func TestConcurrentUse(t *testing.T) {
	f := fake.New()
	f.SetQuota(-1)
	ips := []string{"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13"}
	eni := f.AddInterface("i-1", ips, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			ctx := context.Background()
			for i := range 20 {
				out, err := f.AllocateAddress(ctx, &ec2.AllocateAddressInput{TagSpecifications: tagSpec("g", fmt.Sprint(g))})
				if err != nil {
					t.Error(err)
					return
				}
				ip := ips[(g+i)%len(ips)]
				assoc, err := f.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: out.AllocationId, NetworkInterfaceId: &eni, PrivateIpAddress: &ip})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := f.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{}); err != nil {
					t.Error(err)
				}
				if i%2 == 0 {
					// Lost to a displacing association is fine; anything else is not.
					if _, err := f.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: assoc.AssociationId}); err != nil &&
						codeOf(t, err) != "InvalidAssociationID.NotFound" {
						t.Error(err)
					}
				}
				_ = f.Addresses()
			}
		})
	}
	wg.Wait()
	if got := len(f.Addresses()); got != 160 {
		t.Errorf("%d addresses, want 160", got)
	}
	on := map[string]string{}
	for _, a := range f.Addresses() {
		if a.AssociationID == "" {
			continue
		}
		if prev, dup := on[a.PrivateIP]; dup {
			t.Errorf("%s and %s both sit on %s", prev, a.AllocationID, a.PrivateIP)
		}
		on[a.PrivateIP] = a.AllocationID
	}
	if got := f.Calls("AllocateAddress"); got != 160 {
		t.Errorf("Calls = %d, want 160", got)
	}
}
