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
// They are exactly AWS's sizes; the binder runs them with one call of
// headroom (Headroom). EC2 shares a bucket among every caller in the
// account, so the binder can still be throttled; the workqueue's backoff
// handles that.
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
		"DescribeAvailabilityZones": describe,
		"CreateTags":                {Burst: 100, Rate: 10},
		// EC2 counts DeleteTags with CreateTags in one bucket; the binder
		// deletes tags only when a node's address goes back to its pool, a
		// few calls a minute at most, so a bucket of its own does not let
		// the pair outrun EC2's.
		"DeleteTags": {Burst: 100, Rate: 10},
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

// Headroom takes n calls off every burst (never below one). A call the
// limiter lets go reaches EC2 a moment later, and calls of many workers
// arrive in a slightly different order and spacing than they were let go
// in: at saturation, a bucket sized exactly as EC2's is then now and then
// a token ahead of EC2's, and that call is throttled. One call of headroom
// absorbs the jitter, for 1/rate seconds per burst (0.2 s for the
// mutating actions).
func (l Limits) Headroom(n int) Limits {
	out := make(Limits, len(l))
	for action, b := range l {
		out[action] = Bucket{Burst: max(1, b.Burst-n), Rate: b.Rate}
	}
	return out
}
