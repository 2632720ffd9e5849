package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Defaults of SelfSignedOptions.
const (
	// DefaultCAValidity is a year. The CA is replaced after two thirds of
	// it, which leaves four months in which nothing depends on the old one
	// but the overlap.
	DefaultCAValidity = 365 * 24 * time.Hour

	// DefaultServingValidity is 90 days, reissued after 60: a leaked key
	// is good for a bounded time, and a leader that cannot write for a
	// month still breaks nothing.
	DefaultServingValidity = 90 * 24 * time.Hour

	// DefaultOverlap is how long a replaced CA stays trusted after the
	// Secret's serving certificate is one of its successor. Replicas watch
	// the Secret and load it within seconds; five minutes also covers a
	// replica whose watch is reconnecting.
	DefaultOverlap = 5 * time.Minute

	// DefaultCheckInterval is how often the leader looks at the Secret and
	// the webhook configurations without being told of a change: at most
	// this long does a caBundle that `helm upgrade` emptied stay empty.
	DefaultCheckInterval = time.Minute
)

// RotateAnnotation on the Secret, with any value, asks the leader for a new
// CA, and so a new serving certificate, now rather than on schedule. The
// rotation keeps the old CA trusted for the overlap like a scheduled one;
// the leader removes the annotation as it rotates.
const RotateAnnotation = "kube-eip.io/rotate"

const (
	// defaultSettle is how long a new CA must have been in the webhook
	// configurations before a certificate it signed is put in the Secret.
	// The API server learns of a patched configuration through a watch,
	// as the replicas learn of the Secret; the settle lets it win.
	defaultSettle = 2 * time.Second

	// maxSteps bounds the writes of one reconcile: the longest path
	// (recover, then issue) takes two, the rest is conflicts.
	maxSteps = 6
)

// The Secret's keys.
const (
	secretCACert = "ca.crt"        // the current CA, which issues the next serving certificate
	secretCAKey  = "ca.key"        // its key, PKCS#8
	secretBundle = "ca-bundle.crt" //nolint:gosec // a key name: what the API server must trust, current CA first
)

// SelfSignedOptions configures NewSelfSigned.
type SelfSignedOptions struct {
	// Client reads the Secret and, for the issuer, writes it and patches
	// the webhook configurations.
	Client kubernetes.Interface
	// Namespace and SecretName name the Secret that holds all the state.
	Namespace, SecretName string
	// ServiceName is the webhook's Service in Namespace, whose DNS names
	// the serving certificate carries.
	ServiceName string
	// WebhookConfiguration names both the MutatingWebhookConfiguration and
	// the ValidatingWebhookConfiguration whose caBundle the issuer keeps.
	WebhookConfiguration string

	// CAValidity, ServingValidity, Overlap and CheckInterval default to
	// the Default constants. ServingValidity must be shorter than
	// CAValidity.
	CAValidity, ServingValidity, Overlap, CheckInterval time.Duration

	Log logr.Logger
}

// SelfSigned serves a certificate that kube-eip issues from its own CA, for
// clusters without cert-manager. All of its state is one Secret in
// kube-eip's namespace:
//
//	ca.crt, ca.key    the current CA, which issues the next serving certificate
//	ca-bundle.crt     the CAs the API server must trust: the current one first,
//	                  then any predecessor still within its overlap
//	tls.crt, tls.key  the serving pair, empty until the first is issued
//
// The Secret is created Opaque rather than kubernetes.io/tls: it carries
// the CA's key, which a tool that takes any kubernetes.io/tls Secret for a
// plain serving pair (an ingress, a volume) should not be handed, and it
// exists for a moment before it has a pair at all. A Secret that exists
// already keeps its type (types are immutable); tls.crt and tls.key are
// always written, empty if need be, which suits both types.
//
// Every replica watches that one Secret (Start) and serves its pair, under
// FileSource's rule: a pair that is not usable does not replace one that
// is, and a Secret without a pair, or deleted, changes nothing served.
//
// One replica, the leader, writes (Issuer). Its invariant is that the
// webhook configurations' caBundle holds the CA of every certificate a
// replica may be serving. A reconcile takes one step at a time and reads
// the Secret again after each write:
//
//  1. No usable CA (no Secret, or a broken one): make a CA. Its bundle is
//     it and every unexpired CA that may still be trusted for a served
//     certificate: those of the Secret's bundle, of the last bundle this
//     replica loaded, and of the configurations' caBundle. The pair is
//     kept: the Secret's if usable, else the one this replica serves.
//  2. The configurations' caBundle differs from the bundle: patch it, on
//     every webhook, caBundle only. Nothing below happens until this
//     succeeded, so every decision below is taken while the
//     configurations trust the bundle.
//  3. The CA has lived two thirds of its life, or RotateAnnotation is set:
//     a new CA goes in front of the bundle. The pair stays; its CA is
//     still in the bundle. Step 2 patches.
//  4. The bundle is not what it should be: current CA first, no expired
//     CA, and no other CA once the pair is the current CA's and has been
//     in the Secret for the overlap. Write that; step 2 patches.
//  5. The pair is missing, unusable, lacks a Service name, is not the
//     current CA's, or has lived two thirds of its life: issue a new one
//     from the current CA, once that CA has been in the bundle (judged by
//     its NotBefore) for the settle time: the API server learns of a
//     patched configuration through a watch, as the replicas learn of the
//     Secret, and the settle lets it be first.
//
// So a CA is trusted before any certificate of it is served, and stops
// being trusted only an overlap after the Secret stopped offering one.
// Deleting the Secret is a forced rotation through steps 1, 2, 5 and 4.
type SelfSigned struct {
	client    kubernetes.Interface
	namespace string
	name      string
	policy    rotationPolicy
	log       logr.Logger
	issuer    *Issuer

	started atomic.Bool
	current atomic.Pointer[loadedPair]
	// trusted is the bundle of the Secret last loaded, kept for step 1
	// when the Secret is gone.
	trusted atomic.Pointer[[]*x509.Certificate]
	// changed tells the issuer that the Secret changed; it holds one
	// wake-up, and more are dropped, as one reconcile sees them all.
	changed chan struct{}
}

var _ Source = (*SelfSigned)(nil)

// NewSelfSigned returns a Source of self-issued certificates kept in the
// Secret opts names. Nothing is read until Start; nothing is written but by
// Issuer, which the leader runs.
func NewSelfSigned(opts SelfSignedOptions) (*SelfSigned, error) {
	if err := opts.complete(); err != nil {
		return nil, fmt.Errorf("configuring the self-signed certificate source: %w", err)
	}
	s := &SelfSigned{
		client:    opts.Client,
		namespace: opts.Namespace,
		name:      opts.SecretName,
		policy: rotationPolicy{
			names:           serviceNames(opts.ServiceName, opts.Namespace),
			caValidity:      opts.CAValidity,
			servingValidity: opts.ServingValidity,
			overlap:         opts.Overlap,
			settle:          defaultSettle,
		},
		log:     opts.Log.WithValues("secret", opts.Namespace+"/"+opts.SecretName),
		changed: make(chan struct{}, 1),
	}
	s.issuer = &Issuer{
		src:           s,
		configName:    opts.WebhookConfiguration,
		configs:       webhookConfigKinds(opts.Client),
		checkInterval: opts.CheckInterval,
	}
	return s, nil
}

// complete fills in the defaults and refuses what cannot work.
func (o *SelfSignedOptions) complete() error {
	if o.Client == nil {
		return errors.New("no API client")
	}
	for what, v := range map[string]string{"namespace": o.Namespace, "Secret name": o.SecretName, "Service name": o.ServiceName, "webhook configuration name": o.WebhookConfiguration} {
		if v == "" {
			return fmt.Errorf("no %s", what)
		}
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.CAValidity, DefaultCAValidity}, {&o.ServingValidity, DefaultServingValidity}, {&o.Overlap, DefaultOverlap}, {&o.CheckInterval, DefaultCheckInterval}} {
		if *d.v < 0 {
			return fmt.Errorf("negative duration %s", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.ServingValidity >= o.CAValidity {
		return fmt.Errorf("serving certificates valid for %s, not shorter than their CA's %s", o.ServingValidity, o.CAValidity)
	}
	return nil
}

// serviceNames are the names by which the API server, or anything in the
// cluster, may call the Service.
func serviceNames(svc, ns string) []string {
	return []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
}

// GetCertificate returns the most recently accepted pair.
func (s *SelfSigned) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p := s.current.Load()
	if p == nil {
		return nil, ErrNoCertificate
	}
	return p.cert, nil
}

// Healthy returns nil while the served pair is valid now.
func (s *SelfSigned) Healthy() error {
	p := s.current.Load()
	if p == nil {
		return fmt.Errorf("%w from Secret %s/%s", ErrNoCertificate, s.namespace, s.name)
	}
	return checkUsable(p.cert, time.Now())
}

// Issuer is the part that writes, for the leader only.
func (s *SelfSigned) Issuer() *Issuer { return s.issuer }

// Start watches the Secret, and only it, until ctx ends.
func (s *SelfSigned) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("self-signed certificate source started twice")
	}
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithNamespace(s.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.name).String()
		}))
	informer := factory.Core().V1().Secrets().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    s.observe,
		UpdateFunc: func(_, obj any) { s.observe(obj) },
		DeleteFunc: func(any) {
			s.log.Info("Secret deleted; serving the certificate loaded from it until the leader writes a new one")
			s.poke()
		},
	}); err != nil {
		return fmt.Errorf("watching Secret %s/%s: %w", s.namespace, s.name, err)
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

// observe loads a Secret the informer delivered and tells the issuer.
func (s *SelfSigned) observe(obj any) {
	sec, ok := obj.(*corev1.Secret)
	if !ok || sec.Name != s.name {
		return
	}
	s.load(parseSecret(sec))
	s.poke()
}

func (s *SelfSigned) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// load remembers the Secret's bundle and serves its pair if acceptable.
func (s *SelfSigned) load(st tlsState) {
	if len(st.bundle) > 0 {
		s.trusted.Store(&st.bundle)
	}
	cur := s.current.Load()
	switch {
	case st.pairErr != nil:
		s.log.Error(st.pairErr, "Refused the Secret's serving pair; serving what was loaded before, if anything")
		return
	case st.pair == nil:
		s.log.V(1).Info("The Secret holds no serving pair yet")
		return
	case cur != nil && bytes.Equal(cur.certPEM, st.pair.certPEM) && bytes.Equal(cur.keyPEM, st.pair.keyPEM):
		return
	}
	if err := acceptable(st.pair, cur, time.Now()); err != nil {
		s.log.Error(err, "Refused the Secret's serving pair; still serving the previous one", describe(cur.cert)...)
		return
	}
	s.current.Store(st.pair)
	kv := describe(st.pair.cert)
	if err := checkUsable(st.pair.cert, time.Now()); err != nil {
		s.log.Error(err, "Serving a certificate that is not usable", kv...)
		return
	}
	s.log.Info("Loaded serving certificate", kv...)
}

// Issuer keeps the Secret and the webhook configurations' caBundle, as
// SelfSigned's doc comment describes. It is a controller-runtime
// manager.Runnable that needs leader election: add it to the manager.
type Issuer struct {
	src           *SelfSigned
	configName    string
	configs       []configKind
	checkInterval time.Duration
}

// NeedLeaderElection is true: two writers would rotate against each other.
func (i *Issuer) NeedLeaderElection() bool { return true }

// Start reconciles when the Secret changes, when a step falls due, and at
// least every check interval, until ctx ends. Failures are retried with
// backoff; the served certificate does not depend on them.
func (i *Issuer) Start(ctx context.Context) error {
	log := i.src.log.WithName("issuer")
	backoff := i.backoff()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-i.src.changed:
		case <-timer.C:
		}
		wake, err := i.reconcile(ctx, log)
		delay := i.checkInterval
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			delay = backoff.Step()
			log.Error(err, "Keeping the webhook's certificate; retrying", "in", delay)
		default:
			backoff = i.backoff()
			if until := time.Until(wake); !wake.IsZero() && until < delay {
				delay = max(until, 0)
			}
		}
		timer.Reset(delay)
	}
}

func (i *Issuer) backoff() wait.Backoff {
	return wait.Backoff{Duration: min(time.Second, i.checkInterval), Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: i.checkInterval}
}

// reconcile takes steps until none is due and returns when to look again.
func (i *Issuer) reconcile(ctx context.Context, log logr.Logger) (time.Time, error) {
	for range maxSteps {
		st, err := i.read(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if st.ca == nil {
			if err := i.recover(ctx, log, st); err != nil {
				return time.Time{}, err
			}
			continue
		}
		if err := i.patchConfigs(ctx, log, encodeBundle(st.bundle)); err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		step, wake := i.src.policy.next(st, now)
		if step == stepNone {
			return wake, nil
		}
		if err := i.apply(ctx, log, st, step, now); err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, fmt.Errorf("secret %s/%s still changing after %d steps", i.src.namespace, i.src.name, maxSteps)
}

// read gets the Secret from the API server, not the informer: the leader
// acts on what is there, not on what a watch has delivered so far.
func (i *Issuer) read(ctx context.Context) (tlsState, error) {
	sec, err := i.src.client.CoreV1().Secrets(i.src.namespace).Get(ctx, i.src.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return tlsState{}, nil
	case err != nil:
		return tlsState{}, fmt.Errorf("reading Secret %s/%s: %w", i.src.namespace, i.src.name, err)
	}
	return parseSecret(sec), nil
}

// recover is step 1: a new CA, trusted beside every CA whose certificates
// may still be served, and the pair that is served kept.
func (i *Issuer) recover(ctx context.Context, log logr.Logger, st tlsState) error {
	fromConfigs, err := i.configCAs(ctx)
	if err != nil {
		return err
	}
	var remembered []*x509.Certificate
	if p := i.src.trusted.Load(); p != nil {
		remembered = *p
	}
	now := time.Now()
	ca, err := newCA(caName(now), i.src.policy.caValidity)
	if err != nil {
		return err
	}
	next := tlsState{secret: st.secret, ca: ca, bundle: mergeCAs(now, []*x509.Certificate{ca.cert}, st.bundle, remembered, fromConfigs)}
	for _, p := range []*loadedPair{st.pair, i.src.current.Load()} {
		if p != nil && checkUsable(p.cert, now) == nil {
			next.pair = p
			break
		}
	}
	why := "there was no Secret"
	if st.secret != nil {
		why = "the Secret had no usable CA: " + st.caErr.Error()
	}
	return i.write(ctx, log, next, "Created a CA", "reason", why, "trusted", len(next.bundle), "keptServingPair", next.pair != nil)
}

// apply takes one of steps 3 to 5.
func (i *Issuer) apply(ctx context.Context, log logr.Logger, st tlsState, step step, now time.Time) error {
	p := i.src.policy
	switch step {
	case stepRotateCA:
		ca, err := newCA(caName(now), p.caValidity)
		if err != nil {
			return err
		}
		requested := st.rotate
		st.ca, st.rotate = ca, false
		st.bundle = mergeCAs(now, []*x509.Certificate{ca.cert}, st.bundle)
		return i.write(ctx, log, st, "Rotated the CA; its serving certificate follows once the webhook configurations trust it", "requested", requested, "trusted", len(st.bundle))
	case stepBundle:
		st.bundle = p.wantBundle(st, now)
		return i.write(ctx, log, st, "Updated the CA bundle", "trusted", len(st.bundle))
	case stepIssue:
		certPEM, keyPEM, err := st.ca.Issue(p.names, nil, p.servingValidity)
		if err != nil {
			return err
		}
		if st.pair, err = parsePair(certPEM, keyPEM); err != nil {
			return err
		}
		return i.write(ctx, log, st, "Issued a serving certificate", describe(st.pair.cert)...)
	}
	return fmt.Errorf("unknown step %d", step)
}

// write creates or updates the Secret as st has it. Losing a race (another
// writer created it, or changed it since it was read) is not an error: the
// next step reads it again.
func (i *Issuer) write(ctx context.Context, log logr.Logger, st tlsState, what string, kv ...any) error {
	data, err := st.data()
	if err != nil {
		return err
	}
	secrets := i.src.client.CoreV1().Secrets(i.src.namespace)
	if st.secret == nil {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: i.src.name, Namespace: i.src.namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "kube-eip"},
			},
			Type: corev1.SecretTypeOpaque,
			Data: data,
		}
		_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
	} else {
		sec := st.secret.DeepCopy()
		sec.Data = data
		if !st.rotate {
			delete(sec.Annotations, RotateAnnotation)
		}
		_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
	}
	switch {
	case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
		log.V(1).Info("Secret changed under the issuer; reading it again", "reason", err.Error())
		return nil
	case err != nil:
		return fmt.Errorf("writing Secret %s/%s (%s): %w", i.src.namespace, i.src.name, what, err)
	}
	log.Info(what, kv...)
	return nil
}

// caName makes each CA recognisable in the bundle, as the API server names
// its own self-signed certificates (host@unix-time).
func caName(now time.Time) string {
	return "kube-eip-webhook-ca@" + strconv.FormatInt(now.Unix(), 10)
}

// tlsState is the Secret, parsed. Unusable parts are nil.
type tlsState struct {
	secret  *corev1.Secret // as read; nil when there is none
	ca      *CA
	caErr   error // why ca is nil, if there is a Secret
	bundle  []*x509.Certificate
	pair    *loadedPair
	pairErr error // why pair is nil although the Secret has one
	rotate  bool  // RotateAnnotation is set
}

func parseSecret(sec *corev1.Secret) tlsState {
	st := tlsState{secret: sec}
	_, st.rotate = sec.Annotations[RotateAnnotation]
	st.ca, st.caErr = ParseCA(sec.Data[secretCACert], sec.Data[secretCAKey])
	st.bundle = parseBundle(sec.Data[secretBundle])
	st.pair, st.pairErr = parsePair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	return st
}

// parsePair returns nil and no error when there is no pair at all.
func parsePair(certPEM, keyPEM []byte) (*loadedPair, error) {
	if len(certPEM) == 0 && len(keyPEM) == 0 {
		return nil, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parsing serving certificate and key: %w", err)
	}
	return &loadedPair{cert: &cert, certPEM: certPEM, keyPEM: keyPEM}, nil
}

func (st tlsState) data() (map[string][]byte, error) {
	caKey, err := st.ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{
		secretCACert:            st.ca.CertPEM(),
		secretCAKey:             caKey,
		secretBundle:            encodeBundle(st.bundle),
		corev1.TLSCertKey:       {},
		corev1.TLSPrivateKeyKey: {},
	}
	if st.pair != nil {
		data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey] = st.pair.certPEM, st.pair.keyPEM
	}
	return data, nil
}

// parseBundle returns the CA certificates of a PEM bundle, skipping the
// rest: a caBundle someone else wrote may hold anything.
func parseBundle(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil && cert.IsCA {
			out = append(out, cert)
		}
	}
}

func encodeBundle(cas []*x509.Certificate) []byte {
	var b []byte
	for _, c := range cas {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

// mergeCAs concatenates groups in order, without repeats or expired CAs.
func mergeCAs(now time.Time, groups ...[]*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, g := range groups {
		for _, c := range g {
			if now.After(c.NotAfter) || slices.ContainsFunc(out, c.Equal) {
				continue
			}
			out = append(out, c)
		}
	}
	return out
}

// step is what the leader writes next.
type step int

const (
	stepNone     step = iota
	stepRotateCA      // step 3
	stepBundle        // step 4
	stepIssue         // step 5
)

// rotationPolicy decides steps 3 to 5; it is pure, so that the state
// machine can be tested at any instant.
type rotationPolicy struct {
	names                                        []string
	caValidity, servingValidity, overlap, settle time.Duration
}

// next is the step due at now for a Secret with a usable CA, or, if none is,
// when the next one falls due.
func (p rotationPolicy) next(st tlsState, now time.Time) (step, time.Time) {
	caRenew := renewAt(st.ca.cert)
	if st.rotate || !now.Before(caRenew) {
		return stepRotateCA, now
	}
	if !slices.EqualFunc(st.bundle, p.wantBundle(st, now), (*x509.Certificate).Equal) {
		return stepBundle, now
	}
	if p.servingDue(st, now) {
		if settled := issuedAt(st.ca.cert).Add(p.settle); now.Before(settled) {
			return stepNone, settled
		}
		return stepIssue, now
	}
	return stepNone, earliest(caRenew, renewAt(st.pair.cert.Leaf), p.bundleChangesAt(st))
}

// wantBundle is step 4's bundle: the current CA first, then the others
// still trusted (the pair's, if it is not yet the current CA's).
func (p rotationPolicy) wantBundle(st tlsState, now time.Time) []*x509.Certificate {
	current := []*x509.Certificate{st.ca.cert}
	if p.overlapOver(st, now) {
		return current
	}
	return mergeCAs(now, current, st.bundle)
}

// overlapOver says whether the Secret has offered a pair of the current CA
// for the overlap, so that no replica serves one of another CA.
func (p rotationPolicy) overlapOver(st tlsState, now time.Time) bool {
	return st.pair != nil && signedBy(st.pair.cert.Leaf, st.ca.cert) && !now.Before(issuedAt(st.pair.cert.Leaf).Add(p.overlap))
}

// bundleChangesAt is when wantBundle will next differ, zero if never.
func (p rotationPolicy) bundleChangesAt(st tlsState) time.Time {
	var at time.Time
	for _, c := range st.bundle {
		if c.Equal(st.ca.cert) {
			continue
		}
		at = earliest(at, c.NotAfter.Add(time.Second)) // After, not at, NotAfter
		if st.pair != nil && signedBy(st.pair.cert.Leaf, st.ca.cert) {
			at = earliest(at, issuedAt(st.pair.cert.Leaf).Add(p.overlap))
		}
	}
	return at
}

// servingDue says whether step 5 must issue a pair.
func (p rotationPolicy) servingDue(st tlsState, now time.Time) bool {
	if st.pair == nil || checkUsable(st.pair.cert, now) != nil {
		return true
	}
	leaf := st.pair.cert.Leaf
	return !signedBy(leaf, st.ca.cert) || !covers(leaf, p.names) || !now.Before(renewAt(leaf))
}

func signedBy(leaf, ca *x509.Certificate) bool {
	return bytes.Equal(leaf.RawIssuer, ca.RawSubject) && leaf.CheckSignatureFrom(ca) == nil
}

func covers(leaf *x509.Certificate, names []string) bool {
	for _, n := range names {
		if !slices.Contains(leaf.DNSNames, n) {
			return false
		}
	}
	return true
}

// issuedAt undoes the backdating of NotBefore, so that a life measured in
// seconds (in tests) is not dominated by it.
func issuedAt(c *x509.Certificate) time.Time {
	t := c.NotBefore.Add(backdate)
	if t.After(c.NotAfter) {
		return c.NotBefore
	}
	return t
}

// renewAt is when two thirds of c's life will have passed: a third is left
// for renewal to be retried, and for what it depends on to recover.
func renewAt(c *x509.Certificate) time.Time {
	from := issuedAt(c)
	return from.Add(c.NotAfter.Sub(from) * 2 / 3)
}

// earliest is the earlier of non-zero times; zero means "never".
func earliest(times ...time.Time) time.Time {
	var at time.Time
	for _, t := range times {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	return at
}

// webhookCA is one webhook of a configuration, as far as its caBundle goes.
type webhookCA struct {
	name     string
	caBundle []byte
}

// configKind reads and patches the configurations of one kind.
type configKind struct {
	kind  string
	get   func(ctx context.Context, name string) ([]webhookCA, error)
	patch func(ctx context.Context, name string, jsonPatch []byte) error
}

func webhookConfigKinds(c kubernetes.Interface) []configKind {
	return []configKind{
		newConfigKind("MutatingWebhookConfiguration", c.AdmissionregistrationV1().MutatingWebhookConfigurations(),
			func(cfg *admissionregistrationv1.MutatingWebhookConfiguration) []webhookCA {
				out := make([]webhookCA, len(cfg.Webhooks))
				for i, w := range cfg.Webhooks {
					out[i] = webhookCA{w.Name, w.ClientConfig.CABundle}
				}
				return out
			}),
		newConfigKind("ValidatingWebhookConfiguration", c.AdmissionregistrationV1().ValidatingWebhookConfigurations(),
			func(cfg *admissionregistrationv1.ValidatingWebhookConfiguration) []webhookCA {
				out := make([]webhookCA, len(cfg.Webhooks))
				for i, w := range cfg.Webhooks {
					out[i] = webhookCA{w.Name, w.ClientConfig.CABundle}
				}
				return out
			}),
	}
}

// configClient is what client-go's typed clients of both kinds have.
type configClient[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

func newConfigKind[T any](kind string, c configClient[T], hooks func(T) []webhookCA) configKind {
	return configKind{
		kind: kind,
		get: func(ctx context.Context, name string) ([]webhookCA, error) {
			cfg, err := c.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return hooks(cfg), nil
		},
		patch: func(ctx context.Context, name string, p []byte) error {
			_, err := c.Patch(ctx, name, types.JSONPatchType, p, metav1.PatchOptions{})
			return err
		},
	}
}

// patchConfigs is step 2. A configuration that does not exist is skipped:
// nothing calls the webhook through it, and the periodic check patches it
// once it appears (the chart applies it after the Deployment).
func (i *Issuer) patchConfigs(ctx context.Context, log logr.Logger, bundle []byte) error {
	for _, k := range i.configs {
		hooks, err := k.get(ctx, i.configName)
		if apierrors.IsNotFound(err) {
			log.V(1).Info("No webhook configuration to patch yet", "kind", k.kind, "name", i.configName)
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s %s: %w", k.kind, i.configName, err)
		}
		patch, n, err := caBundlePatch(hooks, bundle)
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		if err := k.patch(ctx, i.configName, patch); err != nil {
			return fmt.Errorf("patching the caBundle of %s %s: %w", k.kind, i.configName, err)
		}
		log.Info("Patched the caBundle", "kind", k.kind, "name", i.configName, "webhooks", n, "cas", len(parseBundle(bundle)))
	}
	return nil
}

// caBundlePatch is a JSON patch that sets the caBundle of each webhook
// whose caBundle differs from bundle, and nothing else; each is guarded by
// a test of the webhook's name, so that a list reordered since it was read
// fails the patch instead of getting the wrong one. n is how many differ.
func caBundlePatch(hooks []webhookCA, bundle []byte) (patch []byte, n int, err error) {
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	var ops []op
	for i, h := range hooks {
		if bytes.Equal(h.caBundle, bundle) {
			continue
		}
		// "add" sets a member whether or not it is there; caBundle is
		// omitted when empty, and "replace" would fail on it.
		ops = append(ops,
			op{"test", fmt.Sprintf("/webhooks/%d/name", i), h.name},
			op{"add", fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), bundle})
		n++
	}
	if n == 0 {
		return nil, 0, nil
	}
	patch, err = json.Marshal(ops)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding caBundle patch: %w", err)
	}
	return patch, n, nil
}

// configCAs are the CAs the webhook configurations trust now, which step 1
// keeps: the configurations outlive a deleted Secret and a restarted leader.
func (i *Issuer) configCAs(ctx context.Context) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, k := range i.configs {
		hooks, err := k.get(ctx, i.configName)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s %s: %w", k.kind, i.configName, err)
		}
		for _, h := range hooks {
			out = append(out, parseBundle(h.caBundle)...)
		}
	}
	return out, nil
}
