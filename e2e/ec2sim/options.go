package ec2sim

import (
	"fmt"
	"strings"
	"time"
)

// Options configure a Sim. The zero value is a usable emulator of us-east-1
// with AWS's default quota and throttling.
type Options struct {
	// Listen is the loopback address Start and Run listen on; empty picks a
	// free port on 127.0.0.1.
	Listen string
	// Region is the emulated region; it names the zones (<region>a/b/c).
	Region string
	// AccountID owns every resource.
	AccountID string
	// ClusterName names and tags the VPC and subnets the way eksctl does.
	ClusterName string
	// LocalZone opts the account in to the region's Boston Local Zone
	// (<region>-bos-1a, network border group <region>-bos-1) and gives the
	// cluster's VPC a subnet there. Nodes land there only when asked to.
	LocalZone bool
	// PublicIPv4Pools are BYOIP pools (id → IPv4 CIDR) AllocateAddress may
	// draw from with PublicIpv4Pool; "amazon" is always available.
	PublicIPv4Pools PublicIPv4Pools
	// EIPQuota is the number of Elastic IPs the account may hold; 0 means
	// AWS's default of 5 per region, a negative value means no limit.
	// DescribeAccountAttributes reports it as vpc-max-elastic-ips, and
	// leaves that attribute out when there is no limit.
	EIPQuota int
	// Throttle configures the token buckets; they are on unless disabled.
	Throttle ThrottleOptions
	// Faults injects errors and latency from the first call on.
	Faults Faults
	// StateFile, when set, is loaded at start and rewritten (atomically) after
	// changes and on Close, so a dev stack survives restarts.
	StateFile string
	// SaveDelay coalesces bursts of changes into one write of StateFile.
	SaveDelay time.Duration
	// Seed makes ids, addresses and fault draws reproducible; 0 is random.
	Seed uint64
	// Clock replaces time.Now, for tests that need to drive the buckets.
	Clock func() time.Time
	// Logf receives the emulator's own diagnostics (failed saves, listening).
	Logf func(format string, args ...any)
}

// ThrottleOptions shape the per-action token buckets.
type ThrottleOptions struct {
	// Disabled turns throttling off.
	Disabled bool `json:"disabled"`
	// Scale multiplies both the bucket sizes and the refill rates, keeping
	// the buckets' shape while letting long benchmarks run faster; 0 means 1.
	Scale float64 `json:"scale"`
}

const (
	defaultRegion    = "us-east-1"
	defaultAccountID = "123456789012"
	defaultCluster   = "kube-eip-dev"
	defaultEIPQuota  = 5
	defaultSaveDelay = 200 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.Region == "" {
		o.Region = defaultRegion
	}
	if o.AccountID == "" {
		o.AccountID = defaultAccountID
	}
	if o.ClusterName == "" {
		o.ClusterName = defaultCluster
	}
	if o.EIPQuota == 0 {
		o.EIPQuota = defaultEIPQuota
	}
	if o.Throttle.Scale <= 0 {
		o.Throttle.Scale = 1
	}
	if o.SaveDelay <= 0 {
		o.SaveDelay = defaultSaveDelay
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// PublicIPv4Pools maps BYOIP pool ids to their CIDRs. As a flag.Value it
// takes id=CIDR and may be repeated.
type PublicIPv4Pools map[string]string

func (p *PublicIPv4Pools) String() string {
	if p == nil {
		return ""
	}
	var parts []string
	for _, id := range sortedKeys(*p) {
		parts = append(parts, id+"="+(*p)[id])
	}
	return strings.Join(parts, ",")
}

// Set adds one id=CIDR pair.
func (p *PublicIPv4Pools) Set(s string) error {
	id, cidr, ok := strings.Cut(s, "=")
	if !ok || id == "" || cidr == "" {
		return fmt.Errorf("public IPv4 pool %q: want id=CIDR", s)
	}
	if *p == nil {
		*p = PublicIPv4Pools{}
	}
	(*p)[id] = cidr
	return nil
}
