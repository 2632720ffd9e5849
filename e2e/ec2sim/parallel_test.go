package ec2sim

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Many callers at once, each running the binder's cycle (a pod gets an IP,
// an address is allocated, associated, looked up, disassociated and
// released) while others fight over one shared private IP. Run with -race.
func TestParallelCallers(t *testing.T) {
	srv, c, ctx := setupWith(t, Options{EIPQuota: -1, Throttle: ThrottleOptions{Disabled: true}})
	var nodes []string
	for _, zone := range []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1a"} {
		nodes = append(nodes, aws.ToString(launch(t, ctx, c, zone).NetworkInterfaces[0].NetworkInterfaceId))
	}
	shared, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String(nodes[0]), SecondaryPrivateIpAddressCount: aws.Int32(1)})
	noErr(t, err)
	sharedIP := aws.ToString(shared.AssignedPrivateIpAddresses[0].PrivateIpAddress)

	const workers, rounds = 16, 8
	errs := make(chan error, workers*rounds)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(srv.URL, noRetries) // a client per worker, like separate binder replicas
			for r := range rounds {
				if err := podCycle(ctx, c, nodes[w%len(nodes)], w%4 == 0, sharedIP, nodes[0]); err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := srv.Snapshot()
	checkInvariants(t, st)
	// Only the addresses fighting over the shared IP remain, at most one of
	// them on it.
	onShared := 0
	for _, a := range st.Addresses {
		if a.PrivateIPAddress == sharedIP {
			onShared++
		}
	}
	if onShared > 1 {
		t.Errorf("%d addresses on one private IP", onShared)
	}
}

// podCycle is one pod's life. Fighters also grab the shared IP.
func podCycle(ctx context.Context, c *ec2.Client, eni string, fighter bool, sharedIP, sharedENI string) error {
	ip, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: aws.String(eni), SecondaryPrivateIpAddressCount: aws.Int32(1)})
	if err != nil {
		return fmt.Errorf("assigning: %w", err)
	}
	podIP := aws.ToString(ip.AssignedPrivateIpAddresses[0].PrivateIpAddress)
	alloc, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	if err != nil {
		return fmt.Errorf("allocating: %w", err)
	}
	assoc, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: alloc.AllocationId, NetworkInterfaceId: aws.String(eni),
		PrivateIpAddress: aws.String(podIP), AllowReassociation: aws.Bool(false)})
	if err != nil {
		return fmt.Errorf("associating: %w", err)
	}
	got, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{sdkFilter("private-ip-address", podIP)}})
	if err != nil {
		return fmt.Errorf("looking up %s: %w", podIP, err)
	}
	if len(got.Addresses) != 1 || aws.ToString(got.Addresses[0].AllocationId) != aws.ToString(alloc.AllocationId) {
		return fmt.Errorf("looking up %s found %+v", podIP, got.Addresses)
	}
	if _, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{sdkFilter("addresses.private-ip-address", podIP)}}); err != nil {
		return fmt.Errorf("finding the ENI of %s: %w", podIP, err)
	}
	if _, err := c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: assoc.AssociationId}); err != nil {
		return fmt.Errorf("disassociating: %w", err)
	}
	if _, err := c.UnassignPrivateIpAddresses(ctx, &ec2.UnassignPrivateIpAddressesInput{NetworkInterfaceId: aws.String(eni), PrivateIpAddresses: []string{podIP}}); err != nil {
		return fmt.Errorf("unassigning: %w", err)
	}
	if fighter {
		// Displacing each other on one IP is allowed; the address keeps
		// existing either way, so it is not released.
		_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: alloc.AllocationId, NetworkInterfaceId: aws.String(sharedENI), PrivateIpAddress: aws.String(sharedIP)})
		return err
	}
	if _, err := c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: alloc.AllocationId}); err != nil {
		return fmt.Errorf("releasing: %w", err)
	}
	return nil
}

// checkInvariants verifies what EC2 guarantees of any state.
func checkInvariants(t *testing.T, st State) {
	t.Helper()
	owner := map[netip.Addr]string{}
	enis := map[string]NetworkInterface{}
	for _, n := range st.NetworkInterfaces {
		enis[n.ID] = n
		addrs := append([]string(nil), n.PrivateIPs...)
		for _, p := range n.Prefixes {
			addrs = append(addrs, prefixAddrs(p)...)
		}
		for _, s := range addrs {
			a := netip.MustParseAddr(s)
			if prev, ok := owner[a]; ok {
				t.Errorf("private IP %s on both %s and %s", a, prev, n.ID)
			}
			owner[a] = n.ID
		}
	}
	publicIPs := map[string]bool{}
	targets := map[string]string{}
	for _, a := range st.Addresses {
		if publicIPs[a.PublicIP] {
			t.Errorf("public IP %s allocated twice", a.PublicIP)
		}
		publicIPs[a.PublicIP] = true
		if a.AssociationID == "" {
			continue
		}
		n, ok := enis[a.NetworkInterfaceID]
		if !ok || !holdsIP(&n, a.PrivateIPAddress) {
			t.Errorf("address %s associated with %s on %s, which does not hold it", a.AllocationID, a.PrivateIPAddress, a.NetworkInterfaceID)
		}
		key := a.NetworkInterfaceID + "/" + a.PrivateIPAddress
		if prev, ok := targets[key]; ok {
			t.Errorf("addresses %s and %s both on %s", prev, a.AllocationID, key)
		}
		targets[key] = a.AllocationID
	}
}
