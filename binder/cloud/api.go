// Package cloud is the binder's view of EC2: one narrow interface with the
// SDK's own method signatures (so *ec2.Client satisfies it unchanged), the
// client that enforces AWS's per-action rate limits and counts calls, and
// the classification of AWS errors.
package cloud

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// API is every EC2 call the binder makes.
type API interface {
	DescribeAddresses(ctx context.Context, in *ec2.DescribeAddressesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	AllocateAddress(ctx context.Context, in *ec2.AllocateAddressInput, optFns ...func(*ec2.Options)) (*ec2.AllocateAddressOutput, error)
	AssociateAddress(ctx context.Context, in *ec2.AssociateAddressInput, optFns ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error)
	DisassociateAddress(ctx context.Context, in *ec2.DisassociateAddressInput, optFns ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error)
	ReleaseAddress(ctx context.Context, in *ec2.ReleaseAddressInput, optFns ...func(*ec2.Options)) (*ec2.ReleaseAddressOutput, error)
	DescribeNetworkInterfaces(ctx context.Context, in *ec2.DescribeNetworkInterfacesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	// DeleteTags returns a node's address to its pool: the holder tags go.
	DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, optFns ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
	// DescribeAccountAttributes reads vpc-max-elastic-ips, the account's
	// Elastic IP quota in the region, which the Service Quotas API would
	// also tell but only with another client, endpoint and permission.
	DescribeAccountAttributes(ctx context.Context, in *ec2.DescribeAccountAttributesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAccountAttributesOutput, error)
	// DescribeAvailabilityZones maps the zones of nodes to their network
	// border groups: an Elastic IP reaches only interfaces of its own.
	DescribeAvailabilityZones(ctx context.Context, in *ec2.DescribeAvailabilityZonesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error)
}

var _ API = (*ec2.Client)(nil)
