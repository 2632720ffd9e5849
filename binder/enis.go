package binder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// Target is where a pod's address goes: the network interface holding the
// pod's IP, and that IP.
type Target struct {
	ENI       string
	PrivateIP string
	// Zone is the interface's zone, whose network border group the
	// address must belong to; empty when EC2 did not say.
	Zone string
}

// errIPNotFound means no network interface of the pod's instance holds the
// pod's IP (yet): the CNI may still be assigning it.
var errIPNotFound = errors.New("no network interface of the instance holds the pod's IP")

type eniInfo struct {
	id       string
	zone     string
	ips      map[string]bool
	prefixes []netip.Prefix
	// primaryIP is set on the instance's primary interface (device index
	// 0) alone: its primary private IP, the node's own address.
	primaryIP string
}

// eniResolver finds the interface of a pod's IP. It keeps each instance's
// interfaces and asks EC2 again only when an IP is not among them, with the
// lookups of a burst batched into one DescribeNetworkInterfaces.
type eniResolver struct {
	batch *Batcher[string, []eniInfo]
	mu    sync.Mutex
	cache map[string][]eniInfo
}

func newENIResolver(client cloud.API) *eniResolver {
	r := &eniResolver{cache: map[string][]eniInfo{}}
	r.batch = &Batcher[string, []eniInfo]{
		Idle: 5 * time.Millisecond, Max: 100 * time.Millisecond, MaxItems: 200,
		Exec: func(ctx context.Context, instances []string) (map[string][]eniInfo, error) {
			return describeInstanceENIs(ctx, client, instances)
		},
	}
	return r
}

// resolve returns the target of a pod on node.
func (r *eniResolver) resolve(ctx context.Context, pod *corev1.Pod, node *corev1.Node) (Target, error) {
	if t, ok, err := branchTarget(pod); ok || err != nil {
		// A branch interface is in its trunk's zone, the node's.
		t.Zone = providerZone(node)
		return t, err
	}
	instance, err := instanceID(node)
	if err != nil {
		return Target{}, err
	}
	ip, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil {
		return Target{}, fmt.Errorf("pod IP %q: %w", pod.Status.PodIP, err)
	}
	if t, ok := r.lookup(instance, ip); ok {
		return t, nil
	}
	if _, err := r.refresh(ctx, instance, node); err != nil {
		return Target{}, err
	}
	if t, ok := r.lookup(instance, ip); ok {
		return t, nil
	}
	return Target{}, fmt.Errorf("%s on instance %s: %w", ip, instance, errIPNotFound)
}

// refresh asks EC2 for an instance's interfaces (batched with others'),
// and keeps them.
func (r *eniResolver) refresh(ctx context.Context, instance string, node *corev1.Node) ([]eniInfo, error) {
	enis, err := r.batch.Get(ctx, instance)
	if errors.Is(err, errNoResult) {
		return nil, fmt.Errorf("instance %s of node %s has no network interface", instance, node.Name)
	} else if err != nil {
		return nil, fmt.Errorf("describing the network interfaces of %s: %w", instance, err)
	}
	r.mu.Lock()
	r.cache[instance] = enis
	r.mu.Unlock()
	return enis, nil
}

// primary returns the target of a node's own address: the primary private
// IP of its instance's primary network interface.
func (r *eniResolver) primary(ctx context.Context, node *corev1.Node) (Target, error) {
	instance, err := instanceID(node)
	if err != nil {
		return Target{}, err
	}
	for _, fresh := range []bool{false, true} {
		r.mu.Lock()
		enis, ok := r.cache[instance]
		r.mu.Unlock()
		if !ok || fresh {
			if enis, err = r.refresh(ctx, instance, node); err != nil {
				return Target{}, err
			}
		}
		for _, e := range enis {
			if e.primaryIP != "" {
				return Target{ENI: e.id, PrivateIP: e.primaryIP, Zone: e.zone}, nil
			}
		}
	}
	return Target{}, fmt.Errorf("instance %s of node %s has no primary network interface", instance, node.Name)
}

// forget drops what is known of an instance, after EC2 refused a target.
func (r *eniResolver) forget(node *corev1.Node) {
	if instance, err := instanceID(node); err == nil {
		r.mu.Lock()
		delete(r.cache, instance)
		r.mu.Unlock()
	}
}

func (r *eniResolver) lookup(instance string, ip netip.Addr) (Target, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.cache[instance] {
		if e.primaryIP == ip.String() {
			// The node's own IP, which a node pool's address may hold: a
			// pod's never goes there (admission refuses host-network pods,
			// the only ones with it).
			return Target{}, false
		}
		if e.ips[ip.String()] {
			return Target{ENI: e.id, PrivateIP: ip.String(), Zone: e.zone}, true
		}
		for _, p := range e.prefixes {
			if p.Contains(ip) {
				return Target{ENI: e.id, PrivateIP: ip.String(), Zone: e.zone}, true
			}
		}
	}
	return Target{}, false
}

func describeInstanceENIs(ctx context.Context, client cloud.API, instances []string) (map[string][]eniInfo, error) {
	out := map[string][]eniInfo{}
	pages := ec2.NewDescribeNetworkInterfacesPaginator(client, &ec2.DescribeNetworkInterfacesInput{
		Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: instances}},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, ni := range page.NetworkInterfaces {
			if ni.Attachment == nil || ni.Attachment.InstanceId == nil {
				continue
			}
			e := eniInfo{id: aws.ToString(ni.NetworkInterfaceId), zone: aws.ToString(ni.AvailabilityZone), ips: map[string]bool{}}
			for _, ip := range ni.PrivateIpAddresses {
				e.ips[aws.ToString(ip.PrivateIpAddress)] = true
				if aws.ToInt32(ni.Attachment.DeviceIndex) == 0 && aws.ToBool(ip.Primary) {
					e.primaryIP = aws.ToString(ip.PrivateIpAddress)
				}
			}
			for _, p := range ni.Ipv4Prefixes {
				if pfx, err := netip.ParsePrefix(aws.ToString(p.Ipv4Prefix)); err == nil {
					e.prefixes = append(e.prefixes, pfx)
				}
			}
			id := aws.ToString(ni.Attachment.InstanceId)
			out[id] = append(out[id], e)
		}
	}
	return out, nil
}

// instanceID reads the EC2 instance of a node from its provider ID
// (aws:///<zone>/<instance-id>).
func instanceID(node *corev1.Node) (string, error) {
	id := node.Spec.ProviderID
	i := strings.LastIndex(id, "/")
	if !strings.HasPrefix(id, "aws://") || i < 0 || !strings.HasPrefix(id[i+1:], "i-") {
		return "", fmt.Errorf("node %s has no EC2 provider ID (spec.providerID %q)", node.Name, id)
	}
	return id[i+1:], nil
}

// providerZone reads a node's zone from its provider ID
// (aws:///<zone>/<instance-id>).
func providerZone(node *corev1.Node) string {
	rest, ok := strings.CutPrefix(node.Spec.ProviderID, "aws:///")
	if !ok {
		return ""
	}
	zone, _, _ := strings.Cut(rest, "/")
	return zone
}

// branchTarget reads the branch interface the VPC CNI gave a pod that uses
// security groups for pods: its IP lives there, not on the node's ENIs.
func branchTarget(pod *corev1.Pod) (Target, bool, error) {
	raw := pod.Annotations[api.AnnotationPodENI]
	if raw == "" {
		return Target{}, false, nil
	}
	var enis []struct {
		ENIID     string `json:"eniId"`
		PrivateIP string `json:"privateIp"`
	}
	if err := json.Unmarshal([]byte(raw), &enis); err != nil || len(enis) == 0 || enis[0].ENIID == "" {
		return Target{}, false, fmt.Errorf("reading %s %q: not a list of branch interfaces", api.AnnotationPodENI, raw)
	}
	ip := enis[0].PrivateIP
	if i := strings.IndexByte(ip, '/'); i >= 0 {
		ip = ip[:i]
	}
	if ip == "" {
		ip = pod.Status.PodIP
	}
	return Target{ENI: enis[0].ENIID, PrivateIP: ip}, true, nil
}
