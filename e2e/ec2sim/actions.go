package ec2sim

import (
	"sort"
	"time"
)

// call is what a handler sees of a request.
type call struct {
	p   params
	now time.Time
}

// handler runs one action against the world, with the Sim's mutex held.
type handler func(w *world, c call) (response, error)

type actionSpec struct {
	handle handler
	// mutates marks actions whose success must reach the state file.
	mutates bool
	bucket  bucketShape
	// unfilteredBucket, when set, is the smaller bucket EC2 applies to calls
	// of this action without filters, ids or paging.
	unfilteredBucket *bucketShape
	// idParam is the list parameter that names resources, which makes a
	// call filtered for bucket purposes.
	idParam string
}

// actions is every action the emulator answers, with its token bucket from
// AWS's documented request throttling (mutating actions 50 burst, 5/s;
// Describe* 100, 20/s; unfiltered unpaginated describes 50, 10/s;
// Create/DeleteTags 100, 10/s).
var actions = map[string]actionSpec{
	"AllocateAddress":            {handle: (*world).allocateAddress, mutates: true, bucket: mutatingBucket},
	"AssociateAddress":           {handle: (*world).associateAddress, mutates: true, bucket: mutatingBucket},
	"DisassociateAddress":        {handle: (*world).disassociateAddress, mutates: true, bucket: mutatingBucket},
	"ReleaseAddress":             {handle: (*world).releaseAddress, mutates: true, bucket: mutatingBucket},
	"DescribeAddresses":          {handle: (*world).describeAddresses, bucket: describeBucket},
	"CreateTags":                 {handle: (*world).createTags, mutates: true, bucket: tagsBucket},
	"DeleteTags":                 {handle: (*world).deleteTags, mutates: true, bucket: tagsBucket},
	"RunInstances":               {handle: (*world).runInstances, mutates: true, bucket: mutatingBucket},
	"TerminateInstances":         {handle: (*world).terminateInstances, mutates: true, bucket: mutatingBucket},
	"StopInstances":              {handle: (*world).stopInstances, mutates: true, bucket: mutatingBucket},
	"StartInstances":             {handle: (*world).startInstances, mutates: true, bucket: mutatingBucket},
	"DescribeInstances":          {handle: (*world).describeInstances, bucket: describeBucket},
	"CreateNetworkInterface":     {handle: (*world).createNetworkInterface, mutates: true, bucket: mutatingBucket},
	"DeleteNetworkInterface":     {handle: (*world).deleteNetworkInterface, mutates: true, bucket: mutatingBucket},
	"AttachNetworkInterface":     {handle: (*world).attachNetworkInterface, mutates: true, bucket: mutatingBucket},
	"DetachNetworkInterface":     {handle: (*world).detachNetworkInterface, mutates: true, bucket: mutatingBucket},
	"AssignPrivateIpAddresses":   {handle: (*world).assignPrivateIPAddresses, mutates: true, bucket: mutatingBucket},
	"UnassignPrivateIpAddresses": {handle: (*world).unassignPrivateIPAddresses, mutates: true, bucket: mutatingBucket},
	"DescribeSubnets":            {handle: (*world).describeSubnets, bucket: describeBucket},
	"DescribeVpcs":               {handle: (*world).describeVpcs, bucket: describeBucket},
	"DescribeAccountAttributes":  {handle: (*world).describeAccountAttributes, bucket: describeBucket},
	"DescribeAvailabilityZones":  {handle: (*world).describeAvailabilityZones, bucket: describeBucket},
	"DescribeNetworkInterfaces": {handle: (*world).describeNetworkInterfaces, bucket: describeBucket,
		unfilteredBucket: &unfilteredDescribeBucket, idParam: "NetworkInterfaceId"},
}

// Actions lists the actions the emulator implements, sorted.
func Actions() []string {
	out := make([]string, 0, len(actions))
	for name := range actions {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// bucketFor names the token bucket a call draws from and its shape.
func (a actionSpec) bucketFor(action string, p params) (string, bucketShape) {
	if a.unfilteredBucket != nil && !p.anyWithPrefix("Filter") && !p.anyWithPrefix(a.idParam) &&
		p.str("MaxResults") == "" && p.str("NextToken") == "" {
		return action + "/unfiltered", *a.unfilteredBucket
	}
	return action, a.bucket
}
