package binder

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
)

const ownNamespace = "kube-eip-system"

func (e *env) account() (api.Account, bool) {
	e.t.Helper()
	cm := &corev1.ConfigMap{}
	if err := e.client.Get(e.ctx, client.ObjectKey{Namespace: ownNamespace, Name: api.AccountConfigMap}, cm); err != nil {
		return api.Account{}, false
	}
	return api.ParseAccount(cm.Data)
}

// The sweep publishes how many of the account's Elastic IPs are allocated,
// whoever allocated them, and the quota EC2 reports, for admission to warn
// of workloads that ask for more; the quota is read again only every ten
// minutes, and an unchanged count is not written again.
func TestTheSweepPublishesTheAccountsCount(t *testing.T) {
	e := newEnv(t)
	e.b.Namespace = ownNamespace
	e.ec2.SetQuota(5)
	e.ec2.AddAddress(nil) // someone else's, outside any pool
	e.ec2.AddAddress(map[string]string{"team": "other-cluster"})
	e.start()
	got, ok := e.account()
	if !ok || got.Quota != 5 || got.Allocated != 2 {
		t.Fatalf("published %+v (%t), want 2 of 5", got, ok)
	}
	if got.Region != "us-east-1" || got.Zones["us-east-1b"] != "us-east-1" {
		t.Errorf("published zones %v of region %q, want the fake's three", got.Zones, got.Region)
	}
	cm := &corev1.ConfigMap{}
	_ = e.client.Get(e.ctx, client.ObjectKey{Namespace: ownNamespace, Name: api.AccountConfigMap}, cm)
	written := cm.ResourceVersion

	e.sweep()
	_ = e.client.Get(e.ctx, client.ObjectKey{Namespace: ownNamespace, Name: api.AccountConfigMap}, cm)
	if cm.ResourceVersion != written {
		t.Error("an unchanged count was written again")
	}
	if n := e.ec2.Calls("DescribeAccountAttributes"); n != 1 {
		t.Errorf("quota read %d times in two sweeps, want once", n)
	}

	e.ec2.AddAddress(nil)
	e.ec2.SetQuota(10) // raised by AWS, seen at the next read
	e.sweep()
	if got, _ := e.account(); got.Allocated != 3 || got.Quota != 5 {
		t.Errorf("after one more address: %+v, want 3 of the quota read before (5)", got)
	}
	e.clock.Step(quotaRefresh)
	e.sweep()
	if got, _ := e.account(); got.Quota != 10 {
		t.Errorf("ten minutes on: quota %d, want 10", got.Quota)
	}
}

// Without the permission to read the quota the binder binds as before, and
// publishes nothing rather than a guess; it asks again later.
func TestAnUnreadableQuotaPublishesNothing(t *testing.T) {
	e := newEnv(t)
	e.b.Namespace = ownNamespace
	e.ec2.FailNext("DescribeAccountAttributes", "UnauthorizedOperation", 1)
	e.start()
	if _, ok := e.account(); ok {
		t.Fatal("a count was published without a quota")
	}
	e.clock.Step(quotaRefresh + time.Second)
	e.sweep()
	if got, ok := e.account(); !ok || got.Quota != 5 {
		t.Errorf("after the next read: %+v (%t), want the quota", got, ok)
	}
}

// An account EC2 reports no quota for is not counted.
func TestAnAccountWithoutAQuotaIsNotCounted(t *testing.T) {
	e := newEnv(t)
	e.b.Namespace = ownNamespace
	e.ec2.SetQuota(-1)
	e.start()
	if _, ok := e.account(); ok {
		t.Error("a count was published for an account without a quota")
	}
}
