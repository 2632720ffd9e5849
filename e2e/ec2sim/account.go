package ec2sim

import "strconv"

type xmlAccountAttributeValue struct {
	Value string `xml:"attributeValue"`
}

type xmlAccountAttribute struct {
	Name   string                          `xml:"attributeName"`
	Values items[xmlAccountAttributeValue] `xml:"attributeValueSet"`
}

type describeAccountAttributesResponse struct {
	respMeta
	Attributes items[xmlAccountAttribute] `xml:"accountAttributeSet"`
}

// accountAttributes are the attributes the emulator knows, in the order it
// answers them when none are named. EC2 also has max-instances and
// vpc-max-security-groups-per-interface, which nothing here models; they
// are refused like names EC2 does not know, so a caller that comes to
// need them finds out here rather than reading made-up numbers.
var accountAttributes = []string{"supported-platforms", "max-elastic-ips", "vpc-max-elastic-ips", "default-vpc"}

// describeAccountAttributes answers the named attributes, or all it knows.
// One unknown name fails the whole call, as in EC2.
func (w *world) describeAccountAttributes(c call) (response, error) {
	asked := map[string]bool{}
	for _, name := range c.p.list("AttributeName") {
		if w.accountAttribute(name) == nil {
			return nil, invalidValue("Value (%s) for parameter attributeName is invalid. Unknown attribute.", name)
		}
		asked[name] = true
	}
	out := &describeAccountAttributesResponse{}
	for _, name := range accountAttributes {
		if len(asked) > 0 && !asked[name] {
			continue
		}
		values := w.accountAttribute(name)
		if len(values) == 0 {
			continue
		}
		attr := xmlAccountAttribute{Name: name}
		for _, v := range values {
			attr.Values.Item = append(attr.Values.Item, xmlAccountAttributeValue{Value: v})
		}
		out.Attributes.Item = append(out.Attributes.Item, attr)
	}
	return out, nil
}

// accountAttribute is the values of one attribute: nil for a name the
// emulator does not know, empty for one it knows but has nothing to say
// about, which is left out of the answer.
func (w *world) accountAttribute(name string) []string {
	switch name {
	case "supported-platforms":
		// EC2-Classic is retired: every account is VPC-only.
		return []string{"VPC"}
	case "max-elastic-ips":
		// The EC2-Classic quota, which a VPC-only account does not have.
		return []string{"0"}
	case "vpc-max-elastic-ips":
		// The quota AllocateAddress enforces. Without one there is no
		// number to give, and any number would read as a real quota.
		if w.eipQuota < 0 {
			return []string{}
		}
		return []string{strconv.Itoa(w.eipQuota)}
	case "default-vpc":
		// The account's only VPC is the cluster's, which is not a default VPC.
		return []string{"none"}
	}
	return nil
}
