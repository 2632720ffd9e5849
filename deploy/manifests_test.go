package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook"
	"github.com/kube-eip/kube-eip/webhook/server"
)

const manifestFile = "manifests/kube-eip.yaml"

// The checked-in install is what the code renders: make generate writes
// it, and a stale file would install other pods than the tests ran.
func TestManifestYAMLIsCurrent(t *testing.T) {
	want, err := ManifestYAML(Params{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is stale; run make generate", manifestFile)
	}
}

// install is a rendering decoded into typed objects, by kind and name.
type install struct {
	objs []runtime.Object
}

// decodeInstall decodes every document of data strictly into its Go
// type: a field the API would drop, or a kind unknown to client-go, fails.
func decodeInstall(t *testing.T, data []byte) install {
	t.Helper()
	scheme, err := manifestScheme()
	if err != nil {
		t.Fatal(err)
	}
	var in install
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Kind == "" {
			continue // the header comment
		}
		obj, err := scheme.New(schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind))
		if err != nil {
			t.Fatalf("document of kind %s: %v", meta.Kind, err)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("decoding a %s: %v", meta.Kind, err)
		}
		in.objs = append(in.objs, obj)
	}
	return in
}

// render decodes ManifestYAML(p).
func render(t *testing.T, p Params) install {
	t.Helper()
	data, err := ManifestYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	return decodeInstall(t, data)
}

// all returns in's objects of type T.
func all[T runtime.Object](in install) []T {
	var out []T
	for _, o := range in.objs {
		if typed, ok := o.(T); ok {
			out = append(out, typed)
		}
	}
	return out
}

// named returns in's object of type T named name, failing the test
// without one.
func named[T interface {
	runtime.Object
	GetName() string
}](t *testing.T, in install, name string) T {
	t.Helper()
	for _, o := range all[T](in) {
		if o.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %s in the rendering", zero, name)
	return zero
}

func TestManifestFileDecodesIntoTypedObjects(t *testing.T) {
	data, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	in := decodeInstall(t, data)
	objs, err := Manifests(Params{})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.objs) != len(objs) {
		t.Fatalf("%s has %d objects, Manifests renders %d", manifestFile, len(in.objs), len(objs))
	}
	// What applying it must find: every kind the install is made of.
	counts := map[string]int{}
	for _, u := range objs {
		counts[u.GetKind()]++
	}
	want := map[string]int{
		"CustomResourceDefinition": 2, "Namespace": 1, "ServiceAccount": 2,
		"ClusterRole": 2, "ClusterRoleBinding": 2, "Role": 2, "RoleBinding": 2,
		"Service": 1, "Deployment": 2, "PodDisruptionBudget": 1,
		"ValidatingAdmissionPolicy": 2, "ValidatingAdmissionPolicyBinding": 2,
		"MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1,
	}
	for kind, n := range want {
		if counts[kind] != n {
			t.Errorf("%d %s objects, want %d", counts[kind], kind, n)
		}
	}
	// The webhook configurations come last: the API server calls the
	// webhook only once what it serves from is in place.
	last := objs[len(objs)-2:]
	if last[0].GetKind() != "MutatingWebhookConfiguration" || last[1].GetKind() != "ValidatingWebhookConfiguration" {
		t.Errorf("the rendering ends with %s and %s, want the webhook configurations", last[0].GetKind(), last[1].GetKind())
	}
	for _, u := range objs {
		if _, ok := u.Object["status"]; ok {
			t.Errorf("%s %s carries a status", u.GetKind(), u.GetName())
		}
	}
}

// The roles are deploy/rbac's, unchanged: the generated ones are what the
// tests exercise the components with.
func TestManifestRolesAreTheGeneratedOnes(t *testing.T) {
	in := render(t, Params{})
	for component, sa := range map[string]string{"webhook": WebhookServiceAccount, "binder": BinderServiceAccount} {
		roles, err := RBAC(component)
		if err != nil {
			t.Fatal(err)
		}
		if got := named[*rbacv1.ClusterRole](t, in, roles.ClusterRole.Name); !equality.Semantic.DeepEqual(got, roles.ClusterRole) {
			t.Errorf("ClusterRole %s differs from deploy/rbac/%s:\n%+v\n%+v", got.Name, component, got, roles.ClusterRole)
		}
		if got := named[*rbacv1.Role](t, in, roles.Role.Name); !equality.Semantic.DeepEqual(got, roles.Role) {
			t.Errorf("Role %s differs from deploy/rbac/%s:\n%+v\n%+v", got.Name, component, got, roles.Role)
		}
		subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: Namespace}}
		crb := named[*rbacv1.ClusterRoleBinding](t, in, roles.ClusterRole.Name)
		if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != roles.ClusterRole.Name || !equality.Semantic.DeepEqual(crb.Subjects, subject) {
			t.Errorf("ClusterRoleBinding %s binds %+v to %+v, want %s to %+v", crb.Name, crb.RoleRef, crb.Subjects, roles.ClusterRole.Name, subject)
		}
		rb := named[*rbacv1.RoleBinding](t, in, roles.Role.Name)
		if rb.Namespace != Namespace || rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != roles.Role.Name || !equality.Semantic.DeepEqual(rb.Subjects, subject) {
			t.Errorf("RoleBinding %s/%s binds %+v to %+v, want %s to %+v", rb.Namespace, rb.Name, rb.RoleRef, rb.Subjects, roles.Role.Name, subject)
		}
		named[*corev1.ServiceAccount](t, in, sa)
	}
	if n := len(all[*rbacv1.ClusterRole](in)) + len(all[*rbacv1.Role](in)); n != 4 {
		t.Errorf("%d roles rendered, want the 4 of deploy/rbac", n)
	}
}

// flag returns the value of --name in args, and whether it is there.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func onlyContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", d.Name, n)
	}
	return d.Spec.Template.Spec.Containers[0]
}

// selects reports whether sel selects the pods of d.
func selects(t *testing.T, sel *metav1.LabelSelector, d *appsv1.Deployment) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(d.Spec.Template.Labels))
}

func checkRestricted(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container %s runs with %+v, want non-root 65532, read-only root, no capabilities", c.Name, sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("container %s requests %v, want CPU and memory", c.Name, c.Resources.Requests)
	}
}

func TestWebhookDeployment(t *testing.T) {
	in := render(t, Params{})
	d := named[*appsv1.Deployment](t, in, WebhookDeployment)
	if d.Namespace != Namespace || d.Spec.Template.Spec.ServiceAccountName != WebhookServiceAccount {
		t.Errorf("webhook Deployment in %q as %q, want %q as %q", d.Namespace, d.Spec.Template.Spec.ServiceAccountName, Namespace, WebhookServiceAccount)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("webhook replicas %v, want 2", d.Spec.Replicas)
	}
	if !selects(t, d.Spec.Selector, d) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector, d.Spec.Template.Labels)
	}
	c := onlyContainer(t, d)
	if c.Image != DefaultImage || len(c.Args) == 0 || c.Args[0] != "webhook" {
		t.Errorf("webhook container runs %s %v", c.Image, c.Args)
	}
	for name, want := range map[string]string{
		"listen": ":9443", "tls-cert-file": "/etc/kube-eip/tls/tls.crt", "tls-key-file": "/etc/kube-eip/tls/tls.key",
		"wait-image": DefaultImage, "leader-elect": "true", "namespace": Namespace,
	} {
		if got, _ := flag(c.Args, name); got != want {
			t.Errorf("webhook --%s=%q, want %q", name, got, want)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != WebhookPort {
		t.Fatalf("webhook container ports %+v, want %d", c.Ports, WebhookPort)
	}

	// The serving pair is the Secret's, where the flags read it.
	vols := d.Spec.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != WebhookTLSSecret {
		t.Fatalf("webhook volumes %+v, want Secret %s", vols, WebhookTLSSecret)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != vols[0].Name || c.VolumeMounts[0].MountPath != "/etc/kube-eip/tls" {
		t.Errorf("webhook mounts %+v, want volume %s at /etc/kube-eip/tls", c.VolumeMounts, vols[0].Name)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS || p.HTTPGet.Port.IntValue() != int(WebhookPort) {
			t.Errorf("webhook probe %+v, want HTTPS on %d", p, WebhookPort)
		}
	}
	checkRestricted(t, c)
	aff := d.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 ||
		len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Fatalf("webhook affinity %+v, want one soft anti-affinity term", aff)
	}
	if term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm; !selects(t, term.LabelSelector, d) {
		t.Errorf("the anti-affinity term %+v does not select the webhook's pods", term)
	}

	pdb := named[*policyv1.PodDisruptionBudget](t, in, WebhookDisruptionBudget)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || !selects(t, pdb.Spec.Selector, d) {
		t.Errorf("PodDisruptionBudget %+v, want minAvailable 1 of the webhook's pods", pdb.Spec)
	}

	svc := named[*corev1.Service](t, in, WebhookService)
	if svc.Namespace != Namespace || len(svc.Spec.Ports) != 1 {
		t.Fatalf("webhook Service %s/%s with ports %+v", svc.Namespace, svc.Name, svc.Spec.Ports)
	}
	port := svc.Spec.Ports[0]
	if port.Port != 443 || port.TargetPort.IntValue() != int(c.Ports[0].ContainerPort) {
		t.Errorf("the Service sends %d to %s, want 443 to the container's %d", port.Port, port.TargetPort.String(), c.Ports[0].ContainerPort)
	}
	if got, _ := flag(c.Args, "listen"); got != ":"+port.TargetPort.String() {
		t.Errorf("the webhook listens on %q, the Service sends to %s", got, port.TargetPort.String())
	}
	sel := &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}
	if !selects(t, sel, d) {
		t.Errorf("the Service's selector %v does not select the webhook's pods", svc.Spec.Selector)
	}
	if selects(t, sel, named[*appsv1.Deployment](t, in, BinderDeployment)) {
		t.Error("the webhook Service selects the binder's pods too")
	}
}

// The webhook's probes ask for paths its server answers, in the scheme it
// speaks: a probe of a wrong path would keep every replica unready.
func TestWebhookProbePathsAreServed(t *testing.T) {
	ca, err := certs.NewCA("probe-test")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv, err := server.Start(ctx, server.Options{
		Addr: "127.0.0.1:0", Certs: certs.NewStatic(pair), MetricsRegistry: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = srv.Wait()
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}

	c := onlyContainer(t, named[*appsv1.Deployment](t, render(t, Params{}), WebhookDeployment))
	for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		get := probe.HTTPGet
		url := strings.ToLower(string(get.Scheme)) + "://" + srv.Addr() + get.Path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("probing %s: %v", get.Path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("probe of %s answered %s, want 200", get.Path, resp.Status)
		}
	}
}

func TestBinderDeployment(t *testing.T) {
	in := render(t, Params{})
	d := named[*appsv1.Deployment](t, in, BinderDeployment)
	if d.Namespace != Namespace || d.Spec.Template.Spec.ServiceAccountName != BinderServiceAccount {
		t.Errorf("binder Deployment in %q as %q, want %q as %q", d.Namespace, d.Spec.Template.Spec.ServiceAccountName, Namespace, BinderServiceAccount)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("binder replicas %v with strategy %s, want 1 recreated", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	if !selects(t, d.Spec.Selector, d) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector, d.Spec.Template.Labels)
	}
	c := onlyContainer(t, d)
	if len(c.Args) == 0 || c.Args[0] != "binder" {
		t.Fatalf("binder container runs %v", c.Args)
	}
	for name, want := range map[string]string{
		"leader-elect": "true", "namespace": Namespace, "health-probe-bind-address": ":8081", "metrics-bind-address": ":8080",
	} {
		if got, _ := flag(c.Args, name); got != want {
			t.Errorf("binder --%s=%q, want %q", name, got, want)
		}
	}
	// The defaults name no cluster, region or endpoint: the binder refuses
	// to start rather than tag addresses for a name another cluster uses.
	for _, name := range []string{"cluster-name", "region", "ec2-endpoint"} {
		if v, ok := flag(c.Args, name); ok {
			t.Errorf("default rendering sets --%s=%s", name, v)
		}
	}
	health, _ := flag(c.Args, "health-probe-bind-address")
	// controller-runtime serves its checks at /readyz and /healthz.
	for probe, path := range map[*corev1.Probe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || ":"+probe.HTTPGet.Port.String() != health {
			t.Errorf("binder probe %+v, want %s on %s", probe, path, health)
		}
	}
	var keys []string
	for _, e := range c.Env {
		ref := e.ValueFrom.SecretKeyRef
		if ref == nil || ref.Name != AWSSecret || ref.Optional == nil || !*ref.Optional || ref.Key != e.Name {
			t.Errorf("binder env %s = %+v, want the optional key %s of Secret %s", e.Name, e.ValueFrom, e.Name, AWSSecret)
		}
		keys = append(keys, e.Name)
	}
	if !slices.Equal(keys, AWSCredentialKeys) {
		t.Errorf("binder env %v, want %v", keys, AWSCredentialKeys)
	}
	checkRestricted(t, c)
}

// The API server reaches every webhook through the Service, on the paths
// the webhook serves, and kube-eip's own requests never reach it.
func TestWebhookConfigurationsReachTheService(t *testing.T) {
	ca, err := certs.NewCA("bundle")
	if err != nil {
		t.Fatal(err)
	}
	in := render(t, Params{CABundle: ca.CertPEM()})
	svc := named[*corev1.Service](t, in, WebhookService)
	check := func(name string, cc admissionregistrationv1.WebhookClientConfig, path string) {
		t.Helper()
		ref := cc.Service
		if cc.URL != nil || ref == nil {
			t.Fatalf("webhook %s is reached at %+v, want the Service", name, cc)
		}
		if ref.Namespace != svc.Namespace || ref.Name != svc.Name || ref.Port == nil || *ref.Port != svc.Spec.Ports[0].Port || ref.Path == nil || *ref.Path != path {
			t.Errorf("webhook %s calls %+v, want %s/%s:%d%s", name, ref, svc.Namespace, svc.Name, svc.Spec.Ports[0].Port, path)
		}
		if !bytes.Equal(cc.CABundle, ca.CertPEM()) {
			t.Errorf("webhook %s has caBundle %q, want the CA's", name, cc.CABundle)
		}
	}
	m := named[*admissionregistrationv1.MutatingWebhookConfiguration](t, in, WebhookConfigurationName)
	if len(m.Webhooks) != 1 {
		t.Fatalf("%d mutating webhooks, want 1", len(m.Webhooks))
	}
	check(m.Webhooks[0].Name, m.Webhooks[0].ClientConfig, webhook.Path)
	ids := Identities(Namespace)
	var exempt bool
	for _, c := range m.Webhooks[0].MatchConditions {
		exempt = exempt || strings.Contains(c.Expression, `"`+ids.Webhook+`"`) && strings.Contains(c.Expression, `"`+ids.Binder+`"`)
	}
	if !exempt {
		t.Errorf("the pod webhook's conditions %+v do not exempt %s and %s", m.Webhooks[0].MatchConditions, ids.Webhook, ids.Binder)
	}
	v := named[*admissionregistrationv1.ValidatingWebhookConfiguration](t, in, WebhookConfigurationName)
	paths := map[string]string{webhook.PoolsWebhookName: webhook.PoolsPath, webhook.WorkloadsWebhookName: webhook.WorkloadsPath, webhook.CronJobsWebhookName: webhook.WorkloadsPath}
	if len(v.Webhooks) != len(paths) {
		t.Fatalf("%d validating webhooks, want %d", len(v.Webhooks), len(paths))
	}
	for _, w := range v.Webhooks {
		check(w.Name, w.ClientConfig, paths[w.Name])
	}

	// The default rendering leaves the bundle to cert-manager.
	for _, w := range named[*admissionregistrationv1.MutatingWebhookConfiguration](t, render(t, Params{}), WebhookConfigurationName).Webhooks {
		if len(w.ClientConfig.CABundle) != 0 {
			t.Errorf("default rendering has a caBundle in %s", w.Name)
		}
	}
}

func TestManifestParams(t *testing.T) {
	p := Params{
		Namespace: "eip", Image: "example.com/kube-eip:v1", ClusterName: "prod", Region: "eu-west-1",
		EC2Endpoint: "http://127.0.0.1:4566", WebhookReplicas: 1,
		WebhookArgs: []string{"--claim-ttl=30s"}, BinderArgs: []string{"--workers=2"},
	}
	in := render(t, p)
	for _, o := range in.objs {
		m := o.(metav1.Object)
		switch o.(type) {
		case *corev1.ServiceAccount, *rbacv1.Role, *rbacv1.RoleBinding, *corev1.Service, *appsv1.Deployment:
			if m.GetNamespace() != "eip" {
				t.Errorf("%T %s in namespace %q, want eip", o, m.GetName(), m.GetNamespace())
			}
		}
	}
	named[*corev1.Namespace](t, in, "eip")
	if pdbs := all[*policyv1.PodDisruptionBudget](in); len(pdbs) != 0 {
		t.Errorf("one webhook replica with a disruption budget %+v: no node could be drained", pdbs[0].Spec)
	}
	wh := onlyContainer(t, named[*appsv1.Deployment](t, in, WebhookDeployment))
	if got, _ := flag(wh.Args, "wait-image"); got != p.Image || wh.Image != p.Image || wh.Args[len(wh.Args)-1] != "--claim-ttl=30s" {
		t.Errorf("webhook runs %s %v", wh.Image, wh.Args)
	}
	b := onlyContainer(t, named[*appsv1.Deployment](t, in, BinderDeployment))
	for name, want := range map[string]string{"cluster-name": "prod", "region": "eu-west-1", "ec2-endpoint": p.EC2Endpoint, "namespace": "eip"} {
		if got, _ := flag(b.Args, name); got != want {
			t.Errorf("binder --%s=%q, want %q", name, got, want)
		}
	}
	if b.Image != p.Image || b.Args[len(b.Args)-1] != "--workers=2" {
		t.Errorf("binder runs %s %v", b.Image, b.Args)
	}
	ids := Identities("eip")
	for _, c := range named[*admissionregistrationv1.MutatingWebhookConfiguration](t, in, WebhookConfigurationName).Webhooks[0].MatchConditions {
		if c.Name == "not-kube-eip" && !strings.Contains(c.Expression, ids.Binder) {
			t.Errorf("the webhook exempts %s, want %s's identities", c.Expression, "eip")
		}
	}
	if ref := named[*admissionregistrationv1.MutatingWebhookConfiguration](t, in, WebhookConfigurationName).Webhooks[0].ClientConfig.Service; ref.Namespace != "eip" {
		t.Errorf("the webhook is called in namespace %q, want eip", ref.Namespace)
	}

	for _, bad := range []Params{{Namespace: "Not_A_Label"}, {WebhookReplicas: -1}, {EC2Endpoint: "127.0.0.1:4566"}, {Image: "a b"}} {
		if _, err := Manifests(bad); err == nil {
			t.Errorf("Manifests(%+v) rendered", bad)
		}
	}
}
