// Package pods runs kube-eip the way users install it: pods of its image
// from its Helm chart, the webhook behind its Service, reached by the
// API server through the egress proxy, the binder as a Deployment. Its
// stack is its own, since the rest of the suite runs kube-eip as
// processes it can kill and restart.
package pods

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/deploy"
	"github.com/kube-eip/kube-eip/e2e/egress"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/e2e/testmain"
)

var (
	env  *stack.Stack
	kube kubernetes.Interface
	// refusalLines are the egress proxy's log lines of refusals.
	refusalLines lines
)

type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, s)
}

func (l *lines) matching(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.all {
		if strings.Contains(s, sub) {
			out = append(out, s)
		}
	}
	return out
}

func TestMain(m *testing.M) {
	log := funcr.New(func(prefix, args string) {
		if strings.Contains(prefix, "egress") && strings.Contains(args, "refused") {
			refusalLines.add(args)
		}
		if testing.Verbose() {
			fmt.Fprintln(os.Stderr, prefix, args)
		}
	}, funcr.Options{})
	start := func(ctx context.Context) (*stack.Stack, error) {
		return stack.Start(ctx, stack.Options{Pods: true, Nodes: 2, Audit: true, Log: log})
	}
	os.Exit(testmain.Run(m, start, func(s *stack.Stack) error {
		env, kube = s, s.Kube
		return nil
	}))
}

// optedIn makes a namespace labelled for kube-eip.
func optedIn(t *testing.T) string {
	t.Helper()
	ns, err := kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "pods-", Labels: map[string]string{api.LabelInjection: api.InjectionEnabled},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	if err := env.ControlPlane.WaitForServiceAccount(t.Context(), ns.Name); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

const relayManifest = `apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  annotations:
    kube-eip.io/mode: auto
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: relay
    image: registry.k8s.io/pause:3.10
`

// applyRelay applies, with kubectl, a pod asking for an address. The
// webhook may need a moment to see a new namespace.
func applyRelay(t *testing.T, ns, name string) {
	t.Helper()
	testmain.Eventually(t, 30*time.Second, "kubectl apply of "+name, func(ctx context.Context) (bool, string, error) {
		_, stderr, err := env.Kubectl(ctx, fmt.Sprintf(relayManifest, name, ns), "apply", "-f", "-")
		return err == nil, stderr, nil
	})
}

func waitPod(t *testing.T, ns, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	testmain.Eventually(t, 2*time.Minute, name+" "+what, func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		pod = p
		return cond(p), fmt.Sprintf("phase %s, labels %v, init %v, containers %v", p.Status.Phase, p.Labels, p.Status.InitContainerStatuses, p.Status.ContainerStatuses), nil
	})
	return pod
}

func hasWait(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == api.WaitContainerName })
}

// The README's walkthrough, against kube-eip as pods: kubectl apply of a
// pod asking for an address is mutated by a webhook replica behind the
// Service (the API server reached it through the proxy), and the binder
// pod gives the pod its address. With one replica deleted, admission goes
// on.
func TestTheProductAsPodsServesTheWalkthrough(t *testing.T) {
	ns := optedIn(t)
	applyRelay(t, ns, "relay")
	pod := waitPod(t, ns, "relay", "running with its address", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && p.Labels[api.LabelPublicIP] != ""
	})
	if !hasWait(pod) {
		t.Fatalf("the pod was not mutated: init containers %v", pod.Spec.InitContainers)
	}
	// The API server keeps its connection to the webhook; one is enough.
	if n := env.Egress.Stats().Accepted[egress.KindService]; n == 0 {
		t.Error("the proxy carried no Service connection: the webhook was not reached through its Service")
	}

	webhooks, err := kube.CoreV1().Pods(deploy.Namespace).List(t.Context(), metav1.ListOptions{LabelSelector: labels.SelectorFromSet(deploy.Labels("webhook")).String()})
	if err != nil || len(webhooks.Items) != 2 {
		t.Fatalf("webhook pods: %v, %v; want 2", webhooks, err)
	}
	if err := kube.CoreV1().Pods(deploy.Namespace).Delete(t.Context(), webhooks.Items[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Right away, while the deleted replica goes: the other one answers.
	for i := range 3 {
		name := fmt.Sprintf("relay-%d", i)
		applyRelay(t, ns, name)
		if p := waitPod(t, ns, name, "created", func(*corev1.Pod) bool { return true }); !hasWait(p) {
			t.Errorf("%s was admitted without the webhook's mutation", name)
		}
	}
	waitPod(t, ns, "relay-2", "running with its address", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && p.Labels[api.LabelPublicIP] != ""
	})

	// kubectl logs of the product's pods and of the injected container.
	out, stderr, err := env.Kubectl(t.Context(), "", "-n", deploy.Namespace, "logs", "deploy/"+deploy.BinderDeployment)
	if err != nil || !strings.Contains(out, "\"") {
		t.Errorf("kubectl logs deploy/%s: %v %s\n%s", deploy.BinderDeployment, err, stderr, out)
	}
	// It says it waits, or, when the address was there first, that it is
	// attached; the kubelet may still be writing the log a moment.
	testmain.Eventually(t, 30*time.Second, "kubectl logs relay -c "+api.WaitContainerName, func(ctx context.Context) (bool, string, error) {
		out, stderr, err := env.Kubectl(ctx, "", "-n", ns, "logs", "relay", "-c", api.WaitContainerName)
		ok := err == nil && (strings.Contains(out, "waiting for the Elastic IP label") || strings.Contains(out, "attached"))
		return ok, fmt.Sprintf("%v %s\n%s", err, stderr, out), nil
	})
}

// A container of the image whose liveness probe fails is restarted, and
// kubectl logs --previous shows what its first run printed.
func TestLivenessRestartsAndPreviousLogs(t *testing.T) {
	ctx := t.Context()
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "liveness-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "waiter", Namespace: ns.Name},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](2),
			Volumes: []corev1.Volume{{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
				Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
			}}}},
			Containers: []corev1.Container{{
				Name:         "wait",
				Image:        stack.Image,
				Args:         []string{"wait", "--labels-file=/etc/podinfo/labels", "--label=never-set"},
				VolumeMounts: []corev1.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo"}},
				// Nothing listens on 9: the probe fails from the start.
				LivenessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9)}},
					PeriodSeconds: 1, FailureThreshold: 2, InitialDelaySeconds: 1,
				},
			}},
		},
	}
	if _, err := kube.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, ns.Name, pod.Name, "restarted by its liveness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	out, stderr, err := env.Kubectl(ctx, "", "-n", ns.Name, "logs", pod.Name, "--previous")
	if err != nil || !strings.Contains(out, "waiting for the Elastic IP label") {
		t.Errorf("kubectl logs --previous: %v %s\n%s", err, stderr, out)
	}
	events, err := kube.CoreV1().Events(ns.Name).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
	if err != nil || !slices.ContainsFunc(events.Items, func(e corev1.Event) bool { return e.Reason == "Killing" && strings.Contains(e.Message, "liveness") }) {
		t.Errorf("no Killing event for the liveness probe: %v", err)
	}
}

// A webhook whose Service has no endpoints, and one whose URL names a
// ClusterIP no Service holds: the API server asks the proxy for both, and
// the proxy refuses both, logs them and counts them. Nothing is dialled.
func TestTheProxyRefusesWhatItCannotMapToLoopback(t *testing.T) {
	ctx := t.Context()
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "refused-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	svc, err := kube.CoreV1().Services(ns.Name).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "nobody"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "nobody"}, Ports: []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromInt32(9443)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stray := strayClusterIP(t)
	cases := []struct {
		name   string
		config admissionregistrationv1.WebhookClientConfig
		reason string
		dest   string
	}{
		{"no-endpoints", admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns.Name, Name: svc.Name, Port: ptr.To[int32](443), Path: ptr.To("/x")}},
			egress.ReasonNoEndpoints, net.JoinHostPort(svc.Spec.ClusterIP, "443")},
		{"stray-ip", admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://" + net.JoinHostPort(stray, "443") + "/x")},
			egress.ReasonUnknownClusterIP, net.JoinHostPort(stray, "443")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := env.Egress.Stats().Refused[c.reason]
			cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
				ObjectMeta: metav1.ObjectMeta{Name: "refused-" + c.name + "-" + ns.Name},
				Webhooks: []admissionregistrationv1.ValidatingWebhook{{
					Name:                    c.name + ".refused.kube-eip.io",
					ClientConfig:            c.config,
					Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
					NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns.Name}},
					ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"refused": c.name}},
					FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
					SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
					AdmissionReviewVersions: []string{"v1"},
					TimeoutSeconds:          ptr.To[int32](5),
				}},
			}
			if _, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
			})
			// The API server picks a new configuration up within a second
			// or so; until then the create passes, and is tried again.
			testmain.Eventually(t, 30*time.Second, "the create to be refused through the proxy", func(ctx context.Context) (bool, string, error) {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "cm-", Labels: map[string]string{"refused": c.name}}}
				_, err := kube.CoreV1().ConfigMaps(ns.Name).Create(ctx, cm, metav1.CreateOptions{})
				if err == nil {
					return false, "created", nil
				}
				return strings.Contains(err.Error(), c.reason), err.Error(), nil
			})
			if after := env.Egress.Stats().Refused[c.reason]; after <= before {
				t.Errorf("refused %s: %d before, %d after", c.reason, before, after)
			}
			refusals := env.Egress.Refusals()
			if !slices.ContainsFunc(refusals, func(r egress.Refusal) bool { return r.Destination == c.dest && r.Reason == c.reason }) {
				t.Errorf("no refusal of %s for %s among %v", c.dest, c.reason, refusals)
			}
			if len(refusalLines.matching(c.dest)) == 0 {
				t.Errorf("the proxy logged no refusal of %s", c.dest)
			}
		})
	}
	if got := env.Egress.Stats().Refused[egress.ReasonUnmapped]; got != 0 {
		t.Logf("the proxy also refused %d unmapped destinations: %v", got, env.Egress.Refusals())
	}
}

// strayClusterIP is an address of the Service range that no Service has.
func strayClusterIP(t *testing.T) string {
	t.Helper()
	svcs, err := kube.CoreV1().Services("").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 250; i > 0; i-- {
		ip := fmt.Sprintf("10.96.251.%d", i)
		if !slices.ContainsFunc(svcs.Items, func(s corev1.Service) bool { return s.Spec.ClusterIP == ip }) {
			return ip
		}
	}
	t.Fatal("no free address in 10.96.251.0/24")
	return ""
}
