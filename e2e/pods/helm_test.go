package pods

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/deploy"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/e2e/testmain"
)

// The install's life as a platform team lives it, in order: helm install
// with cert-manager (the stack's own, with default values), helm test, a
// bound pod, cert-manager's rotation, helm upgrade, values the schema
// refuses, helm uninstall with bound pods, an install without cert-manager
// and its forced rotation, and uninstall again. It ends with the default
// install back in place, for whatever test runs next.
func TestHelmInstallUpgradeAndUninstall(t *testing.T) {
	ctx := t.Context()
	t.Cleanup(func() {
		// Whatever happened, leave the default install for the next test.
		if _, err := env.DeployProduct(context.WithoutCancel(ctx), stack.ProductOptions{}); err != nil {
			t.Errorf("reinstalling the default release: %v", err)
		}
	})

	ns := optedIn(t)
	var bound *corev1.Pod
	t.Run("with cert-manager", func(t *testing.T) {
		certificateReady(t, deploy.WebhookService)
		caBundleIs(t, secretCA(t))
		productPodsRunAsThemselves(t)
		helmTest(t)
		applyRelay(t, ns, "held")
		bound = waitBound(t, ns, "held")
	})
	if bound == nil {
		t.FailNow()
	}

	t.Run("cert-manager rotates", func(t *testing.T) {
		before := servedSerials(t)
		if err := kube.CoreV1().Secrets(deploy.Namespace).Delete(ctx, deploy.WebhookTLSSecret, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitNewServingCertificate(t, before)
		admits(t, ns, "after-cert-manager-rotation")
	})

	t.Run("upgrade keeps addresses", func(t *testing.T) {
		pool, nodesBefore := nodePoolBound(t)
		defer removeNodePool(t, pool)
		webhooksBefore := podNames(t, "webhook")
		binderBefore := podNames(t, "binder")
		if _, err := env.DeployProduct(ctx, stack.ProductOptions{Values: map[string]any{"logLevel": 1}}); err != nil {
			t.Fatal(err)
		}
		if now := podNames(t, "webhook"); slices.ContainsFunc(now, func(n string) bool { return slices.Contains(webhooksBefore, n) }) {
			t.Errorf("webhook pods %v were not rolled (before: %v)", now, webhooksBefore)
		}
		if now := podNames(t, "binder"); slices.ContainsFunc(now, func(n string) bool { return slices.Contains(binderBefore, n) }) {
			t.Errorf("binder pods %v were not rolled (before: %v)", now, binderBefore)
		}
		for _, p := range productPods(t, "binder") {
			if !slices.Contains(p.Spec.Containers[0].Args, "-v=1") {
				t.Errorf("binder pod %s runs %v: the upgrade's logLevel did not reach it", p.Name, p.Spec.Containers[0].Args)
			}
		}
		// A sweep or two of the new binder later, the address is where it was.
		now := waitBound(t, ns, "held")
		if got, want := now.Labels[api.LabelPublicIP], bound.Labels[api.LabelPublicIP]; got != want {
			t.Errorf("the upgrade moved held from %s to %s", want, got)
		}
		addressOn(t, bound.Labels[api.LabelPublicIP], now.Status.PodIP)
		// And no node's address moved: the new binder read the holders
		// back from the addresses' tags.
		if got := heldByNodes(); !maps.Equal(got, nodesBefore) {
			t.Errorf("the upgrade moved node addresses: before %v, after %v", nodesBefore, got)
		}
	})

	t.Run("bad values fail with the schema's message", func(t *testing.T) {
		chart, err := stack.ChartPath()
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range []struct {
			name string
			helm func(context.Context, ...string) (string, string, error)
		}{{"helm 4", env.Helm}, {"helm 3", env.Helm3}} {
			_, _, err := run.helm(ctx, "install", "bad-values", chart, "--namespace", deploy.Namespace,
				"--set", "clusterName=e2e", "--set", "webhook.failurePolicy=Sometimes")
			if err == nil {
				t.Fatalf("%s installed failurePolicy Sometimes", run.name)
			}
			for _, want := range []string{"values don't meet the specifications of the schema", "/webhook/failurePolicy", "Fail", "Ignore"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s's refusal does not say %q:\n%v", run.name, want, err)
				}
			}
		}
		if _, _, err := env.Helm(ctx, "status", "bad-values", "--namespace", deploy.Namespace); err == nil {
			t.Error("a release bad-values exists after the refusal")
		}
	})

	t.Run("uninstall with bound pods", func(t *testing.T) {
		uninstallLeavesNothing(t, ns, "held")
	})

	t.Run("without cert-manager", func(t *testing.T) {
		if _, err := env.DeployProduct(ctx, stack.ProductOptions{Values: map[string]any{"certManager": map[string]any{"enabled": false}}}); err != nil {
			t.Fatal(err)
		}
		if n := certificates(t); n != 0 {
			t.Errorf("%d cert-manager Certificates with certManager.enabled=false", n)
		}
		caBundleIs(t, selfSignedCA(t))
		helmTest(t)
		applyRelay(t, ns, "self-signed")
		waitBound(t, ns, "self-signed")

		before := servedSerials(t)
		secret, err := kube.CoreV1().Secrets(deploy.Namespace).Get(ctx, deploy.SelfSignedSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		metav1.SetMetaDataAnnotation(&secret.ObjectMeta, api.Prefix+"rotate", time.Now().UTC().Format(time.RFC3339))
		if _, err := kube.CoreV1().Secrets(deploy.Namespace).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitNewServingCertificate(t, before)
		admits(t, ns, "after-forced-rotation")

		// Deleting the Secret, too, only leads to a new one.
		before = servedSerials(t)
		if err := kube.CoreV1().Secrets(deploy.Namespace).Delete(ctx, deploy.SelfSignedSecret, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitNewServingCertificate(t, before)
		admits(t, ns, "after-deleted-secret")
		uninstallLeavesNothing(t, ns, "self-signed")
	})
}

// waitBound waits until the pod runs with its address, and returns it.
func waitBound(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	return waitPod(t, ns, name, "running with its address", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && p.Labels[api.LabelPublicIP] != ""
	})
}

// admits checks that a new annotated pod is mutated, that is that the API
// server trusts the certificate the webhook serves.
func admits(t *testing.T, ns, name string) {
	t.Helper()
	applyRelay(t, ns, name)
	if p := waitPod(t, ns, name, "created", func(*corev1.Pod) bool { return true }); !hasWait(p) {
		t.Errorf("%s was admitted without the webhook's mutation", name)
	}
}

// helmTest runs helm test on the release: the chart's test pod dry-runs a
// pod that kube-eip's webhook must answer.
func helmTest(t *testing.T) {
	t.Helper()
	out, _, err := env.Helm(t.Context(), "test", stack.Release, "--namespace", deploy.Namespace, "--timeout", "3m", "--logs")
	if err != nil {
		t.Fatalf("helm test: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Succeeded") || !strings.Contains(out, "kube-eip's webhook answered") {
		t.Errorf("helm test did not report the webhook's answer:\n%s", out)
	}
}

var certificateResource = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}

func dynamicClient(t *testing.T) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(env.ControlPlane.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// certificateReady checks that cert-manager's Certificate of the webhook
// is Ready.
func certificateReady(t *testing.T, name string) {
	t.Helper()
	testmain.Eventually(t, 2*time.Minute, "Certificate "+name+" Ready", func(ctx context.Context) (bool, string, error) {
		c, err := dynamicClient(t).Resource(certificateResource).Namespace(deploy.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		conditions, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
		for _, c := range conditions {
			m, _ := c.(map[string]any)
			if m["type"] == "Ready" && m["status"] == "True" {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("conditions %v", conditions), nil
	})
}

// certificates counts cert-manager's Certificates in kube-eip's namespace.
func certificates(t *testing.T) int {
	t.Helper()
	list, err := dynamicClient(t).Resource(certificateResource).Namespace(deploy.Namespace).List(t.Context(), metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// secretCA is the CA cert-manager put beside the serving pair.
func secretCA(t *testing.T) []byte {
	t.Helper()
	s, err := kube.CoreV1().Secrets(deploy.Namespace).Get(t.Context(), deploy.WebhookTLSSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Data["ca.crt"]) == 0 {
		t.Fatalf("Secret %s has no ca.crt", s.Name)
	}
	return s.Data["ca.crt"]
}

// selfSignedCA is the CA of the serving certificate the self-signed source
// wrote, as the webhook serves it: what the bundle must contain.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	var ca []byte
	testmain.Eventually(t, time.Minute, "the self-signed source's Secret", func(ctx context.Context) (bool, string, error) {
		s, err := kube.CoreV1().Secrets(deploy.Namespace).Get(ctx, deploy.SelfSignedSecret, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		ca = s.Data["ca.crt"]
		return len(ca) > 0, fmt.Sprintf("keys %v", keys(s.Data)), nil
	})
	return ca
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// caBundleIs checks that every kube-eip webhook trusts ca (injected by
// cert-manager's cainjector, or patched by the self-signed source).
func caBundleIs(t *testing.T, ca []byte) {
	t.Helper()
	want := x509.NewCertPool()
	if !want.AppendCertsFromPEM(ca) {
		t.Fatalf("no certificate in %q", ca)
	}
	testmain.Eventually(t, time.Minute, "the caBundle to hold the serving CA", func(ctx context.Context) (bool, string, error) {
		bundles, err := env.CABundles(ctx, deploy.WebhookConfigurationName)
		if err != nil {
			return false, err.Error(), nil
		}
		for i, b := range bundles {
			if !strings.Contains(string(b), strings.TrimSpace(string(ca))) {
				return false, fmt.Sprintf("webhook %d's caBundle lacks the CA", i), nil
			}
		}
		return true, "", nil
	})
}

// productPods are the running pods of one of kube-eip's components.
func productPods(t *testing.T, component string) []corev1.Pod {
	t.Helper()
	list, err := kube.CoreV1().Pods(deploy.Namespace).List(t.Context(), metav1.ListOptions{LabelSelector: labels.SelectorFromSet(deploy.Labels(component)).String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func podNames(t *testing.T, component string) []string {
	t.Helper()
	var names []string
	for _, p := range productPods(t, component) {
		names = append(names, p.Name)
	}
	return names
}

// productPodsRunAsThemselves checks that both Deployments run the kube-eip
// image under their own service accounts, two replicas each.
func productPodsRunAsThemselves(t *testing.T) {
	t.Helper()
	for component, sa := range map[string]string{"webhook": deploy.WebhookServiceAccount, "binder": deploy.BinderServiceAccount} {
		pods := productPods(t, component)
		if len(pods) != 2 {
			t.Errorf("%d %s pods, want 2", len(pods), component)
		}
		for _, p := range pods {
			if p.Spec.ServiceAccountName != sa || p.Spec.Containers[0].Image != stack.Image {
				t.Errorf("%s pod %s runs %s as %s, want %s as %s", component, p.Name, p.Spec.Containers[0].Image, p.Spec.ServiceAccountName, stack.Image, sa)
			}
		}
	}
}

// servedSerials dials every webhook pod and returns the serial of the
// certificate each serves, by pod; a pod that is not serving yet is left
// out.
func servedSerials(t *testing.T) map[string]*big.Int {
	t.Helper()
	out := map[string]*big.Int{}
	for _, p := range productPods(t, "webhook") {
		if p.Status.PodIP == "" {
			continue
		}
		if serial, err := servedSerial(t.Context(), p.Status.PodIP); err == nil {
			out[p.Name] = serial
		}
	}
	if len(out) == 0 {
		t.Fatal("no webhook pod serves a certificate")
	}
	return out
}

func servedSerial(ctx context.Context, podIP string) (*big.Int, error) {
	conn, err := env.Nodes.DialPod(ctx, podIP, int(deploy.WebhookPort))
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	//nolint:gosec // the serial is what is read here; trust is the API server's to check (admits)
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// waitNewServingCertificate waits until every webhook pod of before serves
// a certificate of another serial, without a restart.
func waitNewServingCertificate(t *testing.T, before map[string]*big.Int) {
	t.Helper()
	for name, old := range before {
		p, err := kube.CoreV1().Pods(deploy.Namespace).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		testmain.Eventually(t, 2*time.Minute, name+" to serve a new certificate", func(ctx context.Context) (bool, string, error) {
			serial, err := servedSerial(ctx, p.Status.PodIP)
			if err != nil {
				return false, err.Error(), nil
			}
			return serial.Cmp(old) != 0, "still serial " + old.String(), nil
		})
		now, err := kube.CoreV1().Pods(deploy.Namespace).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := now.Status.ContainerStatuses[0].RestartCount; n != 0 {
			t.Errorf("%s restarted %d times for the rotation", name, n)
		}
	}
}

// addressOn checks in the emulator that publicIP is associated with
// privateIP.
func addressOn(t *testing.T, publicIP, privateIP string) {
	t.Helper()
	out, err := env.EC2Client.DescribeAddresses(t.Context(), &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{{Name: aws.String("public-ip"), Values: []string{publicIP}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Addresses) != 1 || aws.ToString(out.Addresses[0].PrivateIpAddress) != privateIP {
		t.Errorf("address %s in EC2: %+v, want it on %s", publicIP, out.Addresses, privateIP)
	}
}

// uninstallLeavesNothing runs helm uninstall with the bound pod name in
// ns, and checks that no address of the cluster's is left in EC2, the pod
// runs on without kube-eip's finalizer or address label, and a delete of
// it is not held.
func uninstallLeavesNothing(t *testing.T, ns, name string) {
	t.Helper()
	ctx := t.Context()
	if err := env.RemoveProduct(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := env.EC2Client.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:" + api.TagCluster), Values: []string{stack.ClusterName}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range out.Addresses {
		if a.AssociationId != nil || hasTag(a.Tags, api.TagClaim) {
			t.Errorf("address %s (%s) left behind: associated %q, tags %v", aws.ToString(a.PublicIp), aws.ToString(a.AllocationId), aws.ToString(a.PrivateIpAddress), a.Tags)
		}
	}
	p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(p.Finalizers, api.FinalizerRelease) || p.Labels[api.LabelPublicIP] != "" {
		t.Errorf("pod %s after uninstall: finalizers %v, labels %v", name, p.Finalizers, p.Labels)
	}
	if err := kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testmain.Eventually(t, time.Minute, name+" to go", func(ctx context.Context) (bool, string, error) {
		_, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err), nil
	})
}

func hasTag(tags []ec2types.Tag, key string) bool {
	return slices.ContainsFunc(tags, func(tag ec2types.Tag) bool { return aws.ToString(tag.Key) == key })
}
