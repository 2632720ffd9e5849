package cloud

import "math"

// Bucket is one token bucket: a burst of Burst calls, refilled at Rate
// calls per second.
type Bucket struct {
	Burst int
	Rate  float64
}

// Limits are the client's token buckets, keyed by EC2 action name. An
// action not in the map, or whose bucket has no positive Rate, is not
// limited.
type Limits map[string]Bucket

// AWSLimits are EC2's documented request-token buckets for the actions of
// API, per account and region
// (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html).
//
// They are exactly AWS's sizes, not a safety margin below them: the
// binder's own limiter should queue calls where EC2 would refuse them, no
// sooner. EC2 shares a bucket among every caller in the account, so the
// binder can still be throttled; the workqueue's backoff handles that.
func AWSLimits() Limits {
	mutating := Bucket{Burst: 50, Rate: 5}
	describe := Bucket{Burst: 100, Rate: 20}
	return Limits{
		"AllocateAddress":     mutating,
		"AssociateAddress":    mutating,
		"DisassociateAddress": mutating,
		"ReleaseAddress":      mutating,
		"DescribeAddresses":   describe,
		// EC2 charges a DescribeNetworkInterfaces without ids, filters or
		// paging to a smaller bucket (50, 10/s) that this one does not
		// model: callers must name the ENIs they ask about.
		"DescribeNetworkInterfaces": describe,
		"DescribeAccountAttributes": describe,
		"CreateTags":                {Burst: 100, Rate: 10},
	}
}

// Scaled multiplies every bucket's burst and rate by f, the same knob the
// EC2 emulator's ThrottleOptions.Scale turns, so a test can shrink or grow
// both sides alike. Bursts round to the nearest call and never drop below
// one, as the emulator's do, or the limiter would refuse every call.
func (l Limits) Scaled(f float64) Limits {
	out := make(Limits, len(l))
	for action, b := range l {
		out[action] = Bucket{
			Burst: max(1, int(math.Round(float64(b.Burst)*f))),
			Rate:  b.Rate * f,
		}
	}
	return out
}
