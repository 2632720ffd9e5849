package deploy

import "testing"

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
