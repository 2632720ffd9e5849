package api

import (
	"encoding/json"
	"maps"
	"strconv"
	"time"
)

// AccountConfigMap is the ConfigMap, in kube-eip's own namespace, where the
// binder publishes what it last counted of the AWS account's Elastic IPs in
// its region. Admission reads it to warn that a workload asks for more
// addresses than the account has room for; nothing is authorized from it.
const AccountConfigMap = "kube-eip-account"

// Keys of AccountConfigMap's data.
const (
	AccountKeyQuota     = "elasticIPQuota"
	AccountKeyAllocated = "elasticIPsAllocated"
	AccountKeyCountedAt = "countedAt"
	// AccountKeyBorderGroups maps the region's zones to their network
	// border groups, as JSON ({"us-east-1a": "us-east-1", …}).
	AccountKeyBorderGroups = "networkBorderGroups"
	// AccountKeyRegion is the region: the border group of its availability
	// zones.
	AccountKeyRegion = "region"
)

// Account is what the binder knows of the account's Elastic IPs in its
// region: the quota EC2 reports (the attribute vpc-max-elastic-ips) and how
// many are allocated, whoever allocated them.
type Account struct {
	Quota     int
	Allocated int
	CountedAt time.Time
	// Zones maps the region's zones, Local Zones included, to their
	// network border groups; nil until the binder could read them.
	Zones map[string]string
	// Region is the region, whose name is its availability zones' group.
	Region string
}

// SameZones tells whether two accounts know the same zones.
func (a Account) SameZones(b Account) bool {
	return a.Region == b.Region && maps.Equal(a.Zones, b.Zones)
}

// Room is how many more addresses the account can allocate.
func (a Account) Room() int { return max(0, a.Quota-a.Allocated) }

// Data is the account as AccountConfigMap's data.
func (a Account) Data() map[string]string {
	data := map[string]string{
		AccountKeyQuota:     strconv.Itoa(a.Quota),
		AccountKeyAllocated: strconv.Itoa(a.Allocated),
		AccountKeyCountedAt: a.CountedAt.UTC().Format(time.RFC3339),
	}
	if len(a.Zones) > 0 && a.Region != "" {
		zones, _ := json.Marshal(a.Zones) // a map of strings always encodes
		data[AccountKeyBorderGroups], data[AccountKeyRegion] = string(zones), a.Region
	}
	return data
}

// ParseAccount reads AccountConfigMap's data; ok is false unless both
// counts are there and well formed.
func ParseAccount(data map[string]string) (a Account, ok bool) {
	quota, err := strconv.Atoi(data[AccountKeyQuota])
	if err != nil || quota < 0 {
		return Account{}, false
	}
	allocated, err := strconv.Atoi(data[AccountKeyAllocated])
	if err != nil || allocated < 0 {
		return Account{}, false
	}
	a = Account{Quota: quota, Allocated: allocated}
	if t, err := time.Parse(time.RFC3339, data[AccountKeyCountedAt]); err == nil {
		a.CountedAt = t
	}
	var zones map[string]string
	if err := json.Unmarshal([]byte(data[AccountKeyBorderGroups]), &zones); err == nil && len(zones) > 0 && data[AccountKeyRegion] != "" {
		a.Zones, a.Region = zones, data[AccountKeyRegion]
	}
	return a, true
}
