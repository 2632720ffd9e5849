package ec2sim

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// waitFor polls a condition until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

func TestStatePersistsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ec2.json")
	opts := Options{StateFile: file, SaveDelay: 10 * time.Millisecond, Throttle: ThrottleOptions{Disabled: true}, Seed: 7}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	first, err := Start(opts)
	noErr(t, err)
	t.Cleanup(func() { _ = first.Close() })
	c := newClient(first.URL, noRetries)
	inst := launch(t, ctx, c, "us-east-1a")
	eniID := inst.NetworkInterfaces[0].NetworkInterfaceId
	_, err = c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, SecondaryPrivateIpAddressCount: aws.Int32(2)})
	noErr(t, err)
	_, err = c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eniID, Ipv4PrefixCount: aws.Int32(1)})
	noErr(t, err)
	spare := createENI(t, ctx, c, aws.ToString(inst.SubnetId))
	bound := aws.ToString(allocate(t, ctx, c).AllocationId)
	free, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{TagSpecifications: []types.TagSpecification{{
		ResourceType: types.ResourceTypeElasticIp, Tags: []types.Tag{{Key: aws.String("pool"), Value: aws.String("partners")}},
	}}})
	noErr(t, err)
	assoc, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(bound), InstanceId: inst.InstanceId})
	noErr(t, err)

	// Changes reach the file soon, without waiting for Close.
	waitFor(t, 5*time.Second, "the association in the state file", func() bool {
		b, _ := os.ReadFile(file)
		return bytes.Contains(b, []byte(aws.ToString(assoc.AssociationId)))
	})
	before := first.Snapshot()
	noErr(t, first.Close())

	second := startSim(t, opts)
	c = newClient(second.URL, noRetries)
	if a, b := jsonOf(t, before), jsonOf(t, second.Snapshot()); a != b {
		t.Fatalf("state changed across the restart:\nbefore %s\nafter  %s", a, b)
	}
	// And the SDK sees the same world.
	if a := describeAddress(t, ctx, c, bound); aws.ToString(a.AssociationId) != aws.ToString(assoc.AssociationId) ||
		aws.ToString(a.InstanceId) != aws.ToString(inst.InstanceId) {
		t.Errorf("restored address %+v", a)
	}
	if a := describeAddress(t, ctx, c, aws.ToString(free.AllocationId)); tagMap(a.Tags)["pool"] != "partners" {
		t.Errorf("restored tags %v", tagMap(a.Tags))
	}
	if eni := describeENI(t, ctx, c, aws.ToString(eniID)); len(eni.PrivateIpAddresses) != 3 || len(eni.Ipv4Prefixes) != 1 {
		t.Errorf("restored ENI has %d addresses and %d prefixes", len(eni.PrivateIpAddresses), len(eni.Ipv4Prefixes))
	}

	// The restored world keeps its invariants: the quota counts restored
	// addresses, restored private IPs are not handed out again, and
	// restored associations can be undone.
	for range 3 {
		allocate(t, ctx, c)
	}
	_, err = c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	wantCode(t, err, "AddressLimitExceeded")
	_, err = c.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: inst.SubnetId, PrivateIpAddress: spare.PrivateIpAddress})
	wantCode(t, err, "InvalidIPAddress.InUse")
	_, err = c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: assoc.AssociationId})
	noErr(t, err)

	// Once closed, only the state file is left: no temporary files.
	noErr(t, second.Close())
	entries, err := os.ReadDir(dir)
	noErr(t, err)
	for _, e := range entries {
		if e.Name() != "ec2.json" {
			t.Errorf("stray file %s next to the state file", e.Name())
		}
	}
}

func TestBrokenStateFileIsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ec2.json")
	noErr(t, os.WriteFile(file, []byte(`{"format":1,"state":{"addresses":[{"allocationId":"eipalloc-1","publicIp":"3.3.3.3","associationId":"eipassoc-1","networkInterfaceId":"eni-404","privateIpAddress":"192.168.0.9"}]}}`), 0o600))
	_, err := New(Options{StateFile: file})
	if err == nil || !strings.Contains(err.Error(), "eni-404") {
		t.Errorf("New with an inconsistent state file: %v", err)
	}
	noErr(t, os.WriteFile(file, []byte(`{`), 0o600))
	if _, err := New(Options{StateFile: file}); err == nil {
		t.Errorf("New accepted a truncated state file")
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	noErr(t, err)
	return string(b)
}
