package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrNoCertificate is returned while a source has not loaded any certificate.
var ErrNoCertificate = errors.New("no serving certificate loaded yet")

// checkUsable says why cert must not be relied on at now, or nil if it can.
// The key check matters for hand-built certificates (NewStatic); pairs parsed
// by tls.X509KeyPair have already passed it.
func checkUsable(cert *tls.Certificate, now time.Time) error {
	if cert == nil || len(cert.Certificate) == 0 {
		return ErrNoCertificate
	}
	leaf, err := leafOf(cert)
	if err != nil {
		return err
	}
	switch {
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("serving certificate %s is not valid before %s", serialOf(leaf), leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return fmt.Errorf("serving certificate %s expired at %s", serialOf(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("serving certificate %s has no usable private key (%T)", serialOf(leaf), cert.PrivateKey)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return fmt.Errorf("private key does not match serving certificate %s", serialOf(leaf))
	}
	return nil
}

// leafOf returns the parsed end-entity certificate. tls.X509KeyPair fills
// Leaf already; a hand-built tls.Certificate may not.
func leafOf(cert *tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parsing serving certificate: %w", err)
	}
	return leaf, nil
}

// serialOf formats a serial number the way openssl prints it, so a log line
// can be matched against `openssl x509 -serial` or cert-manager's status.
func serialOf(leaf *x509.Certificate) string {
	return fmt.Sprintf("%X", leaf.SerialNumber)
}

// describe gives the key/values that identify a certificate in a log line.
func describe(cert *tls.Certificate) []any {
	leaf, err := leafOf(cert)
	if err != nil {
		return []any{"parseError", err.Error()}
	}
	return []any{
		"serial", serialOf(leaf),
		"dnsNames", leaf.DNSNames,
		"notBefore", leaf.NotBefore.UTC(),
		"notAfter", leaf.NotAfter.UTC(),
	}
}
