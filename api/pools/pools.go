// Package pools says which EIPPool an Elastic IP belongs to. An address
// belongs to at most one pool: the webhook refuses pools whose selectors
// make that impossible, and the binder serves an address that two pools
// select from neither until an admin resolves it. Both use these rules.
package pools

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// allocatedForPods are the tags kube-eip writes on the addresses it
// allocates for pods: such an address is never any pool's, whatever a
// selector says.
var allocatedForPods = []string{api.TagClaim, api.TagOwner, api.TagMode, api.TagController}

// allocatedForPod reports whether kube-eip allocated the address for a pod.
// The holder tag says so where it is written; addresses allocated before it
// existed carry one of the pod tags. A node's or floating address names its
// holder in TagOwner too, and stays its pool's.
func allocatedForPod(tags map[string]string) bool {
	if h, ok := tags[api.TagHolder]; ok {
		return h == api.HolderPod
	}
	for _, k := range allocatedForPods {
		if _, ok := tags[k]; ok {
			return true
		}
	}
	return false
}

// Selects reports whether a pool's tag selector takes an address with
// tags: every key of the selector present, with its value unless the
// selector's value is empty. An empty selector takes nothing, and no
// selector takes an address kube-eip allocated for a pod.
func Selects(selector, tags map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	if allocatedForPod(tags) {
		return false
	}
	for k, v := range selector {
		got, ok := tags[k]
		if !ok || v != "" && got != v {
			return false
		}
	}
	return true
}

// Of returns the pools whose selectors take the address, by name. The
// address belongs to a pool only when there is exactly one.
func Of(tags map[string]string, all []v1alpha1.EIPPool) []*v1alpha1.EIPPool {
	var out []*v1alpha1.EIPPool
	for i := range all {
		if Selects(all[i].Spec.TagSelector, tags) {
			out = append(out, &all[i])
		}
	}
	slices.SortFunc(out, func(a, b *v1alpha1.EIPPool) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Names lists the pools' names, for messages.
func Names(ps []*v1alpha1.EIPPool) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// Contains reports whether selector a takes every address selector b
// takes: each of a's keys is one of b's, with a's value empty or equal.
// Two pools one of whose selectors contains the other's always share the
// addresses of the narrower one.
func Contains(a, b map[string]string) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	for k, v := range a {
		bv, ok := b[k]
		if !ok || v != "" && bv != v {
			return false
		}
	}
	return true
}

// Overlap is why pool may not exist beside the pools of others: their
// selectors certainly share addresses. It is "" when there is none.
func Overlap(pool *v1alpha1.EIPPool, others []v1alpha1.EIPPool) string {
	var msgs []string
	for i := range others {
		o := &others[i]
		if o.Name == pool.Name {
			continue
		}
		var narrower *v1alpha1.EIPPool
		switch {
		case Contains(pool.Spec.TagSelector, o.Spec.TagSelector):
			narrower = o
		case Contains(o.Spec.TagSelector, pool.Spec.TagSelector):
			narrower = pool
		default:
			continue
		}
		msg := fmt.Sprintf("its tagSelector %s and that of EIPPool %q, %s, select the same addresses", render(pool.Spec.TagSelector), o.Name, render(o.Spec.TagSelector))
		if narrower == o && len(o.Status.Addresses) > 0 {
			msg += " (" + listAddresses(o.Status.Addresses) + ")"
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		return ""
	}
	return strings.Join(msgs, "; ") + "; an address belongs to one pool only: give each pool a tag value of its own"
}

func render(selector map[string]string) string {
	parts := make([]string, 0, len(selector))
	for _, k := range slices.Sorted(maps.Keys(selector)) {
		parts = append(parts, fmt.Sprintf("%s: %q", k, selector[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func listAddresses(addrs []v1alpha1.PoolAddress) string {
	const most = 5
	ips := make([]string, 0, min(len(addrs), most))
	for _, a := range addrs[:min(len(addrs), most)] {
		ips = append(ips, a.PublicIP)
	}
	s := strings.Join(ips, ", ")
	if len(addrs) > most {
		s += fmt.Sprintf(" and %d more", len(addrs)-most)
	}
	return s
}
