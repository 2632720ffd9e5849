package egress_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/kube-eip/kube-eip/e2e/egress"
)

func TestTunnelRoundTrip(t *testing.T) {
	var logs logLines
	echo := echoServer(t, "echo:")
	s := startServer(t, egress.Options{Resolver: fixedResolver(echo, egress.KindPod), Log: logs.logger()})

	conn, _ := connect(t, s.SocketPath(), "10.96.0.10:443")
	if got := roundTrip(t, conn, "hello"); got != "echo:hello" {
		t.Errorf("tunnel answered %q, want %q", got, "echo:hello")
	}
	if st := s.Stats(); st.Accepted[egress.KindPod] != 1 || st.RefusedTotal != 0 {
		t.Errorf("stats %+v, want one pod tunnel and no refusal", st)
	}
	if len(logs.matching("Egress tunnel opened", "10.96.0.10:443", echo)) != 1 {
		t.Errorf("no log line for the tunnel in %q", logs.lines)
	}
}

// TestHTTPClientThroughProxy has net/http's own CONNECT client reach a TLS
// server on loopback through the cluster resolver's loopback mapping.
func TestHTTPClientThroughProxy(t *testing.T) {
	backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "through the proxy")
	}))
	t.Cleanup(backend.Close)
	resolver, err := egress.NewClusterResolver(fake.NewClientset(), egress.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, egress.Options{Resolver: resolver})

	transport := &http.Transport{
		Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: "egress.invalid"}),
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", s.SocketPath())
		},
	}
	transport.TLSClientConfig = backend.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	resp, err := client.Get(backend.URL)
	if err != nil {
		t.Fatalf("GET through the proxy: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "through the proxy" {
		t.Errorf("GET answered %d %q", resp.StatusCode, body)
	}
	if st := s.Stats(); st.Accepted[egress.KindLoopback] != 1 {
		t.Errorf("stats %+v, want one loopback tunnel", st)
	}
}

func TestRefusal(t *testing.T) {
	var logs logLines
	s := startServer(t, egress.Options{Resolver: refusedResolver(egress.ReasonNoEndpoints), Log: logs.logger()})

	conn, r := connect(t, s.SocketPath(), "10.96.0.20:443")
	if conn != nil {
		t.Fatal("a refused CONNECT opened a tunnel")
	}
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.status, "(no-endpoints)") {
		t.Errorf("status %q, want 503 naming the reason", r.status)
	}
	if !strings.Contains(r.body, "test refuses 10.96.0.20:443") {
		t.Errorf("body %q lacks the detail", r.body)
	}
	st := s.Stats()
	if st.Refused[egress.ReasonNoEndpoints] != 1 || st.RefusedTotal != 1 || len(st.Accepted) != 0 {
		t.Errorf("stats %+v, want one no-endpoints refusal", st)
	}
	refusals := s.Refusals()
	if len(refusals) != 1 || refusals[0].Destination != "10.96.0.20:443" || refusals[0].Reason != egress.ReasonNoEndpoints {
		t.Errorf("refusals %+v", refusals)
	}
	if len(logs.matching("Egress CONNECT refused", `"destination"="10.96.0.20:443"`, `"reason"="no-endpoints"`)) != 1 {
		t.Errorf("no log line for the refusal in %q", logs.lines)
	}
}

func TestNotReadyUntilResolverSet(t *testing.T) {
	s := startServer(t, egress.Options{})
	if _, r := connect(t, s.SocketPath(), "10.96.0.1:443"); r.code != http.StatusServiceUnavailable {
		t.Errorf("without a resolver: %s, want 503", r.status)
	}
	s.SetResolver(fixedResolver(echoServer(t, ""), egress.KindService))
	conn, _ := connect(t, s.SocketPath(), "10.96.0.1:443")
	if got := roundTrip(t, conn, "x"); got != "x" {
		t.Errorf("tunnel answered %q", got)
	}
	if st := s.Stats(); st.Refused[egress.ReasonNotReady] != 1 || st.Accepted[egress.KindService] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	_ = closed.Close()

	for _, tc := range []struct {
		name     string
		resolver egress.Resolver
		status   int
		reason   string
	}{
		{"resolver error", egress.ResolverFunc(func(context.Context, string, int) (egress.Target, error) {
			return egress.Target{}, errTest
		}), http.StatusInternalServerError, egress.ReasonResolveError},
		{"dial failure", fixedResolver(closedAddr, egress.KindPod), http.StatusBadGateway, egress.ReasonDialFailed},
		{"no dialer", egress.ResolverFunc(func(context.Context, string, int) (egress.Target, error) {
			return egress.Target{Kind: egress.KindPod}, nil
		}), http.StatusInternalServerError, egress.ReasonResolveError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, egress.Options{Resolver: tc.resolver})
			_, r := connect(t, s.SocketPath(), "192.0.2.1:80")
			if r.code != tc.status {
				t.Errorf("status %s, want %d", r.status, tc.status)
			}
			if st := s.Stats(); st.Refused[tc.reason] != 1 {
				t.Errorf("stats %+v, want a %s refusal", st, tc.reason)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	s := startServer(t, egress.Options{Resolver: fixedResolver(echoServer(t, ""), egress.KindPod)})
	for _, tc := range []struct {
		request string
		status  int
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusMethodNotAllowed},
		{"CONNECT nohostport HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"CONNECT 10.96.0.1:0 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"not http at all\r\n\r\n", http.StatusBadRequest},
	} {
		conn, err := net.Dial("unix", s.SocketPath())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, tc.request)
		reply, _ := io.ReadAll(conn)
		_ = conn.Close()
		if want := fmt.Sprintf("HTTP/1.1 %d ", tc.status); !strings.HasPrefix(string(reply), want) {
			t.Errorf("%q answered %q, want %q…", tc.request, reply, want)
		}
	}
	// A connection closed without a word is no request to refuse.
	conn, err := net.Dial("unix", s.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	if st := s.Stats(); st.Refused[egress.ReasonBadRequest] != 4 || st.RefusedTotal != 4 || len(st.Accepted) != 0 {
		t.Errorf("stats %+v, want 4 bad requests", st)
	}
}

// TestBytesPastTheRequestHead: what a client sends right behind its
// CONNECT, before the answer, still reaches the destination.
func TestBytesPastTheRequestHead(t *testing.T) {
	s := startServer(t, egress.Options{Resolver: fixedResolver(echoServer(t, "echo:"), egress.KindPod)})
	conn, err := net.Dial("unix", s.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, _ = io.WriteString(conn, "CONNECT 10.96.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nearly")
	_ = conn.(*net.UnixConn).CloseWrite()
	reply, _ := io.ReadAll(conn)
	const want = "HTTP/1.1 200 Connection established\r\n\r\necho:early"
	if string(reply) != want {
		t.Errorf("got %q, want %q", reply, want)
	}
}

func TestCloseCutsTunnels(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			held <- c // never answers, never closes
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		select {
		case c := <-held:
			_ = c.Close()
		default:
		}
	})
	s, err := egress.Listen(socketPath(t), egress.Options{Resolver: fixedResolver(l.Addr().String(), egress.KindPod)})
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := connect(t, s.SocketPath(), "10.96.0.1:443")

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not cut the open tunnel")
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the tunnel is still open after Close")
	}
	if _, err := os.Stat(s.SocketPath()); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}

func TestSocketFile(t *testing.T) {
	path := socketPath(t)
	// A socket left by a killed run is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = stale.Close()
	s, err := egress.Listen(path, egress.Options{})
	if err != nil {
		t.Fatalf("listening over a stale socket: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 600", perm)
	}
	_ = s.Close()

	regular := filepath.Join(filepath.Dir(path), "regular")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := egress.Listen(regular, egress.Options{}); err == nil {
		t.Error("Listen replaced a regular file")
	}
	long := "/tmp/" + strings.Repeat("x", egress.MaxSocketPath)
	if _, err := egress.Listen(long, egress.Options{}); err == nil || !strings.Contains(err.Error(), "107") {
		t.Errorf("Listen on a %d-byte path: %v, want a length error", len(long), err)
	}
}

// TestConcurrentTunnels is for -race: many clients open and refuse tunnels
// at once while the stats are read and the resolver swapped.
func TestConcurrentTunnels(t *testing.T) {
	echo := echoServer(t, "")
	accept := fixedResolver(echo, egress.KindService)
	s := startServer(t, egress.Options{Resolver: egress.ResolverFunc(func(ctx context.Context, host string, port int) (egress.Target, error) {
		if port == 443 {
			return accept.Resolve(ctx, host, port)
		}
		return refusedResolver(egress.ReasonUnmapped).Resolve(ctx, host, port)
	})})

	const clients, rounds = 16, 8
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for j := range rounds {
				msg := fmt.Sprintf("client %d round %d", i, j)
				conn, r, err := tryConnect(s.SocketPath(), "10.96.0.1:443")
				if err != nil || conn == nil {
					t.Errorf("CONNECT: %+v %v", r, err)
					return
				}
				got, err := tryRoundTrip(conn, msg)
				_ = conn.Close()
				if err != nil || got != msg {
					t.Errorf("tunnel answered %q (%v), want %q", got, err, msg)
				}
				if _, r, err := tryConnect(s.SocketPath(), "192.0.2.1:80"); err != nil || r.code != http.StatusForbidden {
					t.Errorf("refused CONNECT: %+v %v, want 403", r, err)
				}
				_ = s.Stats()
				_ = s.Refusals()
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Accepted[egress.KindService] != clients*rounds || st.Refused[egress.ReasonUnmapped] != clients*rounds || st.RefusedTotal != clients*rounds {
		t.Errorf("stats %+v, want %d of each", st, clients*rounds)
	}
}
