// Package egress is the way out of kube-apiserver's "cluster" network: an
// HTTP CONNECT proxy on a Unix socket that the API server's egress selector
// (k8s.io/apiserver/pkg/server/egressselector, HTTPConnect over UDS) dials
// for every connection to a webhook Service, an aggregated API, a kubelet
// (logs, exec, port-forward) or a pods/services/nodes proxy.
//
// The addresses such traffic is for (Service ClusterIPs, pod and node IPs)
// are real routable ones where nothing of this test machine runs. The proxy
// maps each to the loopback stand-in that plays it (a fake pod's network
// namespace, a fake kubelet's API) or refuses it, and counts both, so that
// no connection of the API server ever leaves loopback.
package egress

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// MaxSocketPath is the longest Unix socket path Linux accepts: sun_path
// holds 108 bytes, one of them the terminating NUL.
const MaxSocketPath = 107

// Options configures a Server.
type Options struct {
	// Resolver maps destinations; when nil, every CONNECT is refused
	// (ReasonNotReady) until SetResolver is called. That lets the proxy
	// listen before the control plane whose informers the resolver needs.
	Resolver Resolver
	// Log receives one line per refusal and, at V(1), per tunnel.
	Log logr.Logger
	// DialTimeout bounds resolving and dialing one destination; 10s when
	// zero.
	DialTimeout time.Duration
}

// Stats counts the CONNECTs served so far.
type Stats struct {
	// Accepted counts tunnels opened, by Target.Kind.
	Accepted map[string]int
	// Refused counts refusals by reason; RefusedTotal is their sum.
	Refused      map[string]int
	RefusedTotal int
}

// Refusal records one refused CONNECT.
type Refusal struct {
	// Destination is the host:port the client asked for.
	Destination string
	Reason      string
	Detail      string
	Time        time.Time
}

// maxRefusals bounds the refusals kept for Refusals.
const maxRefusals = 1024

// maxHeaderBytes bounds a CONNECT request's head.
const maxHeaderBytes = 64 << 10

// headerTimeout bounds the wait for a CONNECT request's head.
const headerTimeout = 10 * time.Second

// Server is a running proxy.
type Server struct {
	path        string
	listener    net.Listener
	log         logr.Logger
	dialTimeout time.Duration

	mu       sync.Mutex
	resolver Resolver
	accepted map[string]int
	refused  map[string]int
	total    int
	history  []Refusal
	conns    map[net.Conn]struct{}
	closed   bool

	wg sync.WaitGroup
}

// Listen starts a proxy on the Unix socket at path, which it first removes
// if a stale socket is left there. The socket is made private to this user
// (0600): whoever can connect to it reaches whatever the resolver maps.
func Listen(path string, opts Options) (*Server, error) {
	if len(path) > MaxSocketPath {
		return nil, fmt.Errorf("egress socket path %s is %d bytes long, over the %d a Unix socket allows", path, len(path), MaxSocketPath)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on egress socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("restricting egress socket %s: %w", path, err)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 10 * time.Second
	}
	s := &Server{
		path:        path,
		listener:    l,
		log:         opts.Log,
		dialTimeout: opts.DialTimeout,
		resolver:    opts.Resolver,
		accepted:    map[string]int{},
		refused:     map[string]int{},
		conns:       map[net.Conn]struct{}{},
	}
	s.wg.Go(s.acceptLoop)
	return s, nil
}

// removeStaleSocket removes a socket an earlier, killed run left at path.
// Anything else there is an error rather than something to delete.
func removeStaleSocket(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking egress socket path %s: %w", path, err)
	}
	if info.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("egress socket path %s exists and is not a socket", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale egress socket %s: %w", path, err)
	}
	return nil
}

// SocketPath is the path the proxy listens on.
func (s *Server) SocketPath() string { return s.path }

// SetResolver replaces the resolver for the CONNECTs that follow.
func (s *Server) SetResolver(r Resolver) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolver = r
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Accepted: make(map[string]int, len(s.accepted)), Refused: make(map[string]int, len(s.refused)), RefusedTotal: s.total}
	for k, n := range s.accepted {
		st.Accepted[k] = n
	}
	for k, n := range s.refused {
		st.Refused[k] = n
	}
	return st
}

// Refusals returns the latest refusals (up to 1024), oldest first.
func (s *Server) Refusals() []Refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Refusal(nil), s.history...)
}

// Close stops listening, cuts every open tunnel and waits for their
// goroutines to end. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	err := s.listener.Close()
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("closing egress socket %s: %w", s.path, err)
	}
	return nil
}

func (s *Server) acceptLoop() {
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error(err, "Egress proxy stopped accepting", "socket", s.path)
			}
			return
		}
		if !s.track(conn) {
			_ = conn.Close()
			return
		}
		s.wg.Go(func() {
			defer s.untrack(conn)
			s.serve(conn)
		})
	}
}

// track registers an open connection for Close to cut; it reports false
// once the server is closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	_ = c.Close()
}

// serve answers the one CONNECT a connection carries (the API server dials
// the socket afresh for each destination) and then splices it.
func (s *Server) serve(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(headerTimeout))
	head := bufio.NewReader(&io.LimitedReader{R: conn, N: maxHeaderBytes})
	req, err := http.ReadRequest(head)
	if errors.Is(err, io.EOF) {
		return // closed before asking anything: nothing to refuse
	}
	if err != nil {
		s.refuse(conn, "", http.StatusBadRequest, ReasonBadRequest, fmt.Sprintf("reading the CONNECT request: %v", err))
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if req.Method != http.MethodConnect {
		s.refuse(conn, req.RequestURI, http.StatusMethodNotAllowed, ReasonBadRequest, "method "+req.Method+" is not CONNECT")
		return
	}
	dest := req.URL.Host
	host, portText, err := net.SplitHostPort(dest)
	port, portErr := strconv.Atoi(portText)
	if err != nil || portErr != nil || port < 1 || port > 65535 {
		s.refuse(conn, dest, http.StatusBadRequest, ReasonBadRequest, "destination is not host:port")
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.dialTimeout)
	defer cancel()
	target, err := s.resolve(ctx, host, port)
	if err != nil {
		reason, detail := reasonOf(err, ReasonResolveError)
		s.refuse(conn, dest, statusFor(reason), reason, detail)
		return
	}
	upstream, err := target.Dial(ctx)
	if err != nil {
		reason, detail := reasonOf(err, ReasonDialFailed)
		s.refuse(conn, dest, statusFor(reason), reason, fmt.Sprintf("dialing %s: %s", target.Description, detail))
		return
	}
	if !s.track(upstream) {
		_ = upstream.Close()
		return
	}
	defer s.untrack(upstream)
	// Counted before the answer, so that whoever got it sees the count.
	s.mu.Lock()
	s.accepted[target.Kind]++
	s.mu.Unlock()
	s.log.V(1).Info("Egress tunnel opened", "destination", dest, "kind", target.Kind, "target", target.Description)
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}

	// Whatever the client sent past the request head already sits in the
	// buffer; it belongs to the tunnel.
	buffered, _ := head.Peek(head.Buffered())
	Splice(conn, io.MultiReader(bytes.NewReader(buffered), conn), upstream)
}

func (s *Server) resolve(ctx context.Context, host string, port int) (Target, error) {
	s.mu.Lock()
	r := s.resolver
	s.mu.Unlock()
	if r == nil {
		return Target{}, refuse(ReasonNotReady, "the egress proxy has no resolver yet")
	}
	target, err := r.Resolve(ctx, host, port)
	if err == nil && target.Dial == nil {
		err = fmt.Errorf("resolver returned target %q without a dialer", target.Description)
	}
	return target, err
}

// refuse counts and logs a refusal, then answers an error status with the
// reason in the status line (the API server quotes only that in its error)
// and the detail in the body.
func (s *Server) refuse(conn net.Conn, dest string, status int, reason, detail string) {
	s.mu.Lock()
	s.refused[reason]++
	s.total++
	s.history = append(s.history, Refusal{Destination: dest, Reason: reason, Detail: detail, Time: time.Now()})
	if len(s.history) > maxRefusals {
		s.history = s.history[len(s.history)-maxRefusals:]
	}
	s.mu.Unlock()
	s.log.Info("Egress CONNECT refused", "destination", dest, "reason", reason, "detail", detail)
	body := reason + ": " + detail + "\n"
	_, _ = fmt.Fprintf(conn, "HTTP/1.1 %d %s (%s)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), statusLineSafe(reason), len(body), body)
}

// statusLineSafe drops the control characters (CR, LF among them) that
// would let a resolver's reason break out of the status line.
func statusLineSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// statusFor is the HTTP status a refusal is answered with: 503 for what
// may pass later, 502 for a failed dial, 403 for what never will.
func statusFor(reason string) int {
	switch reason {
	case ReasonNoEndpoints, ReasonNotReady:
		return http.StatusServiceUnavailable
	case ReasonDialFailed:
		return http.StatusBadGateway
	case ReasonBadRequest:
		return http.StatusBadRequest
	case ReasonResolveError:
		return http.StatusInternalServerError
	default:
		return http.StatusForbidden
	}
}
