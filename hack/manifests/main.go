// Command manifests writes the manifests of deploy/ that are rendered from
// Go (make generate): the admission policies.
package main

import (
	"fmt"
	"os"

	"github.com/kube-eip/kube-eip/deploy"
)

func main() {
	data, err := deploy.AdmissionPolicyManifest(deploy.Namespace)
	if err == nil {
		err = os.WriteFile("deploy/admission-policies.yaml", data, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "manifests:", err)
		os.Exit(1)
	}
}
