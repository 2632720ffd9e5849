package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook"
)

// writeCA writes a new CA's certificate to a file, for --set-file.
func writeCA(t *testing.T) (string, []byte) {
	t.Helper()
	ca, err := certs.NewCA("chart-test")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, ca.CertPEM()
}

// allClientConfigs are the client configurations of every webhook of in.
func allClientConfigs(t *testing.T, in install) map[string]admissionregistrationv1.WebhookClientConfig {
	t.Helper()
	out := map[string]admissionregistrationv1.WebhookClientConfig{}
	for _, w := range named[*admissionregistrationv1.MutatingWebhookConfiguration](t, in, WebhookConfigurationName).Webhooks {
		out[w.Name] = w.ClientConfig
	}
	for _, w := range named[*admissionregistrationv1.ValidatingWebhookConfiguration](t, in, WebhookConfigurationName).Webhooks {
		out[w.Name] = w.ClientConfig
	}
	return out
}

// The serving certificate comes from cert-manager (the default), from the
// webhook itself, or from the installer's Secret, and the API server is
// given the CA to verify it by each.
func TestChartCertificateSources(t *testing.T) {
	t.Run("cert-manager issues it from a CA of the chart's own and injects the CA", func(t *testing.T) {
		in := renderChart(t)
		certificates := map[string]*unstructured.Unstructured{}
		for _, u := range unstructuredOf(in, "Certificate") {
			certificates[u.GetName()] = u
		}
		serving := certificates[WebhookService]
		if serving == nil {
			t.Fatalf("no Certificate %s; have %v", WebhookService, certificates)
		}
		secret, _, _ := unstructured.NestedString(serving.Object, "spec", "secretName")
		dnsNames, _, _ := unstructured.NestedStringSlice(serving.Object, "spec", "dnsNames")
		issuer, _, _ := unstructured.NestedString(serving.Object, "spec", "issuerRef", "name")
		svc := WebhookService + "." + testNamespace
		if secret != WebhookTLSSecret || !slices.Contains(dnsNames, svc+".svc") || !slices.Contains(dnsNames, svc) ||
			!slices.Contains(dnsNames, svc+".svc.cluster.local") || issuer != "kube-eip-ca" {
			t.Errorf("serving Certificate %v", serving.Object["spec"])
		}
		for _, field := range []string{"duration", "renewBefore"} {
			if v, _, _ := unstructured.NestedString(serving.Object, "spec", field); v == "" {
				t.Errorf("serving Certificate has no %s", field)
			}
		}
		ca := certificates["kube-eip-ca"]
		if isCA, _, _ := unstructured.NestedBool(ca.Object, "spec", "isCA"); ca == nil || !isCA {
			t.Errorf("CA Certificate %v, want isCA", ca)
		}
		issuers := map[string]bool{}
		for _, u := range unstructuredOf(in, "Issuer") {
			_, selfSigned := u.Object["spec"].(map[string]any)["selfSigned"]
			caSecret, _, _ := unstructured.NestedString(u.Object, "spec", "ca", "secretName")
			issuers[u.GetName()] = selfSigned || caSecret == "kube-eip-ca" //nolint:gosec // a Secret's name, not a credential
		}
		if !issuers["kube-eip-selfsigned"] || !issuers["kube-eip-ca"] {
			t.Errorf("issuers %v, want a self-signed one and the CA", issuers)
		}
		for name, cc := range allClientConfigs(t, in) {
			if len(cc.CABundle) != 0 {
				t.Errorf("webhook %s has a caBundle: cert-manager's injector writes it", name)
			}
		}
	})

	t.Run("without cert-manager the webhook issues its own and mounts nothing", func(t *testing.T) {
		in := renderChart(t, "--set", "certManager.enabled=false")
		d := named[*appsv1.Deployment](t, in, WebhookDeployment)
		c := onlyContainer(t, d)
		for name, want := range map[string]string{
			"cert-source": "self-signed", "self-signed-secret": SelfSignedSecret, "service-name": WebhookService, "webhook-configuration": WebhookConfigurationName,
		} {
			if got, _ := flag(c.Args, name); got != want {
				t.Errorf("webhook --%s=%q, want %q", name, got, want)
			}
		}
		for _, name := range []string{"tls-cert-file", "tls-key-file"} {
			if _, ok := flag(c.Args, name); ok {
				t.Errorf("self-signed webhook given --%s", name)
			}
		}
		if len(d.Spec.Template.Spec.Volumes) != 0 || len(c.VolumeMounts) != 0 {
			t.Errorf("self-signed webhook mounts %+v", d.Spec.Template.Spec.Volumes)
		}
		if n := len(unstructuredOf(in, "Certificate")) + len(unstructuredOf(in, "Issuer")); n != 0 {
			t.Errorf("%d cert-manager objects without cert-manager", n)
		}
		for _, a := range []map[string]string{
			named[*admissionregistrationv1.MutatingWebhookConfiguration](t, in, WebhookConfigurationName).Annotations,
			named[*admissionregistrationv1.ValidatingWebhookConfiguration](t, in, WebhookConfigurationName).Annotations,
		} {
			if _, ok := a[certManagerAnnotation]; ok {
				t.Errorf("a webhook configuration asks cert-manager for its caBundle without cert-manager")
			}
		}
	})

	t.Run("the installer's Secret is mounted and its CA is every webhook's caBundle", func(t *testing.T) {
		path, pem := writeCA(t)
		in := renderChart(t, "--set", "certManager.enabled=false", "--set", "tls.secretName=my-tls", "--set-file", "tls.caBundle="+path)
		d := named[*appsv1.Deployment](t, in, WebhookDeployment)
		if vols := d.Spec.Template.Spec.Volumes; len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != "my-tls" {
			t.Errorf("webhook volumes %+v, want Secret my-tls", vols)
		}
		if got, _ := flag(onlyContainer(t, d).Args, "cert-source"); got != "file" {
			t.Errorf("webhook --cert-source=%s, want file", got)
		}
		ccs := allClientConfigs(t, in)
		if len(ccs) != 4 {
			t.Errorf("%d webhooks, want 4", len(ccs))
		}
		for name, cc := range ccs {
			if !bytes.Equal(cc.CABundle, pem) {
				t.Errorf("webhook %s has caBundle %q, want the CA's PEM", name, cc.CABundle)
			}
		}
		_, err := HelmTemplate(helmBinary(t, Helm4), repoRoot(t), chartArgs("--set", "certManager.enabled=false", "--set", "tls.secretName=my-tls")...)
		if err == nil || !strings.Contains(err.Error(), "tls.caBundle is required with tls.secretName") {
			t.Errorf("a Secret without its CA rendered, or failed otherwise: %v", err)
		}
	})
}

// What the values tune reaches the objects, and only there.
func TestChartValueOverrides(t *testing.T) {
	t.Run("failurePolicy Ignore and a timeout of 10 s, for the webhooks that fail closed", func(t *testing.T) {
		in := renderChart(t, "--set", "webhook.failurePolicy=Ignore", "--set", "webhook.timeoutSeconds=10")
		pod := podWebhook(t, in)
		if *pod.FailurePolicy != admissionregistrationv1.Ignore || *pod.TimeoutSeconds != 10 {
			t.Errorf("pod webhook fails %s after %d s, want Ignore after 10", *pod.FailurePolicy, *pod.TimeoutSeconds)
		}
		for _, w := range named[*admissionregistrationv1.ValidatingWebhookConfiguration](t, in, WebhookConfigurationName).Webhooks {
			if *w.FailurePolicy != admissionregistrationv1.Ignore || *w.TimeoutSeconds != 10 {
				t.Errorf("webhook %s fails %s after %d s, want Ignore after 10", w.Name, *w.FailurePolicy, *w.TimeoutSeconds)
			}
		}
		// With Fail, the workload webhooks still fail open.
		for _, w := range named[*admissionregistrationv1.ValidatingWebhookConfiguration](t, renderChart(t), WebhookConfigurationName).Webhooks {
			want := admissionregistrationv1.Ignore
			if w.Name == webhook.PoolsWebhookName {
				want = admissionregistrationv1.Fail
			}
			if *w.FailurePolicy != want {
				t.Errorf("by default webhook %s fails %s, want %s", w.Name, *w.FailurePolicy, want)
			}
		}
	})

	t.Run("a namespaceSelector narrows the pod webhook's namespaces, keeping the opt-in", func(t *testing.T) {
		in := renderChart(t, "--set", "webhook.namespaceSelector.matchLabels.env=prod",
			"--set", "webhook.namespaceSelector.matchLabels.kube-eip\\.io/injection=disabled",
			"--set", "webhook.namespaceSelector.matchExpressions[0].key=tier",
			"--set", "webhook.namespaceSelector.matchExpressions[0].operator=Exists")
		sel := podWebhook(t, in).NamespaceSelector
		if sel.MatchLabels["env"] != "prod" || sel.MatchLabels[api.LabelInjection] != api.InjectionEnabled {
			t.Errorf("pod webhook selects %v, want env=prod beside the opt-in", sel.MatchLabels)
		}
		goSelector := webhook.Configuration(InstallRegistration(testNamespace, BinderServiceAccount)).Webhooks[0].NamespaceSelector
		want := append(slices.Clone(goSelector.MatchExpressions), metav1.LabelSelectorRequirement{Key: "tier", Operator: metav1.LabelSelectorOpExists})
		if !equality.Semantic.DeepEqual(sel.MatchExpressions, want) {
			t.Errorf("pod webhook's expressions %+v, want %+v", sel.MatchExpressions, want)
		}
		for _, w := range named[*admissionregistrationv1.ValidatingWebhookConfiguration](t, in, WebhookConfigurationName).Webhooks {
			if w.NamespaceSelector != nil && w.NamespaceSelector.MatchLabels["env"] != "" {
				t.Errorf("webhook %s is narrowed too", w.Name)
			}
		}
	})

	t.Run("an image digest is pulled, and injected, by digest", func(t *testing.T) {
		digest := "sha256:" + strings.Repeat("ab", 32)
		in := renderChart(t, "--set", "image.digest="+digest, "--set", "image.tag=ignored")
		want := "ghcr.io/kube-eip/kube-eip@" + digest
		for name, spec := range podSpecs(in) {
			if spec.Containers[0].Image != want {
				t.Errorf("%s runs %s, want %s", name, spec.Containers[0].Image, want)
			}
		}
		if got, _ := flag(onlyContainer(t, named[*appsv1.Deployment](t, in, WebhookDeployment)).Args, "wait-image"); got != want {
			t.Errorf("webhook injects %s, want %s", got, want)
		}
		in = renderChart(t, "--set", "image.repository=registry.example.com/mirror/kube-eip", "--set", "image.tag=v9")
		if got := onlyContainer(t, named[*appsv1.Deployment](t, in, BinderDeployment)).Image; got != "registry.example.com/mirror/kube-eip:v9" {
			t.Errorf("binder runs %s", got)
		}
	})

	t.Run("the binder's service account takes the IRSA role and any name, which the admission rules follow", func(t *testing.T) {
		role := "arn:aws:iam::123456789012:role/kube-eip"
		in := renderChart(t, "--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn="+role, "--set", "serviceAccount.name=eip-binder")
		sa := named[*corev1.ServiceAccount](t, in, "eip-binder")
		if sa.Annotations["eks.amazonaws.com/role-arn"] != role {
			t.Errorf("binder ServiceAccount annotations %v, want the role", sa.Annotations)
		}
		if got := named[*appsv1.Deployment](t, in, BinderDeployment).Spec.Template.Spec.ServiceAccountName; got != "eip-binder" {
			t.Errorf("binder runs as %s", got)
		}
		if got := all[*batchv1.Job](in)[0].Spec.Template.Spec.ServiceAccountName; got != "eip-binder" {
			t.Errorf("uninstall hook runs as %s", got)
		}
		got := named[*admissionregistrationv1.MutatingWebhookConfiguration](t, in, WebhookConfigurationName).DeepCopy()
		withoutChartMetadata(&got.ObjectMeta)
		want := webhook.Configuration(InstallRegistration(testNamespace, "eip-binder"))
		want.TypeMeta = got.TypeMeta
		checkSame(t, "MutatingWebhookConfiguration", got, want)
		policies, _ := webhook.AdmissionPolicies(InstallIdentities(testNamespace, "eip-binder"))
		for _, p := range policies {
			got := named[*admissionregistrationv1.ValidatingAdmissionPolicy](t, in, p.Name).DeepCopy()
			withoutChartMetadata(&got.ObjectMeta)
			p.TypeMeta = got.TypeMeta
			checkSame(t, "policy "+p.Name, got, p)
		}
		crb := named[*rbacv1.ClusterRoleBinding](t, in, "kube-eip-binder")
		if crb.Subjects[0].Name != "eip-binder" {
			t.Errorf("binder's ClusterRole bound to %+v", crb.Subjects)
		}
		in = renderChart(t, "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=existing")
		if sas := all[*corev1.ServiceAccount](in); slices.ContainsFunc(sas, func(sa *corev1.ServiceAccount) bool { return sa.Name == "existing" }) {
			t.Error("serviceAccount.create=false created it")
		}
	})

	t.Run("extraEnv, logLevel, region, endpoint and credentials reach both components and the hooks", func(t *testing.T) {
		in := renderChart(t, "--set", "extraEnv[0].name=HTTPS_PROXY", "--set", "extraEnv[0].value=http://proxy:3128",
			"--set", "logLevel=2", "--set", "region=eu-west-1", "--set", "binder.ec2Endpoint=https://ec2.example.com",
			"--set", "aws.credentialsSecret=aws-creds", "--set", "webhook.extraArgs={--wait-timeout=15m}", "--set", "binder.extraArgs={--workers=8}")
		proxy := corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://proxy:3128"}
		wh := onlyContainer(t, named[*appsv1.Deployment](t, in, WebhookDeployment))
		if !slices.Contains(wh.Args, "-v=2") || wh.Args[len(wh.Args)-1] != "--wait-timeout=15m" || !slices.Contains(wh.Env, proxy) {
			t.Errorf("webhook runs %q with %+v", wh.Args, wh.Env)
		}
		b := onlyContainer(t, named[*appsv1.Deployment](t, in, BinderDeployment))
		uninstall := all[*batchv1.Job](in)[0].Spec.Template.Spec.Containers[0]
		for _, c := range []corev1.Container{b, uninstall} {
			for name, want := range map[string]string{"region": "eu-west-1", "ec2-endpoint": "https://ec2.example.com", "cluster-name": "test"} {
				if got, _ := flag(c.Args, name); got != want {
					t.Errorf("%s --%s=%q, want %q", c.Name, name, got, want)
				}
			}
			if !slices.Contains(c.Args, "-v=2") || !slices.Contains(c.Env, proxy) {
				t.Errorf("%s runs %q with %+v", c.Name, c.Args, c.Env)
			}
			var keys []string
			for _, e := range c.Env {
				if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
					if ref.SecretKeyRef.Name != "aws-creds" || ref.SecretKeyRef.Key != e.Name || ref.SecretKeyRef.Optional == nil || !*ref.SecretKeyRef.Optional {
						t.Errorf("%s env %s = %+v, want the optional key of Secret aws-creds", c.Name, e.Name, ref)
					}
					keys = append(keys, e.Name)
				}
			}
			if !slices.Equal(keys, AWSCredentialKeys) {
				t.Errorf("%s reads %v of the Secret, want %v", c.Name, keys, AWSCredentialKeys)
			}
		}
		if b.Args[len(b.Args)-1] != "--workers=8" {
			t.Errorf("binder runs %q, want --workers=8 last", b.Args)
		}
	})

	t.Run("one webhook replica has no disruption budget", func(t *testing.T) {
		in := renderChart(t, "--set", "webhook.replicas=1", "--set", "binder.replicas=3")
		if pdbs := all[*policyv1.PodDisruptionBudget](in); len(pdbs) != 0 {
			t.Errorf("one webhook replica with a disruption budget: no node could be drained")
		}
		if r := named[*appsv1.Deployment](t, in, BinderDeployment).Spec.Replicas; *r != 3 {
			t.Errorf("binder replicas %d, want 3", *r)
		}
	})
}

// What the schema or the templates refuse, with words that say what to
// change, in both Helm majors: the end-to-end tests assert these.
func TestChartRefusesBadValues(t *testing.T) {
	for _, h := range []string{Helm3, Helm4} {
		helm := helmBinary(t, h)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--namespace", testNamespace}, "clusterName is required: the binder tags every address it owns with it; two clusters sharing a name would release each other's addresses"},
			{chartArgs("--set", "webhook.failurePolicy=Sometimes"), "- at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'"},
			{chartArgs("--set", "webhook.timeoutSeconds=31"), "- at '/webhook/timeoutSeconds': maximum: got 31, want 30"},
			{chartArgs("--set", "webhook.replicas=0"), "- at '/webhook/replicas': minimum: got 0, want 1"},
			{chartArgs("--set", "webhok.replicas=2"), "additional properties 'webhok' not allowed"},
			{chartArgs("--set", "clusterName=two words"), "- at '/clusterName': 'two words' does not match pattern"},
			{chartArgs("--set", "tls.secretName=my-tls"), "tls.secretName is the certificate of an install without cert-manager"},
			{chartArgs("--set", "certManager.enabled=false", "--set", "tls.secretName=my-tls", "--set", "tls.caBundle=Y2E="), "- at '/tls/caBundle': 'Y2E=' does not match pattern"},
		} {
			_, err := HelmTemplate(helm, repoRoot(t), c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s template %q: %v\nwant an error with %q", h, c.args, err, c.want)
			}
		}
	}
}

// helm lint --strict passes with both majors, with each certificate
// source and with the ServiceMonitors.
func TestChartLints(t *testing.T) {
	path, _ := writeCA(t)
	for _, h := range []string{Helm3, Helm4} {
		helm := helmBinary(t, h)
		for _, args := range [][]string{
			nil,
			{"--set", "certManager.enabled=false"},
			{"--set", "certManager.enabled=false", "--set", "tls.secretName=my-tls", "--set-file", "tls.caBundle=" + path},
			{"--set", "metrics.serviceMonitor.enabled=true"},
			{"--set", "metrics.serviceMonitor.enabled=true", "--set", "certManager.enabled=false", "--set", "tls.secretName=my-tls", "--set-file", "tls.caBundle=" + path},
		} {
			lint := append([]string{"lint", "--strict", filepath.Join(repoRoot(t), ChartDir), "--set", "clusterName=lint"}, args...)
			if out, err := runHelm(helm, lint...); err != nil {
				t.Errorf("%s lint --strict %q: %v\n%s", h, args, err, out)
			}
		}
	}
}
