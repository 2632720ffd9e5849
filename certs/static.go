package certs

import (
	"context"
	"crypto/tls"
	"time"
)

// Static serves one fixed certificate. It suits tests and callers that manage
// rotation themselves; Healthy still turns false once the certificate expires.
type Static struct {
	cert *tls.Certificate
}

var _ Source = (*Static)(nil)

// NewStatic returns a Source that always serves cert.
func NewStatic(cert tls.Certificate) *Static {
	return &Static{cert: &cert}
}

// GetCertificate returns the fixed certificate.
func (s *Static) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert, nil
}

// Start has nothing to refresh; it blocks until ctx ends.
func (s *Static) Start(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Healthy reports whether the certificate is valid now and matches its key.
func (s *Static) Healthy() error {
	return checkUsable(s.cert, time.Now())
}
