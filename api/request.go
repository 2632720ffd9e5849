package api

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Request is what a pod's annotations ask of kube-eip.
type Request struct {
	Mode Mode
	// Pool is the EIPPool named by kube-eip.io/pool.
	Pool string
	// PublicIPv4Pool is the source of an auto address ("" means amazon).
	PublicIPv4Pool string
	// LegacyTagKey is set for aws-pod-eip-controller fixed-tag and
	// fixed-tag-value pods: their addresses are those carrying this EC2 tag
	// key, which an EIPPool must select.
	LegacyTagKey string
	// Legacy is set when the request comes from the aws-pod-eip-controller
	// annotations, so that messages name the annotation the user wrote.
	Legacy bool
}

// Problem is a reason to refuse a pod: the annotation at fault and a message
// that says how to fix it.
type Problem struct {
	Key     string
	Message string
}

func (p Problem) Error() string { return p.Key + ": " + p.Message }

// The aws-pod-eip-controller annotations kube-eip understands, so that its
// users can switch without editing manifests.
const (
	LegacyPrefix             = "aws-samples.github.com/aws-pod-eip-controller-"
	LegacyAnnotationType     = LegacyPrefix + "type"
	LegacyAnnotationIPv4Pool = LegacyPrefix + "public-ipv4-pool"
	LegacyAnnotationTag      = LegacyPrefix + "fixed-tag"
	LegacyAnnotationTagValue = LegacyPrefix + "fixed-tag-value"

	LegacyTypeAuto          = "auto"
	LegacyTypeFixedTag      = "fixed-tag"
	LegacyTypeFixedTagValue = "fixed-tag-value"
)

// userKeys are the annotations users write; systemKeys are written by
// kube-eip and tolerated on input (a manifest exported from a live pod).
var (
	userKeys   = []string{AnnotationMode, AnnotationPool, AnnotationPublicIPv4Pool}
	systemKeys = []string{AnnotationAllocationID, AnnotationAssociationID, AnnotationClaim, AnnotationReservation, AnnotationReservedIP, LabelPublicIP, LabelManaged}
	// admissionKeys are the system keys the webhook itself writes.
	admissionKeys = []string{AnnotationClaim, AnnotationReservation, AnnotationReservedIP}
	legacyKeys    = []string{LegacyAnnotationType, LegacyAnnotationIPv4Pool, LegacyAnnotationTag, LegacyAnnotationTagValue}
)

// SystemKeys lists the keys under Prefix that kube-eip writes itself.
func SystemKeys() []string { return slices.Clone(systemKeys) }

var publicIPv4PoolID = regexp.MustCompile(`^ipv4pool-ec2-[0-9a-f]{17}$`)

// ValidPublicIPv4Pool reports whether s names a public IPv4 pool: amazon or
// a BYOIP pool id.
func ValidPublicIPv4Pool(s string) bool { return s == "amazon" || publicIPv4PoolID.MatchString(s) }

// HasEIPAnnotations reports whether annotations ask kube-eip for anything.
func HasEIPAnnotations(annotations map[string]string) bool {
	for k := range annotations {
		if strings.HasPrefix(k, Prefix) && !slices.Contains(systemKeys, k) || strings.HasPrefix(k, LegacyPrefix) {
			return true
		}
	}
	return false
}

// ParseRequest reads a pod's annotations. It returns nil when the pod asks
// for nothing, the problems that must refuse it, and warnings for what is
// legal but probably not meant. It is pure, so it can be table-tested and
// fuzzed.
func ParseRequest(annotations map[string]string) (*Request, []Problem, []string) {
	var problems []Problem
	var warnings []string
	for _, k := range sortedKeys(annotations) {
		if !strings.HasPrefix(k, Prefix) || slices.Contains(userKeys, k) {
			continue
		}
		if slices.Contains(systemKeys, k) {
			// Admission's own keys come back on reinvocation; the others
			// only in a manifest exported from a live pod.
			if !slices.Contains(admissionKeys, k) {
				warnings = append(warnings, fmt.Sprintf("%s is written by kube-eip; the value in the manifest is ignored", k))
			}
			continue
		}
		msg := fmt.Sprintf("unknown annotation; kube-eip reads only %s", strings.Join(userKeys, ", "))
		if guess := closest(strings.TrimPrefix(k, Prefix), userKeyNames()); guess != "" {
			msg = fmt.Sprintf("unknown annotation; did you mean %s%s?", Prefix, guess)
		}
		problems = append(problems, Problem{Key: k, Message: msg})
	}

	modern, modernProblems, modernWarnings := parseModern(annotations)
	legacy, legacyProblems, legacyWarnings := parseLegacy(annotations)
	problems = append(problems, modernProblems...)
	problems = append(problems, legacyProblems...)
	warnings = append(warnings, modernWarnings...)
	warnings = append(warnings, legacyWarnings...)

	req := modern
	switch {
	case modern != nil && legacy != nil:
		if modern.Mode != legacy.Mode || legacy.PublicIPv4Pool != "" && legacy.PublicIPv4Pool != modern.PublicIPv4Pool {
			problems = append(problems, Problem{Key: LegacyAnnotationType, Message: fmt.Sprintf(
				"conflicts with %s=%s: the aws-pod-eip-controller annotations ask for %s; keep one of the two sets (kube-eip.io/ is preferred)",
				AnnotationMode, modern.Mode, legacy.Mode)})
		} else {
			warnings = append(warnings, fmt.Sprintf("both %s and %s are set and agree; %s is used, the aws-pod-eip-controller annotations can be removed",
				AnnotationMode, LegacyAnnotationType, AnnotationMode))
		}
	case legacy != nil:
		req = legacy
	}
	if len(problems) > 0 {
		return nil, problems, warnings
	}
	return req, nil, warnings
}

func parseModern(a map[string]string) (*Request, []Problem, []string) {
	mode, hasMode := a[AnnotationMode]
	pool, hasPool := a[AnnotationPool]
	ipv4Pool, hasIPv4Pool := a[AnnotationPublicIPv4Pool]
	if !hasMode {
		var problems []Problem
		if hasPool {
			problems = append(problems, Problem{Key: AnnotationPool, Message: fmt.Sprintf("set without %s; add %s: pool (or sticky)", AnnotationMode, AnnotationMode)})
		}
		if hasIPv4Pool {
			problems = append(problems, Problem{Key: AnnotationPublicIPv4Pool, Message: fmt.Sprintf("set without %s; add %s: auto", AnnotationMode, AnnotationMode)})
		}
		return nil, problems, nil
	}
	req := &Request{Mode: Mode(mode), Pool: pool, PublicIPv4Pool: ipv4Pool}
	var problems []Problem
	var warnings []string
	if !slices.Contains(Modes, req.Mode) {
		msg := fmt.Sprintf("unknown mode %q; use one of %s", mode, joinModes())
		if guess := closest(strings.ToLower(strings.TrimSpace(mode)), modeNames()); guess != "" {
			msg = fmt.Sprintf("unknown mode %q; did you mean %q? (one of %s)", mode, guess, joinModes())
		}
		return nil, []Problem{{Key: AnnotationMode, Message: msg}}, nil
	}
	if hasPool && !validName(pool) {
		problems = append(problems, Problem{Key: AnnotationPool, Message: fmt.Sprintf("%q is not an EIPPool name (lower-case letters, digits, '-' and '.'); list pools with kubectl get eippools", pool)})
	}
	switch req.Mode {
	case ModePool:
		if !hasPool || pool == "" {
			problems = append(problems, Problem{Key: AnnotationPool, Message: "mode pool needs the EIPPool to draw from; add kube-eip.io/pool: <name> (kubectl get eippools lists them)"})
		}
	case ModeAuto:
		if hasPool {
			warnings = append(warnings, fmt.Sprintf("%s is ignored in mode auto, which allocates a new address; use mode pool to draw from %q", AnnotationPool, pool))
		}
	}
	if hasIPv4Pool {
		switch {
		case !ValidPublicIPv4Pool(ipv4Pool):
			problems = append(problems, Problem{Key: AnnotationPublicIPv4Pool, Message: fmt.Sprintf("%q is not a public IPv4 pool; use amazon or a BYOIP pool id like ipv4pool-ec2-0123456789abcdef0 (aws ec2 describe-public-ipv4-pools)", ipv4Pool)})
		case req.Mode != ModeAuto:
			warnings = append(warnings, fmt.Sprintf("%s is ignored in mode %s: the address comes from the EIPPool", AnnotationPublicIPv4Pool, req.Mode))
		}
	}
	return req, problems, warnings
}

func parseLegacy(a map[string]string) (*Request, []Problem, []string) {
	var warnings []string
	for _, k := range sortedKeys(a) {
		if strings.HasPrefix(k, LegacyPrefix) && !slices.Contains(legacyKeys, k) {
			warnings = append(warnings, fmt.Sprintf("%s is not an aws-pod-eip-controller annotation kube-eip understands; it is ignored", k))
		}
	}
	typ, ok := a[LegacyAnnotationType]
	if !ok {
		return nil, nil, warnings
	}
	switch typ {
	case LegacyTypeAuto:
		req := &Request{Mode: ModeAuto, PublicIPv4Pool: a[LegacyAnnotationIPv4Pool], Legacy: true}
		if req.PublicIPv4Pool != "" && !ValidPublicIPv4Pool(req.PublicIPv4Pool) {
			return nil, []Problem{{Key: LegacyAnnotationIPv4Pool, Message: fmt.Sprintf("%q is not a public IPv4 pool; use amazon or a BYOIP pool id like ipv4pool-ec2-0123456789abcdef0", req.PublicIPv4Pool)}}, warnings
		}
		return req, nil, warnings
	case LegacyTypeFixedTag, LegacyTypeFixedTagValue:
		keyAnnotation, mode := LegacyAnnotationTag, ModePool
		if typ == LegacyTypeFixedTagValue {
			keyAnnotation, mode = LegacyAnnotationTagValue, ModeSticky
		}
		tagKey := a[keyAnnotation]
		if tagKey == "" {
			return nil, []Problem{{Key: keyAnnotation, Message: fmt.Sprintf("type %s needs the EC2 tag key of its addresses in %s", typ, keyAnnotation)}}, warnings
		}
		return &Request{Mode: mode, LegacyTagKey: tagKey, Legacy: true}, nil, warnings
	default:
		return nil, []Problem{{Key: LegacyAnnotationType, Message: fmt.Sprintf("unknown type %q; use %s, %s or %s, or switch to %s", typ, LegacyTypeAuto, LegacyTypeFixedTag, LegacyTypeFixedTagValue, AnnotationMode)}}, warnings
	}
}

var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func validName(s string) bool { return len(s) <= 253 && dns1123Subdomain.MatchString(s) }

func modeNames() []string {
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return names
}

func userKeyNames() []string {
	names := make([]string, len(userKeys))
	for i, k := range userKeys {
		names[i] = strings.TrimPrefix(k, Prefix)
	}
	return names
}

func joinModes() string { return strings.Join(modeNames(), ", ") }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// closest returns the candidate nearest to s by edit distance, if it is
// near enough to be a typo.
func closest(s string, candidates []string) string {
	best, bestDist := "", 0
	for _, c := range candidates {
		d := editDistance(s, c)
		if best == "" || d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || bestDist > max(1, len(best)/3) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
