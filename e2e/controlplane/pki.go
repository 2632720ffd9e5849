package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the paths of the files the components are started with. The CA
// and service-account key are kept across restarts of a persistent directory
// (make dev) so that kubeconfigs and issued tokens stay valid.
type pki struct {
	caCert, caKey                     string
	servingCert, servingK             string
	adminCert, adminKey               string
	kubeletClientCert, kubeletClientK string
	saKey, saPub                      string
}

func newPKI(dir string) pki {
	return pki{
		caCert:      filepath.Join(dir, "ca.crt"),
		caKey:       filepath.Join(dir, "ca.key"),
		servingCert: filepath.Join(dir, "apiserver.crt"),
		servingK:    filepath.Join(dir, "apiserver.key"),
		adminCert:   filepath.Join(dir, "admin.crt"),
		adminKey:    filepath.Join(dir, "admin.key"),
		saKey:       filepath.Join(dir, "sa.key"),
		saPub:       filepath.Join(dir, "sa.pub"),
		// kubeadm's names for the same certificate.
		kubeletClientCert: filepath.Join(dir, "apiserver-kubelet-client.crt"),
		kubeletClientK:    filepath.Join(dir, "apiserver-kubelet-client.key"),
	}
}

// ensure creates whatever is missing. Leaf certificates are reissued on every
// start because they are cheap and the CA is what clients pin.
func (p pki) ensure() error {
	if err := os.MkdirAll(filepath.Dir(p.caCert), 0o700); err != nil {
		return err
	}
	ca, caKey, err := p.loadOrCreateCA()
	if err != nil {
		return fmt.Errorf("preparing the cluster CA: %w", err)
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if err := issue(ca, caKey, serving, p.servingCert, p.servingK); err != nil {
		return fmt.Errorf("issuing the API server certificate: %w", err)
	}
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-eip-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := issue(ca, caKey, admin, p.adminCert, p.adminKey); err != nil {
		return fmt.Errorf("issuing the admin certificate: %w", err)
	}
	// kubeadm names the API server's kubelet client so, and binds it to
	// system:kubelet-api-admin; system:masters instead spares this cluster
	// that binding, and lets a fake kubelet API authorize the API server
	// for anything a SubjectAccessReview would ask.
	kubeletClient := &x509.Certificate{
		Subject:     pkix.Name{CommonName: KubeletClientCommonName, Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := issue(ca, caKey, kubeletClient, p.kubeletClientCert, p.kubeletClientK); err != nil {
		return fmt.Errorf("issuing the API server's kubelet client certificate: %w", err)
	}
	if err := p.ensureServiceAccountKey(); err != nil {
		return fmt.Errorf("preparing the service account key: %w", err)
	}
	return nil
}

func (p pki) loadOrCreateCA() (*x509.Certificate, crypto.Signer, error) {
	certPEM, certErr := os.ReadFile(p.caCert)
	keyPEM, keyErr := os.ReadFile(p.caKey)
	if certErr == nil && keyErr == nil {
		cert, err := parseCert(certPEM)
		if err != nil {
			return nil, nil, err
		}
		key, err := parseKey(keyPEM)
		if err != nil {
			return nil, nil, err
		}
		if time.Now().Before(cert.NotAfter.Add(-24 * time.Hour)) {
			return cert, key, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kube-eip-local-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if err := writePEM(p.caCert, "CERTIFICATE", der); err != nil {
		return nil, nil, err
	}
	if err := writeKey(p.caKey, key); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func (p pki) ensureServiceAccountKey() error {
	if _, err := os.Stat(p.saKey); err == nil {
		if _, err := os.Stat(p.saPub); err == nil {
			return nil
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if err := writeKey(p.saKey, key); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	return writePEM(p.saPub, "PUBLIC KEY", pub)
}

func issue(ca *x509.Certificate, caKey crypto.Signer, tmpl *x509.Certificate, certPath, keyPath string) error {
	der, key, err := sign(ca, caKey, tmpl)
	if err != nil {
		return err
	}
	if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
		return err
	}
	return writeKey(keyPath, key)
}

// sign issues tmpl, valid for a year, to a new key.
func sign(ca *x509.Certificate, caKey crypto.Signer, tmpl *x509.Certificate) ([]byte, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().AddDate(1, 0, 0)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

// issueServing issues, in memory, a serving certificate from the cluster CA
// for hosts, each an IP address or a DNS name.
func (p pki) issueServing(hosts []string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(p.caCert)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading the cluster CA: %w", err)
	}
	keyPEM, err := os.ReadFile(p.caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading the cluster CA key: %w", err)
	}
	ca, err := parseCert(certPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parsing the cluster CA: %w", err)
	}
	caKey, err := parseKey(keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parsing the cluster CA key: %w", err)
	}
	tmpl := &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if len(hosts) > 0 {
		tmpl.Subject.CommonName = hosts[0]
	}
	der, key, err := sign(ca, caKey, tmpl)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing a serving certificate for %v: %w", hosts, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand never fails on Linux; a fixed serial is still valid.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der)
}

func writePEM(path, blockType string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600)
}

func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block in certificate file")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block in key file")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return signer, nil
}
