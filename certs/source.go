// Package certs provides the webhook's serving certificate: where it comes
// from, how it is kept fresh across rotations, and whether it is fit to serve.
package certs

import (
	"context"
	"crypto/tls"
)

// Source supplies the serving certificate to a TLS server. The server wires
// GetCertificate into its tls.Config, so a rotated certificate is used for the
// next handshake without a restart, and Healthy into its readiness check, so
// the pod leaves the Service's endpoints while it has nothing valid to serve.
type Source interface {
	// GetCertificate returns the certificate to present in a handshake. It
	// fails, and so does the handshake, while nothing has been loaded yet.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// Start keeps the certificate fresh (reloading or reissuing it) and blocks
	// until ctx ends. It returns nil when ctx ends and an error only when the
	// source can no longer do its job. It is called once.
	Start(ctx context.Context) error

	// Healthy returns nil only while a certificate is loaded that is within
	// its validity period and whose private key matches it.
	Healthy() error
}
