package pools

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// A pool's selector needs every key, with its value unless the value is
// empty; an empty selector selects nothing, and nothing selects an address
// kube-eip allocated for a pod.
func TestSelects(t *testing.T) {
	tests := []struct {
		name     string
		tags     map[string]string
		selector map[string]string
		want     bool
	}{
		{"equal", map[string]string{"team": "a", "x": "y"}, map[string]string{"team": "a"}, true},
		{"other value", map[string]string{"team": "b"}, map[string]string{"team": "a"}, false},
		{"key only", map[string]string{"team": "b"}, map[string]string{"team": ""}, true},
		{"key only, missing", map[string]string{"x": "y"}, map[string]string{"team": ""}, false},
		{"all keys", map[string]string{"team": "a"}, map[string]string{"team": "a", "env": "prod"}, false},
		{"empty selector", map[string]string{"team": "a"}, nil, false},
		{"no tags", nil, map[string]string{"team": ""}, false},
		{"kube-eip's own pool address", map[string]string{api.TagCluster: "c", "team": "a"}, map[string]string{"team": "a"}, true},
		{"allocated for a pod", map[string]string{api.TagCluster: "c", api.TagClaim: "x", api.TagOwner: "ns/p", api.TagMode: "auto"},
			map[string]string{api.TagCluster: ""}, false},
		{"a pod's, tagged like a pool's too", map[string]string{api.TagClaim: "x", "team": "a"}, map[string]string{"team": "a"}, false},
		{"kept for a sticky name", map[string]string{api.TagOwner: "ns/p", "team": "a"}, map[string]string{"team": "a"}, false},
		{"held by a node: still its pool's", map[string]string{api.TagHolder: api.HolderNode, api.TagOwner: "node-a", "team": "a"}, map[string]string{"team": "a"}, true},
		{"floating: still its pool's", map[string]string{api.TagHolder: api.HolderFloating, api.TagOwner: "vip", "team": "a"}, map[string]string{"team": "a"}, true},
		{"allocated for a pod, holder tag first", map[string]string{api.TagHolder: api.HolderPod, "team": "a"}, map[string]string{"team": "a"}, false},
	}
	for _, tc := range tests {
		if got := Selects(tc.selector, tc.tags); got != tc.want {
			t.Errorf("%s: Selects(%v, %v) = %v, want %v", tc.name, tc.selector, tc.tags, got, tc.want)
		}
	}
}

func TestContains(t *testing.T) {
	tests := []struct {
		a, b map[string]string
		want bool
	}{
		{map[string]string{"team": "a"}, map[string]string{"team": "a"}, true},
		{map[string]string{"team": "a"}, map[string]string{"team": "a", "env": "prod"}, true},
		{map[string]string{"team": ""}, map[string]string{"team": "a"}, true},
		{map[string]string{"team": "a"}, map[string]string{"team": ""}, false},
		{map[string]string{"team": "a"}, map[string]string{"team": "b"}, false},
		{map[string]string{"team": "a", "env": "prod"}, map[string]string{"team": "a"}, false},
		{map[string]string{"team": "a"}, map[string]string{"env": "prod"}, false},
		{nil, map[string]string{"team": "a"}, false},
	}
	for _, tc := range tests {
		if got := Contains(tc.a, tc.b); got != tc.want {
			t.Errorf("Contains(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func pool(name string, selector map[string]string, ips ...string) v1alpha1.EIPPool {
	p := v1alpha1.EIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.EIPPoolSpec{TagSelector: selector}}
	for _, ip := range ips {
		p.Status.Addresses = append(p.Status.Addresses, v1alpha1.PoolAddress{PublicIP: ip})
	}
	return p
}

func TestOverlap(t *testing.T) {
	others := []v1alpha1.EIPPool{
		pool("alpha", map[string]string{"team": "alpha"}, "3.0.0.1", "3.0.0.2"),
		pool("legacy", map[string]string{"pec": ""}),
	}
	for _, tc := range []struct {
		name     string
		selector map[string]string
		want     string
	}{
		{"the same selector", map[string]string{"team": "alpha"},
			`its tagSelector {team: "alpha"} and that of EIPPool "alpha", {team: "alpha"}, select the same addresses (3.0.0.1, 3.0.0.2); an address belongs to one pool only`},
		{"a wider one", map[string]string{"team": ""}, `and that of EIPPool "alpha", {team: "alpha"}, select the same addresses (3.0.0.1, 3.0.0.2)`},
		{"a narrower one", map[string]string{"team": "alpha", "env": "prod"}, `and that of EIPPool "alpha", {team: "alpha"}, select the same addresses;`},
		{"another value", map[string]string{"team": "beta"}, ""},
		{"another key", map[string]string{"pec2": ""}, ""},
		{"a key another pool only needs present", map[string]string{"pec": "x"}, `EIPPool "legacy"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pool("new", tc.selector)
			got := Overlap(&p, others)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("Overlap = %q, want %q", got, tc.want)
			}
		})
	}
	// A pool never overlaps itself: an update of it is judged against the
	// others.
	self := others[0]
	if got := Overlap(&self, others); got != "" {
		t.Errorf("a pool overlaps itself: %q", got)
	}
}
