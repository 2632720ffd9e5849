package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// options are the harness's flags.
type options struct {
	Kubeconfig string
	// HealthzAddr serves /healthz (the process is up) and /readyz (CRDs
	// established, every informer synced).
	HealthzAddr              string
	ClusterResourceNamespace string
}

func (o options) validate() error {
	if o.Kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	if o.HealthzAddr != "" {
		host, _, err := net.SplitHostPort(o.HealthzAddr)
		if err != nil {
			return fmt.Errorf("--healthz-addr: %w", err)
		}
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
			return fmt.Errorf("--healthz-addr %s: want a loopback IP address such as 127.0.0.1:9403", o.HealthzAddr)
		}
	}
	return nil
}
