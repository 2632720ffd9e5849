package ec2sim

import (
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// EC2's tag limits.
const (
	maxTagsPerResource = 50
	maxTagKeyLen       = 128
	maxTagValueLen     = 256
)

// parseTags reads Tag.N.Key / Tag.N.Value.
func parseTags(members []params) (map[string]string, error) {
	tags := make(map[string]string, len(members))
	for _, m := range members {
		k, v := m.str("Key"), m.str("Value")
		if err := validateTag(k, v); err != nil {
			return nil, err
		}
		tags[k] = v
	}
	return tags, nil
}

func validateTag(k, v string) error {
	switch {
	case k == "":
		return invalidValue("Tag key must not be empty")
	case utf8.RuneCountInString(k) > maxTagKeyLen:
		return invalidValue("Tag key exceeds the maximum length of %d characters", maxTagKeyLen)
	case utf8.RuneCountInString(v) > maxTagValueLen:
		return invalidValue("Tag value exceeds the maximum length of %d characters", maxTagValueLen)
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return invalidValue("Tag keys starting with 'aws:' are reserved for internal use")
	}
	return nil
}

// parseTagSpecs reads TagSpecification.N for a creating action, refusing
// resource types the action does not create. It returns tags by type.
func parseTagSpecs(p params, allowed ...string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, m := range p.members("TagSpecification") {
		rt := m.str("ResourceType")
		if !slices.Contains(allowed, rt) {
			return nil, invalidValue("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		tags, err := parseTags(m.members("Tag"))
		if err != nil {
			return nil, err
		}
		if out[rt] == nil {
			out[rt] = map[string]string{}
		}
		maps.Copy(out[rt], tags)
		if len(out[rt]) > maxTagsPerResource {
			return nil, tagLimitExceeded()
		}
	}
	return out, nil
}

func tagLimitExceeded() error {
	return clientError("TagLimitExceeded", "The maximum number of tags for a resource has been reached.")
}

// tagsOf finds the tag map of any taggable resource by id, answering with
// the NotFound code of the id's type as EC2 does.
func (w *world) tagsOf(id string) (*map[string]string, error) {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "eipalloc":
		if a := w.addresses[id]; a != nil {
			return &a.Tags, nil
		}
		return nil, allocationNotFound(id)
	case "eni":
		if e := w.enis[id]; e != nil {
			return &e.Tags, nil
		}
		return nil, eniNotFound(id)
	case "i":
		if i := w.instances[id]; i != nil {
			return &i.Tags, nil
		}
		return nil, instanceNotFound(id)
	case "subnet":
		if s := w.subnets[id]; s != nil {
			return &s.Tags, nil
		}
		return nil, subnetNotFound(id)
	case "vpc":
		if v := w.vpcs[id]; v != nil {
			return &v.Tags, nil
		}
		return nil, vpcNotFound(id)
	}
	return nil, clientError("InvalidID", "The ID '%s' is not valid", id)
}

func (w *world) createTags(c call) (response, error) {
	ids := c.p.list("ResourceId")
	if len(ids) == 0 {
		return nil, missingParameter("ResourceId")
	}
	members := c.p.members("Tag")
	if len(members) == 0 {
		return nil, missingParameter("Tag")
	}
	tags, err := parseTags(members)
	if err != nil {
		return nil, err
	}
	// Check every resource before touching any: EC2 applies all or nothing.
	targets := make([]*map[string]string, 0, len(ids))
	for _, id := range ids {
		t, err := w.tagsOf(id)
		if err != nil {
			return nil, err
		}
		merged := maps.Clone(*t)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, tags)
		if len(merged) > maxTagsPerResource {
			return nil, tagLimitExceeded()
		}
		targets = append(targets, t)
	}
	for _, t := range targets {
		if *t == nil {
			*t = map[string]string{}
		}
		maps.Copy(*t, tags)
	}
	return ack(), nil
}

// deleteTags removes tags: a key alone removes it whatever its value, a key
// with a value (even "") only when the value matches, and no tags at all
// removes every tag, as documented for DeleteTags.
func (w *world) deleteTags(c call) (response, error) {
	ids := c.p.list("ResourceId")
	if len(ids) == 0 {
		return nil, missingParameter("ResourceId")
	}
	members := c.p.members("Tag")
	targets := make([]*map[string]string, 0, len(ids))
	for _, id := range ids {
		t, err := w.tagsOf(id)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	for _, t := range targets {
		if len(members) == 0 {
			*t = nil
			continue
		}
		for _, m := range members {
			k := m.str("Key")
			if v, ok := (*t)[k]; ok && (!m.has("Value") || m.str("Value") == v) {
				delete(*t, k)
			}
		}
	}
	return ack(), nil
}
