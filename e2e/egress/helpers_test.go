package egress_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/kube-eip/kube-eip/e2e/egress"
)

// logLines captures a logger's lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})
}

// matching returns the lines holding every one of parts.
func (l *logLines) matching(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if containsAll(line, parts) {
			out = append(out, line)
		}
	}
	return out
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// socketPath returns a short socket path in a fresh directory: t.TempDir
// paths, named after the test, can outgrow a Unix socket's 107 bytes.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "egress-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "proxy.sock")
}

// startServer runs a proxy for the test.
func startServer(t *testing.T, opts egress.Options) *egress.Server {
	t.Helper()
	s, err := egress.Listen(socketPath(t), opts)
	if err != nil {
		t.Fatalf("starting the proxy: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing the proxy: %v", err)
		}
	})
	return s
}

// reply is the proxy's answer to a CONNECT it refused.
type reply struct {
	code   int
	status string
	body   string
}

// connect opens a tunnel the way kube-apiserver's egress selector does
// (egressselector.tunnelHTTPConnect): a fresh socket connection, the
// CONNECT request, a response read with no request, and no byte of the
// tunnel buffered past it. On a status other than 200 the connection is
// closed and a nil conn returned with the answer.
func connect(t *testing.T, socket, dest string) (net.Conn, reply) {
	t.Helper()
	conn, r, err := tryConnect(socket, dest)
	if err != nil {
		t.Fatal(err)
	}
	if conn != nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return conn, r
}

// tryConnect is connect for goroutines other than the test's.
func tryConnect(socket, dest string) (net.Conn, reply, error) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return nil, reply{}, fmt.Errorf("dialing the proxy: %w", err)
	}
	if _, err := fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", dest, "127.0.0.1"); err != nil {
		_ = conn.Close()
		return nil, reply{}, fmt.Errorf("sending CONNECT: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		_ = conn.Close()
		return nil, reply{}, fmt.Errorf("reading the CONNECT response for %s: %w", dest, err)
	}
	r := reply{code: resp.StatusCode, status: resp.Status}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		_ = conn.Close()
		r.body = string(body)
		return nil, r, nil
	}
	// The body of a 200 to CONNECT is the tunnel itself: it is conn.
	if n := br.Buffered(); n > 0 {
		_ = conn.Close()
		return nil, reply{}, fmt.Errorf("%d bytes buffered past the CONNECT response", n)
	}
	return conn, r, nil
}

// echoServer serves on loopback: it writes back what it reads, prefixed,
// and closes its write half at the reader's EOF.
func echoServer(t *testing.T, prefix string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				data, _ := io.ReadAll(c)
				_, _ = io.WriteString(c, prefix+string(data))
				_ = c.(*net.TCPConn).CloseWrite()
			})
		}
	})
	return l.Addr().String()
}

// roundTrip sends msg through a tunnel, closes its write half and returns
// everything that comes back.
func roundTrip(t *testing.T, conn net.Conn, msg string) string {
	t.Helper()
	got, err := tryRoundTrip(conn, msg)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func tryRoundTrip(conn net.Conn, msg string) (string, error) {
	if _, err := io.WriteString(conn, msg); err != nil {
		return "", fmt.Errorf("writing into the tunnel: %w", err)
	}
	if err := conn.(*net.UnixConn).CloseWrite(); err != nil {
		return "", fmt.Errorf("half-closing the tunnel: %w", err)
	}
	data, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("reading from the tunnel: %w", err)
	}
	return string(data), nil
}

// fixedResolver sends every destination to one loopback address.
func fixedResolver(addr, kind string) egress.Resolver {
	return egress.ResolverFunc(func(context.Context, string, int) (egress.Target, error) {
		dial, err := egress.LoopbackDial(addr)
		if err != nil {
			return egress.Target{}, err
		}
		return egress.Target{Kind: kind, Description: addr, Dial: dial}, nil
	})
}

// refusedResolver refuses everything with reason.
func refusedResolver(reason string) egress.Resolver {
	return egress.ResolverFunc(func(_ context.Context, host string, port int) (egress.Target, error) {
		return egress.Target{}, &egress.RefusedError{Reason: reason, Detail: fmt.Sprintf("test refuses %s:%d", host, port)}
	})
}

var errTest = errors.New("test failure")
