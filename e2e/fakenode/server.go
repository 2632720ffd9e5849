package fakenode

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/kube-eip/kube-eip/certs"
)

// kubeletAPI is the part of the kubelet's HTTPS API (port 10250) that the
// API server calls for kubectl logs. It listens on loopback only; the
// egress proxy maps the nodes' InternalIP:10250 to it. Clients must show a
// certificate of Options.ClientCA: the API server's kubelet client
// certificate.
type kubeletAPI struct {
	k      *Kubelet
	ln     net.Listener
	server *http.Server
	done   chan struct{}
}

// logPollInterval is how often a followed log is looked at for more.
const logPollInterval = 100 * time.Millisecond

func (k *Kubelet) startAPI() error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(k.opts.ClientCA) {
		return errors.New("fakenode: ClientCA holds no PEM certificate")
	}
	cert, err := k.servingCertificate()
	if err != nil {
		return fmt.Errorf("issuing the kubelet API's certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening for the kubelet API: %w", err)
	}
	a := &kubeletAPI{k: k, ln: ln, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", a.containerLogs)
	a.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
		},
		// A client without a certificate is refused; that is a log line
		// of the Kubelet's, not noise on stderr.
		ErrorLog: log.New(logWriter{k.log.V(2)}, "", 0),
	}
	go func() {
		defer close(a.done)
		_ = a.server.ServeTLS(ln, "", "")
	}()
	k.api = a
	return nil
}

// servingCertificate is the kubelet API's certificate, for the addresses
// the API server dials: the nodes' InternalIPs.
func (k *Kubelet) servingCertificate() (tls.Certificate, error) {
	hosts := []string{"localhost", "127.0.0.1"}
	for _, n := range k.Nodes() {
		hosts = append(hosts, n.PrivateIP, n.Name)
	}
	if k.opts.ServingCertificate != nil {
		return k.opts.ServingCertificate(hosts...)
	}
	ca, err := certs.NewCA("kube-eip-fakenode-kubelet-" + k.opts.Group)
	if err != nil {
		return tls.Certificate{}, err
	}
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	certPEM, keyPEM, err := ca.Issue(dns, ips, 365*24*time.Hour)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func (a *kubeletAPI) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.server.Shutdown(ctx)
	_ = a.server.Close()
	<-a.done
}

// KubeletAddress is the loopback address serving the kubelet API of the
// node with InternalIP nodeIP, if it is one of this Kubelet's.
func (k *Kubelet) KubeletAddress(nodeIP string) (string, bool) {
	if k.api == nil {
		return "", false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range k.nodes {
		if n.inst.PrivateIP == nodeIP {
			return k.api.ln.Addr().String(), true
		}
	}
	return "", false
}

// logSource is the log file of one run of a container, and whether that
// run may still write to it.
type logSource struct {
	path string
	live func() bool
}

// containerLogs serves a container's output as the kubelet does:
// follow, previous, tailLines and limitBytes.
func (a *kubeletAPI) containerLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	follow, previous := q.Get("follow") == "true", q.Get("previous") == "true"
	tail, limit := int64(-1), int64(-1)
	for name, dst := range map[string]*int64{"tailLines": &tail, "limitBytes": &limit} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				http.Error(w, fmt.Sprintf("invalid %s %q", name, v), http.StatusBadRequest)
				return
			}
			*dst = n
		}
	}
	src, status, err := a.k.logSource(r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"), previous)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	if src.path == "" {
		return // a container that runs nothing prints nothing
	}
	f, err := os.Open(src.path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer func() { _ = f.Close() }()
	if tail >= 0 {
		if err := seekTail(f, tail); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	var out io.Writer = w
	if limit >= 0 {
		out = &limitedWriter{w: w, left: limit}
	}
	flusher, _ := w.(http.Flusher)
	for {
		_, err := io.Copy(out, f)
		if lw, ok := out.(*limitedWriter); ok && lw.left <= 0 {
			return
		}
		if err != nil || !follow {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if !src.live() {
			_, _ = io.Copy(out, f) // what it wrote before it ended
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(logPollInterval):
		}
	}
}

// logSource finds the log of a container's current run, or of the run
// before it. The error comes with its HTTP status.
func (k *Kubelet) logSource(namespace, name, container string, previous bool) (logSource, int, error) {
	k.mu.Lock()
	st := k.state[namespace+"/"+name]
	k.mu.Unlock()
	if st == nil {
		return logSource{}, http.StatusNotFound, fmt.Errorf("pod %s/%s not found on this node", namespace, name)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.run(container)
	if r == nil {
		return logSource{}, http.StatusBadRequest, fmt.Errorf("container %s is not valid for pod %s", container, name)
	}
	dir := filepath.Join(st.dir, container)
	if previous {
		if !r.ran || r.restarts == 0 {
			return logSource{}, http.StatusBadRequest, fmt.Errorf("previous terminated container %q in pod %q not found", container, name)
		}
		return logSource{path: logPath(dir, r.restarts-1), live: func() bool { return false }}, 0, nil
	}
	if !r.real {
		return logSource{}, 0, nil
	}
	if !r.ran {
		return logSource{}, http.StatusBadRequest, fmt.Errorf("container %q in pod %q is waiting to start", container, name)
	}
	proc, restarts := r.proc, r.restarts
	return logSource{path: logPath(dir, restarts), live: func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return proc != nil && r.proc == proc && !proc.exited()
	}}, 0, nil
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int64) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	_, err = f.Seek(int64(tailOffset(data, n)), io.SeekStart)
	return err
}

// tailOffset is where the last n lines of data begin.
func tailOffset(data []byte, n int64) int {
	if n == 0 {
		return len(data)
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	for range n {
		j := bytes.LastIndexByte(data[:end], '\n')
		if j < 0 {
			return 0
		}
		end = j
	}
	return end + 1
}

// limitedWriter stops writing after left bytes.
type limitedWriter struct {
	w    io.Writer
	left int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}

// ErrNoSuchPod is DialPod's answer for an address that is no pod of this
// Kubelet's that runs something.
var ErrNoSuchPod = errors.New("no pod with that IP runs on these nodes")

// DialPod connects to port of the pod with IP podIP, inside its network
// namespace: how the egress proxy reaches a Service's endpoints and the
// API server's pod proxy reaches a pod. The pod's IP is only looked up,
// never dialled.
func (k *Kubelet) DialPod(ctx context.Context, podIP string, port int) (net.Conn, error) {
	network := k.podNetwork(podIP)
	if network == nil {
		return nil, fmt.Errorf("%s: %w", podIP, ErrNoSuchPod)
	}
	return network.dial(ctx, port)
}

// HasPod tells whether podIP is a pod of this Kubelet that DialPod reaches.
func (k *Kubelet) HasPod(podIP string) bool { return k.podNetwork(podIP) != nil }

func (k *Kubelet) podNetwork(podIP string) *podNetwork {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.nets[podIP]
}

// unlistNetwork takes a pod's network out of DialPod's reach, once its
// address went back or the pod is gone.
func (k *Kubelet) unlistNetwork(st *podState) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if st.net != nil && k.nets[st.ip] == st.net {
		delete(k.nets, st.ip)
	}
}

// logWriter turns the HTTP server's log lines into the Kubelet's.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info("kubelet API", "message", strings.TrimSpace(string(p)))
	return len(p), nil
}
