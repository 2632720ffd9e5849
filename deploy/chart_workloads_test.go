package deploy

import (
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kube-eip/kube-eip/api"
)

// podSpecs are the pod templates of every workload of in, hooks included.
func podSpecs(in install) map[string]corev1.PodSpec {
	out := map[string]corev1.PodSpec{}
	for _, d := range all[*appsv1.Deployment](in) {
		out["Deployment "+d.Name] = d.Spec.Template.Spec
	}
	for _, j := range all[*batchv1.Job](in) {
		out["Job "+j.Name] = j.Spec.Template.Spec
	}
	for _, p := range all[*corev1.Pod](in) {
		out["Pod "+p.Name] = p.Spec
	}
	return out
}

// Every container of the chart, hooks' too, meets the Pod Security
// "restricted" profile, as the wait container kube-eip injects does.
func TestChartContainersRunRestricted(t *testing.T) {
	specs := podSpecs(renderChart(t))
	if len(specs) != 4 {
		t.Errorf("%d workloads, want the webhook, the binder, the uninstall Job and the test Pod", len(specs))
	}
	for name, spec := range specs {
		if len(spec.InitContainers) != 0 || len(spec.Containers) != 1 {
			t.Errorf("%s runs %d init and %d containers, want one container", name, len(spec.InitContainers), len(spec.Containers))
		}
		for _, c := range spec.Containers {
			checkRestricted(t, c)
			if sc := c.SecurityContext; sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: container %s has no RuntimeDefault seccomp profile", name, c.Name)
			}
			if c.Image != chartImage(t) || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("%s: container %s runs %s (%s), want %s", name, c.Name, c.Image, c.ImagePullPolicy, chartImage(t))
			}
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			t.Errorf("%s shares the host's namespaces", name)
		}
	}
}

// checkScheduled checks what keeps a component up through a node's or a
// zone's loss: its priority, a soft anti-affinity and a topology spread
// among its own replicas.
func checkScheduled(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("%s has priority class %q, want system-cluster-critical", d.Name, spec.PriorityClassName)
	}
	aff := spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 ||
		len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Fatalf("%s affinity %+v, want one soft anti-affinity term", d.Name, aff)
	}
	term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if term.TopologyKey != corev1.LabelHostname || !selects(t, term.LabelSelector, d) {
		t.Errorf("%s's anti-affinity term %+v, want its own pods by hostname", d.Name, term)
	}
	if len(spec.TopologySpreadConstraints) == 0 {
		t.Errorf("%s has no topology spread constraint", d.Name)
	}
	for _, c := range spec.TopologySpreadConstraints {
		if c.TopologyKey != corev1.LabelTopologyZone || c.WhenUnsatisfiable != corev1.ScheduleAnyway || !selects(t, c.LabelSelector, d) {
			t.Errorf("%s spreads by %+v, want its own pods over zones, softly", d.Name, c)
		}
	}
	if !selects(t, d.Spec.Selector, d) {
		t.Errorf("%s's selector %v does not select its pods %v", d.Name, d.Spec.Selector, d.Spec.Template.Labels)
	}
	// The selector is immutable: only what never changes between versions.
	if !equality.Semantic.DeepEqual(d.Spec.Selector.MatchLabels, Labels(d.Spec.Template.Labels["app.kubernetes.io/component"])) || len(d.Spec.Selector.MatchExpressions) != 0 {
		t.Errorf("%s selects %v, want deploy.Labels", d.Name, d.Spec.Selector)
	}
}

func TestChartWebhookDeployment(t *testing.T) {
	in := renderChart(t)
	d := named[*appsv1.Deployment](t, in, WebhookDeployment)
	if d.Namespace != testNamespace || d.Spec.Template.Spec.ServiceAccountName != WebhookServiceAccount {
		t.Errorf("webhook Deployment in %q as %q, want %q as %q", d.Namespace, d.Spec.Template.Spec.ServiceAccountName, testNamespace, WebhookServiceAccount)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("webhook replicas %v, want 2", d.Spec.Replicas)
	}
	if s := d.Spec.Strategy; s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
		s.RollingUpdate.MaxUnavailable.IntValue() != 0 || s.RollingUpdate.MaxSurge.IntValue() != 1 {
		t.Errorf("webhook strategy %+v, want a surge of one and nothing unavailable", s)
	}
	checkScheduled(t, d)
	c := onlyContainer(t, d)
	if len(c.Args) == 0 || c.Args[0] != "webhook" {
		t.Fatalf("webhook container runs %v", c.Args)
	}
	for name, want := range map[string]string{
		"listen": ":9443", "cert-source": "file", "tls-cert-file": "/etc/kube-eip/tls/tls.crt", "tls-key-file": "/etc/kube-eip/tls/tls.key",
		"wait-image": chartImage(t), "leader-elect": "true", "namespace": testNamespace,
	} {
		if got, _ := flag(c.Args, name); got != want {
			t.Errorf("webhook --%s=%q, want %q", name, got, want)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != WebhookPort {
		t.Fatalf("webhook container ports %+v, want %d", c.Ports, WebhookPort)
	}
	vols := d.Spec.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != WebhookTLSSecret {
		t.Fatalf("webhook volumes %+v, want Secret %s", vols, WebhookTLSSecret)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != vols[0].Name || c.VolumeMounts[0].MountPath != WebhookTLSDir || !c.VolumeMounts[0].ReadOnly {
		t.Errorf("webhook mounts %+v, want volume %s at %s, read-only", c.VolumeMounts, vols[0].Name, WebhookTLSDir)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS || p.HTTPGet.Port.IntValue() != int(WebhookPort) {
			t.Errorf("webhook probe %+v, want HTTPS on %d", p, WebhookPort)
		}
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("webhook termination message policy %q", c.TerminationMessagePolicy)
	}
	if len(c.Env) != 0 {
		t.Errorf("webhook env %+v by default, want none", c.Env)
	}

	pdb := named[*policyv1.PodDisruptionBudget](t, in, WebhookDisruptionBudget)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || !selects(t, pdb.Spec.Selector, d) {
		t.Errorf("PodDisruptionBudget %+v, want minAvailable 1 of the webhook's pods", pdb.Spec)
	}

	svc := named[*corev1.Service](t, in, WebhookService)
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("webhook Service ports %+v", svc.Spec.Ports)
	}
	port := svc.Spec.Ports[0]
	if port.Port != WebhookServicePort || port.TargetPort.IntValue() != int(c.Ports[0].ContainerPort) {
		t.Errorf("the Service sends %d to %s, want %d to the container's %d", port.Port, port.TargetPort.String(), WebhookServicePort, c.Ports[0].ContainerPort)
	}
	sel := &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}
	if !selects(t, sel, d) {
		t.Errorf("the Service's selector %v does not select the webhook's pods", svc.Spec.Selector)
	}
	if selects(t, sel, named[*appsv1.Deployment](t, in, BinderDeployment)) {
		t.Error("the webhook Service selects the binder's pods too")
	}
	// Every webhook is called through that Service, on its port.
	ref := podWebhook(t, in).ClientConfig.Service
	if ref == nil || ref.Namespace != svc.Namespace || ref.Name != svc.Name || ref.Port == nil || *ref.Port != port.Port {
		t.Errorf("the pod webhook is called at %+v, want %s/%s:%d", ref, svc.Namespace, svc.Name, port.Port)
	}
}

// The chart's webhook probes ask for paths its server answers.
func TestChartWebhookProbePathsAreServed(t *testing.T) {
	checkProbesServed(t, onlyContainer(t, named[*appsv1.Deployment](t, renderChart(t), WebhookDeployment)))
}

func TestChartBinderDeployment(t *testing.T) {
	in := renderChart(t)
	d := named[*appsv1.Deployment](t, in, BinderDeployment)
	if d.Namespace != testNamespace || d.Spec.Template.Spec.ServiceAccountName != BinderServiceAccount {
		t.Errorf("binder Deployment in %q as %q, want %q as %q", d.Namespace, d.Spec.Template.Spec.ServiceAccountName, testNamespace, BinderServiceAccount)
	}
	// Two: a standby takes the lease within 15 s when the leader goes,
	// before the VPC CNI hands a freed IP on.
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("binder replicas %v, want 2", d.Spec.Replicas)
	}
	if s := d.Spec.Strategy; s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil || s.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("binder strategy %+v, want a rolling update that keeps a standby", s)
	}
	checkScheduled(t, d)
	c := onlyContainer(t, d)
	if len(c.Args) == 0 || c.Args[0] != "binder" {
		t.Fatalf("binder container runs %v", c.Args)
	}
	for name, want := range map[string]string{
		"cluster-name": "test", "leader-elect": "true", "namespace": testNamespace,
		"health-probe-bind-address": ":8081", "metrics-bind-address": ":8080",
	} {
		if got, _ := flag(c.Args, name); got != want {
			t.Errorf("binder --%s=%q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"region", "ec2-endpoint", "v"} {
		if v, ok := flag(c.Args, name); ok {
			t.Errorf("default rendering sets --%s=%s", name, v)
		}
	}
	health, _ := flag(c.Args, "health-probe-bind-address")
	for probe, path := range map[*corev1.Probe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || ":"+probe.HTTPGet.Port.String() != health {
			t.Errorf("binder probe %+v, want %s on %s", probe, path, health)
		}
	}
	if len(c.Env) != 0 {
		t.Errorf("binder env %+v by default, want none: the SDK finds IRSA's or Pod Identity's", c.Env)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["metrics"] != BinderMetricsPort || ports["health"] != BinderHealthPort {
		t.Errorf("binder ports %+v, want metrics %d and health %d", c.Ports, BinderMetricsPort, BinderHealthPort)
	}
}

// helm uninstall releases the addresses first; helm test dry-runs a pod
// through the webhook in a namespace of its own.
func TestChartHooks(t *testing.T) {
	in := renderChart(t)
	jobs := all[*batchv1.Job](in)
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs, want the uninstall hook", len(jobs))
	}
	job := jobs[0]
	if job.Annotations["helm.sh/hook"] != "pre-delete" || job.Annotations["helm.sh/hook-delete-policy"] != "before-hook-creation,hook-succeeded" {
		t.Errorf("uninstall Job annotations %v", job.Annotations)
	}
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit > 3 || job.Spec.ActiveDeadlineSeconds == nil {
		t.Errorf("uninstall Job retries %v, deadline %v", job.Spec.BackoffLimit, job.Spec.ActiveDeadlineSeconds)
	}
	spec := job.Spec.Template.Spec
	want := []string{"uninstall", "--cluster-name=test", "--namespace=" + testNamespace, "--binder-deployment=" + BinderDeployment}
	if spec.ServiceAccountName != BinderServiceAccount || spec.RestartPolicy != corev1.RestartPolicyNever || !slices.Equal(spec.Containers[0].Args, want) {
		t.Errorf("uninstall runs %q as %s (restart %s), want %q as %s", spec.Containers[0].Args, spec.ServiceAccountName, spec.RestartPolicy, want, BinderServiceAccount)
	}
	if len(all[*batchv1.Job](renderChart(t, "--set", "uninstall.enabled=false"))) != 0 {
		t.Error("uninstall.enabled=false still renders the hook")
	}

	const helmTestNamespace = "kube-eip-helm-test"
	ns := named[*corev1.Namespace](t, in, helmTestNamespace)
	if ns.Labels[api.LabelInjection] != api.InjectionEnabled {
		t.Errorf("test namespace labels %v, want the opt-in", ns.Labels)
	}
	weights := map[string]string{}
	for _, o := range in.objs {
		m := objectMeta(t, o)
		if m.GetAnnotations()["helm.sh/hook"] != "test" {
			continue
		}
		if p := m.GetAnnotations()["helm.sh/hook-delete-policy"]; p != "before-hook-creation,hook-succeeded" {
			t.Errorf("test hook %T %s is deleted on %q", o, m.GetName(), p)
		}
		weights[fmt.Sprintf("%T", o)] = m.GetAnnotations()["helm.sh/hook-weight"]
	}
	if weights["*v1.Namespace"] != "-10" || weights["*v1.ServiceAccount"] != "-5" || weights["*v1.Role"] != "-5" || weights["*v1.RoleBinding"] != "-5" || weights["*v1.Pod"] != "" {
		t.Errorf("test hook weights %v: the namespace first, then its account, then the pod", weights)
	}
	role := named[*rbacv1.Role](t, in, helmTestNamespace)
	if role.Namespace != helmTestNamespace || !equality.Semantic.DeepEqual(role.Rules, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}}) {
		t.Errorf("test Role %s/%s rules %+v, want pods: create", role.Namespace, role.Name, role.Rules)
	}
	pod := named[*corev1.Pod](t, in, helmTestNamespace)
	if pod.Namespace != testNamespace || pod.Spec.ServiceAccountName != helmTestNamespace || pod.Spec.RestartPolicy != corev1.RestartPolicyNever ||
		!slices.Equal(pod.Spec.Containers[0].Args, []string{"selftest", "--namespace=" + helmTestNamespace}) {
		t.Errorf("test Pod %s/%s runs %q as %s", pod.Namespace, pod.Name, pod.Spec.Containers[0].Args, pod.Spec.ServiceAccountName)
	}
}

// Prometheus scrapes the binder through a metrics Service and the webhook
// through its own, over HTTPS verified with the serving CA, only when
// asked to.
func TestChartServiceMonitors(t *testing.T) {
	if n := len(unstructuredOf(renderChart(t), "ServiceMonitor")); n != 0 {
		t.Errorf("%d ServiceMonitors by default", n)
	}
	in := renderChart(t, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=prom")
	svc := named[*corev1.Service](t, in, "kube-eip-binder-metrics")
	binder := named[*appsv1.Deployment](t, in, BinderDeployment)
	if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, binder) || len(svc.Spec.Ports) != 1 ||
		svc.Spec.Ports[0].Port != BinderMetricsPort || svc.Spec.Ports[0].Name != "metrics" {
		t.Errorf("binder metrics Service %+v", svc.Spec)
	}
	monitors := map[string]*unstructured.Unstructured{}
	for _, u := range unstructuredOf(in, "ServiceMonitor") {
		monitors[u.GetName()] = u
		if u.GetLabels()["release"] != "prom" || u.GetAPIVersion() != "monitoring.coreos.com/v1" {
			t.Errorf("ServiceMonitor %s: %s with labels %v", u.GetName(), u.GetAPIVersion(), u.GetLabels())
		}
	}
	for name, want := range map[string]struct{ port, scheme string }{"kube-eip-binder": {"metrics", "http"}, "kube-eip-webhook": {"https", "https"}} {
		m := monitors[name]
		if m == nil {
			t.Fatalf("no ServiceMonitor %s", name)
		}
		endpoints, _, _ := unstructured.NestedSlice(m.Object, "spec", "endpoints")
		if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != want.port || endpoints[0].(map[string]any)["scheme"] != want.scheme {
			t.Errorf("ServiceMonitor %s endpoints %v, want port %s over %s", name, endpoints, want.port, want.scheme)
		}
	}
	server, _, _ := unstructured.NestedString(monitors["kube-eip-webhook"].Object["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any), "tlsConfig", "serverName")
	if server != WebhookService+"."+testNamespace+".svc" {
		t.Errorf("webhook scraped as %q", server)
	}
}
