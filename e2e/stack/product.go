package stack

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-eip/kube-eip/deploy"
)

// A stack runs kube-eip one of two ways, never both at once:
//
//   - process mode (Start): the webhook and the binder are processes on
//     loopback, the webhook registered by URL as WebhookConfigurationName;
//   - product mode (DeployProduct): the chart (charts/kube-eip) installed
//     with the pinned Helm, pods of the kube-eip image behind the Service
//     deploy.WebhookService, registered as deploy.WebhookConfigurationName,
//     the certificate from cert-manager by default.
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
	// chart's default (2).
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
	// Values are chart values over the stack's (its cluster name, region,
	// image, emulator and tuning), merged key by key: {"certManager":
	// {"enabled": false}} turns cert-manager off and keeps the rest.
	Values map[string]any
	// Timeout bounds the wait for the Deployments, within ctx's own
	// deadline (default 3 minutes).
	Timeout time.Duration
}

// Product is kube-eip installed in the stack's cluster as pods.
type Product struct {
	Namespace         string
	Release           string
	WebhookDeployment string
	BinderDeployment  string
	WebhookService    string
	// WebhookConfigurationName names both the Mutating and the Validating
	// WebhookConfiguration.
	WebhookConfigurationName string
	// CAPEM verifies the webhook's serving certificate: the configurations'
	// caBundle once the install was ready.
	CAPEM []byte
}

// defaultProductTimeout leaves room for a cold start of both Deployments
// on 2 shared cores: scheduling, the image's processes, the certificate,
// cache syncs and the binder's first sweep.
const defaultProductTimeout = 3 * time.Minute

// DeployProduct installs kube-eip's chart as a user would (helm upgrade
// --install), with the values of ProductValues, and waits until both
// Deployments have all their replicas available and the webhook
// configurations carry a caBundle. The stack's own setup (service
// accounts, roles, admission policies) is taken over by the release
// (--take-ownership). The emulator's credentials are the Secret
// deploy.AWSSecret, written first. Calling it again upgrades the release.
// Helm 4 applies server-side and forces conflicts with the fields the
// stack's setup wrote: what the chart says wins.
func (s *Stack) DeployProduct(ctx context.Context, o ProductOptions) (*Product, error) {
	if err := s.leaveProcessMode(ctx, o.ReplaceProcessMode); err != nil {
		return nil, err
	}
	ns := Namespace
	if err := ensure(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, s.Kube.CoreV1().Namespaces()); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	aws := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: deploy.AWSSecret, Namespace: ns},
		Type:       corev1.SecretTypeOpaque,
		Data:       credentialData(s.awsCredentials()),
	}
	if err := ensure(ctx, aws, s.Kube.CoreV1().Secrets(ns)); err != nil {
		return nil, fmt.Errorf("writing Secret %s: %w", deploy.AWSSecret, err)
	}
	values, err := s.writeValues(Release, s.ProductValues(o))
	if err != nil {
		return nil, err
	}
	chart, err := ChartPath()
	if err != nil {
		return nil, err
	}
	if _, _, err := s.Helm(ctx, "upgrade", "--install", Release, chart, "--namespace", ns, "--take-ownership", "--force-conflicts", "--values", values); err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = defaultProductTimeout
	}
	if err := s.waitAvailable(ctx, ns, []string{deploy.WebhookDeployment, deploy.BinderDeployment}, timeout); err != nil {
		return nil, err
	}
	caPEM, err := s.waitCABundle(ctx, deploy.WebhookConfigurationName, timeout)
	if err != nil {
		return nil, err
	}
	return &Product{
		Namespace:                ns,
		Release:                  Release,
		WebhookDeployment:        deploy.WebhookDeployment,
		BinderDeployment:         deploy.BinderDeployment,
		WebhookService:           deploy.WebhookService,
		WebhookConfigurationName: deploy.WebhookConfigurationName,
		CAPEM:                    caPEM,
	}, nil
}

// ProductValues are the chart values DeployProduct installs with: the
// stack's cluster name and region, its image, the emulator as EC2 and its
// credentials, the stack's tuning, and o.Values over them.
func (s *Stack) ProductValues(o ProductOptions) map[string]any {
	image := o.Image
	if image == "" {
		image = Image
	}
	repo, tag, _ := strings.Cut(image, ":")
	webhook := map[string]any{"extraArgs": append(webhookTuning(s.opts), o.WebhookArgs...)}
	if o.WebhookReplicas > 0 {
		webhook["replicas"] = o.WebhookReplicas
	}
	values := map[string]any{
		"clusterName": ClusterName,
		"region":      Region,
		"image":       map[string]any{"repository": repo, "tag": tag},
		"aws":         map[string]any{"credentialsSecret": deploy.AWSSecret},
		"webhook":     webhook,
		"binder": map[string]any{
			"ec2Endpoint": s.EC2.URL,
			"extraArgs":   append(binderTuning(s.opts.Binder), o.BinderArgs...),
		},
	}
	mergeValues(values, o.Values)
	return values
}

// mergeValues merges over into values, map by map; anything else in over
// replaces what values has.
func mergeValues(values, over map[string]any) {
	for k, v := range over {
		sub, isMap := v.(map[string]any)
		have, hasMap := values[k].(map[string]any)
		if isMap && hasMap {
			mergeValues(have, sub)
			continue
		}
		values[k] = v
	}
}

// waitCABundle waits until every webhook of kube-eip's configurations
// carries the same caBundle (cert-manager's injector, or the self-signed
// source, writes it), and returns it.
func (s *Stack) waitCABundle(ctx context.Context, name string, timeout time.Duration) ([]byte, error) {
	var bundle []byte
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		bundles, err := s.CABundles(ctx, name)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, b := range bundles {
			if len(b) == 0 || !bytes.Equal(b, bundles[0]) {
				last = "a webhook has no caBundle, or not the same as the others"
				return false, nil
			}
		}
		bundle = bundles[0]
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the caBundle of webhook configurations %s (last: %s): %w", name, last, err)
	}
	return bundle, nil
}

// CABundles are the caBundles of every webhook of the Mutating and the
// Validating WebhookConfiguration name, in order.
func (s *Stack) CABundles(ctx context.Context, name string) ([][]byte, error) {
	admission := s.Kube.AdmissionregistrationV1()
	m, err := admission.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	v, err := admission.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var bundles [][]byte
	for _, w := range m.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	for _, w := range v.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	return bundles, nil
}

// RemoveProduct uninstalls the release (helm uninstall, whose pre-delete
// hook lets every pod and address go) and waits until kube-eip's pods
// are gone. Helm takes what the release took over with it; the stack's
// process mode needs Start again after this.
func (s *Stack) RemoveProduct(ctx context.Context) error {
	if _, _, err := s.Helm(ctx, "uninstall", Release, "--namespace", Namespace, "--wait", "--timeout", "5m"); err != nil {
		return fmt.Errorf("removing kube-eip's product install: %w", err)
	}
	return s.waitPodsGone(ctx, Namespace)
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
	if o.ClaimTTL > 0 {
		args = append(args, "--claim-ttl="+o.ClaimTTL.String())
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
