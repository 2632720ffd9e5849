package stack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/deploy"
)

// A stack runs kube-eip one of two ways, never both at once:
//
//   - process mode (Start): the webhook and the binder are processes on
//     loopback, the webhook registered by URL as WebhookConfigurationName;
//   - product mode (DeployProduct): deploy/'s manifests, pods of the kube-eip
//     image behind the Service deploy.WebhookService, registered as
//     deploy.WebhookConfigurationName.
//
// Both at once would mutate every pod twice and bind it with two binders
// (the processes run without leader election), so DeployProduct refuses
// while the process mode is in place unless told to replace it.

// ProductOptions tunes DeployProduct.
type ProductOptions struct {
	// Image is the kube-eip image the pods run and the webhook injects;
	// empty means Image.
	Image string
	// WebhookReplicas is the webhook Deployment's size; zero keeps the
	// manifests' default (2).
	WebhookReplicas int32
	// ReplaceProcessMode removes the process-mode registration and stops
	// the webhook and binder processes first. RemoveProduct does not bring
	// them back.
	ReplaceProcessMode bool
	// WebhookArgs and BinderArgs are appended to the components' command
	// lines, after the flags the stack's Options give the processes too
	// (wait timeout, claim TTL, the binder's tuning).
	WebhookArgs []string
	BinderArgs  []string
	// Timeout bounds the wait for the Deployments, within ctx's own
	// deadline (default 3 minutes).
	Timeout time.Duration
}

// Product is kube-eip installed in the stack's cluster as pods.
type Product struct {
	Namespace         string
	WebhookDeployment string
	BinderDeployment  string
	WebhookService    string
	// WebhookConfigurationName names both the Mutating and the Validating
	// WebhookConfiguration.
	WebhookConfigurationName string
	// CAPEM verifies the webhook's serving certificate: the configurations'
	// caBundle.
	CAPEM []byte
}

// productFieldManager owns, for server-side apply, what DeployProduct
// applies.
const productFieldManager = "kube-eip-e2e-product"

// defaultProductTimeout leaves room for a cold start of both Deployments
// on 2 shared cores: scheduling, the image's processes, cache syncs and the
// binder's first sweep.
const defaultProductTimeout = 3 * time.Minute

// servingValidity is the webhook certificate's lifetime; a stack that is
// kept reuses it (reusableServingSecret) until its last day.
const servingValidity = 365 * 24 * time.Hour

// DeployProduct installs kube-eip from deploy.Manifests, as an install
// would: the CRDs, roles and admission policies the stack has already
// installed are applied again unchanged, so it does not matter whether
// setUpIdentities ran. It writes the webhook's serving certificate (Secret
// deploy.WebhookTLSSecret, of a CA whose certificate becomes the
// caBundle) and the emulator's credentials (Secret deploy.AWSSecret),
// applies the manifests with server-side apply, and waits until both
// Deployments have all their replicas available. Calling it again
// re-applies and keeps the certificate.
func (s *Stack) DeployProduct(ctx context.Context, o ProductOptions) (*Product, error) {
	if err := s.leaveProcessMode(ctx, o.ReplaceProcessMode); err != nil {
		return nil, err
	}
	ns := Namespace
	// The Secrets need the namespace, and the pods the Secrets: write them
	// before the Deployments exist, so no pod starts without its volume.
	if err := ensure(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, s.Kube.CoreV1().Namespaces()); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	caPEM, err := s.ensureServingSecret(ctx, ns)
	if err != nil {
		return nil, err
	}
	aws := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: deploy.AWSSecret, Namespace: ns},
		Type:       corev1.SecretTypeOpaque,
		Data:       credentialData(s.awsCredentials()),
	}
	if err := ensure(ctx, aws, s.Kube.CoreV1().Secrets(ns)); err != nil {
		return nil, fmt.Errorf("writing Secret %s: %w", deploy.AWSSecret, err)
	}

	image := o.Image
	if image == "" {
		image = Image
	}
	objs, err := deploy.Manifests(deploy.Params{
		Namespace:       ns,
		Image:           image,
		ClusterName:     ClusterName,
		Region:          Region,
		EC2Endpoint:     s.EC2.URL,
		CABundle:        caPEM,
		WebhookReplicas: o.WebhookReplicas,
		WebhookArgs:     append(webhookTuning(s.opts), o.WebhookArgs...),
		BinderArgs:      append(binderTuning(s.opts.Binder), o.BinderArgs...),
	})
	if err != nil {
		return nil, err
	}
	c, err := client.New(s.ControlPlane.RESTConfig(), client.Options{})
	if err != nil {
		return nil, fmt.Errorf("creating a client to apply kube-eip: %w", err)
	}
	for _, u := range objs {
		// Forced: the stack's own setup wrote some of these with updates,
		// and what the manifests say wins.
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(productFieldManager), client.ForceOwnership); err != nil {
			return nil, fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}

	timeout := o.Timeout
	if timeout <= 0 {
		timeout = defaultProductTimeout
	}
	if err := s.waitAvailable(ctx, ns, []string{deploy.WebhookDeployment, deploy.BinderDeployment}, timeout); err != nil {
		return nil, err
	}
	return &Product{
		Namespace:                ns,
		WebhookDeployment:        deploy.WebhookDeployment,
		BinderDeployment:         deploy.BinderDeployment,
		WebhookService:           deploy.WebhookService,
		WebhookConfigurationName: deploy.WebhookConfigurationName,
		CAPEM:                    caPEM,
	}, nil
}

// RemoveProduct uninstalls what DeployProduct added on top of the stack's
// own setup. The webhook configurations go first, so that the API server
// is never left calling a webhook that is gone; then the Deployments,
// waiting until their pods have exited, so that a binder being shut down
// never works beside whatever binds next; then the Service, the budget and
// the Secrets. The namespace, service accounts, roles, CRDs and admission
// policies stay: the stack installed them itself and its security model
// relies on them. Removing what is not there is not an error.
func (s *Stack) RemoveProduct(ctx context.Context) error {
	ns := Namespace
	admission := s.Kube.AdmissionregistrationV1()
	steps := []struct {
		what string
		del  func() error
	}{
		{"MutatingWebhookConfiguration " + deploy.WebhookConfigurationName, func() error {
			return admission.MutatingWebhookConfigurations().Delete(ctx, deploy.WebhookConfigurationName, metav1.DeleteOptions{})
		}},
		{"ValidatingWebhookConfiguration " + deploy.WebhookConfigurationName, func() error {
			return admission.ValidatingWebhookConfigurations().Delete(ctx, deploy.WebhookConfigurationName, metav1.DeleteOptions{})
		}},
		{"Deployment " + deploy.WebhookDeployment, func() error {
			return s.Kube.AppsV1().Deployments(ns).Delete(ctx, deploy.WebhookDeployment, metav1.DeleteOptions{})
		}},
		{"Deployment " + deploy.BinderDeployment, func() error {
			return s.Kube.AppsV1().Deployments(ns).Delete(ctx, deploy.BinderDeployment, metav1.DeleteOptions{})
		}},
		{"the product's pods", func() error { return s.waitPodsGone(ctx, ns) }},
		{"PodDisruptionBudget " + deploy.WebhookDisruptionBudget, func() error {
			return s.Kube.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, deploy.WebhookDisruptionBudget, metav1.DeleteOptions{})
		}},
		{"Service " + deploy.WebhookService, func() error {
			return s.Kube.CoreV1().Services(ns).Delete(ctx, deploy.WebhookService, metav1.DeleteOptions{})
		}},
		{"Secret " + deploy.WebhookTLSSecret, func() error {
			return s.Kube.CoreV1().Secrets(ns).Delete(ctx, deploy.WebhookTLSSecret, metav1.DeleteOptions{})
		}},
		{"Secret " + deploy.AWSSecret, func() error {
			return s.Kube.CoreV1().Secrets(ns).Delete(ctx, deploy.AWSSecret, metav1.DeleteOptions{})
		}},
	}
	for _, step := range steps {
		if err := step.del(); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("removing kube-eip's product install: %s: %w", step.what, err)
		}
	}
	return nil
}

// leaveProcessMode makes sure the process mode is not in place: it
// refuses while it is, or with replace removes its registration (first,
// so that the API server stops calling it) and stops its processes.
func (s *Stack) leaveProcessMode(ctx context.Context, replace bool) error {
	admission := s.Kube.AdmissionregistrationV1()
	_, err := admission.MutatingWebhookConfigurations().Get(ctx, WebhookConfigurationName, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("looking for the process-mode webhook registration: %w", err)
	}
	registered := err == nil
	webhookRunning := s.webhook != nil && !s.webhook.Exited()
	if !registered && !webhookRunning && !s.BinderRunning() {
		return nil
	}
	if !replace {
		return fmt.Errorf("the stack runs kube-eip as processes (webhook registered as %q: %t, webhook running: %t, binder running: %t); "+
			"set ProductOptions.ReplaceProcessMode to replace them with the pods", WebhookConfigurationName, registered, webhookRunning, s.BinderRunning())
	}
	if err := admission.MutatingWebhookConfigurations().Delete(ctx, WebhookConfigurationName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the process-mode webhook registration: %w", err)
	}
	if err := admission.ValidatingWebhookConfigurations().Delete(ctx, WebhookConfigurationName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the process-mode validating webhook registration: %w", err)
	}
	s.StopWebhook()
	s.StopBinder()
	return nil
}

// ensureServingSecret makes sure Secret deploy.WebhookTLSSecret holds a
// serving pair for the webhook's Service and the CA that issued it, and
// returns the CA. A pair already there that is good for a while longer is
// kept: a new one would reach the pods only when their Secret volume is
// refreshed, after the configurations had the new caBundle, and admission
// would fail in between.
func (s *Stack) ensureServingSecret(ctx context.Context, ns string) ([]byte, error) {
	secrets := s.Kube.CoreV1().Secrets(ns)
	existing, err := secrets.Get(ctx, deploy.WebhookTLSSecret, metav1.GetOptions{})
	switch {
	case err == nil && reusableServingSecret(existing, ns, time.Now()):
		return existing.Data[caCertKey], nil
	case err != nil && !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading Secret %s: %w", deploy.WebhookTLSSecret, err)
	}
	secret, err := issueServingSecret(ns)
	if err != nil {
		return nil, err
	}
	if err := ensure(ctx, secret, secrets); err != nil {
		return nil, fmt.Errorf("writing Secret %s: %w", deploy.WebhookTLSSecret, err)
	}
	return secret.Data[caCertKey], nil
}

// caCertKey is where a kubernetes.io/tls Secret keeps its CA, as
// cert-manager writes it.
const caCertKey = "ca.crt"

// servingNames are the names the API server and clients in the cluster
// may dial the webhook's Service by; the API server uses <svc>.<ns>.svc.
func servingNames(ns string) []string {
	svc := deploy.WebhookService
	return []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
}

// issueServingSecret is a kubernetes.io/tls Secret with a serving pair for
// the webhook's Service in ns, of a fresh CA, and that CA.
func issueServingSecret(ns string) (*corev1.Secret, error) {
	ca, err := certs.NewCA("kube-eip-webhook-ca")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue(servingNames(ns), nil, servingValidity)
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: deploy.WebhookTLSSecret, Namespace: ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, caCertKey: ca.CertPEM()},
	}, nil
}

// reusableServingSecret reports whether secret holds a matching serving
// pair, issued by its ca.crt for every one of servingNames(ns), that is
// still valid a day from now.
func reusableServingSecret(secret *corev1.Secret, ns string, now time.Time) bool {
	if secret.Type != corev1.SecretTypeTLS {
		return false
	}
	pair, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil || pair.Leaf == nil {
		return false
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secret.Data[caCertKey]) {
		return false
	}
	for _, name := range servingNames(ns) {
		opts := x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now.Add(24 * time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := pair.Leaf.Verify(opts); err != nil {
			return false
		}
	}
	return true
}

// credentialData is the AWSSecret's data from env (KEY=value): the keys
// the binder's Deployment reads, and no others.
func credentialData(env []string) map[string][]byte {
	data := map[string][]byte{}
	for _, kv := range env {
		key, value, ok := strings.Cut(kv, "=")
		for _, want := range deploy.AWSCredentialKeys {
			if ok && key == want {
				data[key] = []byte(value)
			}
		}
	}
	return data
}

// webhookTuning are the webhook flags the stack's Options set, for the
// process (startWebhook) and the pods alike.
func webhookTuning(o Options) []string {
	var args []string
	if o.WaitTimeout > 0 {
		args = append(args, "--wait-timeout="+o.WaitTimeout.String())
	}
	if o.ClaimTTL > 0 {
		args = append(args, "--claim-ttl="+o.ClaimTTL.String())
	}
	return args
}

// binderTuning are the binder flags o sets, for the process (StartBinder)
// and the pods alike.
func binderTuning(o BinderOptions) []string {
	var args []string
	if o.SweepInterval > 0 {
		args = append(args, "--sweep-interval="+o.SweepInterval.String())
	}
	if o.OrphanGrace > 0 {
		args = append(args, "--orphan-grace="+o.OrphanGrace.String())
	}
	if o.RateScale > 0 {
		args = append(args, fmt.Sprintf("--ec2-rate-scale=%g", o.RateScale))
	}
	if o.Workers > 0 {
		args = append(args, fmt.Sprintf("--workers=%d", o.Workers))
	}
	return append(args, o.ExtraArgs...)
}

// waitAvailable waits until each named Deployment of ns has rolled out
// its current spec and has all its replicas available. On timeout it says
// what the Deployments and their pods were doing.
func (s *Stack) waitAvailable(ctx context.Context, ns string, names []string, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			d, err := s.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				last = fmt.Sprintf("Deployment %s: %v", name, err)
				return false, nil
			}
			if !rolledOut(d) {
				last = describeDeployment(d)
				return false, nil
			}
		}
		return true, nil
	})
	if err == nil {
		return nil
	}
	// ctx may be what ran out: describe the pods with a little time of
	// their own.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return fmt.Errorf("waiting for kube-eip's Deployments in %s (last: %s; pods: %s): %w", ns, last, s.describePods(dctx, ns), err)
}

// rolledOut reports whether d's controller has seen its spec and every
// replica is of it and available, with no old one left.
func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want
}

func describeDeployment(d *appsv1.Deployment) string {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	out := fmt.Sprintf("Deployment %s: %d wanted, %d updated, %d available, %d in all, generation %d observed %d",
		d.Name, want, st.UpdatedReplicas, st.AvailableReplicas, st.Replicas, d.Generation, st.ObservedGeneration)
	for _, c := range st.Conditions {
		if c.Status != corev1.ConditionTrue {
			out += fmt.Sprintf("; %s: %s", c.Type, c.Message)
		}
	}
	return out
}

// describePods says, per pod of the product, its phase and what holds each
// container back: a waiting reason, the last exit, restarts.
func (s *Stack) describePods(ctx context.Context, ns string) string {
	pods, err := s.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: deploy.PodSelector})
	if err != nil {
		return "listing them: " + err.Error()
	}
	if len(pods.Items) == 0 {
		return "none"
	}
	var out []string
	for _, p := range pods.Items {
		line := fmt.Sprintf("%s on %q %s", p.Name, p.Spec.NodeName, p.Status.Phase)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
				line += " unscheduled: " + c.Message
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			line += fmt.Sprintf(" [%s ready=%t restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
			if w := cs.State.Waiting; w != nil {
				line += fmt.Sprintf(" waiting %s: %s", w.Reason, w.Message)
			}
			if t := cs.LastTerminationState.Terminated; t != nil {
				line += fmt.Sprintf(" last exit %d %s: %s", t.ExitCode, t.Reason, t.Message)
			}
			line += "]"
		}
		out = append(out, line)
	}
	return strings.Join(out, "; ")
}

// waitPodsGone waits until no pod of the product is left in ns: deleting
// a Deployment deletes its pods in the background, and their processes
// stop only once the kubelet has ended them.
func (s *Stack) waitPodsGone(ctx context.Context, ns string) error {
	var left int
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := s.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: deploy.PodSelector})
		if err != nil {
			return false, err
		}
		left = len(pods.Items)
		return left == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%d pods still there: %w", left, err)
	}
	return nil
}
