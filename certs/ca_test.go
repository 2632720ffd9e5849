package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

func TestCAIssuesVerifiableServingCertificates(t *testing.T) {
	ca := newTestCA(t)
	certPEM, keyPEM, err := ca.Issue([]string{"kube-eip-webhook.kube-eip.svc", "kube-eip-webhook.kube-eip.svc.cluster.local"},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, time.Hour)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	leaf := pair.Leaf
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("serving key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if leaf.IsCA {
		t.Fatal("serving certificate is a CA")
	}

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("CertPEM is not a usable root")
	}
	for _, name := range []string{"kube-eip-webhook.kube-eip.svc", "kube-eip-webhook.kube-eip.svc.cluster.local", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verifying for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: roots}); err == nil {
		t.Error("certificate verified for a name it was not issued for")
	}
	if got := time.Until(leaf.NotAfter); got > time.Hour || got < 59*time.Minute {
		t.Errorf("certificate valid for another %s, want about an hour", got)
	}

	again, _, err := ca.Issue([]string{"kube-eip-webhook.kube-eip.svc"}, nil, time.Hour)
	if err != nil {
		t.Fatalf("second Issue: %v", err)
	}
	if serialOfPEM(t, again) == serialOfPEM(t, certPEM) {
		t.Fatal("two issued certificates share a serial")
	}
}

func TestCAIssueRefusesBadRequests(t *testing.T) {
	ca := newTestCA(t)
	if _, _, err := ca.Issue(nil, nil, time.Hour); err == nil {
		t.Error("Issue with no names succeeded")
	}
	if _, _, err := ca.Issue([]string{"a.example"}, nil, 0); err == nil {
		t.Error("Issue with zero validity succeeded")
	}
}

func TestCACertPEMIsACopy(t *testing.T) {
	ca := newTestCA(t)
	pemBytes := ca.CertPEM()
	pemBytes[0] = 'X'
	if bytes.Equal(ca.CertPEM(), pemBytes) {
		t.Fatal("CertPEM exposes the CA's own buffer")
	}
}
