package egress_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/e2e/egress"
)

// The addresses below are of TEST-NET-1 (192.0.2.0/24, RFC 5737): nothing
// answers there, and the tests never dial them; fake dialers stand in.

// fakePods holds pods by IP and hands out one end of a pipe per dial.
type fakePods struct {
	mu    sync.Mutex
	ips   map[string]bool
	dials []string
}

func newFakePods(ips ...string) *fakePods {
	f := &fakePods{ips: map[string]bool{}}
	for _, ip := range ips {
		f.ips[ip] = true
	}
	return f
}

func (f *fakePods) HasPod(ip string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ips[ip]
}

func (f *fakePods) DialPod(_ context.Context, ip string, port int) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ips[ip] {
		return nil, fmt.Errorf("no pod %s", ip)
	}
	f.dials = append(f.dials, net.JoinHostPort(ip, fmt.Sprint(port)))
	a, b := net.Pipe()
	_ = b.Close()
	return a, nil
}

func (f *fakePods) dialed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dials...)
}

// fakeNodes maps node IPs to kubelet addresses.
type fakeNodes map[string]string

func (f fakeNodes) KubeletAddress(ip string) (string, bool) {
	addr, ok := f[ip]
	return addr, ok
}

func service(name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP}, Ports: ports,
		},
	}
}

func servicePort(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromInt32(target), Protocol: corev1.ProtocolTCP}
}

// readiness of an endpoint: nil means unknown, which counts as ready.
type readiness *bool

func slice(name, svc string, addrType discoveryv1.AddressType, portName string, port int32, eps map[string]readiness) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "apps", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: addrType,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for ip, ready := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ready}})
	}
	return s
}

// clusterObjects are the Services and slices the resolver tests watch.
func clusterObjects() []runtime.Object {
	external := service("external", "10.96.10.13", servicePort("http", 80, 80))
	external.Spec.Type = corev1.ServiceTypeExternalName
	external.Spec.ExternalName = "example.com"
	return []runtime.Object{
		service("web", "10.96.10.10", servicePort("https", 443, 8443), corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}),
		slice("web-a", "web", discoveryv1.AddressTypeIPv4, "https", 8443, map[string]readiness{
			"192.0.2.11": ptr.To(true), "192.0.2.12": nil, "192.0.2.13": ptr.To(false),
		}),
		slice("web-b", "web", discoveryv1.AddressTypeIPv4, "other", 9000, map[string]readiness{"192.0.2.14": nil}),
		slice("web-c", "web", discoveryv1.AddressTypeFQDN, "https", 8443, map[string]readiness{"pod.example.com": nil}),
		service("empty", "10.96.10.11", servicePort("", 80, 8080)),
		service("unready", "10.96.10.12", servicePort("", 80, 8080)),
		slice("unready-a", "unready", discoveryv1.AddressTypeIPv4, "", 8080, map[string]readiness{"192.0.2.11": ptr.To(false)}),
		external,
		service("orphan", "10.96.10.14", servicePort("", 80, 8080)),
		slice("orphan-a", "orphan", discoveryv1.AddressTypeIPv4, "", 8080, map[string]readiness{"192.0.2.99": nil}),
	}
}

// startResolver returns a synced resolver over client, with the pods and
// nodes registered.
func startResolver(t *testing.T, client kubernetes.Interface, pods egress.PodDialer, nodes egress.NodeDialer) *egress.ClusterResolver {
	t.Helper()
	r, err := egress.NewClusterResolver(client, egress.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pods != nil {
		r.AddPods(pods)
	}
	if nodes != nil {
		r.AddNodes(nodes)
	}
	// The informers run until the test ends.
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

func resolve(t *testing.T, r egress.Resolver, host string, port int) egress.Target {
	t.Helper()
	target, err := r.Resolve(t.Context(), host, port)
	if err != nil {
		t.Fatalf("resolving %s:%d: %v", host, port, err)
	}
	return target
}

func TestClusterLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	// Loopback needs neither a synced cache nor any dialer.
	r, err := egress.NewClusterResolver(fake.NewClientset(), egress.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"} {
		target := resolve(t, r, host, port)
		if target.Kind != egress.KindLoopback || target.Description != l.Addr().String() {
			t.Errorf("%s: target %q of kind %s, want loopback %s", host, target.Description, target.Kind, l.Addr())
			continue
		}
		conn, err := target.Dial(t.Context())
		if err != nil {
			t.Errorf("%s: dialing: %v", host, err)
			continue
		}
		_ = conn.Close()
	}
	for _, host := range []string{"127.3.4.5", "::1"} {
		if target := resolve(t, r, host, 1); target.Kind != egress.KindLoopback {
			t.Errorf("%s: kind %s, want loopback", host, target.Kind)
		}
	}
}

func TestClusterService(t *testing.T) {
	pods := newFakePods("192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14")
	r := startResolver(t, fake.NewClientset(clusterObjects()...), pods, nil)
	seen := map[string]int{}
	for range 10 {
		target := resolve(t, r, "10.96.10.10", 443)
		if target.Kind != egress.KindService {
			t.Fatalf("kind %s, want service", target.Kind)
		}
		conn, err := target.Dial(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.Close()
	}
	for _, d := range pods.dialed() {
		seen[d]++
	}
	// Ready and unknown-readiness endpoints take turns; the unready one,
	// the one of another port name and the FQDN one are never picked.
	if len(seen) != 2 || seen["192.0.2.11:8443"] != 5 || seen["192.0.2.12:8443"] != 5 {
		t.Errorf("dialed %v, want 5 each of 192.0.2.11:8443 and 192.0.2.12:8443", seen)
	}
}

func TestClusterPodAndNode(t *testing.T) {
	kubelet, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kubelet.Close() })
	pods := newFakePods("192.0.2.20", "192.0.2.100")
	nodes := fakeNodes{"192.0.2.100": kubelet.Addr().String()}
	r := startResolver(t, fake.NewClientset(), pods, nodes)

	target := resolve(t, r, "192.0.2.20", 8080)
	if target.Kind != egress.KindPod {
		t.Errorf("pod IP: kind %s", target.Kind)
	}
	if conn, err := target.Dial(t.Context()); err != nil {
		t.Error(err)
	} else {
		_ = conn.Close()
	}
	if got := pods.dialed(); len(got) != 1 || got[0] != "192.0.2.20:8080" {
		t.Errorf("pod dials %v", got)
	}

	target = resolve(t, r, "192.0.2.100", 10250)
	if target.Kind != egress.KindNode || !strings.Contains(target.Description, kubelet.Addr().String()) {
		t.Errorf("node IP on the kubelet port: %s %q", target.Kind, target.Description)
	}
	conn, err := target.Dial(t.Context())
	if err != nil {
		t.Fatalf("dialing the kubelet: %v", err)
	}
	_ = conn.Close()
	// Another port of a node that also holds a (host-network) pod reaches
	// the pod.
	if target := resolve(t, r, "192.0.2.100", 8080); target.Kind != egress.KindPod {
		t.Errorf("node IP on another port: kind %s, want pod", target.Kind)
	}
}

func TestClusterRegistrations(t *testing.T) {
	r := startResolver(t, fake.NewClientset(), nil, nil)
	removePods := r.AddPods(newFakePods("192.0.2.20"))
	removeOther := r.AddPods(newFakePods("192.0.2.21"))
	removeNodes := r.AddNodes(fakeNodes{"192.0.2.100": "127.0.0.1:1"})
	resolve(t, r, "192.0.2.20", 80)
	resolve(t, r, "192.0.2.21", 80)
	resolve(t, r, "192.0.2.100", 10250)
	removePods()
	removeNodes()
	for _, dest := range []struct {
		host string
		port int
	}{{"192.0.2.20", 80}, {"192.0.2.100", 10250}} {
		if _, err := r.Resolve(t.Context(), dest.host, dest.port); reason(err) != egress.ReasonUnmapped {
			t.Errorf("%s after removal: %v, want unmapped", dest.host, err)
		}
	}
	resolve(t, r, "192.0.2.21", 80)
	removeOther()
}

func reason(err error) string {
	if refused, ok := errors.AsType[*egress.RefusedError](err); ok {
		return refused.Reason
	}
	return fmt.Sprint(err)
}

// TestClusterRefusals goes through the proxy: each refusal is answered,
// counted and logged with its destination.
func TestClusterRefusals(t *testing.T) {
	var logs logLines
	pods := newFakePods("192.0.2.11", "192.0.2.12")
	nodes := fakeNodes{"192.0.2.100": "127.0.0.1:1", "192.0.2.101": "192.0.2.50:10250"}
	r := startResolver(t, fake.NewClientset(clusterObjects()...), pods, nodes)
	s := startServer(t, egress.Options{Resolver: r, Log: logs.logger()})

	cases := []struct {
		dest   string
		reason string
		status int
	}{
		{"10.96.99.99:443", egress.ReasonUnknownClusterIP, http.StatusForbidden},
		{"10.96.10.10:8443", egress.ReasonUnknownPort, http.StatusForbidden},
		{"10.96.10.10:53", egress.ReasonUnknownPort, http.StatusForbidden}, // UDP only
		{"10.96.10.11:80", egress.ReasonNoEndpoints, http.StatusServiceUnavailable},
		{"10.96.10.12:80", egress.ReasonNoEndpoints, http.StatusServiceUnavailable},
		{"10.96.10.13:80", egress.ReasonUnsupportedService, http.StatusForbidden},
		{"10.96.10.14:80", egress.ReasonUnmapped, http.StatusForbidden}, // endpoint of no pod of ours
		{"192.0.2.30:443", egress.ReasonUnmapped, http.StatusForbidden},
		{"192.0.2.100:10255", egress.ReasonUnmapped, http.StatusForbidden},
		{"example.com:443", egress.ReasonUnmapped, http.StatusForbidden},
		{"192.0.2.101:10250", egress.ReasonNotLoopback, http.StatusForbidden},
	}
	want := map[string]int{}
	for _, tc := range cases {
		conn, r := connect(t, s.SocketPath(), tc.dest)
		if conn != nil {
			t.Errorf("%s: tunnel opened, want %s", tc.dest, tc.reason)
			continue
		}
		if r.code != tc.status || !strings.Contains(r.status, "("+tc.reason+")") || !strings.HasPrefix(r.body, tc.reason+": ") {
			t.Errorf("%s: %q %q, want %d for %s", tc.dest, r.status, r.body, tc.status, tc.reason)
		}
		if len(logs.matching("Egress CONNECT refused", fmt.Sprintf("%q=%q", "destination", tc.dest), fmt.Sprintf("%q=%q", "reason", tc.reason))) != 1 {
			t.Errorf("%s: no single log line for the refusal", tc.dest)
		}
		want[tc.reason]++
	}
	st := s.Stats()
	if st.RefusedTotal != len(cases) || len(st.Accepted) != 0 {
		t.Errorf("stats %+v, want %d refusals and nothing accepted", st, len(cases))
	}
	for reason, n := range want {
		if st.Refused[reason] != n {
			t.Errorf("%d refusals for %s, want %d", st.Refused[reason], reason, n)
		}
	}
	refusals := s.Refusals()
	for i, tc := range cases {
		if i >= len(refusals) || refusals[i].Destination != tc.dest || refusals[i].Reason != tc.reason {
			t.Errorf("refusal %d: %+v, want %s for %s", i, refusals, tc.reason, tc.dest)
			break
		}
	}
	if got := pods.dialed(); len(got) != 0 {
		t.Errorf("refused CONNECTs dialed pods %v", got)
	}
}

func TestClusterNotSynced(t *testing.T) {
	r, err := egress.NewClusterResolver(fake.NewClientset(clusterObjects()...), egress.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.AddPods(newFakePods("192.0.2.20"))
	if _, err := r.Resolve(t.Context(), "10.96.10.10", 443); reason(err) != egress.ReasonNotReady {
		t.Errorf("Service before sync: %v, want not-ready", err)
	}
	// Pods need no cache.
	resolve(t, r, "192.0.2.20", 80)
}

// TestClusterFollowsChanges: Services and endpoints created after Start
// are picked up, and a deleted Service's IP is refused again.
func TestClusterFollowsChanges(t *testing.T) {
	client := fake.NewClientset()
	r := startResolver(t, client, newFakePods("192.0.2.40"), nil)
	ctx := t.Context()
	if _, err := client.CoreV1().Services("apps").Create(ctx, service("late", "10.96.20.1", servicePort("web", 80, 8080)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReason(t, r, "10.96.20.1", 80, egress.ReasonNoEndpoints)
	if _, err := client.DiscoveryV1().EndpointSlices("apps").Create(ctx, slice("late-a", "late", discoveryv1.AddressTypeIPv4, "web", 8080, map[string]readiness{"192.0.2.40": nil}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReason(t, r, "10.96.20.1", 80, "")
	if err := client.CoreV1().Services("apps").Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReason(t, r, "10.96.20.1", 80, egress.ReasonUnknownClusterIP)
}

// waitReason waits for a destination to resolve ("") or be refused so.
func waitReason(t *testing.T, r egress.Resolver, host string, port int, want string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := r.Resolve(ctx, host, port)
		last = ""
		if err != nil {
			last = reason(err)
		}
		return last == want, nil
	})
	if err != nil {
		t.Fatalf("%s:%d: still %q, want %q", host, port, last, want)
	}
}

func TestLoopbackDialGuard(t *testing.T) {
	for _, addr := range []string{"192.0.2.1:80", "10.96.0.1:443", "localhost:80", "127.0.0.1", "127.0.0.1:0"} {
		if _, err := egress.LoopbackDial(addr); reason(err) != egress.ReasonNotLoopback {
			t.Errorf("LoopbackDial(%q): %v, want not-loopback", addr, err)
		}
	}
	// The connect-time check, which sees the address the socket really
	// connects to.
	if err := egress.RequireLoopback("tcp4", "192.0.2.1:80", nil); reason(err) != egress.ReasonNotLoopback {
		t.Errorf("connect-time guard let 192.0.2.1:80 through: %v", err)
	}
	if err := egress.RequireLoopback("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Errorf("connect-time guard refused loopback: %v", err)
	}
}

// TestClusterConcurrency is for -race: resolving while dialers come and go
// and the informers take in changes.
func TestClusterConcurrency(t *testing.T) {
	client := fake.NewClientset(clusterObjects()...)
	r := startResolver(t, client, newFakePods("192.0.2.11", "192.0.2.12"), fakeNodes{"192.0.2.100": "127.0.0.1:1"})
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				remove := r.AddPods(newFakePods(fmt.Sprintf("192.0.2.%d", 150+i)))
				for _, host := range []string{"10.96.10.10", "192.0.2.100", "192.0.2.11", "127.0.0.1"} {
					if _, err := r.Resolve(ctx, host, 10250); err != nil {
						if _, refused := errors.AsType[*egress.RefusedError](err); !refused {
							t.Errorf("resolving %s: %v", host, err)
						}
					}
				}
				remove()
				if j%10 == 0 {
					svc := service(fmt.Sprintf("churn-%d-%d", i, j), fmt.Sprintf("10.96.30.%d", i*50+j), servicePort("", 80, 80))
					if _, err := client.CoreV1().Services("apps").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
						t.Errorf("creating a Service: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
}
