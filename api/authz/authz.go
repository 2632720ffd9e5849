// Package authz holds kube-eip's authorization rules: who may have an
// address, and from where. Every rule reads only what a cluster admin or
// kube-eip controls (namespace labels and annotations, EIPPools), never
// what a pod's author wrote. The webhook applies them at admission and the
// binder again before any EC2 call, from this one place, so the two always
// agree.
package authz

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/pools"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// AnnotationMaxAddresses on a namespace caps how many addresses its pods
// may hold at once. Only those who may edit namespaces (cluster admins, not
// a namespace's own edit or admin role) can set it.
const AnnotationMaxAddresses = api.Prefix + "max-addresses"

// Pools is what the rules need to know of the cluster's EIPPools.
type Pools interface {
	// Pool returns the named EIPPool.
	Pool(name string) (*v1alpha1.EIPPool, bool)
	// Pools lists every EIPPool.
	Pools() []v1alpha1.EIPPool
}

// Served reports whether kube-eip serves pods of a namespace: it must carry
// the opt-in label now, and kube-system never is.
func Served(ns *corev1.Namespace) bool {
	return ns != nil && ns.Name != metav1.NamespaceSystem && ns.Labels[api.LabelInjection] == api.InjectionEnabled
}

// NotServed is the problem of a pod whose namespace is not served.
func NotServed(namespace string) api.Problem {
	return api.Problem{Key: api.LabelManaged, Message: fmt.Sprintf(
		"namespace %q has not opted in to kube-eip (a cluster admin labels it %s=%s)",
		namespace, api.LabelInjection, api.InjectionEnabled)}
}

// OpenTo reports whether a pool's namespaceSelector selects the namespace;
// an unset selector selects none.
func OpenTo(pool *v1alpha1.EIPPool, ns *corev1.Namespace) bool {
	if pool.Spec.NamespaceSelector == nil || ns == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(pool.Spec.NamespaceSelector)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(ns.Labels))
}

// Check applies every rule about a request that does not depend on a live
// pod or on capacity: the namespace is served, the pool exists and is open
// to it, and an auto address's BYOIP source is allowed to it. It returns the
// resolved pool of pool, sticky-with-pool and legacy fixed-tag requests.
func Check(req *api.Request, ns *corev1.Namespace, pools Pools) (*v1alpha1.EIPPool, *api.Problem) {
	if !Served(ns) {
		name := ""
		if ns != nil {
			name = ns.Name
		}
		p := NotServed(name)
		return nil, &p
	}
	if problem := PublicIPv4Pool(req, ns, pools); problem != nil {
		return nil, problem
	}
	if !NeedsPool(req) {
		return nil, nil
	}
	return Pool(req, ns, pools)
}

// NeedsPool reports whether a request draws from an EIPPool: pool mode,
// sticky with a pool, and the legacy fixed-tag modes. Auto, and sticky
// without a pool, get addresses the binder allocates.
func NeedsPool(req *api.Request) bool {
	return req.Mode == api.ModePool || req.Mode == api.ModeSticky && (req.Pool != "" || req.LegacyTagKey != "")
}

// PoolKey is the annotation that names a request's pool, for messages.
func PoolKey(req *api.Request) string {
	if req.LegacyTagKey != "" {
		if req.Mode == api.ModeSticky {
			return api.LegacyAnnotationTagValue
		}
		return api.LegacyAnnotationTag
	}
	return api.AnnotationPool
}

// Pool finds the request's EIPPool and checks it is open to the namespace.
func Pool(req *api.Request, ns *corev1.Namespace, pools Pools) (*v1alpha1.EIPPool, *api.Problem) {
	if req.LegacyTagKey != "" {
		return legacyPool(req, ns, pools.Pools())
	}
	pool, ok := pools.Pool(req.Pool)
	if !ok {
		return nil, &api.Problem{Key: api.AnnotationPool, Message: fmt.Sprintf("EIPPool %q does not exist; %s", req.Pool, openPools(ns, pools))}
	}
	if pool.Spec.NodeSelector != nil {
		return nil, &api.Problem{Key: api.AnnotationPool, Message: fmt.Sprintf("EIPPool %q is a node pool: its addresses go to the nodes its nodeSelector selects, never to pods; %s",
			pool.Name, openPools(ns, pools))}
	}
	if !OpenTo(pool, ns) {
		return nil, notOpen(req, pool, ns, pools)
	}
	return pool, nil
}

func notOpen(req *api.Request, pool *v1alpha1.EIPPool, ns *corev1.Namespace, pools Pools) *api.Problem {
	return &api.Problem{Key: PoolKey(req), Message: fmt.Sprintf("EIPPool %q is not open to namespace %q (its namespaceSelector does not select it); %s",
		pool.Name, ns.Name, openPools(ns, pools))}
}

// PublicIPv4Pool checks the BYOIP source of an auto request. Amazon's own
// addresses are open to every served namespace; a BYOIP pool (a company's
// own range) only to namespaces an EIPPool that grows from it is open to.
func PublicIPv4Pool(req *api.Request, ns *corev1.Namespace, pools Pools) *api.Problem {
	source := req.PublicIPv4Pool
	if req.Mode != api.ModeAuto || source == "" || source == "amazon" {
		return nil
	}
	for _, p := range pools.Pools() {
		if g := p.Spec.Growth; g != nil && g.PublicIPv4Pool == source && OpenTo(&p, ns) {
			return nil
		}
	}
	key := api.AnnotationPublicIPv4Pool
	if req.Legacy {
		key = api.LegacyAnnotationIPv4Pool
	}
	return &api.Problem{Key: key, Message: fmt.Sprintf(
		"BYOIP pool %q is not open to namespace %q: no EIPPool open to the namespace grows from it (spec.growth.publicIPv4Pool); "+
			"a cluster admin opens it with such an EIPPool, or leave the annotation out for an address of Amazon's", source, ns.Name)}
}

// Cap returns the namespace's cap on addresses held at once, if a cluster
// admin set one. A malformed value is a problem: it caps at zero rather
// than not at all.
func Cap(ns *corev1.Namespace) (limit int, capped bool, problem *api.Problem) {
	if ns == nil {
		return 0, false, nil
	}
	v, ok := ns.Annotations[AnnotationMaxAddresses]
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, true, &api.Problem{Key: api.AnnotationMode, Message: fmt.Sprintf(
			"namespace %q has %s=%q, which is not a whole number of addresses; no address is given until a cluster admin corrects it", ns.Name, AnnotationMaxAddresses, v)}
	}
	return n, true, nil
}

// OverCap returns the problem of a pod that would take the namespace past
// its cap, when held addresses are held or waited for already; nil when it
// fits.
func OverCap(ns *corev1.Namespace, held int) *api.Problem {
	limit, capped, problem := Cap(ns)
	if problem != nil || !capped || held < limit {
		return problem
	}
	return &api.Problem{Key: api.AnnotationMode, Message: fmt.Sprintf(
		"namespace %q holds %d of its %d addresses (%s); delete a pod that holds one, or ask a cluster admin to raise the cap",
		ns.Name, held, limit, AnnotationMaxAddresses)}
}

// legacyPool finds the EIPPool of an aws-pod-eip-controller fixed-tag
// request: the one pool open to the namespace whose selector is exactly
// the tag key (and, for fixed-tag-value, whose stickyTag is that key). The
// legacy annotations cannot choose between several: the pod is then told
// to name one with kube-eip.io/pool.
func legacyPool(req *api.Request, ns *corev1.Namespace, all []v1alpha1.EIPPool) (*v1alpha1.EIPPool, *api.Problem) {
	var selecting, open []*v1alpha1.EIPPool
	for i := range all {
		p := &all[i]
		v, ok := p.Spec.TagSelector[req.LegacyTagKey]
		if len(p.Spec.TagSelector) != 1 || !ok || v != "" || req.Mode == api.ModeSticky && p.Spec.StickyTag != req.LegacyTagKey {
			continue
		}
		selecting = append(selecting, p)
		if OpenTo(p, ns) {
			open = append(open, p)
		}
	}
	byName := func(a, b *v1alpha1.EIPPool) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(selecting, byName)
	slices.SortFunc(open, byName)
	switch {
	case len(open) == 1:
		return open[0], nil
	case len(open) > 1:
		return nil, &api.Problem{Key: PoolKey(req), Message: fmt.Sprintf(
			"EIPPools %s all select addresses by the tag key %q and are open to namespace %q; choose one: add %s: %s and %s: <one of them>",
			pools.Names(open), req.LegacyTagKey, ns.Name, api.AnnotationMode, req.Mode, api.AnnotationPool)}
	case len(selecting) > 0:
		return nil, &api.Problem{Key: PoolKey(req), Message: fmt.Sprintf("EIPPool %q selects addresses by the tag key %q but is not open to namespace %q (its namespaceSelector does not select it)",
			selecting[0].Name, req.LegacyTagKey, ns.Name)}
	default:
		return nil, &api.Problem{Key: PoolKey(req), Message: fmt.Sprintf(
			"no EIPPool selects addresses by the tag key %q; create one: {apiVersion: kube-eip.io/v1alpha1, kind: EIPPool, metadata: {name: %s}, spec: {tagSelector: {%q: \"\"}%s, namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}}}",
			req.LegacyTagKey, legacyPoolName(req.LegacyTagKey), req.LegacyTagKey, stickyTagField(req), ns.Name)}
	}
}

func legacyPoolName(tagKey string) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, tagKey), "-")
}

func stickyTagField(req *api.Request) string {
	if req.Mode == api.ModeSticky {
		return fmt.Sprintf(", stickyTag: %q", req.LegacyTagKey)
	}
	return ""
}

func openPools(ns *corev1.Namespace, pools Pools) string {
	var names []string
	for _, p := range pools.Pools() {
		if OpenTo(&p, ns) {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("no EIPPool is open to namespace %q yet (kubectl get eippools; a pool's spec.namespaceSelector must select the namespace)", ns.Name)
	}
	slices.Sort(names)
	return fmt.Sprintf("pools open to namespace %q: %s", ns.Name, strings.Join(names, ", "))
}
