package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The chart's generated files are what make generate writes from the code.
func TestChartGeneratedFilesAreCurrent(t *testing.T) {
	chart := filepath.Join(repoRoot(t), ChartDir)
	for file, render := range map[string]func() ([]byte, error){"files/admission.yaml": ChartAdmission, "files/rbac.yaml": ChartRBAC} {
		want, err := render()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(chart, file)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s/%s is stale (%v); run make generate", ChartDir, file, err)
		}
	}
	crds, err := ChartCRDs()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(chart, "crds"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(crds) {
		t.Errorf("%s/crds holds %d files, deploy/crds %d; run make generate", ChartDir, len(entries), len(crds))
	}
	for name, want := range crds {
		if got, err := os.ReadFile(filepath.Join(chart, "crds", name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s/crds/%s is stale (%v); run make generate", ChartDir, name, err)
		}
	}
}

// deploy/manifests/kube-eip.yaml is the chart rendered by the pinned Helm,
// and installs what the chart installs, with its Namespace first and no
// hooks.
func TestPlainManifestsAreCurrent(t *testing.T) {
	root := repoRoot(t)
	want, err := PlainManifests(helmBinary(t, Helm4), root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "deploy/manifests/kube-eip.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("deploy/manifests/kube-eip.yaml is stale; run make generate (%s)", firstDifference(string(got), string(want)))
	}
	in := decodeInstall(t, got)
	if ns, ok := in.objs[0].(*corev1.Namespace); !ok || ns.Name != Namespace {
		t.Errorf("the plain manifests begin with %T, want Namespace %s", in.objs[0], Namespace)
	}
	counts := kinds(t, in)
	if counts["CustomResourceDefinition"] != 2 || counts["Job"] != 0 || counts["Pod"] != 0 || counts["Namespace"] != 1 {
		t.Errorf("the plain manifests hold %v, want the CRDs, no hooks, one Namespace", counts)
	}
	b := onlyContainer(t, named[*appsv1.Deployment](t, in, BinderDeployment))
	if got, _ := flag(b.Args, "cluster-name"); got != "${CLUSTER_NAME}" {
		t.Errorf("the plain binder runs --cluster-name=%q, want the placeholder of deploy/iam-policy.json", got)
	}
}

// The generator refuses CEL that tpl would read as template actions.
func TestCheckTemplateText(t *testing.T) {
	ok := "namespace: '" + chartNamespace + "'\nuser: " + chartBinderAccount + "\n"
	if err := checkTemplateText([]byte(ok)); err != nil {
		t.Errorf("the chart's own actions refused: %v", err)
	}
	for _, bad := range []string{
		ok + "expression: '{{ .Values.x }}'\n",
		ok + "expression: m.map(k, {{k: 1}})\n",
		ok + "expression: 'a }} b'\n",
		"namespace: '{{ .Release.Namespace\n  }}'\n",
		"nothing to template\n",
	} {
		if err := checkTemplateText([]byte(bad)); err == nil {
			t.Errorf("checkTemplateText accepted %q", bad)
		}
	}
}
