package ec2sim

import (
	"fmt"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestCreateAndDeleteTags(t *testing.T) {
	srv, c, ctx := setup(t)
	inst := launch(t, ctx, c, "us-east-1a")
	alloc := aws.ToString(allocate(t, ctx, c).AllocationId)
	eni := aws.ToString(inst.NetworkInterfaces[0].NetworkInterfaceId)
	sub := aws.ToString(inst.SubnetId)
	vpc := aws.ToString(inst.VpcId)
	resources := []string{alloc, aws.ToString(inst.InstanceId), eni, sub, vpc}

	_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: resources, Tags: []types.Tag{
		{Key: aws.String("owner"), Value: aws.String("kube-eip")},
		{Key: aws.String("stage"), Value: aws.String("")},
		{Key: aws.String("keep"), Value: aws.String("yes")},
	}})
	noErr(t, err)
	tagsOf := func() map[string]map[string]string {
		st := srv.Snapshot()
		out := map[string]map[string]string{}
		for _, a := range st.Addresses {
			out[a.AllocationID] = a.Tags
		}
		for _, i := range st.Instances {
			out[i.ID] = i.Tags
		}
		for _, n := range st.NetworkInterfaces {
			out[n.ID] = n.Tags
		}
		for _, s := range st.Subnets {
			out[s.ID] = s.Tags
		}
		for _, v := range st.Vpcs {
			out[v.ID] = v.Tags
		}
		return out
	}
	for _, id := range resources {
		if got := tagsOf()[id]; got["owner"] != "kube-eip" || got["keep"] != "yes" {
			t.Errorf("%s tags %v", id, got)
		}
	}
	// The tags show through each resource's own Describe.
	if a := describeAddress(t, ctx, c, alloc); tagMap(a.Tags)["owner"] != "kube-eip" {
		t.Errorf("DescribeAddresses tags %v", tagMap(a.Tags))
	}

	// DeleteTags: a key alone removes it, a key with a value only on a match.
	_, err = c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: resources, Tags: []types.Tag{
		{Key: aws.String("owner")},
		{Key: aws.String("stage"), Value: aws.String("")},
		{Key: aws.String("keep"), Value: aws.String("no")},
	}})
	noErr(t, err)
	for _, id := range resources {
		got := maps.Clone(tagsOf()[id])
		if _, ok := got["owner"]; ok {
			t.Errorf("%s still has owner: %v", id, got)
		}
		if _, ok := got["stage"]; ok {
			t.Errorf("%s still has stage: %v", id, got)
		}
		if got["keep"] != "yes" {
			t.Errorf("%s lost keep, whose value did not match: %v", id, got)
		}
	}
	// No tags named: every tag goes.
	_, err = c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{alloc}})
	noErr(t, err)
	if got := tagsOf()[alloc]; len(got) != 0 {
		t.Errorf("address keeps %v after deleting all tags", got)
	}

	fifty := make([]types.Tag, 0, 51)
	for i := range 51 {
		fifty = append(fifty, types.Tag{Key: aws.String(fmt.Sprintf("k%d", i)), Value: aws.String("v")})
	}
	for _, tc := range []struct {
		name string
		in   ec2.CreateTagsInput
		code string
	}{
		{"unknown address", ec2.CreateTagsInput{Resources: []string{"eipalloc-0123456789abcdef0"}, Tags: fifty[:1]}, "InvalidAllocationID.NotFound"},
		{"unknown instance", ec2.CreateTagsInput{Resources: []string{"i-0123456789abcdef0"}, Tags: fifty[:1]}, "InvalidInstanceID.NotFound"},
		{"unknown ENI", ec2.CreateTagsInput{Resources: []string{"eni-0123456789abcdef0"}, Tags: fifty[:1]}, "InvalidNetworkInterfaceID.NotFound"},
		{"unknown subnet", ec2.CreateTagsInput{Resources: []string{"subnet-0123456789abcdef0"}, Tags: fifty[:1]}, "InvalidSubnetID.NotFound"},
		{"unknown VPC", ec2.CreateTagsInput{Resources: []string{"vpc-0123456789abcdef0"}, Tags: fifty[:1]}, "InvalidVpcID.NotFound"},
		{"not an id", ec2.CreateTagsInput{Resources: []string{"pod-7"}, Tags: fifty[:1]}, "InvalidID"},
		{"reserved key", ec2.CreateTagsInput{Resources: []string{alloc}, Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}}, "InvalidParameterValue"},
		{"too many tags", ec2.CreateTagsInput{Resources: []string{alloc}, Tags: fifty}, "TagLimitExceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateTags(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}
	// One bad resource among good ones: nothing is tagged.
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc, "i-0123456789abcdef0"}, Tags: []types.Tag{{Key: aws.String("x"), Value: aws.String("y")}}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	if got := tagsOf()[alloc]; len(got) != 0 {
		t.Errorf("a refused CreateTags tagged %v", got)
	}
	_, err = c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{"eni-0123456789abcdef0"}})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")
}
