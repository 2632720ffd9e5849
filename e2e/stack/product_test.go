package stack

import (
	"crypto/x509"
	"encoding/pem"
	"maps"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-eip/kube-eip/deploy"
	"github.com/kube-eip/kube-eip/e2e/ec2sim"
)

// The serving certificate names the webhook's Service every way it may be
// dialled, the API server's <svc>.<ns>.svc among them.
func TestServingCertificateNamesTheService(t *testing.T) {
	secret, err := issueServingSecret(Namespace)
	if err != nil {
		t.Fatal(err)
	}
	if secret.Type != corev1.SecretTypeTLS || secret.Name != deploy.WebhookTLSSecret || secret.Namespace != Namespace {
		t.Errorf("Secret %s/%s of type %s", secret.Namespace, secret.Name, secret.Type)
	}
	block, _ := pem.Decode(secret.Data[corev1.TLSCertKey])
	if block == nil {
		t.Fatal("no certificate in the Secret")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kube-eip-webhook", "kube-eip-webhook.kube-eip-system", "kube-eip-webhook.kube-eip-system.svc", "kube-eip-webhook.kube-eip-system.svc.cluster.local"}
	if !slices.Equal(leaf.DNSNames, want) {
		t.Errorf("certificate for %v, want %v", leaf.DNSNames, want)
	}
}

// A pair already in the Secret is kept only if it still serves the
// Service, with its own CA, for a while longer; anything else is issued
// anew.
func TestReusableServingSecret(t *testing.T) {
	now := time.Now()
	good, err := issueServingSecret(Namespace)
	if err != nil {
		t.Fatal(err)
	}
	other, err := issueServingSecret(Namespace)
	if err != nil {
		t.Fatal(err)
	}
	if !reusableServingSecret(good, Namespace, now) {
		t.Fatal("a fresh pair is not reused")
	}
	with := func(change func(s *corev1.Secret)) *corev1.Secret {
		s := good.DeepCopy()
		change(s)
		return s
	}
	for name, tc := range map[string]struct {
		secret *corev1.Secret
		ns     string
		now    time.Time
	}{
		"expiring within a day": {good, Namespace, now.Add(servingValidity - time.Hour)},
		"another namespace":     {good, "elsewhere", now},
		"another CA":            {with(func(s *corev1.Secret) { s.Data[caCertKey] = other.Data[caCertKey] }), Namespace, now},
		"another key":           {with(func(s *corev1.Secret) { s.Data[corev1.TLSPrivateKeyKey] = other.Data[corev1.TLSPrivateKeyKey] }), Namespace, now},
		"no CA":                 {with(func(s *corev1.Secret) { delete(s.Data, caCertKey) }), Namespace, now},
		"not a TLS Secret":      {with(func(s *corev1.Secret) { s.Type = corev1.SecretTypeOpaque }), Namespace, now},
	} {
		if reusableServingSecret(tc.secret, tc.ns, tc.now) {
			t.Errorf("%s: reused", name)
		}
	}
}

// The binder's pods get the emulator's credentials, and none of the
// variables that would point the SDK elsewhere than --ec2-endpoint.
func TestCredentialData(t *testing.T) {
	s := &Stack{EC2: &ec2sim.Server{URL: "http://127.0.0.1:4566"}}
	got := credentialData(s.awsCredentials())
	want := map[string][]byte{"AWS_ACCESS_KEY_ID": []byte(accessKeyID), "AWS_SECRET_ACCESS_KEY": []byte(secretAccessKey)}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("credentials %q, want %q", got, want)
	}
	for key := range got {
		if !slices.Contains(deploy.AWSCredentialKeys, key) {
			t.Errorf("key %s is not one the binder's Deployment reads", key)
		}
	}
}

// The pods are tuned as the processes are, from the same Options.
func TestTuningFlags(t *testing.T) {
	if got := webhookTuning(Options{}); len(got) != 0 {
		t.Errorf("default webhook tuning %v, want none", got)
	}
	got := webhookTuning(Options{WaitTimeout: 2 * time.Minute, ClaimTTL: 10 * time.Second})
	if want := []string{"--wait-timeout=2m0s", "--claim-ttl=10s"}; !slices.Equal(got, want) {
		t.Errorf("webhook tuning %v, want %v", got, want)
	}
	if got := binderTuning(BinderOptions{}); len(got) != 0 {
		t.Errorf("default binder tuning %v, want none", got)
	}
	got = binderTuning(BinderOptions{SweepInterval: time.Second, OrphanGrace: time.Minute, RateScale: 100, Workers: 4, ExtraArgs: []string{"--x=y"}})
	want := []string{"--sweep-interval=1s", "--orphan-grace=1m0s", "--ec2-rate-scale=100", "--workers=4", "--x=y"}
	if !slices.Equal(got, want) {
		t.Errorf("binder tuning %v, want %v", got, want)
	}
}
