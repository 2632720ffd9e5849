package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

const (
	// caValidity is long enough that a dev stack or a test never sees its CA
	// expire; production CAs come from cert-manager or the self-signed source.
	caValidity = 5 * 365 * 24 * time.Hour

	// backdate tolerates clocks that lag the issuer's by a little, so a
	// freshly issued certificate is not "not yet valid" on another host.
	backdate = time.Minute
)

// CA is an in-memory certificate authority (ECDSA P-256) that issues serving
// certificates. Tests and the dev stack use it to make PEM files and the
// caBundle that goes with them.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// NewCA creates a self-signed CA named commonName.
func NewCA(commonName string) (*CA, error) {
	return newCA(commonName, caValidity)
}

// newCA creates a self-signed CA named commonName valid from now for
// validity. The self-signed source chooses the validity so that it can
// rotate its CA (and a test can watch it do so in seconds).
func newCA(commonName string, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("creating CA %q: validity %s is not positive", commonName, validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaves only, never intermediates.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-signing CA %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA %q: %w", commonName, err)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// ParseCA reads back a CA that KeyPEM and CertPEM wrote out, e.g. into a
// Secret, so that another process can go on issuing from it. It refuses a
// certificate that is not a CA, or a key that does not match it.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	// X509KeyPair checks that the key matches the certificate.
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate and key: %w", err)
	}
	if !pair.Leaf.IsCA || pair.Leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("certificate %s (%s) is not a CA", serialOf(pair.Leaf), pair.Leaf.Subject.CommonName)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("CA key is %T, want ECDSA", pair.PrivateKey)
	}
	return &CA{
		cert:    pair.Leaf,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Leaf.Raw}),
	}, nil
}

// KeyPEM returns the CA's private key, PKCS#8 PEM-encoded, for ParseCA.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("encoding CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CertPEM returns the CA certificate, PEM-encoded: a caBundle, or what a
// client puts in its root pool.
func (ca *CA) CertPEM() []byte {
	return slices.Clone(ca.certPEM)
}

// Issue signs a serving certificate for the given DNS names and IP addresses,
// valid from now for validity, with a fresh P-256 key. It returns the
// certificate and the PKCS#8 key, PEM-encoded, as tls.X509KeyPair and a
// kubernetes.io/tls Secret expect them. The certificate ends no later than
// the CA: a client refuses a chain whose CA has expired, so a longer life
// would only hide when it stops working.
func (ca *CA) Issue(dnsNames []string, ips []net.IP, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, nil, errors.New("issuing serving certificate: no DNS name or IP address given")
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("issuing serving certificate: validity %s is not positive", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating serving key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	// The common name is informational only (clients match SANs), but it
	// makes the certificate recognisable in logs and openssl output.
	var cn string
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	} else {
		cn = ips[0].String()
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              slices.Clone(dnsNames),
		IPAddresses:           slices.Clone(ips),
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing serving certificate for %q: %w", cn, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding serving key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// randomSerial returns a 128-bit positive serial number; RFC 5280 allows up
// to 20 octets and random serials keep rotated certificates distinguishable.
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}
