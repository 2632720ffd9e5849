package ec2sim

import (
	"strings"
)

// filter is one Filter.N of a Describe call: the resource matches when any
// of its values for Name matches any of Values (EC2 ORs values and ANDs
// filters). Values may use the * and ? wildcards.
type filter struct {
	name   string
	values []string
}

type filters []filter

// parseFilters reads Filter.N.Name / Filter.N.Value.M and refuses names the
// resource does not know, as EC2 does, even when nothing would match.
func parseFilters(p params, known map[string]bool) (filters, error) {
	var out filters
	for _, m := range p.members("Filter") {
		name := m.str("Name")
		if name == "" {
			return nil, missingParameter("Filter.Name")
		}
		if !known[name] && !isTagFilter(name) {
			return nil, invalidValue("The filter '%s' is invalid", name)
		}
		values := m.list("Value")
		if len(values) == 0 {
			return nil, invalidValue("The filter '%s' needs at least one value", name)
		}
		out = append(out, filter{name: name, values: values})
	}
	return out, nil
}

func isTagFilter(name string) bool {
	return strings.HasPrefix(name, "tag:") || name == "tag-key" || name == "tag-value"
}

// match tells whether a resource passes every filter; attr returns the
// resource's values for a non-tag filter name.
func (fs filters) match(attr func(name string) []string, tags map[string]string) bool {
	for _, f := range fs {
		if !f.matchValues(filterValues(f.name, attr, tags)) {
			return false
		}
	}
	return true
}

func filterValues(name string, attr func(string) []string, tags map[string]string) []string {
	switch {
	case strings.HasPrefix(name, "tag:"):
		if v, ok := tags[strings.TrimPrefix(name, "tag:")]; ok {
			return []string{v}
		}
		return nil
	case name == "tag-key":
		return sortedKeys(tags)
	case name == "tag-value":
		out := make([]string, 0, len(tags))
		for _, v := range tags {
			out = append(out, v)
		}
		return out
	default:
		return attr(name)
	}
}

func (f filter) matchValues(have []string) bool {
	for _, want := range f.values {
		for _, h := range have {
			if glob(want, h) {
				return true
			}
		}
	}
	return false
}

// glob matches EC2's filter wildcards: * is any run, ? one character, and a
// backslash escapes either.
func glob(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			rest := pattern[1:]
			for i := 0; i <= len(s); i++ {
				if glob(rest, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			pattern, s = pattern[1:], s[1:]
			continue
		case '\\':
			if len(pattern) > 1 {
				pattern = pattern[1:]
			}
		}
		if len(s) == 0 || s[0] != pattern[0] {
			return false
		}
		pattern, s = pattern[1:], s[1:]
	}
	return len(s) == 0
}

// nonEmpty drops "" so an unset attribute matches no filter value.
func nonEmpty(values ...string) []string {
	out := values[:0:0]
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
