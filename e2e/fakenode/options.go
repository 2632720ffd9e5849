package fakenode

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure a Kubelet. Client or Config, and EC2, are required.
type Options struct {
	// Client talks to the API server; when nil, one is built from Config.
	Client kubernetes.Interface
	// Config is used when Client is nil.
	Config *rest.Config
	// EC2 is the EC2 API, normally an *ec2.Client pointed at the emulator.
	EC2 EC2API

	// Nodes is how many nodes to keep registered; 0 means 3.
	Nodes int
	// Group names this set of fake nodes, like an EKS node group: it is the
	// value of the fake-node label and of an instance tag, so Kubelets with
	// different groups share a cluster and an emulator without touching each
	// other's nodes. Empty means "default".
	Group string
	// ClusterName goes into the instances' cluster tags; empty means
	// "kube-eip-dev", the emulator's default.
	ClusterName string
	// InstanceType of the nodes' instances; it bounds how many secondary IPs
	// the primary ENI can hold. Empty means m5.4xlarge.
	InstanceType string
	// ImageID is the AMI the instances claim to run.
	ImageID string
	// SubnetIDs restricts the subnets nodes are spread over (one per zone,
	// round-robin); empty means every subnet DescribeSubnets returns.
	SubnetIDs []string
	// MaxPods is the nodes' pods capacity; 0 means 110.
	MaxPods int

	// PrefixDelegation hands pods addresses from /28 prefixes delegated to
	// the ENI (Ipv4PrefixCount=1 when none is free) instead of one
	// secondary IP per pod.
	PrefixDelegation bool

	// LocalImages maps an image repository (no tag or digest) to a local
	// binary: init containers with such an image run that binary for real,
	// with the container's command minus its first word, and its args.
	LocalImages map[string]string
	// WorkDir holds the pods' materialized volumes and the processes' logs.
	// When empty a temporary directory is used and removed by Stop.
	WorkDir string

	// Logger receives the Kubelet's logs. The zero value (logr.Discard()
	// included, which is the same thing) means the logger of Start's
	// context, or klog's when it has none.
	Logger logr.Logger
	// Workers is the number of pod and node workers; 0 means 4.
	Workers int
	// LeaseInterval is how often each node's Lease is renewed; 0 means 10s.
	LeaseInterval time.Duration
	// StatusInterval is how often each node's Ready heartbeat is posted;
	// 0 means one minute.
	StatusInterval time.Duration
	// CrashLoopBackOff spaces the restarts of a failing local init
	// container; zero fields mean the kubelet's 10s doubling to 5m.
	CrashLoopBackOff Backoff
}

// Backoff is a capped exponential delay.
type Backoff struct {
	Initial, Max time.Duration
}

// delay is the wait before restart number n (n >= 1).
func (b Backoff) delay(n int32) time.Duration {
	d := b.Initial
	for i := int32(1); i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

const (
	defaultNodes          = 3
	defaultGroup          = "default"
	defaultClusterName    = "kube-eip-dev"
	defaultInstanceType   = "m5.4xlarge"
	defaultImageID        = "ami-0b5eea76982371e91"
	defaultMaxPods        = 110
	defaultWorkers        = 4
	defaultLeaseInterval  = 10 * time.Second
	defaultStatusInterval = time.Minute
	defaultBackoffInitial = 10 * time.Second
	defaultBackoffMax     = 5 * time.Minute
)

// A group becomes a label value and a tag value.
var groupPattern = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

func (o Options) withDefaults() (Options, error) {
	if o.Client == nil && o.Config == nil {
		return o, errors.New("fakenode: one of Client or Config is required")
	}
	if o.EC2 == nil {
		return o, errors.New("fakenode: EC2 is required")
	}
	if o.Nodes == 0 {
		o.Nodes = defaultNodes
	}
	if o.Nodes < 0 {
		return o, fmt.Errorf("fakenode: Nodes must not be negative, got %d", o.Nodes)
	}
	if o.Group == "" {
		o.Group = defaultGroup
	}
	if !groupPattern.MatchString(o.Group) {
		return o, fmt.Errorf("fakenode: Group %q is not a valid label value", o.Group)
	}
	if o.ClusterName == "" {
		o.ClusterName = defaultClusterName
	}
	if o.InstanceType == "" {
		o.InstanceType = defaultInstanceType
	}
	if o.ImageID == "" {
		o.ImageID = defaultImageID
	}
	if o.MaxPods == 0 {
		o.MaxPods = defaultMaxPods
	}
	if o.Workers <= 0 {
		o.Workers = defaultWorkers
	}
	if o.LeaseInterval <= 0 {
		o.LeaseInterval = defaultLeaseInterval
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = defaultStatusInterval
	}
	if o.CrashLoopBackOff.Initial <= 0 {
		o.CrashLoopBackOff.Initial = defaultBackoffInitial
	}
	if o.CrashLoopBackOff.Max <= 0 {
		o.CrashLoopBackOff.Max = defaultBackoffMax
	}
	o.CrashLoopBackOff.Max = max(o.CrashLoopBackOff.Max, o.CrashLoopBackOff.Initial)
	return o, nil
}
