package deploy

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	"github.com/kube-eip/kube-eip/webhook"
)

// Names of what the manifests install beside the service accounts and the
// roles. The webhook configurations are named apart from the local stack's
// process-mode registration ("kube-eip", by URL), so that installing the
// pods never overwrites it by accident.
const (
	WebhookDeployment        = "kube-eip-webhook"
	BinderDeployment         = "kube-eip-binder"
	WebhookService           = "kube-eip-webhook"
	WebhookDisruptionBudget  = "kube-eip-webhook"
	WebhookConfigurationName = "kube-eip-webhook"
	// WebhookTLSSecret holds the webhook's serving certificate (type
	// kubernetes.io/tls), for WebhookService's DNS names.
	WebhookTLSSecret = "kube-eip-webhook-tls" //nolint:gosec // a Secret's name, not a credential
	// AWSSecret holds the binder's AWS credentials, under the keys of
	// AWSCredentialKeys; it is optional, for clusters without IRSA or EKS
	// Pod Identity.
	AWSSecret = "kube-eip-aws" //nolint:gosec // a Secret's name, not a credential
	// DefaultImage is the image the Dockerfile builds.
	DefaultImage = "ghcr.io/kube-eip/kube-eip:dev"
	// DefaultWebhookReplicas keeps admission up through a node's loss or a
	// rollout: the webhook fails closed for pods that ask for an address.
	DefaultWebhookReplicas int32 = 2
)

// AWSCredentialKeys are the keys of AWSSecret the binder reads, each into
// the environment variable of the same name the AWS SDK looks for.
var AWSCredentialKeys = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}

// Ports and paths inside the pods.
const (
	WebhookPort        int32 = 9443
	WebhookServicePort int32 = 443
	BinderHealthPort   int32 = 8081
	BinderMetricsPort  int32 = 8080
	// WebhookTLSDir is where WebhookTLSSecret is mounted.
	WebhookTLSDir = "/etc/kube-eip/tls"
	// nonRootUID is the image's user (distroless "nonroot"), the one the
	// injected wait container runs as too.
	nonRootUID int64 = 65532
)

// Params are what differs from one install to another. The zero value
// renders the checked-in deploy/manifests/kube-eip.yaml.
type Params struct {
	// Namespace is kube-eip's own (default Namespace).
	Namespace string
	// Image runs both components and is what the webhook injects as the
	// wait container (default DefaultImage).
	Image string
	// ClusterName is the binder's --cluster-name, tagged on every address
	// it owns. Empty renders no flag, and the binder refuses to start: a
	// default name shared by two clusters of one account would let each
	// sweep release the other's addresses.
	ClusterName string
	// Region is the binder's --region; empty leaves it to the AWS SDK's
	// environment (AWS_REGION, which IRSA and Pod Identity set).
	Region string
	// EC2Endpoint is the binder's --ec2-endpoint; empty is EC2's own.
	EC2Endpoint string
	// CABundle verifies the webhook's serving certificate. Empty leaves the
	// webhook configurations without one, for cert-manager's CA injector to
	// fill in.
	CABundle []byte
	// WebhookReplicas is the webhook Deployment's size (default
	// DefaultWebhookReplicas). The binder always runs one replica: only the
	// leader sweeps EC2, and readiness is its first sweep, so a standby
	// would never be ready.
	WebhookReplicas int32
	// WebhookArgs and BinderArgs are appended to the components' command
	// lines (tuning flags such as --claim-ttl or --sweep-interval).
	WebhookArgs []string
	BinderArgs  []string
}

// withDefaults fills in p's defaults and checks what the API server would
// otherwise refuse only halfway through an apply.
func (p Params) withDefaults() (Params, error) {
	if p.Namespace == "" {
		p.Namespace = Namespace
	}
	if p.Image == "" {
		p.Image = DefaultImage
	}
	if p.WebhookReplicas == 0 {
		p.WebhookReplicas = DefaultWebhookReplicas
	}
	if errs := validation.IsDNS1123Label(p.Namespace); len(errs) > 0 {
		return p, fmt.Errorf("namespace %q: %s", p.Namespace, strings.Join(errs, "; "))
	}
	if p.WebhookReplicas < 0 {
		return p, fmt.Errorf("webhook replicas %d is negative", p.WebhookReplicas)
	}
	if strings.ContainsAny(p.Image, " \t\n") {
		return p, fmt.Errorf("image %q contains white space", p.Image)
	}
	if p.EC2Endpoint != "" {
		if u, err := url.Parse(p.EC2Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			return p, fmt.Errorf("EC2 endpoint %q is not an absolute URL", p.EC2Endpoint)
		}
	}
	return p, nil
}

// Manifests renders kube-eip's install as pods, in the order to apply it:
// CRDs, namespace, service accounts, the roles of deploy/rbac and their
// bindings, the webhook's Service, Deployment and PodDisruptionBudget,
// the binder's Deployment, the admission policies, and last the webhook
// configurations, so that the API server calls the webhook only once
// everything it serves from exists. The serving certificate (Secret
// WebhookTLSSecret) and the optional AWS credentials (Secret AWSSecret)
// are not rendered: they are the installer's, or cert-manager's.
func Manifests(p Params) ([]*unstructured.Unstructured, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("rendering kube-eip's manifests: %w", err)
	}
	crds, err := CRDs()
	if err != nil {
		return nil, err
	}
	var objs []runtime.Object
	for _, crd := range crds {
		objs = append(objs, crd)
	}
	objs = append(objs,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.Namespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: WebhookServiceAccount, Namespace: p.Namespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: BinderServiceAccount, Namespace: p.Namespace}},
	)
	for _, c := range []struct{ component, serviceAccount string }{{"webhook", WebhookServiceAccount}, {"binder", BinderServiceAccount}} {
		rbac, err := roleObjects(c.component, c.serviceAccount, p.Namespace)
		if err != nil {
			return nil, err
		}
		objs = append(objs, rbac...)
	}
	objs = append(objs, webhookServiceObject(p), webhookDeployment(p))
	if p.WebhookReplicas > 1 {
		// With one replica a budget of one would block every node drain.
		objs = append(objs, webhookDisruptionBudget(p))
	}
	objs = append(objs, binderDeployment(p))
	policies, bindings := webhook.AdmissionPolicies(Identities(p.Namespace))
	for i := range policies {
		objs = append(objs, policies[i], bindings[i])
	}
	reg := registration(p)
	objs = append(objs, webhook.Configuration(reg), webhook.ValidatingConfiguration(reg))

	scheme, err := manifestScheme()
	if err != nil {
		return nil, err
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		u, err := toUnstructured(scheme, obj)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// ManifestYAML is Manifests(p) as one multi-document YAML file, headed by
// what an installer must still provide.
func ManifestYAML(p Params) ([]byte, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("rendering kube-eip's manifests: %w", err)
	}
	objs, err := Manifests(p)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteString(`# kube-eip installed as pods in namespace ` + p.Namespace + `: CRDs, service
# accounts and the roles of deploy/rbac, the webhook and the binder, the
# admission policies and the webhook configurations.
# Generated by make generate from deploy.Manifests; do not edit, but
# before kubectl apply -f of a copy:
`)
	if p.ClusterName == "" {
		out.WriteString(`# - give the binder --cluster-name=<your cluster> (it refuses to start
#   without one: the name tags every address it owns);
`)
	}
	if len(p.CABundle) == 0 {
		out.WriteString(`# - the webhook configurations have no caBundle yet: cert-manager's CA
#   injector fills it in (the next step of the install); until then set it
#   to the CA of the webhook's certificate;
`)
	}
	out.WriteString(`# - create Secret ` + WebhookTLSSecret + ` (type kubernetes.io/tls) with a serving
#   certificate for ` + WebhookService + `.` + p.Namespace + `.svc, which the webhook
#   reloads when it changes;
# - the binder's AWS credentials come from its service account's IAM role
#   (IRSA or EKS Pod Identity, with deploy/iam-policy.json), or else from
#   Secret ` + AWSSecret + ` (keys ` + strings.Join(AWSCredentialKeys, ", ") + `).
`)
	for _, u := range objs {
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("writing %s %s as YAML: %w", u.GetKind(), u.GetName(), err)
		}
		out.WriteString("---\n")
		out.Write(data)
	}
	return out.Bytes(), nil
}

// manifestScheme knows every kind Manifests renders, so that each object's
// apiVersion and kind come from its Go type rather than by hand.
func manifestScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// toUnstructured is obj as the API server is sent it: with its apiVersion
// and kind, without the status a manifest has no business setting (nor
// an empty spec).
func toUnstructured(scheme *runtime.Scheme, obj runtime.Object) (*unstructured.Unstructured, error) {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("converting a %s: %w", gvk.Kind, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	delete(u.Object, "status")
	if spec, ok := u.Object["spec"].(map[string]any); ok && len(spec) == 0 {
		delete(u.Object, "spec") // a Namespace's
	}
	return u, nil
}

// roleObjects are a component's generated roles, the Role moved to
// namespace, and their bindings to its service account.
func roleObjects(component, serviceAccount, namespace string) ([]runtime.Object, error) {
	roles, err := RBAC(component)
	if err != nil {
		return nil, err
	}
	role := roles.Role.DeepCopy()
	role.Namespace = namespace
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: namespace}}
	return []runtime.Object{
		roles.ClusterRole,
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: roles.ClusterRole.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roles.ClusterRole.Name},
			Subjects:   subjects,
		},
		role,
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: namespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   subjects,
		},
	}, nil
}

// Labels selects a component's pods ("webhook" or "binder").
func Labels(component string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "kube-eip", "app.kubernetes.io/component": component}
}

// PodSelector selects every pod of the install, both components'.
const PodSelector = "app.kubernetes.io/name=kube-eip"

func webhookServiceObject(p Params) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: WebhookService, Namespace: p.Namespace, Labels: Labels("webhook")},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: Labels("webhook"),
			Ports: []corev1.ServicePort{{
				Name: "https", Protocol: corev1.ProtocolTCP,
				Port: WebhookServicePort, TargetPort: intstr.FromInt32(WebhookPort),
			}},
		},
	}
}

// registration is how the API server reaches the webhook's Service. The
// components' own requests never reach it, so neither waits on the other.
func registration(p Params) webhook.Registration {
	ids := Identities(p.Namespace)
	return webhook.Registration{
		Name:         WebhookConfigurationName,
		Service:      &admissionregistrationv1.ServiceReference{Namespace: p.Namespace, Name: WebhookService, Port: ptr.To(WebhookServicePort)},
		CABundle:     p.CABundle,
		OwnNamespace: p.Namespace,
		Exempt:       []string{ids.Webhook, ids.Binder},
	}
}

func webhookDeployment(p Params) *appsv1.Deployment {
	labels := Labels("webhook")
	args := append([]string{"webhook",
		"--listen=:" + strconv.Itoa(int(WebhookPort)),
		"--tls-cert-file=" + WebhookTLSDir + "/" + corev1.TLSCertKey,
		"--tls-key-file=" + WebhookTLSDir + "/" + corev1.TLSPrivateKeyKey,
		"--wait-image=" + p.Image,
		// Every replica admits; only the leader reclaims reservations.
		"--leader-elect=true",
		"--namespace=" + p.Namespace,
	}, p.WebhookArgs...)
	probe := func(path string, period int32) *corev1.Probe {
		return httpProbe(corev1.URISchemeHTTPS, WebhookPort, path, period)
	}
	container := corev1.Container{
		Name:            "webhook",
		Image:           p.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            args,
		Ports:           []corev1.ContainerPort{{Name: "https", ContainerPort: WebhookPort, Protocol: corev1.ProtocolTCP}},
		// Ready once the certificate is loaded and the caches synced: the
		// Service sends admission only to replicas that can answer it.
		ReadinessProbe:           probe("/readyz", 5),
		LivenessProbe:            probe("/healthz", 10),
		VolumeMounts:             []corev1.VolumeMount{{Name: "tls", MountPath: WebhookTLSDir, ReadOnly: true}},
		Resources:                requests("100m", "128Mi"),
		SecurityContext:          restricted(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: WebhookDeployment, Namespace: p.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(p.WebhookReplicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			// A rollout adds a replica before it removes one: admission
			// keeps its capacity throughout.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: WebhookServiceAccount,
					Containers:         []corev1.Container{container},
					Volumes: []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{
						Secret: &corev1.SecretVolumeSource{SecretName: WebhookTLSSecret},
					}}},
					// Replicas on different nodes where there are nodes enough;
					// soft, so that a small cluster still runs them all.
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
								TopologyKey:   corev1.LabelHostname,
							},
						}},
					}},
				},
			},
		},
	}
}

func webhookDisruptionBudget(p Params) *policyv1.PodDisruptionBudget {
	labels := Labels("webhook")
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: WebhookDisruptionBudget, Namespace: p.Namespace, Labels: labels},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: labels},
		},
	}
}

func binderDeployment(p Params) *appsv1.Deployment {
	labels := Labels("binder")
	args := []string{"binder"}
	if p.ClusterName != "" {
		args = append(args, "--cluster-name="+p.ClusterName)
	}
	if p.Region != "" {
		args = append(args, "--region="+p.Region)
	}
	if p.EC2Endpoint != "" {
		args = append(args, "--ec2-endpoint="+p.EC2Endpoint)
	}
	args = append(args,
		"--leader-elect=true",
		"--namespace="+p.Namespace,
		"--health-probe-bind-address=:"+strconv.Itoa(int(BinderHealthPort)),
		"--metrics-bind-address=:"+strconv.Itoa(int(BinderMetricsPort)),
	)
	args = append(args, p.BinderArgs...)
	// Optional, so that on EKS the SDK finds IRSA's or Pod Identity's
	// variables instead when there is no Secret.
	env := make([]corev1.EnvVar, len(AWSCredentialKeys))
	for i, key := range AWSCredentialKeys {
		env[i] = corev1.EnvVar{Name: key, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: AWSSecret}, Key: key, Optional: ptr.To(true),
		}}}
	}
	probe := func(path string, period int32) *corev1.Probe {
		return httpProbe(corev1.URISchemeHTTP, BinderHealthPort, path, period)
	}
	container := corev1.Container{
		Name:            "binder",
		Image:           p.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            args,
		Env:             env,
		Ports: []corev1.ContainerPort{
			{Name: "metrics", ContainerPort: BinderMetricsPort, Protocol: corev1.ProtocolTCP},
			{Name: "health", ContainerPort: BinderHealthPort, Protocol: corev1.ProtocolTCP},
		},
		// Ready once the first sweep has loaded EC2's addresses.
		ReadinessProbe:           probe("/readyz", 5),
		LivenessProbe:            probe("/healthz", 10),
		Resources:                requests("100m", "128Mi"),
		SecurityContext:          restricted(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: BinderDeployment, Namespace: p.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			// Recreate: a surge pod would wait for the old one's lease, and
			// is ready only once leading, so a rolling update would stall.
			// Leader election still keeps a pod stuck terminating on a lost
			// node from binding beside its successor.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: BinderServiceAccount,
					Containers:         []corev1.Container{container},
				},
			},
		},
	}
}

// restricted is the Pod Security "restricted" profile, as the injected wait
// container has it: the image's non-root user, nothing to escalate to, a
// read-only root (neither component writes files).
func restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To(nonRootUID),
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// requests reserves what a component needs to be scheduled; no limits, so
// that a large cluster's caches grow past an estimate rather than have the
// webhook, which fails closed, killed for memory.
func requests(cpu, memory string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory),
	}}
}

// httpProbe is a probe of path on port, every period seconds.
func httpProbe(scheme corev1.URIScheme, port int32, path string, period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromInt32(port), Scheme: scheme,
		}},
		PeriodSeconds: period,
	}
}
