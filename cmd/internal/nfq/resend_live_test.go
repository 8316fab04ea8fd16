package nfq

import (
	"encoding/binary"
	"net/netip"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/cmd/internal/netnstest"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/checksum"
)

// udpPacket is an IP packet (IPv4 or IPv6 by the addresses) carrying a UDP
// datagram from src to dst with the given TTL or hop limit.
func udpPacket(src, dst netip.AddrPort, ttl byte, payload string) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
	ck := checksum.Checksum(udp, checksum.PseudoHeader(s, d, unix.IPPROTO_UDP, uint32(len(udp))))
	binary.BigEndian.PutUint16(udp[6:], ck)
	if src.Addr().Is4() {
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, ttl, unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		copy(ip[12:], s)
		copy(ip[16:], d)
		binary.BigEndian.PutUint16(ip[10:], checksum.Checksum(ip, 0))
		return append(ip, udp...)
	}
	ip := make([]byte, 40)
	ip[0], ip[6], ip[7] = 0x60, unix.IPPROTO_UDP, ttl
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	copy(ip[8:], s)
	copy(ip[24:], d)
	return append(ip, udp...)
}

// udpListener is a UDP socket bound to at that reports each datagram's
// TTL or hop limit (IP_RECVTTL, IPV6_RECVHOPLIMIT).
func udpListener(t *testing.T, at netip.AddrPort) int {
	t.Helper()
	family, level, opt := unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(at.Port()), Addr: at.Addr().As16()}
	if at.Addr().Is4() {
		family, level, opt = unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVTTL
		sa = &unix.SockaddrInet4{Port: int(at.Port()), Addr: at.Addr().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	return fd
}

// receive returns the next datagram on fd and its TTL or hop limit, or
// ok false when none comes within the socket's timeout.
func receive(fd int) (payload string, ttl int, ok bool) {
	buf, oob := make([]byte, 1500), make([]byte, 128)
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
	if err != nil {
		return "", 0, false
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		if (m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL ||
			m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT) && len(m.Data) >= 4 {
			ttl = int(binary.NativeEndian.Uint32(m.Data))
		}
	}
	return string(buf[:n]), ttl, true
}

// TestResendLive: a queue with a resender answers an accepted packet with
// a drop verdict and sends the translated packet from the router, its TTL
// or hop limit decremented and its socket's mark on it; a packet whose TTL
// would reach 0 is dropped and counted; sending allocates nothing.
func TestResendLive(t *testing.T) {
	netnstest.Enter(t)
	netnstest.Run(t, "ip", "link", "set", "lo", "up")
	const mark = 0x10000000
	netnstest.Run(t, "nft", "add table inet resendtest")
	netnstest.Run(t, "nft", "add chain inet resendtest out { type filter hook output priority 0; }")
	netnstest.Run(t, "nft", "add rule inet resendtest out meta mark 0x10000000 udp dport 7000 counter")
	r, err := openResender(mark)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	for _, c := range []struct{ src, dst string }{
		{"127.0.0.2:4000", "127.0.0.1:7000"},
		{"[::1]:4000", "[::1]:7000"},
	} {
		src, dst := netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst)
		fd := udpListener(t, dst)
		var st Stats
		q, sent := testQueue(&st)
		q.resend = r
		ps := nat.NewBatch(3)
		for i, ttl := range []byte{64, 1, 2} {
			ps[i].ID = uint64(i + 1)
			ps[i].Verdict = nat.Accept
			ps[i].Out = udpPacket(src, dst, ttl, "ttl "+strconv.Itoa(int(ttl)))
		}
		q.WriteBatch(ps)
		_, vs, _ := verdicts(t, (*sent)[0])
		if len(vs) != 3 || vs[0] != verdictDrop || vs[1] != verdictDrop || vs[2] != verdictDrop {
			t.Errorf("%v: verdicts %v, want three drops (the packets leave through the raw socket)", dst, vs)
		}
		for _, want := range []struct {
			payload string
			ttl     int
		}{{"ttl 64", 63}, {"ttl 2", 1}} {
			payload, ttl, ok := receive(fd)
			if !ok || payload != want.payload || ttl != want.ttl {
				t.Errorf("%v: received %q ttl %d (ok %v), want %q ttl %d", dst, payload, ttl, ok, want.payload, want.ttl)
			}
		}
		if payload, _, ok := receive(fd); ok {
			t.Errorf("%v: received %q, the packet with TTL 1 was sent on", dst, payload)
		}
		if st.Resent.Load() != 2 || st.TTLExpired.Load() != 1 || st.ResendErrors.Load() != 0 || st.Accepted.Load() != 2 || st.Dropped.Load() != 1 {
			t.Errorf("%v: resent %d, ttl expired %d, errors %d, accepted %d, dropped %d; want 2, 1, 0, 2, 1", dst,
				st.Resent.Load(), st.TTLExpired.Load(), st.ResendErrors.Load(), st.Accepted.Load(), st.Dropped.Load())
		}

		pkt := udpPacket(src, dst, 64, "again")
		ps = nat.NewBatch(1)
		q.send = func([]byte) error { return nil }
		if n := testing.AllocsPerRun(20, func() {
			ps[0].Verdict, ps[0].Out = nat.Accept, append(ps[0].Out[:0], pkt...)
			q.WriteBatch(ps)
		}); n != 0 {
			t.Errorf("%v: %v allocations per resent packet, want 0", dst, n)
		}
	}
	// every packet sent on carried the socket's mark: 2 + 21 per family
	out := netnstest.Run(t, "nft", "list chain inet resendtest out")
	if m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out); m == nil || m[1] != "46" {
		t.Errorf("packets with the mark to port 7000: %v, want 46:\n%s", m, out)
	}
}
