package certs

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

const (
	testNamespace = "kube-eip-system"
	testSecret    = "kube-eip-webhook-self-signed" //nolint:gosec // a Secret's name
	testService   = "kube-eip-webhook"
	testConfig    = "kube-eip-webhook"

	// testDeadline bounds every wait; the machine may be busy, and a
	// passing test never comes near it.
	testDeadline = 20 * time.Second
)

var (
	secretsGVR    = corev1.SchemeGroupVersion.WithResource("secrets")
	mutatingGVR   = admissionregistrationv1.SchemeGroupVersion.WithResource("mutatingwebhookconfigurations")
	validatingGVR = admissionregistrationv1.SchemeGroupVersion.WithResource("validatingwebhookconfigurations")
)

// The first replica of a fresh install finds no Secret: the leader makes
// the CA, the Secret and a serving certificate for every name of the
// Service, which the API server trusts through the patched caBundle.
func TestSelfSignedFirstStartCreatesTheSecretAndServesATrustedCertificate(t *testing.T) {
	c := fake.NewClientset(webhookConfigs()...)
	src := newTestSelfSigned(t, c, nil)
	guard := guardTrust(t, c, src)
	start(t, src)
	runIssuer(t, src.Issuer())

	eventually(t, testDeadline, "a usable certificate to be served", func() bool { return src.Healthy() == nil })
	sec := secretOf(t, c)
	if sec == nil || sec.Type != corev1.SecretTypeOpaque {
		t.Fatalf("Secret %+v, want an Opaque one", sec)
	}
	for _, key := range []string{secretCACert, secretCAKey, secretBundle, corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		if len(sec.Data[key]) == 0 {
			t.Errorf("Secret has no %s", key)
		}
	}
	leaf := servedLeaf(src)
	if got, want := serialOf(leaf), serialOfPEM(t, sec.Data[corev1.TLSCertKey]); got != want {
		t.Fatalf("serving %s, the Secret holds %s", got, want)
	}
	for _, name := range serviceNames(testService, testNamespace) {
		if err := verifies(leaf, sec.Data[secretBundle], name); err != nil {
			t.Errorf("served certificate for %s: %v", name, err)
		}
	}
	eventually(t, testDeadline, "every webhook to trust the bundle", func() bool { return trustsOnly(t, c, sec.Data[secretBundle]) })
	guard.done(1)
}

// The chart installs the webhook configurations with an empty caBundle,
// and `helm upgrade` puts it back to empty: the leader fills in every
// webhook of both configurations, and repairs one that was wiped, without
// touching anything but caBundle, nor any other configuration.
func TestSelfSignedPatchesEveryWebhookAndRepairsAWipedCABundle(t *testing.T) {
	c := fake.NewClientset(webhookConfigs()...)
	src := newTestSelfSigned(t, c, nil)
	start(t, src)
	runIssuer(t, src.Issuer())

	eventually(t, testDeadline, "a certificate to be served", func() bool { return src.Healthy() == nil })
	bundle := secretOf(t, c).Data[secretBundle]
	eventually(t, testDeadline, "every webhook to trust the bundle", func() bool { return trustsOnly(t, c, bundle) })

	ctx := t.Context()
	validating := c.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	cfg, err := validating.Get(ctx, testConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Webhooks[1].ClientConfig.CABundle = nil
	cfg.Webhooks[2].ClientConfig.CABundle = []byte("stale")
	if _, err := validating.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Nothing tells the leader; its periodic check must notice.
	eventually(t, testDeadline, "the wiped caBundles to be repaired", func() bool { return trustsOnly(t, c, bundle) })

	want := webhookConfigs()
	for i, kind := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{mutatingGVR, testConfig}, {validatingGVR, testConfig}, {mutatingGVR, "someone-else"}} {
		obj, err := c.Tracker().Get(kind.gvr, "", kind.name)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := withoutCABundles(obj, bundle), withoutCABundles(want[i], bundle); !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s: webhooks changed beyond caBundle:\n%+v\nwant\n%+v", kind.gvr.Resource, kind.name, got, want)
		}
	}
}

// A serving certificate is reissued once two thirds of its life have
// passed, well before it expires, from the same CA.
func TestSelfSignedReissuesTheServingCertificateBeforeItExpires(t *testing.T) {
	c := fake.NewClientset(webhookConfigs()...)
	src := newTestSelfSigned(t, c, func(o *SelfSignedOptions) { o.ServingValidity = 3 * time.Second })
	guard := guardTrust(t, c, src)
	start(t, src)
	runIssuer(t, src.Issuer())

	eventually(t, testDeadline, "a certificate to be served", func() bool { return src.Healthy() == nil })
	first := servedLeaf(src)
	eventually(t, testDeadline, "a new serial to be served", func() bool { return servedSerial(src) != serialOf(first) })
	if now := time.Now(); !now.Before(first.NotAfter) {
		t.Errorf("replaced at %s, after the certificate expired at %s", now, first.NotAfter)
	}
	if err := src.Healthy(); err != nil {
		t.Errorf("Healthy after rotation: %v", err)
	}
	next := servedLeaf(src)
	sec := secretOf(t, c)
	if err := verifies(next, sec.Data[secretBundle], testService+"."+testNamespace+".svc"); err != nil {
		t.Errorf("reissued certificate: %v", err)
	}
	if ca := currentCA(t, c); !signedBy(first, ca) || !signedBy(next, ca) || len(parseBundle(sec.Data[secretBundle])) != 1 {
		t.Errorf("reissued by %s with a bundle of %d, want the first certificate's CA alone", next.Issuer.CommonName, len(parseBundle(sec.Data[secretBundle])))
	}
	guard.done(3)
}

// The CA nears its end: the new one is trusted next to the old, the serving
// certificate follows, and the old CA goes only after the overlap. At every
// write on the way, what each replica serves verifies against the
// webhooks' caBundle.
func TestSelfSignedRotatesItsCAWithoutATrustGap(t *testing.T) {
	c := fake.NewClientset(webhookConfigs()...)
	short := func(o *SelfSignedOptions) {
		o.CAValidity, o.ServingValidity, o.Overlap = 6*time.Second, 3*time.Second, time.Second
	}
	leader, replica := newTestSelfSigned(t, c, short), newTestSelfSigned(t, c, short)
	guard := guardTrust(t, c, leader, replica)
	start(t, leader)
	start(t, replica)
	runIssuer(t, leader.Issuer())

	eventually(t, testDeadline, "both replicas to serve", func() bool { return leader.Healthy() == nil && replica.Healthy() == nil })
	oldCA := currentCA(t, c)
	newCA := waitForCAReplaced(t, c, oldCA, leader, replica)
	if !guard.trustedTogether(oldCA, newCA) {
		t.Error("no caBundle patched trusted the old and the new CA together")
	}
	guard.done(6)
}

// An operator asks for a rotation with the annotation: the same path as a
// scheduled one, and the annotation is gone after.
func TestSelfSignedRotatesWhenAskedTo(t *testing.T) {
	c := fake.NewClientset(webhookConfigs()...)
	src := newTestSelfSigned(t, c, nil)
	guard := guardTrust(t, c, src)
	start(t, src)
	runIssuer(t, src.Issuer())
	eventually(t, testDeadline, "a certificate to be served", func() bool { return src.Healthy() == nil })
	oldCA := currentCA(t, c)

	secrets := c.CoreV1().Secrets(testNamespace)
	sec, err := secrets.Get(t.Context(), testSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Annotations = map[string]string{RotateAnnotation: "please"}
	if _, err := secrets.Update(t.Context(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	newCA := waitForCAReplaced(t, c, oldCA, src)
	if _, ok := secretOf(t, c).Annotations[RotateAnnotation]; ok {
		t.Error("the rotate annotation is still on the Secret")
	}
	if !guard.trustedTogether(oldCA, newCA) {
		t.Error("no caBundle patched trusted the old and the new CA together")
	}
	guard.done(5)
}

// Deleting the Secret forces a new CA and certificate. Replicas go on
// serving the old pair until they load the new one, so the old CA stays in
// the caBundle beside the new one until they have.
func TestSelfSignedDeletedSecretIsRecreatedAndTheOldCAStaysTrustedMeanwhile(t *testing.T) {
	c := fake.NewClientset(webhookConfigs()...)
	leader, replica := newTestSelfSigned(t, c, nil), newTestSelfSigned(t, c, nil)
	guard := guardTrust(t, c, leader, replica)
	start(t, leader)
	start(t, replica)
	runIssuer(t, leader.Issuer())
	eventually(t, testDeadline, "both replicas to serve", func() bool { return leader.Healthy() == nil && replica.Healthy() == nil })
	oldCA := currentCA(t, c)

	if err := c.CoreV1().Secrets(testNamespace).Delete(t.Context(), testSecret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	newCA := waitForCAReplaced(t, c, oldCA, leader, replica)
	if !guard.trustedTogether(oldCA, newCA) {
		t.Error("no caBundle patched trusted the old and the new CA together")
	}
	guard.done(5)
}

// The Secret is deleted and the caBundle wiped while no replica leads (a
// reinstall); the next leader still has the CA of the pair it serves in
// memory, and keeps it trusted until it serves the new one.
func TestSelfSignedRemembersTheServedCAWhenTheSecretAndTheCABundleAreGone(t *testing.T) {
	c := fake.NewClientset(webhookConfigs()...)
	src := newTestSelfSigned(t, c, nil)
	start(t, src)
	stop := runIssuer(t, src.Issuer())
	eventually(t, testDeadline, "a certificate to be served", func() bool { return src.Healthy() == nil })
	oldCA := currentCA(t, c)
	stop()

	if err := c.CoreV1().Secrets(testNamespace).Delete(t.Context(), testSecret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, obj := range webhookConfigs()[:2] {
		if err := c.Tracker().Update(gvrOf(obj), obj, ""); err != nil {
			t.Fatal(err)
		}
	}
	// The test broke the trust itself: record, do not check.
	patches := recordPatches(t, c)
	runIssuer(t, src.Issuer())
	newCA := waitForCAReplaced(t, c, oldCA, src)
	if !patches.trustedTogether(oldCA, newCA) {
		t.Error("no caBundle patched trusted the served CA and the new one together")
	}
}

// A replica that does not lead serves what the leader wrote, follows its
// rotations, and writes nothing itself.
func TestSelfSignedReplicaServesWhatTheLeaderWroteAndNeverWrites(t *testing.T) {
	leaderAPI := fake.NewClientset(webhookConfigs()...)
	leader := newTestSelfSigned(t, leaderAPI, nil)
	start(t, leader)
	runIssuer(t, leader.Issuer())
	eventually(t, testDeadline, "the leader to serve", func() bool { return leader.Healthy() == nil })

	// The replica's API is a copy the test keeps in step through the
	// tracker, so that its recorded actions are the replica's alone.
	replicaAPI := fake.NewClientset(webhookConfigs()...)
	replica := newTestSelfSigned(t, replicaAPI, nil)
	start(t, replica)
	if err := replicaAPI.Tracker().Add(copyForTracker(secretOf(t, leaderAPI))); err != nil {
		t.Fatal(err)
	}
	want := servedSerial(leader)
	eventually(t, testDeadline, "the replica to serve "+want, func() bool { return servedSerial(replica) == want })

	sec := secretOf(t, leaderAPI)
	sec.Annotations = map[string]string{RotateAnnotation: ""}
	if _, err := leaderAPI.CoreV1().Secrets(testNamespace).Update(t.Context(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, testDeadline, "the leader to serve a new certificate", func() bool { return servedSerial(leader) != want })
	rotated := secretOf(t, leaderAPI)
	if err := replicaAPI.Tracker().Update(secretsGVR, copyForTracker(rotated), testNamespace); err != nil {
		t.Fatal(err)
	}
	want = serialOfPEM(t, rotated.Data[corev1.TLSCertKey])
	eventually(t, testDeadline, "the replica to serve "+want, func() bool { return servedSerial(replica) == want })

	for _, a := range replicaAPI.Actions() {
		if v := a.GetVerb(); v != "list" && v != "watch" && v != "get" {
			t.Errorf("the replica called %s %s", v, a.GetResource().Resource)
		}
	}
	for name, b := range configBundles(t, replicaAPI) {
		if len(b) != 0 {
			t.Errorf("the replica's %s caBundle was set", name)
		}
	}
}

// Readiness waits for a usable pair: not before the Secret exists, nor
// while it holds no pair, a broken one, or an expired one.
func TestSelfSignedNotHealthyUntilAUsableCertificateIsLoaded(t *testing.T) {
	c := fake.NewClientset()
	src := newTestSelfSigned(t, c, nil)
	if err := src.Healthy(); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("Healthy before Start = %v, want ErrNoCertificate", err)
	}
	start(t, src)
	if _, err := src.GetCertificate(nil); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("GetCertificate without a Secret = %v, want ErrNoCertificate", err)
	}

	// The leader has made the CA, not yet the pair.
	ca, other := newTestCA(t), newTestCA(t)
	sec := testSecretOf(t, ca, nil, nil)
	if err := c.Tracker().Add(sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, testDeadline, "the Secret to be loaded", func() bool { return loadedCAs(src) == 1 })
	if err := src.Healthy(); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("Healthy with a Secret without pair = %v, want ErrNoCertificate", err)
	}

	// A key that is not the certificate's. (The second CA in the bundle
	// tells when this version has been seen.)
	certPEM, _ := issue(t, ca, time.Hour)
	_, keyPEM := issue(t, ca, time.Hour)
	update := func(cas []*CA, certPEM, keyPEM []byte) {
		t.Helper()
		if err := c.Tracker().Update(secretsGVR, testSecretOf(t, cas[0], cas[1:], [][]byte{certPEM, keyPEM}), testNamespace); err != nil {
			t.Fatal(err)
		}
	}
	update([]*CA{ca, other}, certPEM, keyPEM)
	eventually(t, testDeadline, "the Secret to be loaded", func() bool { return loadedCAs(src) == 2 })
	if err := src.Healthy(); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("Healthy with a mismatched pair = %v, want ErrNoCertificate", err)
	}

	expired, expiredKey := issue(t, ca, time.Millisecond)
	eventually(t, testDeadline, "the short-lived certificate to expire", func() bool { return certExpired(t, expired) })
	update([]*CA{ca}, expired, expiredKey)
	eventually(t, testDeadline, "the expired pair to be loaded", func() bool { return servedLeaf(src) != nil })
	if err := src.Healthy(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Healthy with an expired pair = %v, want it to say so", err)
	}

	good, goodKey := issue(t, ca, time.Hour)
	update([]*CA{ca}, good, goodKey)
	eventually(t, testDeadline, "the good pair to be served", func() bool { return src.Healthy() == nil })
}

// The state machine's decisions, at chosen instants.
func TestSelfSignedPolicyTakesOneStepAtATime(t *testing.T) {
	p := rotationPolicy{
		names:      serviceNames(testService, testNamespace),
		caValidity: 90 * time.Minute, servingValidity: 30 * time.Minute,
		overlap: 5 * time.Minute, settle: 2 * time.Second,
	}
	mkCA := func(validity time.Duration) *CA {
		ca, err := newCA("policy test", validity)
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	mkPair := func(ca *CA, names ...string) *loadedPair {
		if len(names) == 0 {
			names = p.names
		}
		certPEM, keyPEM, err := ca.Issue(names, nil, p.servingValidity)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := parsePair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	now := time.Now()
	cur, old, gone := mkCA(p.caValidity), mkCA(p.caValidity), mkCA(10*time.Minute)
	pair, oldPair, gonePair := mkPair(cur), mkPair(old), mkPair(gone)
	bundle := func(cas ...*CA) []*x509.Certificate {
		var out []*x509.Certificate
		for _, ca := range cas {
			out = append(out, ca.cert)
		}
		return out
	}

	for _, tc := range []struct {
		name       string
		st         tlsState
		at         time.Duration
		want       step
		wantWake   time.Time
		wantBundle []*x509.Certificate
	}{
		{name: "a fresh pair of the current CA waits for its renewal",
			st: tlsState{ca: cur, bundle: bundle(cur), pair: pair}, at: 3 * time.Second, want: stepNone, wantWake: renewAt(pair.cert.Leaf)},
		{name: "a pair two thirds through its life is reissued",
			st: tlsState{ca: cur, bundle: bundle(cur), pair: pair}, at: 21 * time.Minute, want: stepIssue},
		{name: "a pair without every Service name is reissued",
			st: tlsState{ca: cur, bundle: bundle(cur), pair: mkPair(cur, testService)}, at: 3 * time.Second, want: stepIssue},
		{name: "a CA two thirds through its life is rotated",
			st: tlsState{ca: cur, bundle: bundle(cur), pair: pair}, at: 61 * time.Minute, want: stepRotateCA},
		{name: "a rotation asked for happens now",
			st: tlsState{ca: cur, bundle: bundle(cur), pair: pair, rotate: true}, at: 3 * time.Second, want: stepRotateCA},
		{name: "no pair from a CA trusted just now: wait for the settle",
			st: tlsState{ca: cur, bundle: bundle(cur)}, want: stepNone, wantWake: issuedAt(cur.cert).Add(p.settle)},
		{name: "no pair from a CA trusted for the settle: issue",
			st: tlsState{ca: cur, bundle: bundle(cur)}, at: 3 * time.Second, want: stepIssue},
		{name: "a pair of the previous CA is reissued, the previous CA kept",
			st: tlsState{ca: cur, bundle: bundle(cur, old), pair: oldPair}, at: 3 * time.Second, want: stepIssue},
		{name: "the previous CA stays for the overlap after the new pair",
			st: tlsState{ca: cur, bundle: bundle(cur, old), pair: pair}, at: 3 * time.Second, want: stepNone, wantWake: issuedAt(pair.cert.Leaf).Add(p.overlap)},
		{name: "the previous CA goes after the overlap",
			st: tlsState{ca: cur, bundle: bundle(cur, old), pair: pair}, at: 6 * time.Minute, want: stepBundle, wantBundle: bundle(cur)},
		{name: "an expired CA goes even while its pair is served",
			st: tlsState{ca: cur, bundle: bundle(cur, gone), pair: gonePair}, at: 11 * time.Minute, want: stepBundle, wantBundle: bundle(cur)},
		{name: "the current CA is put first in the bundle",
			st: tlsState{ca: cur, bundle: bundle(old, cur), pair: oldPair}, at: 3 * time.Second, want: stepBundle, wantBundle: bundle(cur, old)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := now.Add(tc.at)
			got, wake := p.next(tc.st, at)
			if got != tc.want {
				t.Fatalf("step %d, want %d", got, tc.want)
			}
			if !tc.wantWake.IsZero() && !wake.Equal(tc.wantWake) {
				t.Errorf("wake at %s, want %s", wake, tc.wantWake)
			}
			if tc.wantBundle != nil {
				if b := p.wantBundle(tc.st, at); !reflect.DeepEqual(b, tc.wantBundle) {
					t.Errorf("bundle of %d CAs, want %d", len(b), len(tc.wantBundle))
				}
			}
		})
	}
}

func TestNewSelfSignedRefusesWhatCannotWork(t *testing.T) {
	base := func() SelfSignedOptions {
		return SelfSignedOptions{Client: fake.NewClientset(), Namespace: testNamespace, SecretName: testSecret, ServiceName: testService, WebhookConfiguration: testConfig}
	}
	if _, err := NewSelfSigned(base()); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for name, mod := range map[string]func(*SelfSignedOptions){
		"no client":                   func(o *SelfSignedOptions) { o.Client = nil },
		"no Secret name":              func(o *SelfSignedOptions) { o.SecretName = "" },
		"serving outlives its CA":     func(o *SelfSignedOptions) { o.ServingValidity = 2 * DefaultCAValidity },
		"negative overlap":            func(o *SelfSignedOptions) { o.Overlap = -time.Second },
		"no webhook configuration":    func(o *SelfSignedOptions) { o.WebhookConfiguration = "" },
		"serving as long as the CA":   func(o *SelfSignedOptions) { o.CAValidity, o.ServingValidity = time.Hour, time.Hour },
		"no Service to name the cert": func(o *SelfSignedOptions) { o.ServiceName = "" },
	} {
		o := base()
		mod(&o)
		if _, err := NewSelfSigned(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// newTestSelfSigned is a source with test-sized defaults: CA and serving
// certificate of an hour, an overlap of a second, checks ten times a
// second.
func newTestSelfSigned(t *testing.T, c *fake.Clientset, mod func(*SelfSignedOptions)) *SelfSigned {
	t.Helper()
	o := SelfSignedOptions{
		Client:               c,
		Namespace:            testNamespace,
		SecretName:           testSecret,
		ServiceName:          testService,
		WebhookConfiguration: testConfig,
		CAValidity:           2 * time.Hour,
		ServingValidity:      time.Hour,
		Overlap:              time.Second,
		CheckInterval:        100 * time.Millisecond,
		Log:                  testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
	}
	if mod != nil {
		mod(&o)
	}
	s, err := NewSelfSigned(o)
	if err != nil {
		t.Fatalf("NewSelfSigned: %v", err)
	}
	s.policy.settle = 50 * time.Millisecond
	return s
}

// runIssuer runs the issuer until stop or the end of the test.
func runIssuer(t *testing.T, iss *Issuer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- iss.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Issuer.Start returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Issuer.Start did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// webhookConfigs are the chart's two configurations, caBundle empty, and
// someone else's that must be left alone.
func webhookConfigs() []runtime.Object {
	svc := func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: testNamespace, Name: testService, Path: ptr.To(path), Port: ptr.To[int32](443),
		}}
	}
	return []runtime.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: testConfig},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name: "pods.kube-eip.io", ClientConfig: svc("/mutate-pods"),
				FailurePolicy: ptr.To(admissionregistrationv1.Fail), AdmissionReviewVersions: []string{"v1"},
			}},
		},
		&admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: testConfig},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{
				{Name: "eippools.kube-eip.io", ClientConfig: svc("/validate-eippools"), FailurePolicy: ptr.To(admissionregistrationv1.Fail)},
				{Name: "workloads.kube-eip.io", ClientConfig: svc("/validate-workloads"), FailurePolicy: ptr.To(admissionregistrationv1.Ignore)},
				{Name: "cronjobs.kube-eip.io", ClientConfig: svc("/validate-workloads"), FailurePolicy: ptr.To(admissionregistrationv1.Ignore)},
			},
		},
		&admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "someone-else"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name: "other.example.com", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://other.example.com"), CABundle: []byte("theirs")},
			}},
		},
	}
}

func gvrOf(obj runtime.Object) schema.GroupVersionResource {
	if _, ok := obj.(*admissionregistrationv1.MutatingWebhookConfiguration); ok {
		return mutatingGVR
	}
	return validatingGVR
}

// withoutCABundles is obj's webhooks with the chart's bundle taken out, so
// that what else the patch changed shows.
func withoutCABundles(obj runtime.Object, bundle []byte) any {
	drop := func(cc *admissionregistrationv1.WebhookClientConfig) {
		if string(cc.CABundle) == string(bundle) {
			cc.CABundle = nil
		}
	}
	switch o := obj.DeepCopyObject().(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for i := range o.Webhooks {
			drop(&o.Webhooks[i].ClientConfig)
		}
		return o.Webhooks
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for i := range o.Webhooks {
			drop(&o.Webhooks[i].ClientConfig)
		}
		return o.Webhooks
	}
	return nil
}

// secretOf reads the Secret from the fake's store, not through the
// clientset, so that it can be called inside a reactor.
func secretOf(t *testing.T, c *fake.Clientset) *corev1.Secret {
	t.Helper()
	obj, err := c.Tracker().Get(secretsGVR, testNamespace, testSecret)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Errorf("reading the Secret: %v", err)
		return nil
	}
	return obj.(*corev1.Secret)
}

// configBundles maps each of the chart's webhooks to its caBundle.
func configBundles(t *testing.T, c *fake.Clientset) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, gvr := range []schema.GroupVersionResource{mutatingGVR, validatingGVR} {
		obj, err := c.Tracker().Get(gvr, "", testConfig)
		if err != nil {
			t.Errorf("reading %s: %v", gvr.Resource, err)
			continue
		}
		switch o := obj.(type) {
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			for _, w := range o.Webhooks {
				out["mutating "+w.Name] = w.ClientConfig.CABundle
			}
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			for _, w := range o.Webhooks {
				out["validating "+w.Name] = w.ClientConfig.CABundle
			}
		}
	}
	return out
}

// trustsOnly says whether all four webhooks have exactly bundle.
func trustsOnly(t *testing.T, c *fake.Clientset, bundle []byte) bool {
	t.Helper()
	got := configBundles(t, c)
	for _, b := range got {
		if string(b) != string(bundle) {
			return false
		}
	}
	return len(got) == 4
}

func currentCA(t *testing.T, c *fake.Clientset) *x509.Certificate {
	t.Helper()
	ca, err := ParseCA(secretOf(t, c).Data[secretCACert], secretOf(t, c).Data[secretCAKey])
	if err != nil {
		t.Fatalf("the Secret's CA: %v", err)
	}
	return ca.cert
}

// waitForCAReplaced waits until a CA other than old is the only one the
// Secret and the webhooks trust, and every replica serves a certificate of
// it; it returns the new CA.
func waitForCAReplaced(t *testing.T, c *fake.Clientset, old *x509.Certificate, replicas ...*SelfSigned) *x509.Certificate {
	t.Helper()
	var current *x509.Certificate
	eventually(t, testDeadline, "a new CA to replace the old one everywhere", func() bool {
		sec := secretOf(t, c)
		if sec == nil {
			return false
		}
		cas := parseBundle(sec.Data[secretBundle])
		if len(cas) != 1 || cas[0].Equal(old) || !trustsOnly(t, c, sec.Data[secretBundle]) {
			return false
		}
		for _, r := range replicas {
			if leaf := servedLeaf(r); leaf == nil || !signedBy(leaf, cas[0]) {
				return false
			}
		}
		current = cas[0]
		return true
	})
	return current
}

func servedLeaf(s Source) *x509.Certificate {
	cert, err := s.GetCertificate(nil)
	if err != nil {
		return nil
	}
	return cert.Leaf
}

func loadedCAs(s *SelfSigned) int {
	if p := s.trusted.Load(); p != nil {
		return len(*p)
	}
	return 0
}

// verifies is the API server's check of the webhook's certificate.
func verifies(leaf *x509.Certificate, bundle []byte, dnsName string) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		return errors.New("the caBundle holds no certificate")
	}
	_, err := leaf.Verify(x509.VerifyOptions{DNSName: dnsName, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// testSecretOf is a Secret as the leader writes it, from cas[0] with the
// others in the bundle, and pair (certificate, key) if given.
func testSecretOf(t *testing.T, ca *CA, others []*CA, pair [][]byte) *corev1.Secret {
	t.Helper()
	st := tlsState{ca: ca, bundle: []*x509.Certificate{ca.cert}}
	for _, o := range others {
		st.bundle = append(st.bundle, o.cert)
	}
	data, err := st.data()
	if err != nil {
		t.Fatal(err)
	}
	if pair != nil {
		data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey] = pair[0], pair[1]
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: testSecret, Namespace: testNamespace}, Type: corev1.SecretTypeOpaque, Data: data}
}

func copyForTracker(sec *corev1.Secret) *corev1.Secret {
	sec = sec.DeepCopy()
	sec.ResourceVersion = ""
	sec.ManagedFields = nil
	return sec
}

// trustGuard checks the no-trust-gap property at every write to the fake
// API server: before each, the state the previous one left must have every
// replica's served certificate, and the Secret's, verify against every
// webhook's caBundle. It also keeps every caBundle patched.
type trustGuard struct {
	t        *testing.T
	c        *fake.Clientset
	replicas []*SelfSigned

	mu      sync.Mutex
	checks  int
	patched [][]byte
}

func guardTrust(t *testing.T, c *fake.Clientset, replicas ...*SelfSigned) *trustGuard {
	return newTrustGuard(t, c, true, replicas)
}

// recordPatches keeps the caBundles patched without checking anything.
func recordPatches(t *testing.T, c *fake.Clientset) *trustGuard {
	return newTrustGuard(t, c, false, nil)
}

func newTrustGuard(t *testing.T, c *fake.Clientset, check bool, replicas []*SelfSigned) *trustGuard {
	g := &trustGuard{t: t, c: c, replicas: replicas}
	c.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			if check {
				g.check("before " + a.GetVerb() + " of " + a.GetResource().Resource)
			}
		}
		if p, ok := a.(k8stesting.PatchAction); ok {
			g.record(p.GetPatch())
		}
		return false, nil, nil
	})
	return g
}

func (g *trustGuard) check(when string) {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.checks++
	var served []*x509.Certificate
	for _, r := range g.replicas {
		if leaf := servedLeaf(r); leaf != nil {
			served = append(served, leaf)
		}
	}
	if sec := secretOf(g.t, g.c); sec != nil && len(sec.Data[corev1.TLSCertKey]) > 0 {
		if pair, err := parsePair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]); err == nil {
			served = append(served, pair.cert.Leaf)
		}
	}
	for name, bundle := range configBundles(g.t, g.c) {
		for _, leaf := range served {
			if err := verifies(leaf, bundle, testService+"."+testNamespace+".svc"); err != nil {
				g.t.Errorf("%s: certificate %s (of %s) is not trusted by webhook %s: %v", when, serialOf(leaf), leaf.Issuer.CommonName, name, err)
			}
		}
	}
}

func (g *trustGuard) record(patch []byte) {
	var ops []struct {
		Op    string
		Value json.RawMessage
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		return // not a JSON patch: not the issuer's
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, op := range ops {
		var b []byte
		if op.Op == "add" && json.Unmarshal(op.Value, &b) == nil {
			g.patched = append(g.patched, b)
		}
	}
}

// trustedTogether says whether some caBundle patched held both CAs.
func (g *trustGuard) trustedTogether(a, b *x509.Certificate) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, bundle := range g.patched {
		cas := parseBundle(bundle)
		hasA, hasB := false, false
		for _, c := range cas {
			hasA, hasB = hasA || c.Equal(a), hasB || c.Equal(b)
		}
		if hasA && hasB {
			return true
		}
	}
	return false
}

// done checks the state after the last write, and that there were at
// least min writes, so that the guard did not pass by seeing none.
func (g *trustGuard) done(min int) {
	g.t.Helper()
	g.check("at the end")
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.checks-1 < min {
		g.t.Errorf("the guard saw %d writes, want at least %d", g.checks-1, min)
	}
}
