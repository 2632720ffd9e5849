package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStatic(t *testing.T) {
	ca := newTestCA(t)
	certPEM, keyPEM := issue(t, ca, time.Hour)
	other, otherKey := issue(t, ca, time.Hour)
	expired, expiredKey := issue(t, ca, time.Millisecond)

	pair := func(c, k []byte) tls.Certificate {
		t.Helper()
		cert, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatalf("X509KeyPair: %v", err)
		}
		return cert
	}
	good := pair(certPEM, keyPEM)
	mismatched := good
	mismatched.PrivateKey = pair(other, otherKey).PrivateKey
	unparsed := good
	unparsed.Leaf = nil

	for _, tc := range []struct {
		name    string
		cert    tls.Certificate
		wantErr string
	}{
		{"valid", good, ""},
		{"valid without parsed leaf", unparsed, ""},
		{"key of another certificate", mismatched, "does not match"},
		{"expired", pair(expired, expiredKey), "expired"},
		{"empty", tls.Certificate{}, ErrNoCertificate.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewStatic(tc.cert).Healthy()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Healthy = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Healthy = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}

	t.Run("serves its certificate", func(t *testing.T) {
		got, err := NewStatic(good).GetCertificate(&tls.ClientHelloInfo{})
		if err != nil || got == nil || string(got.Certificate[0]) != string(good.Certificate[0]) {
			t.Fatalf("GetCertificate = %v, %v; want the static certificate", got, err)
		}
	})

	t.Run("Start returns when its context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- NewStatic(good).Start(ctx) }()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Start = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Start did not return")
		}
	})

	if !errors.Is(NewStatic(tls.Certificate{}).Healthy(), ErrNoCertificate) {
		t.Fatal("empty certificate is not ErrNoCertificate")
	}
}
