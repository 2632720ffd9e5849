package egress

import (
	"io"
	"net"
	"sync"
)

// Splice copies both ways between client and upstream until both
// directions end; fromClient is what to read from the client (its
// connection, behind any bytes already buffered). When one side stops
// sending, the other's write half is closed where the connection can do so
// (TCP, Unix sockets), so the peer sees EOF while the reverse direction
// drains; a connection without half-close, or an error either way, closes
// both at once. The proxy joins its tunnels with it, the fake kubelet its
// relays.
func Splice(client net.Conn, fromClient io.Reader, upstream net.Conn) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = client.Close()
			_ = upstream.Close()
		})
	}
	defer closeBoth()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(upstream, fromClient, closeBoth)
	}()
	pipe(client, upstream, closeBoth)
	<-done
}

// pipe copies src to dst, then passes src's EOF on to dst.
func pipe(dst net.Conn, src io.Reader, closeBoth func()) {
	if _, err := io.Copy(dst, src); err != nil {
		closeBoth()
		return
	}
	hc, ok := dst.(interface{ CloseWrite() error })
	if !ok || hc.CloseWrite() != nil {
		closeBoth()
	}
}
