package deploy

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/kube-eip/kube-eip/binder/cloud"
)

func TestCRDsParse(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range crds {
		names[c.Name] = true
	}
	for _, want := range []string{"eippools.kube-eip.io", "eipreservations.kube-eip.io"} {
		if !names[want] {
			t.Errorf("CRD %s missing; have %v", want, names)
		}
	}
}

// The IAM policy grants exactly the calls the binder makes: a call added
// to its EC2 interface without a permission would fail in production only.
func TestIAMPolicyCoversTheBinder(t *testing.T) {
	var policy struct {
		Statement []struct {
			Action any
		}
	}
	if err := json.Unmarshal(IAMPolicy, &policy); err != nil {
		t.Fatalf("parsing the IAM policy: %v", err)
	}
	granted := map[string]bool{}
	for _, st := range policy.Statement {
		switch a := st.Action.(type) {
		case string:
			granted[a] = true
		case []any:
			for _, x := range a {
				granted[x.(string)] = true
			}
		}
	}
	api := reflect.TypeFor[cloud.API]()
	want := map[string]bool{}
	for i := range api.NumMethod() {
		want["ec2:"+api.Method(i).Name] = true
	}
	if !maps.Equal(granted, want) {
		t.Errorf("policy grants %v, the binder calls %v", slices.Sorted(maps.Keys(granted)), slices.Sorted(maps.Keys(want)))
	}
}

func TestRolesParse(t *testing.T) {
	for _, c := range []string{"binder", "webhook"} {
		roles, err := RBAC(c)
		if err != nil {
			t.Fatal(err)
		}
		if roles.ClusterRole.Name != "kube-eip-"+c || roles.Role.Namespace != Namespace || len(roles.ClusterRole.Rules) == 0 {
			t.Errorf("%s: cluster role %q with %d rules, role in %q", c, roles.ClusterRole.Name, len(roles.ClusterRole.Rules), roles.Role.Namespace)
		}
	}
}

// The checked-in admission policies are what the code renders: make
// generate writes them, and a stale file would install other rules than
// the tests exercised.
func TestAdmissionPolicyManifestIsCurrent(t *testing.T) {
	want, err := AdmissionPolicyManifest(Namespace)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("admission-policies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Error("deploy/admission-policies.yaml is stale; run make generate")
	}
}
