package api

import (
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
)

// Account is what the binder knows of the account's Elastic IPs in its
// region: the quota EC2 reports (the attribute vpc-max-elastic-ips) and how
// many are allocated, whoever allocated them.
type Account struct {
	Quota     int
	Allocated int
	CountedAt time.Time
}

// Room is how many more addresses the account can allocate.
func (a Account) Room() int { return max(0, a.Quota-a.Allocated) }

// Data is the account as AccountConfigMap's data.
func (a Account) Data() map[string]string {
	return map[string]string{
		AccountKeyQuota:     strconv.Itoa(a.Quota),
		AccountKeyAllocated: strconv.Itoa(a.Allocated),
		AccountKeyCountedAt: a.CountedAt.UTC().Format(time.RFC3339),
	}
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
	return a, true
}
