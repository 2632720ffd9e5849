package devstack

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// What make dev promises: a stack the user reaches through .dev/kubeconfig
// and .dev/env, where pods run with VPC addresses, and which a restart
// resumes with the same nodes and objects.
func TestDevStackServesAndResumes(t *testing.T) {
	dir := t.TempDir()
	layout, err := stack.BuildImage(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Both runs share one image, as make dev's runs share bin/image.

	stop := runStack(t, dir, layout)
	kube := clientFromKubeconfig(t, filepath.Join(dir, KubeconfigFile))
	envVars := readEnvFile(t, filepath.Join(dir, EnvFile))
	if envVars["AWS_ENDPOINT_URL_EC2"] == "" || envVars["KUBECONFIG"] != filepath.Join(dir, KubeconfigFile) {
		t.Fatalf("env file lacks the emulator endpoint or kubeconfig: %v", envVars)
	}
	ec2api := stack.NewEC2Client(envVars["AWS_ENDPOINT_URL_EC2"])

	ctx := t.Context()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers:                    []corev1.Container{{Name: "hello", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if _, err := kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	running := waitRunning(t, kube, pod.Namespace, pod.Name)
	out, err := ec2api.DescribeNetworkInterfaces(ctx, eniByIP(running.Status.PodIP))
	if err != nil || len(out.NetworkInterfaces) != 1 {
		t.Fatalf("pod IP %s not on exactly one ENI in the emulator: %v (err %v)", running.Status.PodIP, out, err)
	}
	// The full story: an opted-in namespace, a pod asking for an address,
	// the webhook's wait container, the binder's association.
	eip := eipPod(t, kube)
	if got := associatedPrivateIP(t, ec2api, eip.Labels[api.LabelPublicIP]); got != eip.Status.PodIP {
		t.Fatalf("address %s is on %q, want the pod's IP %s", eip.Labels[api.LabelPublicIP], got, eip.Status.PodIP)
	}
	nodesBefore := nodeNames(t, kube)
	stop()

	// A second start resumes: same nodes, the pod still there with its IP.
	stop = runStack(t, dir, layout)
	defer stop()
	kube = clientFromKubeconfig(t, filepath.Join(dir, KubeconfigFile))
	if after := nodeNames(t, kube); !slices.Equal(after, nodesBefore) {
		t.Errorf("nodes after restart %v, want the same as before %v", after, nodesBefore)
	}
	again := waitRunning(t, kube, pod.Namespace, pod.Name)
	if again.Status.PodIP != running.Status.PodIP {
		t.Errorf("pod IP changed across restart: %s then %s", running.Status.PodIP, again.Status.PodIP)
	}
	eipAgain := waitRunning(t, kube, eip.Namespace, eip.Name)
	if ip := eipAgain.Labels[api.LabelPublicIP]; ip != eip.Labels[api.LabelPublicIP] || associatedPrivateIP(t, ec2api, ip) != eipAgain.Status.PodIP {
		t.Errorf("after restart the pod has %q, associated with %q; want %s on %s", ip, associatedPrivateIP(t, ec2api, ip), eip.Labels[api.LabelPublicIP], eipAgain.Status.PodIP)
	}
}

// eipPod runs a pod asking for an address in an opted-in namespace and
// returns it once it runs with its address.
func eipPod(t *testing.T, kube kubernetes.Interface) *corev1.Pod {
	t.Helper()
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "eip-demo", Labels: map[string]string{api.LabelInjection: api.InjectionEnabled}}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "relay", Namespace: ns.Name, Annotations: map[string]string{api.AnnotationMode: "auto"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers:                    []corev1.Container{{Name: "relay", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	// The webhook may need a moment to see the new namespace in its cache.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("creating the EIP pod: %v", err)
	}
	p := waitRunning(t, kube, ns.Name, pod.Name)
	if p.Labels[api.LabelPublicIP] == "" {
		t.Fatalf("pod running without its public IP label: %v", p.Labels)
	}
	return p
}

func associatedPrivateIP(t *testing.T, client *ec2.Client, publicIP string) string {
	t.Helper()
	out, err := client.DescribeAddresses(t.Context(), &ec2.DescribeAddressesInput{PublicIps: []string{publicIP}})
	if err != nil || len(out.Addresses) != 1 {
		t.Fatalf("describing %s: %v", publicIP, err)
	}
	return aws.ToString(out.Addresses[0].PrivateIpAddress)
}

// runStack starts Run on dir and waits for its ready file; the returned
// function stops it and waits for Run to return.
func runStack(t *testing.T, dir, layout string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Dir: dir, ImageLayout: layout}) }()
	stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev stack: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("dev stack did not stop within a minute")
		}
	}
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		select {
		case err := <-done:
			t.Fatalf("dev stack exited while starting: %v", err)
		default:
		}
		_, err := os.Stat(filepath.Join(dir, ReadyFile))
		return err == nil, nil
	})
	if err != nil {
		stop()
		t.Fatalf("dev stack not ready: %v", err)
	}
	return stop
}

func clientFromKubeconfig(t *testing.T, path string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// readEnvFile parses the export lines of .dev/env.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening env file: %v", err)
	}
	defer func() { _ = f.Close() }()
	vars := map[string]string{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line, ok := strings.CutPrefix(scanner.Text(), "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		vars[k] = strings.Trim(v, `"`)
	}
	return vars
}

func waitRunning(t *testing.T, kube kubernetes.Interface, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // the API server may still be coming up
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not running with an IP: %v (last %+v)", ns, name, err, pod)
	}
	return pod
}

func nodeNames(t *testing.T, kube kubernetes.Interface) []string {
	t.Helper()
	nodes, err := kube.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing nodes: %v", err)
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names
}
