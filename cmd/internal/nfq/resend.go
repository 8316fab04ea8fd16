package nfq

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// errTTLExpired: a packet to be sent on from the router had a TTL or hop
// limit of 1 or less.
var errTTLExpired = errors.New("ttl expired")

// resender sends translated packets on from the router itself, through raw
// sockets (IPPROTO_RAW: the packet's own IP header, IP_HDRINCL, and for
// IPv6 IPV6_HDRINCL, both implied by the protocol), for a queue whose
// packets were addressed to the router and queued at the input hook, after
// routing: an accepted verdict would deliver the translated packet locally,
// where nothing listens for it. The queued copy is dropped instead and the
// translated packet leaves through the output path (conntrack, routing,
// POSTROUTING) as if the router had made it, carrying mark on its socket
// (SO_MARK) for natalg's table to tell it from the router's own traffic.
//
// A router forwarding the packet would decrement its TTL (RFC 791 §3.2,
// RFC 1812 §5.3.1) or hop limit (RFC 8200 §3): send does it, and refuses a
// packet whose TTL would reach 0. Nothing is allocated per packet.
type resender struct {
	fd4, fd6 int
	sa4      unix.SockaddrInet4
	sa6      unix.SockaddrInet6
}

func openResender(mark uint32) (*resender, error) {
	r := &resender{fd4: -1, fd6: -1}
	for _, s := range []struct {
		fd     *int
		family int
	}{{&r.fd4, unix.AF_INET}, {&r.fd6, unix.AF_INET6}} {
		fd, err := unix.Socket(s.family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("raw socket (family %d) to send on translated packets: %w", s.family, err)
		}
		*s.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			r.close()
			return nil, fmt.Errorf("raw socket (family %d): SO_MARK: %w", s.family, err)
		}
	}
	return r, nil
}

func (r *resender) close() {
	for _, fd := range []*int{&r.fd4, &r.fd6} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// send decrements the TTL or hop limit of the IP packet b (in place; the
// kernel fills in an IPv4 header checksum of a raw socket's packets) and
// sends it to its destination address.
func (r *resender) send(b []byte) error {
	if len(b) < 1 {
		return unix.EINVAL
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return unix.EINVAL
		}
		if b[8] <= 1 {
			return errTTLExpired
		}
		b[8]--
		copy(r.sa4.Addr[:], b[16:20])
		return unix.Sendto(r.fd4, b, 0, &r.sa4)
	case 6:
		if len(b) < 40 {
			return unix.EINVAL
		}
		if b[7] <= 1 {
			return errTTLExpired
		}
		b[7]--
		copy(r.sa6.Addr[:], b[24:40])
		return unix.Sendto(r.fd6, b, 0, &r.sa6)
	}
	return unix.EAFNOSUPPORT
}
