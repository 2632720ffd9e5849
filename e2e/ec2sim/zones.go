package ec2sim

import (
	"fmt"
	"slices"
)

// Zone types as DescribeAvailabilityZones reports them.
const (
	zoneTypeAZ    = "availability-zone"
	zoneTypeLocal = "local-zone"
)

// zone is one availability zone or Local Zone of the region. An Elastic IP
// belongs to one network border group and reaches only interfaces in the
// zones of that group: the region's own group for its availability zones,
// a group of its own for each Local Zone.
type zone struct {
	Name, ID, Type, Group, Parent string
	// OptedIn is false for a Local Zone the account has not opted in to:
	// DescribeAvailabilityZones lists it only when asked for all zones.
	OptedIn bool
}

// localZoneCIDR is the Local Zone subnet's range inside the VPC.
var localZoneCIDR = "192.168.96.0/19"

// buildZones lists the region's zones: three availability zones and the
// Boston Local Zone, opted in only when the options ask for it.
func buildZones(region string, localZone bool) []zone {
	short := regionShort(region)
	var out []zone
	for i := range subnetCIDRs {
		out = append(out, zone{
			Name: region + string(rune('a'+i)), ID: fmt.Sprintf("%s-az%d", short, i+1),
			Type: zoneTypeAZ, Group: region, OptedIn: true,
		})
	}
	return append(out, zone{
		Name: region + "-bos-1a", ID: short + "-bos1-az1", Type: zoneTypeLocal,
		Group: region + "-bos-1", Parent: region + "a", OptedIn: localZone,
	})
}

// zoneNamed returns a zone by name.
func (w *world) zoneNamed(name string) (zone, bool) {
	for _, z := range w.zones {
		if z.Name == name {
			return z, true
		}
	}
	return zone{}, false
}

// borderGroupOf is the network border group of a zone; an unknown zone
// (none of the emulator's resources is in one) is the region's.
func (w *world) borderGroupOf(zoneName string) string {
	if z, ok := w.zoneNamed(zoneName); ok {
		return z.Group
	}
	return w.region
}

// borderGroupKnown tells whether AllocateAddress may use a group: the
// region's, or an opted-in Local Zone's.
func (w *world) borderGroupKnown(group string) bool {
	for _, z := range w.zones {
		if z.Group == group && z.OptedIn {
			return true
		}
	}
	return false
}

type xmlZone struct {
	ZoneName           string `xml:"zoneName"`
	ZoneState          string `xml:"zoneState"`
	RegionName         string `xml:"regionName"`
	ZoneID             string `xml:"zoneId"`
	ZoneType           string `xml:"zoneType"`
	OptInStatus        string `xml:"optInStatus"`
	GroupName          string `xml:"groupName"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
	ParentZoneName     string `xml:"parentZoneName,omitempty"`
	ParentZoneID       string `xml:"parentZoneId,omitempty"`
}

type describeAvailabilityZonesResponse struct {
	respMeta
	Zones items[xmlZone] `xml:"availabilityZoneInfo"`
}

var zoneFilters = map[string]bool{
	"group-name": true, "network-border-group": true, "opt-in-status": true, "parent-zone-id": true,
	"parent-zone-name": true, "region-name": true, "state": true, "zone-id": true, "zone-name": true, "zone-type": true,
}

func (w *world) describeAvailabilityZones(c call) (response, error) {
	fs, err := parseFilters(c.p, zoneFilters)
	if err != nil {
		return nil, err
	}
	all, _, err := c.p.boolean("AllAvailabilityZones")
	if err != nil {
		return nil, err
	}
	names, ids := c.p.list("ZoneName"), c.p.list("ZoneId")
	for _, n := range names {
		if _, ok := w.zoneNamed(n); !ok {
			return nil, invalidValue("Invalid availability zone: [%s]", n)
		}
	}
	out := &describeAvailabilityZonesResponse{}
	for _, z := range w.zones {
		named := len(names)+len(ids) > 0
		if named && !slices.Contains(names, z.Name) && !slices.Contains(ids, z.ID) {
			continue
		}
		// Zones the account has not opted in to show only when asked
		// for all of them, or by name.
		if !z.OptedIn && !all && !named {
			continue
		}
		x := w.renderZone(z)
		if fs.match(func(name string) []string { return zoneAttr(x, name) }, nil) {
			out.Zones.Item = append(out.Zones.Item, x)
		}
	}
	return out, nil
}

func (w *world) renderZone(z zone) xmlZone {
	x := xmlZone{
		ZoneName: z.Name, ZoneState: "available", RegionName: w.region, ZoneID: z.ID, ZoneType: z.Type,
		GroupName: z.Group, NetworkBorderGroup: z.Group, OptInStatus: "opt-in-not-required",
	}
	if z.Type != zoneTypeAZ {
		x.OptInStatus = "not-opted-in"
		if z.OptedIn {
			x.OptInStatus = "opted-in"
		}
		if p, ok := w.zoneNamed(z.Parent); ok {
			x.ParentZoneName, x.ParentZoneID = p.Name, p.ID
		}
	}
	return x
}

func zoneAttr(x xmlZone, name string) []string {
	switch name {
	case "group-name":
		return []string{x.GroupName}
	case "network-border-group":
		return []string{x.NetworkBorderGroup}
	case "opt-in-status":
		return []string{x.OptInStatus}
	case "parent-zone-id":
		return nonEmpty(x.ParentZoneID)
	case "parent-zone-name":
		return nonEmpty(x.ParentZoneName)
	case "region-name":
		return []string{x.RegionName}
	case "state":
		return []string{x.ZoneState}
	case "zone-id":
		return []string{x.ZoneID}
	case "zone-name":
		return []string{x.ZoneName}
	case "zone-type":
		return []string{x.ZoneType}
	}
	return nil
}
