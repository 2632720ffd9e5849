package fakenode

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeSet runs one container run's probes, as the kubelet's prober does:
// the startup probe first, then liveness and readiness. A failed startup
// or liveness probe kills the run, which the pod's restart policy then
// restarts; readiness only drives the container's Ready. Results reach the
// pod's status through its queue.
type probeSet struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool // no startup probe, or it succeeded
	ready   bool // started, and no readiness probe or it succeeds
}

// isStarted and isReady read a run's probe results; a run without probes
// is started and ready.
func (p *probeSet) isStarted() bool {
	if p == nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

func (p *probeSet) isReady() bool {
	if p == nil {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready
}

func (r *containerRun) stopProbes() {
	if r.probes != nil {
		r.probes.cancel()
	}
}

// startProbes starts the probers of a run that has any; nil when it has
// none.
func (k *Kubelet) startProbes(pod *corev1.Pod, st *podState, c *corev1.Container, r *containerRun, proc *process) *probeSet {
	if c.StartupProbe == nil && c.LivenessProbe == nil && c.ReadinessProbe == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &probeSet{cancel: cancel, started: c.StartupProbe == nil, ready: c.StartupProbe == nil && c.ReadinessProbe == nil}
	go func() {
		<-proc.done
		cancel()
	}()
	pr := &prober{k: k, pod: pod, st: st, c: c, proc: proc, net: st.net, set: p}
	p.wg.Go(func() {
		if c.StartupProbe != nil && !pr.loop(ctx, "Startup", c.StartupProbe, time.Time{}) {
			return
		}
		since := time.Now()
		p.mu.Lock()
		p.started = true
		p.ready = c.ReadinessProbe == nil
		p.mu.Unlock()
		k.queue.Add(queueKey{kind: podKey, name: st.key})
		if c.LivenessProbe != nil {
			p.wg.Go(func() { pr.loop(ctx, "Liveness", c.LivenessProbe, since) })
		}
		if c.ReadinessProbe != nil {
			pr.loop(ctx, "Readiness", c.ReadinessProbe, since)
		}
	})
	return p
}

// prober probes one container run.
type prober struct {
	k    *Kubelet
	pod  *corev1.Pod
	st   *podState
	c    *corev1.Container
	proc *process
	net  *podNetwork
	set  *probeSet
}

// loop probes until ctx ends. A startup probe returns true once it
// succeeds; one that fails its threshold, like a liveness probe that does,
// kills the run and returns false. Readiness flips the run's Ready.
func (pr *prober) loop(ctx context.Context, kind string, probe *corev1.Probe, since time.Time) bool {
	period := secondsOr(probe.PeriodSeconds, 10)
	timeout := secondsOr(probe.TimeoutSeconds, 1)
	successes, failures := 0, 0
	successThreshold := max(int(probe.SuccessThreshold), 1)
	failureThreshold := max(int(probe.FailureThreshold), 1)
	if probe.FailureThreshold == 0 {
		failureThreshold = 3
	}
	if since.IsZero() {
		since = time.Now()
	}
	delay := time.Until(since.Add(time.Duration(probe.InitialDelaySeconds) * time.Second))
	timer := time.NewTimer(max(delay, 0))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
		}
		err := pr.probeOnce(ctx, probe, timeout)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			pr.k.recorder.Eventf(pr.pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %v", kind, err)
		}
		switch kind {
		case "Startup":
			if successes >= 1 {
				return true
			}
			if failures >= failureThreshold {
				pr.kill(kind, probe)
				return false
			}
		case "Liveness":
			if failures >= failureThreshold {
				pr.kill(kind, probe)
				return false
			}
		case "Readiness":
			ready := pr.set.isReady()
			switch {
			case !ready && successes >= successThreshold:
				pr.setReady(true)
			case ready && failures >= failureThreshold:
				pr.setReady(false)
			}
		}
		timer.Reset(period)
	}
}

func (pr *prober) setReady(ready bool) {
	pr.set.mu.Lock()
	pr.set.ready = ready
	pr.set.mu.Unlock()
	pr.k.queue.Add(queueKey{kind: podKey, name: pr.st.key})
}

// kill stops a run whose probe failed, with the probe's grace period or
// the pod's; the exit brings the restart.
func (pr *prober) kill(kind string, probe *corev1.Probe) {
	grace := int64(30)
	if g := pr.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if probe.TerminationGracePeriodSeconds != nil {
		grace = *probe.TerminationGracePeriodSeconds
	}
	pr.k.recorder.Eventf(pr.pod, corev1.EventTypeNormal, "Killing", "Container %s failed %s probe, will be restarted", pr.c.Name, strings.ToLower(kind))
	pr.proc.stop(time.Duration(grace) * time.Second)
}

func secondsOr(s int32, def int) time.Duration {
	if s <= 0 {
		return time.Duration(def) * time.Second
	}
	return time.Duration(s) * time.Second
}

// probeOnce runs one probe inside the pod's network: an HTTP GET that
// must answer 200-399, or a TCP connect. The kubelet dials the pod's IP;
// here that is the pod's loopback, in its namespace.
func (pr *prober) probeOnce(ctx context.Context, probe *corev1.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case probe.HTTPGet != nil:
		return pr.httpProbe(ctx, probe.HTTPGet)
	case probe.TCPSocket != nil:
		port, err := containerPort(pr.c, probe.TCPSocket.Port)
		if err != nil {
			return err
		}
		conn, err := pr.net.dial(ctx, port)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return fmt.Errorf("only httpGet and tcpSocket probes are supported by the fake kubelet")
}

func (pr *prober) httpProbe(ctx context.Context, get *corev1.HTTPGetAction) error {
	port, err := containerPort(pr.c, get.Port)
	if err != nil {
		return err
	}
	scheme := strings.ToLower(string(get.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := get.Host
	if host == "" {
		host = pr.st.ip
	}
	url := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/" + strings.TrimPrefix(get.Path, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/fakenode")
	for _, h := range get.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	transport := &http.Transport{
		// Whatever the URL names, the connection goes to the port inside
		// the pod's namespace: nothing here dials the pod's VPC address.
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return pr.net.dial(ctx, port) },
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // G402: the kubelet does not verify probe certificates either
		DisableKeepAlives: true,
	}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// containerPort resolves a probe's port, by number or by the name of one
// of the container's ports.
func containerPort(c *corev1.Container, port intstr.IntOrString) (int, error) {
	if port.Type == intstr.Int {
		if port.IntVal < 1 || port.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port %d", port.IntVal)
		}
		return int(port.IntVal), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, port.StrVal)
}
