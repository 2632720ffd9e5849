package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/kube-eip/kube-eip/webhook"
)

// The chart is rendered into a namespace other than the plain manifests',
// so that anything not following the release's namespace shows.
const testNamespace = "eip"

// certManagerAnnotation is how cert-manager's CA injector is asked for the
// caBundle: the one thing the chart adds to Go's webhook configurations.
const certManagerAnnotation = "cert-manager.io/inject-ca-from"

// repoRoot is the repository's root, above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module github.com/kube-eip/kube-eip\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod of github.com/kube-eip/kube-eip above the test's directory")
		}
		dir = parent
	}
}

// helmBinary is the pinned Helm at rel (Helm3 or Helm4), which make test
// builds before it runs the tests.
func helmBinary(t *testing.T, rel string) string {
	t.Helper()
	path := filepath.Join(repoRoot(t), rel)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v): the chart's tests run the pinned Helm, which make test builds first (make helm)", rel, err)
	}
	return path
}

// chartArgs are helm template's arguments for the test release: its
// namespace, the one required value, then args.
func chartArgs(args ...string) []string {
	return append([]string{"--namespace", testNamespace, "--set", "clusterName=test"}, args...)
}

// renderChart decodes the chart rendered by Helm 4 with args, hooks
// included.
func renderChart(t *testing.T, args ...string) install {
	t.Helper()
	out, err := HelmTemplate(helmBinary(t, Helm4), repoRoot(t), chartArgs(args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return decodeInstall(t, out)
}

// chartImage is the image the chart runs by default: the chart's
// appVersion as the tag.
func chartImage(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), ChartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatal(err)
	}
	return "ghcr.io/kube-eip/kube-eip:" + chart.AppVersion
}

// asYAML is obj as YAML, for a failure's message.
func asYAML(t *testing.T, obj any) string {
	t.Helper()
	data, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// firstDifference is where two renderings first differ, line by line.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  got  %q\n  want %q", i+1, gl, wl)
		}
	}
	return "(no line differs)"
}

// checkSame fails unless got is semantically want, showing where they
// part.
func checkSame(t *testing.T, what string, got, want any) {
	t.Helper()
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("%s differs from Go's at %s", what, firstDifference(asYAML(t, got), asYAML(t, want)))
	}
}

// withoutChartMetadata drops what the chart adds to an object Go renders:
// its labels, and cert-manager's annotation.
func withoutChartMetadata(m *metav1.ObjectMeta) {
	m.Labels = nil
	delete(m.Annotations, certManagerAnnotation)
	if len(m.Annotations) == 0 {
		m.Annotations = nil
	}
}

func podWebhook(t *testing.T, in install) admissionregistrationv1.MutatingWebhook {
	t.Helper()
	m := named[*admissionregistrationv1.MutatingWebhookConfiguration](t, in, WebhookConfigurationName)
	if len(m.Webhooks) != 1 {
		t.Fatalf("%d mutating webhooks, want 1", len(m.Webhooks))
	}
	return m.Webhooks[0]
}

// The webhook configurations are Go's, to the field: the chart adds only
// labels and, with cert-manager, the annotation that has the caBundle
// injected. What the API server is told of the webhook is what the tests of
// webhook/ exercised.
func TestChartWebhookConfigurationsAreGos(t *testing.T) {
	in := renderChart(t)
	reg := InstallRegistration(testNamespace, BinderServiceAccount)

	got := named[*admissionregistrationv1.MutatingWebhookConfiguration](t, in, WebhookConfigurationName).DeepCopy()
	if a := got.Annotations[certManagerAnnotation]; a != testNamespace+"/"+WebhookService {
		t.Errorf("MutatingWebhookConfiguration has %s=%q, want the serving Certificate %s/%s", certManagerAnnotation, a, testNamespace, WebhookService)
	}
	withoutChartMetadata(&got.ObjectMeta)
	want := webhook.Configuration(reg)
	want.TypeMeta = metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"}
	checkSame(t, "MutatingWebhookConfiguration", got, want)

	gotV := named[*admissionregistrationv1.ValidatingWebhookConfiguration](t, in, WebhookConfigurationName).DeepCopy()
	if a := gotV.Annotations[certManagerAnnotation]; a != testNamespace+"/"+WebhookService {
		t.Errorf("ValidatingWebhookConfiguration has %s=%q, want the serving Certificate", certManagerAnnotation, a)
	}
	withoutChartMetadata(&gotV.ObjectMeta)
	wantV := webhook.ValidatingConfiguration(reg)
	wantV.TypeMeta = metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"}
	checkSame(t, "ValidatingWebhookConfiguration", gotV, wantV)
}

// The admission policies are Go's: they trust kube-eip's service accounts
// in the release's namespace.
func TestChartAdmissionPoliciesAreGos(t *testing.T) {
	in := renderChart(t)
	policies, bindings := webhook.AdmissionPolicies(Identities(testNamespace))
	if n := len(all[*admissionregistrationv1.ValidatingAdmissionPolicy](in)); n != len(policies) {
		t.Errorf("%d policies rendered, want %d", n, len(policies))
	}
	for i, want := range policies {
		got := named[*admissionregistrationv1.ValidatingAdmissionPolicy](t, in, want.Name).DeepCopy()
		withoutChartMetadata(&got.ObjectMeta)
		want.TypeMeta = metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"}
		checkSame(t, "policy "+want.Name, got, want)

		gotB := named[*admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, in, bindings[i].Name).DeepCopy()
		withoutChartMetadata(&gotB.ObjectMeta)
		bindings[i].TypeMeta = metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"}
		checkSame(t, "binding "+bindings[i].Name, gotB, bindings[i])
	}
}

// The roles are deploy/rbac's, generated from the components' markers,
// the Roles moved into the release's namespace, each bound to its
// component's service account.
func TestChartRolesAreTheGeneratedOnes(t *testing.T) {
	in := renderChart(t)
	for component, sa := range map[string]string{"webhook": WebhookServiceAccount, "binder": BinderServiceAccount} {
		roles, err := RBAC(component)
		if err != nil {
			t.Fatal(err)
		}
		cr := named[*rbacv1.ClusterRole](t, in, roles.ClusterRole.Name)
		if !equality.Semantic.DeepEqual(cr.Rules, roles.ClusterRole.Rules) {
			t.Errorf("ClusterRole %s has rules\n%s\nwant deploy/rbac/%s's\n%s", cr.Name, asYAML(t, cr.Rules), component, asYAML(t, roles.ClusterRole.Rules))
		}
		role := named[*rbacv1.Role](t, in, roles.Role.Name)
		if role.Namespace != testNamespace || !equality.Semantic.DeepEqual(role.Rules, roles.Role.Rules) {
			t.Errorf("Role %s/%s has rules\n%s\nwant, in %s, deploy/rbac/%s's\n%s", role.Namespace, role.Name, asYAML(t, role.Rules), testNamespace, component, asYAML(t, roles.Role.Rules))
		}
		subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: testNamespace}}
		crb := named[*rbacv1.ClusterRoleBinding](t, in, roles.ClusterRole.Name)
		if crb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}) || !equality.Semantic.DeepEqual(crb.Subjects, subject) {
			t.Errorf("ClusterRoleBinding %s binds %+v to %+v, want %s to %+v", crb.Name, crb.RoleRef, crb.Subjects, cr.Name, subject)
		}
		rb := named[*rbacv1.RoleBinding](t, in, roles.Role.Name)
		if rb.Namespace != testNamespace || rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}) || !equality.Semantic.DeepEqual(rb.Subjects, subject) {
			t.Errorf("RoleBinding %s/%s binds %+v to %+v, want %s to %+v", rb.Namespace, rb.Name, rb.RoleRef, rb.Subjects, role.Name, subject)
		}
		if got := named[*corev1.ServiceAccount](t, in, sa); got.Namespace != testNamespace {
			t.Errorf("ServiceAccount %s in %q, want %q", sa, got.Namespace, testNamespace)
		}
	}
}

// What a default install is made of, hooks included, and where: every
// namespaced object of the release in its namespace, the test's in the
// test's; the Namespace is --create-namespace's, never the chart's.
func TestChartRendersTheInstall(t *testing.T) {
	in := renderChart(t)
	want := map[string]int{
		"ServiceAccount": 3, "ClusterRole": 2, "ClusterRoleBinding": 2, "Role": 3, "RoleBinding": 3,
		"Service": 1, "Deployment": 2, "PodDisruptionBudget": 1,
		"ValidatingAdmissionPolicy": 2, "ValidatingAdmissionPolicyBinding": 2,
		"MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1,
		"Issuer": 2, "Certificate": 2, "Job": 1, "Pod": 1, "Namespace": 1,
	}
	got := kinds(t, in)
	for kind, n := range want {
		if got[kind] != n {
			t.Errorf("%d %s objects, want %d", got[kind], kind, n)
		}
	}
	for kind := range got {
		if _, ok := want[kind]; !ok {
			t.Errorf("unexpected %s objects", kind)
		}
	}
	for _, o := range in.objs {
		m := objectMeta(t, o)
		_, hook := m.GetAnnotations()["helm.sh/hook"]
		switch {
		case m.GetAnnotations()["helm.sh/hook"] == "test":
			if m.GetNamespace() != "" && m.GetNamespace() != "kube-eip-helm-test" && m.GetNamespace() != testNamespace {
				t.Errorf("test hook %T %s in namespace %q", o, m.GetName(), m.GetNamespace())
			}
		case isNamespaced(o) && m.GetNamespace() != testNamespace:
			t.Errorf("%T %s in namespace %q, want the release's %q", o, m.GetName(), m.GetNamespace(), testNamespace)
		case !hook:
			if l := m.GetLabels(); l["app.kubernetes.io/name"] != "kube-eip" || l["app.kubernetes.io/instance"] != ReleaseName ||
				l["app.kubernetes.io/managed-by"] != "Helm" || l["helm.sh/chart"] == "" || l["app.kubernetes.io/version"] == "" || l["app.kubernetes.io/component"] == "" {
				t.Errorf("%T %s has labels %v, want the standard ones", o, m.GetName(), l)
			}
		}
		if ns, ok := o.(*corev1.Namespace); ok && ns.Name != "kube-eip-helm-test" {
			t.Errorf("the chart renders Namespace %s; helm install --create-namespace makes the release's", ns.Name)
		}
	}
}

// isNamespaced is whether objects of o's kind live in a namespace.
func isNamespaced(o runtime.Object) bool {
	switch o := o.(type) {
	case *corev1.Namespace, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding,
		*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration,
		*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		return false
	case *unstructured.Unstructured:
		return o.GetKind() != "ClusterIssuer"
	}
	return true
}
