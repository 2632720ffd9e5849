package crds

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const module = "github.com/cert-manager/cert-manager"

// After a cert-manager upgrade in go.mod, the embedded CRDs must be copied
// again from the new version, or the harness would serve the old schema.
func TestTheCopiesAreTheRequiredModulesCRDs(t *testing.T) {
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", module, err)
	}
	var m struct{ Dir, Version string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("reading the module's directory from %q: %v", out, err)
	}
	want, err := filepath.Glob(filepath.Join(m.Dir, "deploy", "crds", "*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRDs in %s (%v)", m.Dir, err)
	}
	got, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	fix := "cp " + filepath.Join(m.Dir, "deploy", "crds") + "/*.yaml e2e/certmanager/crds/ && chmod 644 e2e/certmanager/crds/*.yaml"
	for _, path := range want {
		name := filepath.Base(path)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s differs from %s %s's; run: %s", name, module, m.Version, fix)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("%s is not among %s %s's CRDs; remove it", name, module, m.Version)
	}
}
