// Command rbaccheck checks kube-eip's generated roles against what its
// components asked of the API server in the end-to-end suites: the audit
// logs the suites' stacks wrote into the directory of
// stack.AuditDirEnv (make test). Every verb of every rule must have been
// used at least once, by the component the role is for, in some suite, and
// no request of theirs may have been refused by RBAC. It exits 1
// otherwise, listing what was spare or missing.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kube-eip/kube-eip/e2e/stack"
)

func main() {
	dir := flag.String("dir", "", "the directory of the suites' audit logs (required)")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "rbaccheck:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return err
	}
	if len(logs) == 0 {
		return fmt.Errorf("no audit logs in %q: run the end-to-end suites with %s=%s", dir, stack.AuditDirEnv, dir)
	}
	var all []stack.Request
	for _, path := range logs {
		requests, err := stack.ReadAuditLog(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		all = append(all, requests...)
	}
	check, err := stack.CheckRoles(all)
	if err != nil {
		return err
	}
	for _, f := range check.Forbidden {
		fmt.Println("forbidden:", f)
	}
	for _, u := range check.Unused {
		fmt.Println("never used:", u)
	}
	if len(check.Forbidden) > 0 || len(check.Unused) > 0 {
		return fmt.Errorf("%d permissions never used and %d requests forbidden, in %d requests of %d suites: "+
			"drop a spare verb from the +kubebuilder:rbac markers (make generate), or add the scenario that needs it to an audited suite",
			len(check.Unused), len(check.Forbidden), len(all), len(logs))
	}
	fmt.Printf("rbaccheck: every permission of the generated roles was used, none was missing (%d requests of %d suites)\n", len(all), len(logs))
	return nil
}
