package controlplane

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// egressSelectorConfig is apiserver.k8s.io/v1beta1 EgressSelectorConfiguration,
// reduced to what is written here: k8s.io/apiserver is no dependency of
// this module.
type egressSelectorConfig struct {
	APIVersion       string            `json:"apiVersion"`
	Kind             string            `json:"kind"`
	EgressSelections []egressSelection `json:"egressSelections"`
}

type egressSelection struct {
	Name       string           `json:"name"`
	Connection egressConnection `json:"connection"`
}

type egressConnection struct {
	ProxyProtocol string           `json:"proxyProtocol"`
	Transport     *egressTransport `json:"transport,omitempty"`
}

type egressTransport struct {
	UDS struct {
		UDSName string `json:"udsName"`
	} `json:"uds"`
}

// checkSocketPath makes the egress socket path absolute, as the API server
// runs in another directory, and checks that a Unix socket can have it.
func checkSocketPath(socket string) (string, error) {
	abs, err := filepath.Abs(socket)
	if err != nil {
		return "", fmt.Errorf("resolving the egress socket path %s: %w", socket, err)
	}
	if len(abs) > maxSocketPath {
		return "", fmt.Errorf("egress socket path %s is %d bytes long, over the %d a Unix socket allows: pick a shorter one", abs, len(abs), maxSocketPath)
	}
	return abs, nil
}

// writeEgressSelectorConfig writes into dir the file that sends all of the
// API server's outbound traffic but etcd's as HTTP CONNECT over the Unix
// socket: "cluster" (webhook Services, aggregated APIs, kubelets, the
// pods/services/nodes proxy) and "controlplane" too (URL webhooks, authn
// and authz webhooks, audit), since a URL webhook may name any address and
// the proxy is what keeps every dial on loopback. etcd is dialed direct,
// on loopback. It returns the file's path.
func writeEgressSelectorConfig(dir, socket string) (string, error) {
	proxied := func(name string) egressSelection {
		sel := egressSelection{Name: name, Connection: egressConnection{ProxyProtocol: "HTTPConnect", Transport: &egressTransport{}}}
		sel.Connection.Transport.UDS.UDSName = socket
		return sel
	}
	cfg := egressSelectorConfig{
		APIVersion: "apiserver.k8s.io/v1beta1",
		Kind:       "EgressSelectorConfiguration",
		EgressSelections: []egressSelection{
			proxied("cluster"),
			proxied("controlplane"),
			{Name: "etcd", Connection: egressConnection{ProxyProtocol: "Direct"}},
		},
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "egress-selector.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("writing the egress selector configuration: %w", err)
	}
	return path, nil
}
