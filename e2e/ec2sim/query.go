package ec2sim

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// params reads the EC2 Query encoding of a request: scalars as Name=value,
// lists as Name.1, Name.2…, and lists of structures as Name.1.Member=value
// (for example Filter.1.Name, Filter.1.Value.1, TagSpecification.1.Tag.1.Key).
type params struct {
	v url.Values
}

// str is the value of a scalar parameter, "" when absent.
func (p params) str(name string) string { return p.v.Get(name) }

// has tells an absent parameter from one sent empty (DeleteTags needs it).
func (p params) has(name string) bool {
	_, ok := p.v[name]
	return ok
}

// boolean reads an optional boolean; set reports whether it was sent.
func (p params) boolean(name string) (value, set bool, err error) {
	s := p.str(name)
	if s == "" {
		return false, false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, true, invalidValue("Invalid value '%s' for %s. Expected a boolean.", s, name)
	}
	return b, true, nil
}

// integer reads an optional integer; set reports whether it was sent.
func (p params) integer(name string) (value int, set bool, err error) {
	s := p.str(name)
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, true, invalidValue("Invalid value '%s' for %s. Expected an integer.", s, name)
	}
	return n, true, nil
}

// list collects Name.1, Name.2… in index order.
func (p params) list(name string) []string {
	var out []string
	for _, m := range p.members(name) {
		out = append(out, m.str(""))
	}
	return out
}

// members splits Name.N.rest into one params per N, in index order, whose
// keys are the rests; a plain list Name.N=value becomes a member whose ""
// key holds the value.
func (p params) members(name string) []params {
	prefix := name + "."
	byIndex := map[int]url.Values{}
	for key, values := range p.v {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		idx, sub, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(idx)
		if err != nil || n < 1 {
			continue
		}
		if byIndex[n] == nil {
			byIndex[n] = url.Values{}
		}
		byIndex[n][sub] = values
	}
	indexes := make([]int, 0, len(byIndex))
	for n := range byIndex {
		indexes = append(indexes, n)
	}
	sort.Ints(indexes)
	out := make([]params, 0, len(indexes))
	for _, n := range indexes {
		out = append(out, params{v: byIndex[n]})
	}
	return out
}

// sub is the structure under Name (Placement.AvailabilityZone → "AvailabilityZone").
func (p params) sub(name string) params {
	prefix := name + "."
	out := url.Values{}
	for key, values := range p.v {
		if rest, ok := strings.CutPrefix(key, prefix); ok {
			out[rest] = values
		}
	}
	return params{v: out}
}

// anyWithPrefix tells whether any Name.… key was sent.
func (p params) anyWithPrefix(name string) bool {
	prefix := name + "."
	for key := range p.v {
		if strings.HasPrefix(key, prefix) {
			return true
		}
	}
	return false
}
