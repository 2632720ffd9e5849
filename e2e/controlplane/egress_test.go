package controlplane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/e2e/controlplane"
	"github.com/kube-eip/kube-eip/e2e/egress"
	"github.com/kube-eip/kube-eip/e2e/testmain"
)

// The non-loopback addresses here are of TEST-NET-1 (192.0.2.0/24, RFC
// 5737) or the Service range; the proxy maps or refuses them, and the test
// asks for any of them only once a loopback canary has shown that the API
// server's cluster traffic really goes through the proxy.

// TestEgressThroughProxy starts a control plane whose cluster egress is an
// egress.Server and follows each kind of cluster traffic through it:
// kubelet logs (to a loopback and to a mapped node address), Service
// webhooks (ExternalName to localhost, no endpoints, a ready endpoint held
// by a fake pod dialer) and pods/proxy.
//
// URL webhooks go through the "controlplane" egress (k8s.io/apiserver
// pkg/util/webhook/authentication.go, ClientConfigFor), which the control
// plane sends through the same proxy: the stack's tests register one for a
// ClusterIP of no Service and see the proxy refuse it.
func TestEgressThroughProxy(t *testing.T) {
	ctx := t.Context()
	socket := shortSocketPath(t)
	proxy, err := egress.Listen(socket, egress.Options{Log: testr.NewWithOptions(t, testr.Options{Verbosity: 1})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	startCtx, cancel := context.WithTimeout(ctx, testmain.StartTimeout)
	defer cancel()
	cp, err := controlplane.Start(startCtx, controlplane.Options{EgressSocket: socket})
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	kube, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := egress.NewClusterResolver(kube, egress.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := &loopbackPods{addrs: map[string]string{}}
	nodes := &loopbackNodes{addrs: map[string]string{}}
	resolver.AddPods(pods)
	resolver.AddNodes(nodes)
	if err := resolver.Start(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.SetResolver(resolver)

	kubelet := startKubelet(t, cp)
	caPEM, err := os.ReadFile(cp.CACertFile())
	if err != nil {
		t.Fatal(err)
	}

	// Canary: a node on loopback. Its kubelet answers whether or not the
	// API server uses the proxy; only the proxy's count tells.
	loopbackNode := createNode(t, kube, "egress-loopback", "127.0.0.1", kubelet.port)
	canary := createPod(t, kube, "canary", loopbackNode)
	before := proxy.Stats().Accepted[egress.KindLoopback]
	if got := podLogs(t, kube, canary); got != kubeletLogs || kubelet.lastPath() != "/containerLogs/default/canary/c" {
		t.Fatalf("logs through the loopback kubelet: %q, for %s", got, kubelet.lastPath())
	}
	if proxy.Stats().Accepted[egress.KindLoopback] == before {
		t.Fatal("kubelet logs did not go through the egress proxy: is --egress-selector-config-file in effect?")
	}

	t.Run("service webhook to localhost", func(t *testing.T) {
		ns := createNamespace(t, kube, "egress-canary")
		hook := startWebhook(t, cp, "canary", "canary."+ns+".svc")
		_, port, _ := net.SplitHostPort(hook)
		createService(t, kube, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary"},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost"},
		})
		before := proxy.Stats().Accepted[egress.KindLoopback]
		registerWebhook(t, kube, ns, "canary", atoi(t, port), caPEM)
		expectDenied(t, kube, ns, "denied by canary")
		if proxy.Stats().Accepted[egress.KindLoopback] == before {
			t.Fatal("the Service webhook call did not go through the egress proxy")
		}
	})
	if t.Failed() {
		t.FailNow() // the canary failed: provoke no dial off loopback
	}

	t.Run("service webhook without endpoints", func(t *testing.T) {
		ns := createNamespace(t, kube, "egress-none")
		svc := createService(t, kube, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "empty"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443)}}},
		})
		registerWebhook(t, kube, ns, "empty", 443, caPEM)
		expectDenied(t, kube, ns, egress.ReasonNoEndpoints)
		expectRefusal(t, proxy, net.JoinHostPort(svc.Spec.ClusterIP, "443"), egress.ReasonNoEndpoints)
	})

	t.Run("service webhook to a fake pod", func(t *testing.T) {
		ns := createNamespace(t, kube, "egress-backed")
		pods.add("192.0.2.20", 8443, startWebhook(t, cp, "backed", "backed."+ns+".svc"))
		createService(t, kube, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backed"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443)}}},
		})
		_, err := kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "backed-1", Labels: map[string]string{
				discoveryv1.LabelServiceName: "backed", discoveryv1.LabelManagedBy: "egress-test",
			}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.20"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](8443)}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before := proxy.Stats().Accepted[egress.KindService]
		registerWebhook(t, kube, ns, "backed", 443, caPEM)
		expectDenied(t, kube, ns, "denied by backed")
		if proxy.Stats().Accepted[egress.KindService] == before {
			t.Error("the proxy counted no service tunnel")
		}
	})

	t.Run("kubelet logs on a node address", func(t *testing.T) {
		node := createNode(t, kube, "egress-remote", "192.0.2.10", 10250)
		pod := createPod(t, kube, "remote", node)
		_, err := kube.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "c"}).DoRaw(ctx)
		if err == nil {
			t.Fatal("logs of a pod on an unmapped node succeeded")
		}
		expectRefusal(t, proxy, "192.0.2.10:10250", egress.ReasonUnmapped)

		nodes.add("192.0.2.10", kubelet.addr)
		before := proxy.Stats().Accepted[egress.KindNode]
		if got := podLogs(t, kube, pod); got != kubeletLogs || kubelet.lastPath() != "/containerLogs/default/remote/c" {
			t.Errorf("logs through the mapped kubelet: %q, for %s", got, kubelet.lastPath())
		}
		if proxy.Stats().Accepted[egress.KindNode] == before {
			t.Error("the proxy counted no node tunnel")
		}
		if cn := kubelet.lastClient(); cn != controlplane.KubeletClientCommonName {
			t.Errorf("the kubelet was called by %q, want %q", cn, controlplane.KubeletClientCommonName)
		}
	})

	t.Run("pods proxy", func(t *testing.T) {
		pod := createPod(t, kube, "proxied", loopbackNode)
		pod.Status.PodIP = "192.0.2.21"
		pod.Status.PodIPs = []corev1.PodIP{{IP: "192.0.2.21"}}
		if _, err := kube.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		pods.add("192.0.2.21", 8080, startHTTP(t, "pod says hello"))
		body, err := kube.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces", pod.Namespace, "pods", pod.Name+":8080", "proxy", "hello").DoRaw(ctx)
		if err != nil || string(body) != "pod says hello" {
			t.Errorf("pods/proxy answered %q, %v", body, err)
		}
		if proxy.Stats().Accepted[egress.KindPod] == 0 {
			t.Error("the proxy counted no pod tunnel")
		}
	})
	t.Logf("egress proxy stats: %+v", proxy.Stats())
}

func TestEgressSocketTooLong(t *testing.T) {
	long := "/tmp/" + strings.Repeat("s", 103) // 108 bytes
	_, err := controlplane.Start(t.Context(), controlplane.Options{EgressSocket: long})
	if err == nil || !strings.Contains(err.Error(), "107") {
		t.Fatalf("Start with a 108-byte egress socket path: %v, want a length error", err)
	}
}

func shortSocketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "egress-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "cluster.sock")
}

func atoi(t *testing.T, s string) int32 {
	t.Helper()
	var n int32
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// loopbackPods stands in for fake pods: pod IP and port to a loopback
// address.
type loopbackPods struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (p *loopbackPods) add(ip string, port int, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addrs[net.JoinHostPort(ip, fmt.Sprint(port))] = addr
	p.addrs[ip] = ""
}

func (p *loopbackPods) HasPod(ip string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.addrs[ip]
	return ok
}

func (p *loopbackPods) DialPod(ctx context.Context, ip string, port int) (net.Conn, error) {
	p.mu.Lock()
	addr := p.addrs[net.JoinHostPort(ip, fmt.Sprint(port))]
	p.mu.Unlock()
	dial, err := egress.LoopbackDial(addr)
	if err != nil {
		return nil, fmt.Errorf("pod %s has nothing on port %d: %w", ip, port, err)
	}
	return dial(ctx)
}

type loopbackNodes struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (n *loopbackNodes) add(ip, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addrs[ip] = addr
}

func (n *loopbackNodes) KubeletAddress(ip string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	addr, ok := n.addrs[ip]
	return addr, ok
}

// fakeKubelet serves container logs over TLS, requiring a client
// certificate from the cluster CA, and records who called.
type fakeKubelet struct {
	addr     string
	port     int32
	mu       sync.Mutex
	cn, path string
}

// kubeletLogs are the logs of every container of a fakeKubelet.
const kubeletLogs = "fake kubelet logs\n"

func (k *fakeKubelet) lastClient() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cn
}

func (k *fakeKubelet) lastPath() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.path
}

func startKubelet(t *testing.T, cp *controlplane.ControlPlane) *fakeKubelet {
	t.Helper()
	cert, err := cp.IssueServingCertificate("127.0.0.1", "192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKubelet{}
	l := serveTLS(t, cert, clientCAs(t, cp), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.cn = r.TLS.PeerCertificates[0].Subject.CommonName
		k.path = r.URL.Path
		k.mu.Unlock()
		if !strings.HasPrefix(r.URL.Path, "/containerLogs/") {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, kubeletLogs)
	}))
	k.addr = l.Addr().String()
	k.port = int32(l.Addr().(*net.TCPAddr).Port) //nolint:gosec // a port fits
	return k
}

func clientCAs(t *testing.T, cp *controlplane.ControlPlane) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(cp.CACertFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatal("no certificate in the CA file")
	}
	return pool
}

// serveTLS serves handler on a loopback port until the test ends.
func serveTLS(t *testing.T, cert tls.Certificate, clientCAs *x509.CertPool, handler http.Handler) net.Listener {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		cfg.ClientCAs = clientCAs
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l
}

func startHTTP(t *testing.T, body string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// startWebhook serves an admission webhook that denies everything with
// "denied by <name>"; it returns its loopback address.
func startWebhook(t *testing.T, cp *controlplane.ControlPlane, name, host string) string {
	t.Helper()
	cert, err := cp.IssueServingCertificate(host)
	if err != nil {
		t.Fatal(err)
	}
	l := serveTLS(t, cert, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{
			UID: review.Request.UID, Allowed: false, Result: &metav1.Status{Message: "denied by " + name},
		}
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	}))
	return l.Addr().String()
}

func createNamespace(t *testing.T, kube kubernetes.Interface, name string) string {
	t.Helper()
	_, err := kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func createService(t *testing.T, kube kubernetes.Interface, svc *corev1.Service) *corev1.Service {
	t.Helper()
	created, err := kube.CoreV1().Services(svc.Namespace).Create(t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// registerWebhook makes the Service ns/service (port) validate the creation
// of ConfigMaps in ns, failing closed.
func registerWebhook(t *testing.T, kube kubernetes.Interface, ns, service string, port int32, caBundle []byte) {
	t.Helper()
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "egress-" + ns},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: service + "." + ns + ".egress.test",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Namespace: ns, Name: service, Port: ptr.To(port)},
				CABundle: caBundle,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](5),
		}},
	}
	if _, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(t.Context(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
}

// expectDenied creates ConfigMaps in ns until one is refused with an error
// holding want: the API server takes a moment to load a new webhook.
func expectDenied(t *testing.T, kube kubernetes.Interface, ns, want string) {
	t.Helper()
	testmain.Eventually(t, 30*time.Second, "a ConfigMap refused with "+want, func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"}}, metav1.CreateOptions{})
		if err == nil {
			return false, "created: the webhook is not in force yet", nil
		}
		return strings.Contains(err.Error(), want), err.Error(), nil
	})
}

func expectRefusal(t *testing.T, proxy *egress.Server, dest, reason string) {
	t.Helper()
	for _, r := range proxy.Refusals() {
		if r.Destination == dest && r.Reason == reason {
			return
		}
	}
	t.Errorf("the proxy refused no CONNECT to %s for %s: %+v", dest, reason, proxy.Refusals())
}

// createNode registers a node at ip whose kubelet API listens on port.
func createNode(t *testing.T, kube kubernetes.Interface, name, ip string, port int32) string {
	t.Helper()
	ctx := t.Context()
	if _, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The node controllers update a new node too.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}}
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = port
		_, err = kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("setting the addresses of node %s: %v", name, err)
	}
	return name
}

// createPod binds a pod to node; nothing runs it.
func createPod(t *testing.T, kube kubernetes.Interface, name, node string) *corev1.Pod {
	t.Helper()
	pod, err := kube.CoreV1().Pods(metav1.NamespaceDefault).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "c", Image: "registry.example.com/none"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func podLogs(t *testing.T, kube kubernetes.Interface, pod *corev1.Pod) string {
	t.Helper()
	data, err := kube.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "c"}).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("logs of %s: %v", pod.Name, err)
	}
	return string(data)
}
