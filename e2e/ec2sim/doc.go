// Package ec2sim is an emulator of the slice of the Amazon EC2 API that
// kube-eip needs: Elastic IPs, instances, network interfaces, private IPs
// and delegated prefixes, tags, subnets and VPCs, and the account
// attributes that report the address quota.
//
// It speaks the EC2 Query protocol (form-encoded POST, XML answers in the
// 2016-11-15 namespace), so the unmodified aws-sdk-go-v2 EC2 client works
// against it when pointed there with AWS_ENDPOINT_URL_EC2 or
// ec2.Options.BaseEndpoint; any credentials do. It aims at AWS's semantics
// rather than just its shapes: ids in AWS's formats, the documented error
// codes and HTTP statuses, the quota of 5 addresses, the documented
// per-action token buckets, a non-default VPC shaped like an EKS cluster's.
// Code that is correct against the emulator has a fair chance of being
// correct against EC2.
//
// On top of the API it offers what tests and a local dev stack need, under
// /_sim/ on the same listener (see adminHandler): fault injection and added
// latency per action, call counters per action and error code, a state
// dump, and persistence to a JSON file.
//
// In a test:
//
//	srv, err := ec2sim.Start(ec2sim.Options{Throttle: ec2sim.ThrottleOptions{Scale: 10}})
//	...
//	defer srv.Close()
//	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(srv.URL) })
//
// As a process: go run ./cmd/ec2sim -listen 127.0.0.1:4750 -state .dev/ec2.json
package ec2sim
