package binder

import (
	"cmp"
	"context"
	"maps"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kube-eip/kube-eip/binder/cloud"
)

// zoneRefresh is how long an answer of DescribeAvailabilityZones that did
// not know a zone (or failed) stands before EC2 is asked again.
const zoneRefresh = time.Minute

// borderGroups maps zones to network border groups. An Elastic IP belongs
// to one group and reaches only interfaces in that group's zones: the
// region's own group for its availability zones, one group per Local
// Zone. The map is read from EC2 once, and again when a zone it does not
// know turns up.
type borderGroups struct {
	client cloud.API
	now    func() time.Time

	mu     sync.Mutex
	byZone map[string]string
	region string
	asked  time.Time
}

func newBorderGroups(client cloud.API, now func() time.Time) *borderGroups {
	return &borderGroups{client: client, now: now, byZone: map[string]string{}}
}

// of is a zone's network border group, "" when it is not known: the zone
// is empty, EC2 does not list it, or the zones cannot be read (the IAM
// policy of an older install lacks ec2:DescribeAvailabilityZones). Callers
// then leave the check to EC2.
func (g *borderGroups) of(ctx context.Context, zone string) string {
	if zone == "" {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if group, ok := g.byZone[zone]; ok {
		return group
	}
	g.read(ctx)
	return g.byZone[zone]
}

// read asks EC2 for the zones, unless it did within zoneRefresh; g.mu is
// held.
func (g *borderGroups) read(ctx context.Context) {
	if !g.asked.IsZero() && g.now().Sub(g.asked) < zoneRefresh {
		return
	}
	g.asked = g.now()
	out, err := g.client.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{AllAvailabilityZones: aws.Bool(true)})
	if err != nil {
		log.FromContext(ctx).Error(err, "reading the zones' network border groups (ec2:DescribeAvailabilityZones); addresses are matched to zones by EC2 alone until it answers")
		return
	}
	for _, z := range out.AvailabilityZones {
		if name, group := aws.ToString(z.ZoneName), aws.ToString(z.NetworkBorderGroup); name != "" && group != "" {
			g.byZone[name] = group
			g.region = cmp.Or(g.region, aws.ToString(z.RegionName))
		}
	}
}

// all is every zone's group and the region, read first if they never
// were, for admission: nil when EC2 did not tell.
func (g *borderGroups) all(ctx context.Context) (map[string]string, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.byZone) == 0 {
		g.read(ctx)
	}
	if len(g.byZone) == 0 || g.region == "" {
		return nil, ""
	}
	return maps.Clone(g.byZone), g.region
}
