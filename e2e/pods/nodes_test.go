package pods

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/e2e/testmain"
	"github.com/kube-eip/kube-eip/webhook"
)

// nodeAddresses is the association on each node's primary IP, by node.
type nodeAddresses map[string]string

// heldByNodes reads, from the emulator, the association on each of the
// stack's nodes' primary IPs.
func heldByNodes() nodeAddresses {
	out := nodeAddresses{}
	for name, a := range stack.OnPrimaryIPs(env.EC2.Snapshot(), env.Nodes.Nodes()) {
		out[name] = a.AssociationID
	}
	return out
}

// nodePoolBound makes a node pool over the stack's nodes, waits until each
// has its address, and returns the associations; removeNodePool takes it
// away again.
func nodePoolBound(t *testing.T) (*v1alpha1.EIPPool, nodeAddresses) {
	t.Helper()
	ctx := t.Context()
	tag := ec2types.Tag{Key: aws.String("e2e.kube-eip.io/pool"), Value: aws.String("upgrade-egress")}
	for range env.Nodes.Nodes() {
		if _, err := env.EC2Client.AllocateAddress(ctx, &ec2.AllocateAddressInput{
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeElasticIp, Tags: []ec2types.Tag{tag}}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	pool := &v1alpha1.EIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "upgrade-egress"},
		Spec: v1alpha1.EIPPoolSpec{TagSelector: map[string]string{*tag.Key: *tag.Value},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{fakenode.LabelFakeNode: "default"}}},
	}
	if err := crClient(t).Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var held nodeAddresses
	testmain.Eventually(t, time.Minute, "every node bound by the node pool", func(context.Context) (bool, string, error) {
		held = heldByNodes()
		return len(held) == len(env.Nodes.Nodes()), fmt.Sprintf("%v", held), nil
	})
	return pool, held
}

// removeNodePool deletes the pool, waits until no node holds an address,
// and releases the pool's addresses.
func removeNodePool(t *testing.T, pool *v1alpha1.EIPPool) {
	t.Helper()
	ctx := context.Background()
	_ = crClient(t).Delete(ctx, pool)
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return len(heldByNodes()) == 0, nil
	}); err != nil {
		t.Errorf("the deleted node pool's addresses stay on %v: %v", heldByNodes(), err)
	}
	out, err := env.EC2Client.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:e2e.kube-eip.io/pool"), Values: []string{"upgrade-egress"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range out.Addresses {
		if _, err := env.EC2Client.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: a.AllocationId}); err != nil {
			t.Errorf("releasing %s: %v", aws.ToString(a.AllocationId), err)
		}
	}
}

// newCRClient builds, once, a client of kube-eip's own kinds.
var newCRClient = sync.OnceValues(func() (client.Client, error) {
	ctrllog.SetLogger(logr.Discard()) // it logs nothing the tests read
	return client.New(env.ControlPlane.RESTConfig(), client.Options{Scheme: webhook.Scheme()})
})

func crClient(t *testing.T) client.Client {
	t.Helper()
	c, err := newCRClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
