package ec2sim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// BenchmarkSDKCalls measures the calls per second the emulator sustains
// through the real SDK with throttling off, from parallel clients: a cheap
// read, the binder's hot mutating pair, and a filtered ENI lookup in a
// cluster of 50 nodes.
func BenchmarkSDKCalls(b *testing.B) {
	srv := startSim(b, Options{EIPQuota: -1, Throttle: ThrottleOptions{Disabled: true}})
	ctx := context.Background()
	c := newClient(srv.URL)
	var enis, ips []string
	for i := range 50 {
		out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-1"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			InstanceType: types.InstanceTypeM5Large, Placement: &types.Placement{AvailabilityZone: aws.String([]string{"us-east-1a", "us-east-1b", "us-east-1c"}[i%3])}})
		if err != nil {
			b.Fatal(err)
		}
		eni := out.Instances[0].NetworkInterfaces[0].NetworkInterfaceId
		ip, err := c.AssignPrivateIpAddresses(ctx, &ec2.AssignPrivateIpAddressesInput{NetworkInterfaceId: eni, SecondaryPrivateIpAddressCount: aws.Int32(9)})
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range ip.AssignedPrivateIpAddresses {
			enis, ips = append(enis, aws.ToString(eni)), append(ips, aws.ToString(a.PrivateIpAddress))
		}
	}

	// call gets the goroutine's number g (distinct per goroutine) and the
	// iteration i, and makes callsPerOp SDK calls.
	run := func(b *testing.B, callsPerOp int, call func(c *ec2.Client, g, i int) error) {
		b.SetParallelism(8)
		var goroutines atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			c := newClient(srv.URL)
			g := int(goroutines.Add(1))
			for i := 0; pb.Next(); i++ {
				if err := call(c, g, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(callsPerOp*b.N)/b.Elapsed().Seconds(), "calls/s")
	}
	b.Run("DescribeAddresses", func(b *testing.B) {
		run(b, 1, func(c *ec2.Client, _, _ int) error {
			_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
			return err
		})
	})
	b.Run("AssociateDisassociate", func(b *testing.B) {
		// Each goroutine works its own private IP; an iteration is four calls.
		run(b, 4, func(c *ec2.Client, g, _ int) error {
			alloc, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
			if err != nil {
				return err
			}
			k := g % len(ips)
			assoc, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: alloc.AllocationId,
				NetworkInterfaceId: aws.String(enis[k]), PrivateIpAddress: aws.String(ips[k])})
			if err != nil {
				return err
			}
			if _, err := c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: assoc.AssociationId}); err != nil {
				return err
			}
			_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: alloc.AllocationId})
			return err
		})
	})
	b.Run("DescribeNetworkInterfacesByIP", func(b *testing.B) {
		run(b, 1, func(c *ec2.Client, _, i int) error {
			_, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{
				Filters: []types.Filter{sdkFilter("addresses.private-ip-address", ips[i%len(ips)])}})
			return err
		})
	})
}

// BenchmarkHandler measures the emulator alone, without HTTP or the SDK:
// what it costs per call of its own, to tell its limits from the client's.
func BenchmarkHandler(b *testing.B) {
	sim, err := New(Options{Seed: 1, Throttle: ThrottleOptions{Disabled: true}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sim.Close() })
	for _, body := range []string{
		"Action=DescribeAddresses&Version=2016-11-15",
		"Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=availability-zone&Filter.1.Value.1=us-east-1a",
	} {
		b.Run(strings.SplitN(strings.TrimPrefix(body, "Action="), "&", 2)[0], func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					rec := httptest.NewRecorder()
					sim.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Errorf("answered %d: %s", rec.Code, rec.Body)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
