package webhook

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/kube-eip/kube-eip/api"
)

// pinnedZones are the zones a pod's spec confines it to through
// topology.kubernetes.io/zone, in its nodeSelector or in every term of its
// required node affinity; nil when it may run in any zone.
func pinnedZones(spec *corev1.PodSpec) []string {
	if z := spec.NodeSelector[corev1.LabelTopologyZone]; z != "" {
		return []string{z}
	}
	a := spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		return nil
	}
	zones := sets.New[string]()
	for _, term := range terms {
		// Terms are ORed: one that leaves the zone open leaves it open.
		var in sets.Set[string]
		for _, e := range term.MatchExpressions {
			if e.Key != corev1.LabelTopologyZone || e.Operator != corev1.NodeSelectorOpIn {
				continue
			}
			if in == nil {
				in = sets.New(e.Values...)
			} else {
				in = in.Intersection(sets.New(e.Values...))
			}
		}
		if in == nil {
			return nil
		}
		zones = zones.Union(in)
	}
	return sets.List(zones)
}

// borderGroup is the network border group the pod will run in, as far as
// admission can tell from the zones the binder published: that of the
// zones it is pinned to, or the region's for a pod that is not pinned
// (nodes in Local Zones are in groups made for them). Empty when it cannot
// tell, and then no address is filtered out. A pod pinned to zones of
// several groups gets a problem: no address reaches all of them.
func borderGroup(spec *corev1.PodSpec, acct api.Account, known bool) (string, *api.Problem) {
	if !known || len(acct.Zones) == 0 {
		return "", nil
	}
	zones := pinnedZones(spec)
	if len(zones) == 0 {
		return acct.Region, nil
	}
	groups := sets.New[string]()
	for _, z := range zones {
		g, ok := acct.Zones[z]
		if !ok {
			// A zone EC2 did not list: the pod cannot be scheduled
			// there anyway; the other zones decide.
			continue
		}
		groups.Insert(g)
	}
	switch groups.Len() {
	case 0:
		return "", nil
	case 1:
		return sets.List(groups)[0], nil
	}
	return "", &api.Problem{Key: "spec.nodeSelector", Message: fmt.Sprintf(
		"the pod may run in zones %s, which are in different network border groups (%s), and an Elastic IP can only be "+
			"associated within its group; confine the pod to zones of one group", strings.Join(zones, ", "), strings.Join(sets.List(groups), ", "))}
}
