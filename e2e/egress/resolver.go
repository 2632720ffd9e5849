package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Kinds of Target, also the keys of Stats.Accepted.
const (
	KindLoopback = "loopback"
	KindService  = "service"
	KindPod      = "pod"
	KindNode     = "node"
)

// Reasons of a refusal, also the keys of Stats.Refused.
const (
	// ReasonUnmapped: the destination is nothing this machine stands in
	// for (an address of no Service, pod or node of ours, or a name, which
	// the proxy never resolves).
	ReasonUnmapped = "unmapped"
	// ReasonUnknownClusterIP: an address of the Service range that no
	// Service holds.
	ReasonUnknownClusterIP = "unknown-cluster-ip"
	// ReasonUnknownPort: the Service exists but has no such TCP port.
	ReasonUnknownPort = "unknown-port"
	// ReasonNoEndpoints: the Service has no ready endpoint for the port.
	ReasonNoEndpoints = "no-endpoints"
	// ReasonUnsupportedService: a headless or ExternalName Service, which
	// has no virtual IP to proxy.
	ReasonUnsupportedService = "unsupported-service"
	// ReasonNotLoopback: a dial the resolver would have made to an address
	// off loopback, which the guard refused.
	ReasonNotLoopback = "not-loopback"
	// ReasonNotReady: the proxy has no resolver yet, or its caches have not
	// synced.
	ReasonNotReady = "not-ready"
	// ReasonBadRequest: not a well-formed CONNECT.
	ReasonBadRequest = "bad-request"
	// ReasonResolveError: the resolver failed for another reason.
	ReasonResolveError = "resolve-error"
	// ReasonDialFailed: the destination was mapped but the dial failed.
	ReasonDialFailed = "dial-failed"
)

// Target is where the proxy sends a CONNECT. Dial is the only way the proxy
// reaches anything: it never dials the requested host itself. Dial's
// context bounds the dial, not the connection it returns.
type Target struct {
	Kind        string
	Description string
	Dial        func(ctx context.Context) (net.Conn, error)
}

// Resolver maps a requested destination to a Target. An error refuses the
// CONNECT; a *RefusedError says why, anything else counts as
// ReasonResolveError.
type Resolver interface {
	Resolve(ctx context.Context, host string, port int) (Target, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, host string, port int) (Target, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, host string, port int) (Target, error) {
	return f(ctx, host, port)
}

// RefusedError is a refusal with its reason (one of the Reason constants)
// and a human-readable detail.
type RefusedError struct {
	Reason string
	Detail string
}

func (e *RefusedError) Error() string { return e.Reason + ": " + e.Detail }

// refuse returns a *RefusedError.
func refuse(reason, format string, args ...any) error {
	return &RefusedError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// reasonOf classifies a resolver or dial error.
func reasonOf(err error, fallback string) (reason, detail string) {
	if refused, ok := errors.AsType[*RefusedError](err); ok {
		return refused.Reason, refused.Detail
	}
	return fallback, err.Error()
}

// LoopbackDial returns a Dial function for a loopback address: it refuses
// (ReasonNotLoopback) any other address up front, and checks again at
// connect time, on the address the socket is really connected to, so that
// not even a name that resolves elsewhere can take traffic off this machine.
func LoopbackDial(addr string) (func(ctx context.Context) (net.Conn, error), error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, refuse(ReasonNotLoopback, "address %q: %v", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, refuse(ReasonNotLoopback, "address %q is not a loopback IP", addr)
	}
	if port, err := strconv.Atoi(portText); err != nil || port < 1 || port > 65535 {
		return nil, refuse(ReasonNotLoopback, "address %q has no valid port", addr)
	}
	dialer := net.Dialer{Control: requireLoopback}
	return func(ctx context.Context) (net.Conn, error) {
		return dialer.DialContext(ctx, "tcp", addr)
	}, nil
}

// requireLoopback is a net.Dialer Control hook: it runs just before the
// socket connects, with the numeric address it connects to.
func requireLoopback(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return refuse(ReasonNotLoopback, "address %q: %v", address, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return refuse(ReasonNotLoopback, "refusing to connect to %s, off loopback", address)
	}
	return nil
}
