package api

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		want        *Request
		problems    []string // "key: substring of the message"
		warnings    []string // substrings
	}{
		{name: "nothing asked", annotations: map[string]string{"app": "x"}},
		{name: "auto", annotations: map[string]string{AnnotationMode: "auto"}, want: &Request{Mode: ModeAuto}},
		{name: "auto from BYOIP", annotations: map[string]string{AnnotationMode: "auto", AnnotationPublicIPv4Pool: "ipv4pool-ec2-0123456789abcdef0"},
			want: &Request{Mode: ModeAuto, PublicIPv4Pool: "ipv4pool-ec2-0123456789abcdef0"}},
		{name: "pool", annotations: map[string]string{AnnotationMode: "pool", AnnotationPool: "partners"}, want: &Request{Mode: ModePool, Pool: "partners"}},
		{name: "sticky without pool", annotations: map[string]string{AnnotationMode: "sticky"}, want: &Request{Mode: ModeSticky}},
		{name: "unknown mode with a guess", annotations: map[string]string{AnnotationMode: "autoo"},
			problems: []string{AnnotationMode + `: unknown mode "autoo"; did you mean "auto"?`}},
		{name: "unknown mode capitalised", annotations: map[string]string{AnnotationMode: "Sticky"},
			problems: []string{AnnotationMode + `: unknown mode "Sticky"; did you mean "sticky"?`}},
		{name: "unknown mode without a guess", annotations: map[string]string{AnnotationMode: "elastic"},
			problems: []string{AnnotationMode + `: unknown mode "elastic"; use one of auto, pool, sticky`}},
		{name: "unknown key with a guess", annotations: map[string]string{AnnotationMode: "pool", AnnotationPool: "p", Prefix + "pools": "p"},
			problems: []string{Prefix + "pools: unknown annotation; did you mean kube-eip.io/pool?"}},
		{name: "unknown key without a guess", annotations: map[string]string{AnnotationMode: "auto", Prefix + "colour": "blue"},
			problems: []string{Prefix + "colour: unknown annotation; kube-eip reads only"}},
		{name: "pool mode without pool", annotations: map[string]string{AnnotationMode: "pool"},
			problems: []string{AnnotationPool + ": mode pool needs the EIPPool to draw from; add kube-eip.io/pool: <name>"}},
		{name: "pool without mode", annotations: map[string]string{AnnotationPool: "p"},
			problems: []string{AnnotationPool + ": set without kube-eip.io/mode; add kube-eip.io/mode: pool"}},
		{name: "bad pool name", annotations: map[string]string{AnnotationMode: "pool", AnnotationPool: "Partners_1"},
			problems: []string{AnnotationPool + `: "Partners_1" is not an EIPPool name`}},
		{name: "malformed BYOIP id", annotations: map[string]string{AnnotationMode: "auto", AnnotationPublicIPv4Pool: "ipv4pool-ec2-123"},
			problems: []string{AnnotationPublicIPv4Pool + `: "ipv4pool-ec2-123" is not a public IPv4 pool; use amazon or a BYOIP pool id`}},
		{name: "pool ignored in auto", annotations: map[string]string{AnnotationMode: "auto", AnnotationPool: "p"},
			want: &Request{Mode: ModeAuto, Pool: "p"}, warnings: []string{"kube-eip.io/pool is ignored in mode auto"}},
		{name: "public pool ignored in pool mode", annotations: map[string]string{AnnotationMode: "pool", AnnotationPool: "p", AnnotationPublicIPv4Pool: "amazon"},
			want: &Request{Mode: ModePool, Pool: "p", PublicIPv4Pool: "amazon"}, warnings: []string{"kube-eip.io/public-ipv4-pool is ignored in mode pool"}},
		{name: "system annotation copied from a live pod", annotations: map[string]string{AnnotationMode: "auto", AnnotationAllocationID: "eipalloc-1"},
			want: &Request{Mode: ModeAuto}, warnings: []string{"kube-eip.io/allocation-id is written by kube-eip"}},
		{name: "legacy auto", annotations: map[string]string{LegacyAnnotationType: "auto", LegacyAnnotationIPv4Pool: "amazon"},
			want: &Request{Mode: ModeAuto, PublicIPv4Pool: "amazon", Legacy: true}},
		{name: "legacy fixed-tag", annotations: map[string]string{LegacyAnnotationType: "fixed-tag", LegacyAnnotationTag: "pec-ip-pool"},
			want: &Request{Mode: ModePool, LegacyTagKey: "pec-ip-pool", Legacy: true}},
		{name: "legacy fixed-tag-value", annotations: map[string]string{LegacyAnnotationType: "fixed-tag-value", LegacyAnnotationTagValue: "pec-ip-pool"},
			want: &Request{Mode: ModeSticky, LegacyTagKey: "pec-ip-pool", Legacy: true}},
		{name: "legacy fixed-tag without its key", annotations: map[string]string{LegacyAnnotationType: "fixed-tag"},
			problems: []string{LegacyAnnotationTag + ": type fixed-tag needs the EC2 tag key"}},
		{name: "legacy unknown type", annotations: map[string]string{LegacyAnnotationType: "fixed"},
			problems: []string{LegacyAnnotationType + `: unknown type "fixed"`}},
		{name: "old and new agree", annotations: map[string]string{AnnotationMode: "auto", LegacyAnnotationType: "auto"},
			want: &Request{Mode: ModeAuto}, warnings: []string{"agree"}},
		{name: "old and new conflict", annotations: map[string]string{AnnotationMode: "auto", LegacyAnnotationType: "fixed-tag", LegacyAnnotationTag: "k"},
			problems: []string{LegacyAnnotationType + ": conflicts with kube-eip.io/mode=auto"}},
		{name: "unknown legacy key warns", annotations: map[string]string{LegacyAnnotationType: "auto", LegacyPrefix + "reclaim": "false"},
			want: &Request{Mode: ModeAuto, Legacy: true}, warnings: []string{LegacyPrefix + "reclaim is not an aws-pod-eip-controller annotation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems, warnings := ParseRequest(tt.annotations)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("request = %+v, want %+v", got, tt.want)
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems = %v, want %d matching %q", problems, len(tt.problems), tt.problems)
			}
			for i, p := range problems {
				if !strings.HasPrefix(p.Error(), tt.problems[i]) {
					t.Errorf("problem %d = %q, want it to start with %q", i, p.Error(), tt.problems[i])
				}
			}
			if len(warnings) != len(tt.warnings) {
				t.Fatalf("warnings = %q, want %d matching %q", warnings, len(tt.warnings), tt.warnings)
			}
			for i, w := range warnings {
				if !strings.Contains(w, tt.warnings[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, w, tt.warnings[i])
				}
			}
		})
	}
}

func TestHasEIPAnnotations(t *testing.T) {
	for annotations, want := range map[*map[string]string]bool{
		{"app": "x"}:                   false,
		{AnnotationAllocationID: "x"}:  false,
		{AnnotationMode: "auto"}:       true,
		{Prefix + "typo": "x"}:         true,
		{LegacyAnnotationType: "auto"}: true,
	} {
		if got := HasEIPAnnotations(*annotations); got != want {
			t.Errorf("HasEIPAnnotations(%v) = %t, want %t", *annotations, got, want)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(AnnotationMode, "auto", AnnotationPool, "p", LegacyAnnotationType, "fixed-tag")
	f.Add(AnnotationMode, "stiky", Prefix+"pol", "x", LegacyAnnotationTagValue, "")
	f.Add(AnnotationPublicIPv4Pool, "ipv4pool-ec2-0123456789abcdef0", LegacyAnnotationIPv4Pool, "amazon", "", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		a := map[string]string{k1: v1, k2: v2, k3: v3}
		req, problems, _ := ParseRequest(a)
		if req != nil && len(problems) > 0 {
			t.Fatalf("both a request and problems for %v", a)
		}
		if req != nil && !HasEIPAnnotations(a) {
			t.Fatalf("a request from annotations that ask nothing: %v", a)
		}
		for _, p := range problems {
			if p.Key == "" || p.Message == "" {
				t.Fatalf("problem without key or message for %v: %+v", a, p)
			}
		}
	})
}

// Every tag value kube-eip writes fits EC2's 256 characters, whatever the
// legal names: the full name where it fits, else a shortened one that no
// other name gives.
func TestOwnerTagFitsEC2(t *testing.T) {
	ns63 := strings.Repeat("n", 63)
	long := strings.Repeat("p", 253)
	if got := OwnerTag("games", "relay-0"); got != "games/relay-0" {
		t.Errorf("OwnerTag of a short name = %q, want it whole", got)
	}
	if got := OwnerTag(ns63, strings.Repeat("p", 256-64)); got != ns63+"/"+strings.Repeat("p", 256-64) {
		t.Errorf("a name that just fits was shortened: %q", got)
	}
	a, b := OwnerTag(ns63, long), OwnerTag(ns63, long[:252]+"q")
	for _, got := range []string{a, b, ControllerTag("StatefulSet", long)} {
		if len(got) > MaxTagValue || !strings.Contains(got, "~") {
			t.Errorf("%q (%d characters) does not fit, or is not marked as shortened", got, len(got))
		}
	}
	if !strings.HasPrefix(a, ns63+"/") || a == b || a != OwnerTag(ns63, long) {
		t.Errorf("shortened tags %q and %q: want the namespace kept, distinct names distinct, the same name the same", a, b)
	}
}
