//go:build unix

package egress

import (
	"crypto/tls"
	"net"
	"syscall"
)

// idleConnAlive reports whether an idle keep-alive connection can carry a
// request: its receiver has neither closed it nor sent anything on it
// since its last answer (an answer nobody asked for, such as a 408 sent
// before closing, would be read as the next request's). It peeks at the
// socket without waiting and without consuming anything.
func idleConnAlive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for the socket to be readable
	})
	return err == nil && alive
}
