package server

import (
	"crypto/tls"
	"net/http"

	"github.com/kube-eip/kube-eip/certs"
)

// newTLSConfig asks src for the certificate at every handshake, so a rotated
// certificate is served without a restart. TLS 1.2 is the floor the API
// server itself accepts; Go's default cipher suites are kept.
func newTLSConfig(src certs.Source) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: src.GetCertificate,
	}
}

// protocols is what the server offers in ALPN.
func protocols(enableHTTP2 bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(enableHTTP2)
	return p
}
