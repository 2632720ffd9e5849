package fakenode

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
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
	// Labels are added to the nodes' own, as the kubelet's --node-labels
	// adds them.
	Labels map[string]string
	// Taints are the nodes' taints when they register, as the kubelet's
	// --register-with-taints gives them.
	Taints []corev1.Taint
	// ClusterName goes into the instances' cluster tags; empty means
	// "kube-eip-dev", the emulator's default.
	ClusterName string
	// InstanceType of the nodes' instances; it bounds how many secondary IPs
	// the primary ENI can hold. Empty means m5.4xlarge.
	InstanceType string
	// ImageID is the AMI the instances claim to run.
	ImageID string
	// SubnetIDs restricts the subnets nodes are spread over (one per zone,
	// round-robin).
	SubnetIDs []string
	// Zones restricts them to subnets of these zones. With neither set,
	// nodes go to every availability zone of the region and never to a
	// Local Zone: as on EKS, nodes run there only in a group made for it.
	Zones []string
	// MaxPods is the nodes' pods capacity; 0 means 110.
	MaxPods int

	// PrefixDelegation hands pods addresses from /28 prefixes delegated to
	// the ENI (Ipv4PrefixCount=1 when none is free) instead of one
	// secondary IP per pod.
	PrefixDelegation bool
	// CNI is how the fake VPC CNI keeps freed addresses; the zero value is
	// the VPC CNI's warm pool with its 30s cooldown.
	CNI CNIOptions

	// LocalImages maps an image repository (no tag or digest) to a local
	// binary: init containers with such an image run that binary for real,
	// with the container's command minus its first word, and its args.
	LocalImages map[string]string
	// Images maps an image repository (no tag or digest) to an OCI image
	// layout on disk (make image writes bin/image/oci). Containers of such
	// an image, init and app alike, run for real: the image's entrypoint
	// and files, in a mount namespace of their own with the pod's volumes,
	// joined to the pod's network namespace; they are restarted and probed
	// as the kubelet does. Needs root. An image here wins over LocalImages.
	Images map[string]string
	// APIServer is the API server's loopback address. Pods that run
	// something reach it at the same address (a relay), and find it in
	// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.
	APIServer netip.AddrPort
	// Relays are more loopback addresses of the host (the EC2 emulator's)
	// that pods reach at the same address.
	Relays []netip.AddrPort
	// ClientCA, when set, is the PEM CA the kubelet API (logs) requires
	// clients to present a certificate of: the API server's kubelet client
	// certificate. Without it the kubelet API is not served.
	ClientCA []byte
	// ServingCertificate issues the kubelet API's certificate for the
	// nodes' addresses, which the API server checks (the control plane's
	// IssueServingCertificate); nil means a self-signed one.
	ServingCertificate func(hosts ...string) (tls.Certificate, error)

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

// CNIOptions model the VPC CNI's IP address management (ipamd) on each
// node's primary ENI. By default a pod's address outlives the pod: it stays
// assigned to the ENI, and so keeps any Elastic IP associated with it, and
// after a cooldown goes to the next pod on the node. That is the hazard
// kube-eip guards against, so the tests face it unless they ask otherwise.
//
// An address on the ENI is in use (a pod holds it), cooling (a pod let go
// of it less than Cooldown ago) or available. Each ENI keeps WarmIPTarget
// addresses available and MinimumIPTarget in all, assigning more as pods
// take them and giving back available ones beyond both targets; cooling
// addresses are never given back. With PrefixDelegation the targets count
// the addresses of the delegated /28s, and a prefix goes back only when
// none of its addresses is in use or cooling.
type CNIOptions struct {
	// ReleaseImmediately unassigns a pod's secondary IP from the ENI as soon
	// as the pod ends (so EC2 drops its Elastic IP at once), and hands a
	// prefix address out again at once; nothing is kept warm and the other
	// fields are ignored. Kinder than the VPC CNI.
	ReleaseImmediately bool
	// WarmIPTarget is how many available addresses each ENI keeps, like the
	// VPC CNI's WARM_IP_TARGET; 0 means DefaultWarmIPTarget, negative none.
	WarmIPTarget int
	// MinimumIPTarget is the fewest addresses (in use or not) each ENI
	// keeps, like the VPC CNI's MINIMUM_IP_TARGET; 0 means none.
	MinimumIPTarget int
	// Cooldown is how long a freed address waits before another pod may
	// get it, like ipamd's IP cooldown; 0 means DefaultIPCooldown, negative
	// none.
	Cooldown time.Duration
	// Clock tells the time cooldowns are measured by; nil means the real
	// clock. The pool is looked at on real time, at least once a second
	// while an address cools, so a test that steps a fake clock sees the
	// pool follow within a second.
	Clock clock.PassiveClock
}

// The VPC CNI's defaults, as far as the fake CNI models them.
const (
	DefaultWarmIPTarget = 1
	DefaultIPCooldown   = 30 * time.Second
)

// policy resolves the defaults; the options stay as given, so that the
// same Options start a Kubelet again.
func (c CNIOptions) policy() (poolPolicy, error) {
	if c.MinimumIPTarget < 0 {
		return poolPolicy{}, fmt.Errorf("fakenode: CNI.MinimumIPTarget must not be negative, got %d", c.MinimumIPTarget)
	}
	p := poolPolicy{
		releaseImmediately: c.ReleaseImmediately,
		warm:               max(c.WarmIPTarget, 0),
		minimum:            c.MinimumIPTarget,
		cooldown:           max(c.Cooldown, 0),
		clock:              c.Clock,
	}
	if c.WarmIPTarget == 0 {
		p.warm = DefaultWarmIPTarget
	}
	if c.Cooldown == 0 {
		p.cooldown = DefaultIPCooldown
	}
	if p.clock == nil {
		p.clock = clock.RealClock{}
	}
	return p, nil
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
	for _, a := range append([]netip.AddrPort{o.APIServer}, o.Relays...) {
		if a.IsValid() && !a.Addr().IsLoopback() {
			return o, fmt.Errorf("fakenode: %s is not a loopback address: pods may reach only loopback", a)
		}
	}
	if len(o.Images) > 0 && !o.APIServer.IsValid() {
		return o, errors.New("fakenode: APIServer is required with Images: the containers talk to it")
	}
	return o, nil
}
