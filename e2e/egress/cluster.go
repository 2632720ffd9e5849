package egress

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// PodDialer reaches the pods of one group of fake nodes, each in its own
// network namespace: the fake kubelet implements it.
type PodDialer interface {
	// HasPod reports whether ip is the address of one of its pods.
	HasPod(ip string) bool
	// DialPod connects to port of the pod at podIP, inside its network;
	// ctx bounds the dial, not the connection.
	DialPod(ctx context.Context, podIP string, port int) (net.Conn, error)
}

// NodeDialer knows where the kubelet API of each node of one group of fake
// nodes listens on this machine.
type NodeDialer interface {
	// KubeletAddress returns the loopback host:port serving the kubelet API
	// of the node whose InternalIP is nodeIP.
	KubeletAddress(nodeIP string) (addr string, ok bool)
}

// ClusterOptions tunes a ClusterResolver; the zero value matches the
// control plane of package e2e/controlplane.
type ClusterOptions struct {
	// ServiceCIDRs are the Service IP ranges: an address in them that no
	// Service holds is refused as ReasonUnknownClusterIP rather than
	// ReasonUnmapped. Default 10.96.0.0/16, the control plane's
	// --service-cluster-ip-range.
	ServiceCIDRs []netip.Prefix
	// KubeletPort is the port the API server dials on node addresses for
	// the kubelet API; default 10250.
	KubeletPort int
}

// ClusterResolver maps the destinations of kube-apiserver's cluster traffic
// onto this machine:
//
//   - loopback addresses and "localhost": dialed as they are (URL webhooks
//     and components of the test run on loopback);
//   - a Service's ClusterIP and port: a ready endpoint of its EndpointSlices,
//     taken in turn, dialed through the PodDialer holding that pod;
//   - a node's InternalIP on the kubelet port: the loopback address of its
//     fake kubelet API, from a NodeDialer;
//   - a pod IP: through the PodDialer holding it (pods/proxy);
//
// and refuses anything else. It never resolves a name.
type ClusterResolver struct {
	factory      informers.SharedInformerFactory
	services     cache.SharedIndexInformer
	slices       cache.SharedIndexInformer
	serviceCIDRs []netip.Prefix
	kubeletPort  int
	synced       atomic.Bool
	turn         atomic.Uint64

	mu    sync.RWMutex
	pods  []*podEntry
	nodes []*nodeEntry
}

// podEntry and nodeEntry give each registration an identity to remove by.
type (
	podEntry  struct{ PodDialer }
	nodeEntry struct{ NodeDialer }
)

const (
	clusterIPIndex = "clusterIP"
	serviceIndex   = "service"
)

// NewClusterResolver returns a resolver watching client's Services and
// EndpointSlices once Start is called.
func NewClusterResolver(client kubernetes.Interface, opts ClusterOptions) (*ClusterResolver, error) {
	if len(opts.ServiceCIDRs) == 0 {
		opts.ServiceCIDRs = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")}
	}
	if opts.KubeletPort == 0 {
		opts.KubeletPort = 10250
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	r := &ClusterResolver{
		factory:      factory,
		services:     factory.Core().V1().Services().Informer(),
		slices:       factory.Discovery().V1().EndpointSlices().Informer(),
		serviceCIDRs: opts.ServiceCIDRs,
		kubeletPort:  opts.KubeletPort,
	}
	if err := r.services.AddIndexers(cache.Indexers{clusterIPIndex: clusterIPs}); err != nil {
		return nil, fmt.Errorf("indexing Services by ClusterIP: %w", err)
	}
	if err := r.slices.AddIndexers(cache.Indexers{serviceIndex: sliceService}); err != nil {
		return nil, fmt.Errorf("indexing EndpointSlices by Service: %w", err)
	}
	return r, nil
}

// clusterIPs indexes a Service by its virtual IPs, in canonical form.
func clusterIPs(obj any) ([]string, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var keys []string
	for _, ip := range ips {
		if addr, err := netip.ParseAddr(ip); err == nil {
			keys = append(keys, addr.Unmap().String())
		}
	}
	return keys, nil
}

// sliceService indexes an EndpointSlice by the namespace/name of the
// Service it belongs to.
func sliceService(obj any) ([]string, error) {
	slice, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := slice.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{slice.Namespace + "/" + name}, nil
}

// Start runs the informers until ctx ends and waits for their caches.
func (r *ClusterResolver) Start(ctx context.Context) error {
	r.factory.Start(ctx.Done())
	for typ, ok := range r.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing the cache of %v for the egress resolver: %w", typ, context.Cause(ctx))
		}
	}
	r.synced.Store(true)
	return nil
}

// AddPods registers the pods of a group of fake nodes; the returned
// function unregisters them.
func (r *ClusterResolver) AddPods(d PodDialer) (remove func()) {
	e := &podEntry{d}
	r.mu.Lock()
	r.pods = append(r.pods, e)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.pods = slices.DeleteFunc(r.pods, func(x *podEntry) bool { return x == e })
	}
}

// AddNodes registers the kubelet APIs of a group of fake nodes; the
// returned function unregisters them.
func (r *ClusterResolver) AddNodes(d NodeDialer) (remove func()) {
	e := &nodeEntry{d}
	r.mu.Lock()
	r.nodes = append(r.nodes, e)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.nodes = slices.DeleteFunc(r.nodes, func(x *nodeEntry) bool { return x == e })
	}
}

// Resolve implements Resolver.
func (r *ClusterResolver) Resolve(_ context.Context, host string, port int) (Target, error) {
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return Target{}, refuse(ReasonUnmapped, "%q is not an IP address, and the egress proxy resolves no names", host)
	}
	addr = addr.Unmap()
	ip := addr.String()
	dest := net.JoinHostPort(ip, strconv.Itoa(port))

	if addr.IsLoopback() {
		dial, err := LoopbackDial(dest)
		if err != nil {
			return Target{}, err
		}
		return Target{Kind: KindLoopback, Description: dest, Dial: dial}, nil
	}
	inServiceRange := r.inServiceRange(addr)
	if inServiceRange && !r.synced.Load() {
		return Target{}, refuse(ReasonNotReady, "the Service cache has not synced, so %s cannot be resolved yet", dest)
	}
	if objs, err := r.services.GetIndexer().ByIndex(clusterIPIndex, ip); err != nil {
		return Target{}, fmt.Errorf("looking up the Service of %s: %w", ip, err)
	} else if len(objs) > 0 {
		return r.resolveService(objs[0].(*corev1.Service), port)
	}
	if inServiceRange {
		return Target{}, refuse(ReasonUnknownClusterIP, "no Service has ClusterIP %s", ip)
	}
	// The kubelet port of a node comes before its pods: a host-network
	// pod shares its node's IP.
	if port == r.kubeletPort {
		if kubelet, ok := r.kubeletAddress(ip); ok {
			dial, err := LoopbackDial(kubelet)
			if err != nil {
				return Target{}, err
			}
			return Target{Kind: KindNode, Description: fmt.Sprintf("kubelet of node %s at %s", ip, kubelet), Dial: dial}, nil
		}
	}
	if d := r.podDialer(ip); d != nil {
		return Target{Kind: KindPod, Description: "pod " + dest, Dial: func(ctx context.Context) (net.Conn, error) {
			return d.DialPod(ctx, ip, port)
		}}, nil
	}
	return Target{}, refuse(ReasonUnmapped, "%s is no Service, pod or kubelet of this machine", dest)
}

func (r *ClusterResolver) inServiceRange(addr netip.Addr) bool {
	for _, p := range r.serviceCIDRs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// endpoint is one ready backend of a Service port.
type endpoint struct {
	ip   string
	port int
}

// resolveService picks a ready endpoint of svc's port, the way
// kube-proxy would, among those some PodDialer holds.
func (r *ClusterResolver) resolveService(svc *corev1.Service, port int) (Target, error) {
	name := svc.Namespace + "/" + svc.Name
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return Target{}, refuse(ReasonUnsupportedService, "Service %s is headless or of type ExternalName", name)
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return int(p.Port) == port && isTCP(&p.Protocol)
	})
	if i < 0 {
		return Target{}, refuse(ReasonUnknownPort, "Service %s has no TCP port %d", name, port)
	}
	svcPort := svc.Spec.Ports[i]
	ready, err := r.readyEndpoints(name, svcPort.Name)
	if err != nil {
		return Target{}, err
	}
	if len(ready) == 0 {
		return Target{}, refuse(ReasonNoEndpoints, "Service %s port %d (%q) has no ready endpoint", name, port, svcPort.Name)
	}
	type backend struct {
		endpoint
		dialer PodDialer
	}
	var hosted []backend
	for _, ep := range ready {
		if d := r.podDialer(ep.ip); d != nil {
			hosted = append(hosted, backend{ep, d})
		}
	}
	if len(hosted) == 0 {
		return Target{}, refuse(ReasonUnmapped, "none of the %d ready endpoints of Service %s port %d is a pod of this machine", len(ready), name, port)
	}
	b := hosted[r.turn.Add(1)%uint64(len(hosted))]
	return Target{
		Kind:        KindService,
		Description: fmt.Sprintf("Service %s port %d, pod %s", name, port, net.JoinHostPort(b.ip, strconv.Itoa(b.port))),
		Dial: func(ctx context.Context) (net.Conn, error) {
			return b.dialer.DialPod(ctx, b.ip, b.port)
		},
	}, nil
}

// readyEndpoints lists, in a stable order, the ready endpoints of the
// Service named namespace/name for the slice port called portName (the
// Service port's name; slices name ports after it).
func (r *ClusterResolver) readyEndpoints(service, portName string) ([]endpoint, error) {
	objs, err := r.slices.GetIndexer().ByIndex(serviceIndex, service)
	if err != nil {
		return nil, fmt.Errorf("looking up the EndpointSlices of Service %s: %w", service, err)
	}
	var eps []endpoint
	for _, obj := range objs {
		slice := obj.(*discoveryv1.EndpointSlice)
		if slice.AddressType != discoveryv1.AddressTypeIPv4 && slice.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		i := slices.IndexFunc(slice.Ports, func(p discoveryv1.EndpointPort) bool {
			return p.Port != nil && isTCP(p.Protocol) && ptrString(p.Name) == portName
		})
		if i < 0 {
			continue
		}
		port := int(*slice.Ports[i].Port)
		for _, ep := range slice.Endpoints {
			if len(ep.Addresses) == 0 || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			eps = append(eps, endpoint{ip: ep.Addresses[0], port: port})
		}
	}
	slices.SortFunc(eps, func(a, b endpoint) int {
		return cmp.Or(strings.Compare(a.ip, b.ip), cmp.Compare(a.port, b.port))
	})
	return eps, nil
}

func (r *ClusterResolver) podDialer(ip string) PodDialer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.pods {
		if e.HasPod(ip) {
			return e.PodDialer
		}
	}
	return nil
}

func (r *ClusterResolver) kubeletAddress(nodeIP string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.nodes {
		if addr, ok := e.KubeletAddress(nodeIP); ok {
			return addr, true
		}
	}
	return "", false
}

// isTCP reports whether a port's protocol is TCP, the default.
func isTCP(p *corev1.Protocol) bool { return p == nil || *p == "" || *p == corev1.ProtocolTCP }

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
