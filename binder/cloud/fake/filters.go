package fake

import (
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// checkFilters refuses filter names the resource does not know, as EC2
// does even when nothing would match: a misspelt filter must not pass a
// test by matching everything or nothing.
func checkFilters(fs []types.Filter, known map[string]bool, tagged bool) error {
	for _, flt := range fs {
		name := aws.ToString(flt.Name)
		switch {
		case name == "":
			return missingParameter("Filter.Name")
		case !known[name] && (!tagged || !isTagFilter(name)):
			return invalidValue("The filter '%s' is invalid", name)
		case len(flt.Values) == 0:
			return invalidValue("The filter '%s' needs at least one value", name)
		}
	}
	return nil
}

func isTagFilter(name string) bool {
	return strings.HasPrefix(name, "tag:") || name == "tag-key" || name == "tag-value"
}

// matchFilters applies EC2's rule: values of one filter are ORed, filters
// are ANDed. values gives the resource's values for a filter name. Unlike
// EC2, the * and ? wildcards are not supported; they match literally.
func matchFilters(fs []types.Filter, values func(name string) []string) bool {
	for _, flt := range fs {
		have := values(aws.ToString(flt.Name))
		if !slices.ContainsFunc(flt.Values, func(v string) bool { return slices.Contains(have, v) }) {
			return false
		}
	}
	return true
}

// tagValues answers the tag filters for a resource with these tags.
func tagValues(name string, tags map[string]string) []string {
	switch {
	case strings.HasPrefix(name, "tag:"):
		if v, ok := tags[strings.TrimPrefix(name, "tag:")]; ok {
			return []string{v}
		}
		return nil
	case name == "tag-key":
		return slices.Collect(maps.Keys(tags))
	case name == "tag-value":
		return slices.Collect(maps.Values(tags))
	}
	return nil
}

// nonEmpty drops "" so that an unset attribute matches no filter value.
func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// optional is how the SDK leaves a field EC2 did not send: nil, not "".
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
