package binder

import (
	"testing"
	"time"

	"github.com/kube-eip/kube-eip/binder/cloud/fake"
)

// The zones' border groups are read once; a zone EC2 did not list sends it
// back to EC2 at most once a minute, and a refusal (an older IAM policy)
// leaves the groups unknown, which no check holds against anyone.
func TestBorderGroupsAreReadOnceAndAgainForAnUnknownZone(t *testing.T) {
	ec2 := fake.New()
	now := time.Unix(1_700_000_000, 0)
	g := newBorderGroups(ec2, func() time.Time { return now })
	ctx := t.Context()
	if got := g.of(ctx, "us-east-1b"); got != "us-east-1" {
		t.Fatalf("group of us-east-1b: %q", got)
	}
	if got := g.of(ctx, "us-east-1c"); got != "us-east-1" {
		t.Fatalf("group of us-east-1c: %q", got)
	}
	if got := g.of(ctx, ""); got != "" {
		t.Fatalf("group of no zone: %q", got)
	}
	if n := ec2.Calls("DescribeAvailabilityZones"); n != 1 {
		t.Fatalf("%d reads for known zones, want 1", n)
	}
	for range 3 {
		if got := g.of(ctx, "us-east-1-bos-1a"); got != "" {
			t.Fatalf("an unlisted zone's group: %q", got)
		}
	}
	if n := ec2.Calls("DescribeAvailabilityZones"); n != 1 {
		t.Fatalf("%d reads within a minute, want 1", n)
	}
	now = now.Add(zoneRefresh)
	g.of(ctx, "us-east-1-bos-1a")
	if n := ec2.Calls("DescribeAvailabilityZones"); n != 2 {
		t.Fatalf("%d reads a minute later, want 2", n)
	}
	zones, region := g.all(ctx)
	if region != "us-east-1" || len(zones) != 3 {
		t.Errorf("published zones %v of region %q", zones, region)
	}

	refused := fake.New()
	refused.FailNext("DescribeAvailabilityZones", "UnauthorizedOperation", 1)
	g = newBorderGroups(refused, func() time.Time { return now })
	if got := g.of(ctx, "us-east-1a"); got != "" {
		t.Errorf("group %q though EC2 refused to tell", got)
	}
	if zones, _ := g.all(ctx); zones != nil {
		t.Errorf("published %v though EC2 refused to tell", zones)
	}
}
