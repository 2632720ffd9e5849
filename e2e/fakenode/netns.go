package fakenode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/go-logr/logr"

	"github.com/kube-eip/kube-eip/e2e/egress"
	"golang.org/x/sys/unix"
)

// podNetwork is a pod's network namespace: loopback and nothing else. Two
// pods both listen on :9443, and nothing in a pod can reach past it: the
// only ways in are dial (the egress proxy's and the probes' connections)
// and the only ways out the relays, each to one loopback address of the
// host (the API server, the EC2 emulator).
//
// The namespace is held by a file descriptor, not by a process: it lives
// until close, and containers join it when they start.
type podNetwork struct {
	fd  *os.File
	log logr.Logger

	mu        sync.Mutex
	listeners []net.Listener
	closed    bool
	relays    sync.WaitGroup
	// entries are the calls of do in flight: close waits for them before
	// it closes fd, which they enter the namespace by.
	entries sync.WaitGroup
}

// newPodNetwork creates a network namespace with loopback up, and the
// relays to the given host loopback addresses listening on the same
// addresses inside it.
func newPodNetwork(log logr.Logger, relays []netip.AddrPort) (*podNetwork, error) {
	fd, err := newNetns()
	if err != nil {
		return nil, err
	}
	n := &podNetwork{fd: fd, log: log}
	for _, to := range relays {
		if err := n.relay(to); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

// newNetns makes a network namespace on a thread of its own, brings its
// loopback up and returns it as a file; the thread goes back to the host's
// namespace (onHostThread).
func newNetns() (*os.File, error) {
	var fd *os.File
	err := onHostThread(unix.CLONE_NEWNET, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("creating a network namespace (the fake kubelet needs root): %w", err)
		}
		f, err := os.Open(threadNetns())
		if err != nil {
			return err
		}
		if err := loopbackUp(); err != nil {
			_ = f.Close()
			return fmt.Errorf("setting up the pod's network namespace: %w", err)
		}
		fd = f
		return nil
	})
	return fd, err
}

func threadNetns() string {
	return fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening a socket: %w", err)
	}
	defer func() { _ = unix.Close(s) }()
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting lo up: %w", err)
	}
	return nil
}

// do runs fn on a thread inside the namespace. Sockets fn makes belong to
// the namespace for good, whatever thread uses them later.
func (n *podNetwork) do(fn func() error) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return errors.New("the pod's network namespace is gone")
	}
	n.entries.Add(1)
	n.mu.Unlock()
	defer n.entries.Done()
	return onHostThread(unix.CLONE_NEWNET, func() error {
		if err := unix.Setns(int(n.fd.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("entering the pod's network namespace: %w", err)
		}
		return fn()
	})
}

// dial connects to port on the pod's loopback, where its containers
// listen.
func (n *podNetwork) dial(ctx context.Context, port int) (net.Conn, error) {
	var conn net.Conn
	err := n.do(func() error {
		var err error
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port)).String()) //nolint:gosec // G115: ports are validated 1-65535 by the API
		return err
	})
	return conn, err
}

// relay listens on to inside the namespace and forwards each connection to
// to in the host's: the pod reaches the API server or the emulator at the
// address the host does.
func (n *podNetwork) relay(to netip.AddrPort) error {
	if !to.Addr().IsLoopback() {
		return fmt.Errorf("relay to %s: only loopback addresses may be relayed", to)
	}
	var ln net.Listener
	if err := n.do(func() error {
		var err error
		ln, err = net.Listen("tcp", to.String())
		return err
	}); err != nil {
		return fmt.Errorf("relay to %s: %w", to, err)
	}
	n.mu.Lock()
	n.listeners = append(n.listeners, ln)
	n.mu.Unlock()
	n.relays.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go n.forward(in, to)
		}
	})
	return nil
}

func (n *podNetwork) forward(in net.Conn, to netip.AddrPort) {
	defer func() { _ = in.Close() }()
	out, err := net.Dial("tcp", to.String())
	if err != nil {
		n.log.V(2).Info("relay could not reach the host", "to", to, "err", err)
		return
	}
	defer func() { _ = out.Close() }()
	egress.Splice(in, in, out)
}

// close stops the relays and lets the namespace go once no container is
// in it.
func (n *podNetwork) close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	listeners := n.listeners
	n.mu.Unlock()
	for _, ln := range listeners {
		_ = ln.Close()
	}
	n.relays.Wait()
	n.entries.Wait()
	_ = n.fd.Close()
}
