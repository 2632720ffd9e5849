package binder

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	applycorev1 "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
)

// maxElasticIPs is the account attribute holding the Elastic IP quota; the
// SDK names only some attributes.
const maxElasticIPs = "vpc-max-elastic-ips"

// quotaRefresh is how often the binder asks EC2 for the account's Elastic
// IP quota: it changes only when someone asks AWS to raise it.
const quotaRefresh = 10 * time.Minute

// account is when the binder last read the account's quota (the quota
// gate holds it) and what it last published of its count
// (api.AccountConfigMap), so that an unchanged count is not written again.
// Only the sweep touches it.
type account struct {
	askedAt   time.Time
	published *api.Account
}

// countAccount is called by each sweep with the number of addresses EC2
// holds in the region (its DescribeAddresses has no filter, so this counts
// every address, whoever allocated it). It reads the quota when due, tells
// the quota gate, which wakes pods the account has room for again, and
// publishes the count where admission reads it, when it changed. An
// unreadable quota only costs admission its warning and the gate its
// foresight; the sweep goes on.
func (b *Binder) countAccount(ctx context.Context, allocated int) error {
	acct := &b.account
	now := b.Now()
	var readErr error
	if acct.askedAt.IsZero() || now.Sub(acct.askedAt) >= quotaRefresh {
		acct.askedAt = now
		quota, known, err := b.readQuota(ctx)
		b.quota.setQuota(quota, known && err == nil)
		readErr = err
	}
	b.wakeAll(b.quota.observed(allocated))
	quota, known := b.quota.limit()
	if readErr != nil || !known || b.Namespace == "" {
		return readErr
	}
	count := api.Account{Quota: quota, Allocated: allocated, CountedAt: now}
	count.Zones, count.Region = b.zones.all(ctx)
	if p := acct.published; p != nil && p.Quota == count.Quota && p.Allocated == count.Allocated && p.SameZones(count) {
		return nil
	}
	cm := applycorev1.ConfigMap(api.AccountConfigMap, b.Namespace).WithData(count.Data())
	if err := b.Client.Apply(ctx, cm, client.FieldOwner("kube-eip-binder"), client.ForceOwnership); err != nil {
		return fmt.Errorf("publishing the account's address count in %s/%s: %w", b.Namespace, api.AccountConfigMap, err)
	}
	acct.published = &count
	return nil
}

// readQuota asks EC2 for the account's Elastic IP quota in the region. An
// account without one (known false) is not warned about.
func (b *Binder) readQuota(ctx context.Context) (quota int, known bool, err error) {
	out, err := b.EC2.DescribeAccountAttributes(ctx, &ec2.DescribeAccountAttributesInput{
		AttributeNames: []types.AccountAttributeName{maxElasticIPs},
	})
	if err != nil {
		return 0, false, fmt.Errorf("reading the account's Elastic IP quota (ec2:DescribeAccountAttributes): %w", err)
	}
	for _, attr := range out.AccountAttributes {
		if aws.ToString(attr.AttributeName) != maxElasticIPs || len(attr.AttributeValues) == 0 {
			continue
		}
		n, err := strconv.Atoi(aws.ToString(attr.AttributeValues[0].AttributeValue))
		if err != nil || n < 0 {
			return 0, false, fmt.Errorf("EC2 answered %s=%q, not a count", maxElasticIPs, aws.ToString(attr.AttributeValues[0].AttributeValue))
		}
		return n, true, nil
	}
	return 0, false, nil
}
