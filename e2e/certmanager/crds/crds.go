// Package crds holds cert-manager's CustomResourceDefinitions: verbatim
// copies of deploy/crds/*.yaml of the cert-manager module that go.mod
// requires. Those files are the source its Helm chart templates its CRDs
// from (the chart adds only labels and a keep annotation). The module ships
// them as plain files, not as a Go package, and go:embed cannot reach into
// another module, so they are copied here; crds_test.go and
// hack/build-certmanager.sh fail when the copies and the module differ.
package crds

import (
	"embed"
	"io/fs"
)

//go:embed *.yaml
var files embed.FS

// Files returns each CRD's YAML by file name.
func Files() (map[string][]byte, error) {
	names, err := fs.Glob(files, "*.yaml")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		if out[name], err = files.ReadFile(name); err != nil {
			return nil, err
		}
	}
	return out, nil
}
