// Package deploy holds kube-eip's plain manifests. The CRDs are generated
// from api/ by make generate and embedded here so that the binaries and the
// test environment install exactly what is checked in.
package deploy

import (
	"embed"
	"fmt"
	"io/fs"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

//go:embed crds/*.yaml
var crdFiles embed.FS

// IAMPolicy is the binder's AWS permissions, for its role (IRSA or Pod
// Identity); replace ${CLUSTER_NAME} with the binder's --cluster-name.
// Mutating calls are allowed only on addresses tagged for that cluster.
//
//go:embed iam-policy.json
var IAMPolicy []byte

// CRDs returns kube-eip's CustomResourceDefinitions.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	paths, err := fs.Glob(crdFiles, "crds/*.yaml")
	if err != nil {
		return nil, err
	}
	crds := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(paths))
	for _, p := range paths {
		data, err := crdFiles.ReadFile(p)
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", p, err)
		}
		crds = append(crds, crd)
	}
	return crds, nil
}
