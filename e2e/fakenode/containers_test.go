package fakenode_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/e2e/fakenode"
	"github.com/kube-eip/kube-eip/e2e/image"
)

// helperImage is the image repository the real-container tests map to an
// OCI layout of testdata/podhelper.
const helperImage = "registry.example.com/podhelper"

var (
	realOnce  sync.Once
	realNodes *fakenode.Kubelet
	realErr   error
)

// realKubelet is a group of fake nodes that run the podhelper image for
// real, with the kubelet API served; the tests that need it share it.
func realKubelet(t *testing.T) *fakenode.Kubelet {
	t.Helper()
	realOnce.Do(func() { realNodes, realErr = startRealKubelet() })
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realNodes
}

func startRealKubelet() (*fakenode.Kubelet, error) {
	dir, err := os.MkdirTemp("", "fakenode-image-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "podhelper")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/podhelper")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building podhelper: %w\n%s", err, out)
	}
	img, err := image.Build(image.BuildOptions{Binary: bin})
	if err != nil {
		return nil, err
	}
	layout := filepath.Join(dir, "oci")
	if _, err := image.Write(img, layout, filepath.Join(dir, "image.tar"), helperImage+":test"); err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(cluster.RESTConfig().CAFile)
	if err != nil {
		return nil, err
	}
	api, err := netip.ParseAddrPort(strings.TrimPrefix(cluster.APIServerURL, "https://"))
	if err != nil {
		return nil, err
	}
	opts := kubeletOptions("real")
	opts.Nodes = 1
	opts.Images = map[string]string{helperImage: layout}
	opts.APIServer = api
	opts.ClientCA = caPEM
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return fakenode.Start(ctx, opts)
}

// helperPod runs podhelper listening on :9443, with a readiness probe.
func helperPod(ns, name string) *corev1.Pod {
	spec := podSpec("real")
	spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
	spec.Containers = []corev1.Container{{
		Name:  "helper",
		Image: helperImage + ":test",
		Args:  []string{":9443"},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9443}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds: 1,
		},
	}}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

func ready(p *corev1.Pod) (bool, string) {
	return conditionIs(p, corev1.PodReady, corev1.ConditionTrue), statusSummary(p)
}

// get fetches path from port 9443 of the pod, inside its network.
func get(t *testing.T, k *fakenode.Kubelet, pod *corev1.Pod, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return k.DialPod(ctx, pod.Status.PodIP, 9443)
		},
	}}
	resp, err := client.Get("http://pod" + path)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, pod.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestTwoPodsListenOnOnePortEachInItsOwnNetwork(t *testing.T) {
	t.Parallel()
	k := realKubelet(t)
	ns := newNamespace(t)
	var pods []*corev1.Pod
	for _, name := range []string{"one", "two"} {
		createPod(t, helperPod(ns, name))
	}
	for _, name := range []string{"one", "two"} {
		pods = append(pods, waitPod(t, ns, name, time.Minute, "ready", ready))
	}
	for _, p := range pods {
		if code, body := get(t, k, p, "/hostname"); code != http.StatusOK || body != p.Name {
			t.Errorf("pod %s answered %d %q, want its own name", p.Name, code, body)
		}
		if code, body := get(t, k, p, "/env?name=KUBERNETES_SERVICE_HOST"); body != "127.0.0.1" {
			t.Errorf("pod %s sees KUBERNETES_SERVICE_HOST %d %q, want 127.0.0.1", p.Name, code, body)
		}
	}
	// The host's loopback is out of reach but for the relays: the kubelet
	// API listens there, and the pod gets its own empty loopback instead.
	addr, ok := k.KubeletAddress(k.Nodes()[0].PrivateIP)
	if !ok {
		t.Fatal("no kubelet API address for the node")
	}
	if code, body := get(t, k, pods[0], "/dial?url="+url.QueryEscape("https://"+addr+"/healthz")); code != http.StatusBadGateway || !strings.Contains(body, "refused") {
		t.Errorf("the pod reached the host's %s: %d %q", addr, code, body)
	}
	if _, err := k.DialPod(t.Context(), "192.168.255.254", 9443); err == nil {
		t.Error("DialPod reached an address that is no pod's")
	}
}

func TestContainerRunsAsItsUserWithItsServiceAccount(t *testing.T) {
	t.Parallel()
	k := realKubelet(t)
	ns := newNamespace(t)
	pod := helperPod(ns, "who")
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](1234), ReadOnlyRootFilesystem: ptr.To(true)}
	createPod(t, pod)
	pod = waitPod(t, ns, pod.Name, time.Minute, "ready", ready)

	code, body := get(t, k, pod, "/whoami")
	if want := "system:serviceaccount:" + ns + ":default"; code != http.StatusCreated || !strings.Contains(body, want) {
		t.Errorf("the pod's token is %d %s; want the user %s", code, body, want)
	}
	if code, body := get(t, k, pod, "/write?path=/x"); code != http.StatusForbidden || !strings.Contains(body, "read-only") {
		t.Errorf("writing to a read-only root: %d %q", code, body)
	}
	logs := kubeletLogs(t, k, pod, "helper", "")
	if !strings.Contains(logs, "as uid 1234") {
		t.Errorf("the container's log %q does not show uid 1234", logs)
	}
}

func TestSecretUpdateReachesTheMountedFilesWithoutARestart(t *testing.T) {
	t.Parallel()
	k := realKubelet(t)
	ns := newNamespace(t)
	secret, err := kube.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "tls"}, Data: map[string][]byte{"tls.crt": []byte("first")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := helperPod(ns, "certs")
	pod.Spec.Volumes = []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "tls", MountPath: "/etc/tls"}}
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "CERT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}, Key: "tls.crt"}}}}
	createPod(t, pod)
	pod = waitPod(t, ns, pod.Name, time.Minute, "ready", ready)
	if _, body := get(t, k, pod, "/read?path=/etc/tls/tls.crt"); body != "first" {
		t.Fatalf("mounted tls.crt reads %q, want first", body)
	}
	if _, body := get(t, k, pod, "/env?name=CERT"); body != "first" {
		t.Errorf("CERT from secretKeyRef is %q, want first", body)
	}
	secret.Data["tls.crt"] = []byte("second")
	if _, err := kube.CoreV1().Secrets(ns).Update(t.Context(), secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the update to reach the file", func(context.Context) (bool, string, error) {
		_, body := get(t, k, pod, "/read?path=/etc/tls/tls.crt")
		return body == "second", body, nil
	})
	// The kubelet's layout: the file is a link through ..data, which the
	// update swapped in one rename.
	if _, body := get(t, k, pod, "/read?path=/etc/tls/..data/tls.crt"); body != "second" {
		t.Errorf("..data/tls.crt reads %q, want second", body)
	}
	got, err := kube.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := got.Status.ContainerStatuses[0].RestartCount; n != 0 {
		t.Errorf("the container restarted %d times for the update", n)
	}
}

func TestFailingLivenessProbeRestartsTheContainer(t *testing.T) {
	t.Parallel()
	k := realKubelet(t)
	ns := newNamespace(t)
	pod := helperPod(ns, "sick")
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(9443)}},
		PeriodSeconds:    1,
		FailureThreshold: 2,
	}
	createPod(t, pod)
	pod = waitPod(t, ns, pod.Name, time.Minute, "ready", ready)
	if code, _ := get(t, k, pod, "/fail"); code != http.StatusOK {
		t.Fatal("could not make the pod unhealthy")
	}
	pod = waitPod(t, ns, pod.Name, time.Minute, "restarted and ready again", func(p *corev1.Pod) (bool, string) {
		ok, why := ready(p)
		return ok && p.Status.ContainerStatuses[0].RestartCount == 1, why
	})
	last := pod.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last == nil || last.ExitCode != 0 {
		// podhelper exits 0 on SIGTERM, which the kill sends first.
		t.Errorf("last termination %+v, want the SIGTERM exit", last)
	}
	if logs := kubeletLogs(t, k, pod, "helper", "previous=true"); !strings.Contains(logs, "going unhealthy") || !strings.Contains(logs, "got SIGTERM") {
		t.Errorf("previous logs %q lack the sick run's lines", logs)
	}
	if logs := kubeletLogs(t, k, pod, "helper", ""); strings.Contains(logs, "going unhealthy") || !strings.Contains(logs, "started on sick") {
		t.Errorf("current logs %q are not the new run's", logs)
	}
	if logs := kubeletLogs(t, k, pod, "helper", "tailLines=1&previous=true"); strings.Count(logs, "\n") != 1 || !strings.Contains(logs, "SIGTERM") {
		t.Errorf("tailLines=1 gave %q", logs)
	}
}

func TestDeletionSendsSIGTERMAndEndsWithTheContainer(t *testing.T) {
	t.Parallel()
	k := realKubelet(t)
	ns := newNamespace(t)
	pod := createPod(t, helperPod(ns, "bye"))
	pod = waitPod(t, ns, pod.Name, time.Minute, "ready", ready)
	follow := followLogs(t, k, pod, "helper")
	start := time.Now()
	if err := kube.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPodGone(t, ns, pod.Name, 20*time.Second)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("deletion took %s: the grace period, not the container's exit", took)
	}
	select {
	case logs := <-follow:
		if !strings.Contains(logs, "got SIGTERM") {
			t.Errorf("followed logs %q end without the SIGTERM line", logs)
		}
	case <-time.After(10 * time.Second):
		t.Error("following the logs did not end with the container")
	}
}

// kubeletClient calls the kubelet API as the admin, whose certificate the
// cluster CA signed, as it signs the API server's.
func kubeletClient(t *testing.T) *http.Client {
	t.Helper()
	cfg := cluster.RESTConfig()
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, //nolint:gosec // G402: the API server does not verify kubelets either
	}}}
}

func logsURL(t *testing.T, k *fakenode.Kubelet, pod *corev1.Pod, container, query string) string {
	t.Helper()
	addr, ok := k.KubeletAddress(pod.Status.HostIP)
	if !ok {
		t.Fatalf("no kubelet API for node %s", pod.Status.HostIP)
	}
	return fmt.Sprintf("https://%s/containerLogs/%s/%s/%s?%s", addr, pod.Namespace, pod.Name, container, query)
}

func kubeletLogs(t *testing.T, k *fakenode.Kubelet, pod *corev1.Pod, container, query string) string {
	t.Helper()
	resp, err := kubeletClient(t).Get(logsURL(t, k, pod, container, query))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logs %s: %s %s", query, resp.Status, body)
	}
	return string(body)
}

// followLogs follows a container's log; the channel gets what was read
// once the stream ends.
func followLogs(t *testing.T, k *fakenode.Kubelet, pod *corev1.Pod, container string) <-chan string {
	t.Helper()
	client := kubeletClient(t)
	client.Timeout = 0
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, logsURL(t, k, pod, container, "follow=true"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req) //nolint:bodyclose // closed by the goroutine that reads it
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		t.Fatalf("following logs: %s", resp.Status)
	}
	out := make(chan string, 1)
	// The first line is read here, so the stream is known to be open.
	br := bufio.NewReader(resp.Body)
	first, _ := br.ReadString('\n')
	go func() {
		defer func() { _ = resp.Body.Close() }()
		rest, _ := io.ReadAll(br)
		out <- first + string(rest)
	}()
	return out
}

func TestKubeletAPIRefusesClientsWithoutTheClusterCertificate(t *testing.T) {
	t.Parallel()
	k := realKubelet(t)
	addr, _ := k.KubeletAddress(k.Nodes()[0].PrivateIP)
	pool := x509.NewCertPool()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, InsecureSkipVerify: true}}} //nolint:gosec // G402: the point is the client side
	resp, err := client.Get("https://" + addr + "/healthz")
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("a client without a certificate got %s", resp.Status)
	}
}
