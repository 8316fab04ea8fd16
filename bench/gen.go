package bench

import (
	"fmt"
	"net/netip"

	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// The benchmark topology (RFC 2544 benchmarking addresses, never on a wire):
// hosts inside 198.18.0.0/16 are masqueraded to 198.19.255.1; servers live
// in 198.19.0.0-198.19.254.255; a passive-mode FTP server inside at
// 198.18.255.2 is reached through a forward of the public port 21.
var (
	InsidePrefix = netip.MustParsePrefix("198.18.0.0/16")
	PublicAddr   = netip.MustParseAddr("198.19.255.1")
	FTPServer    = netip.MustParseAddr("198.18.255.2")
)

// Inside endpoints get globally distinct ports per protocol, so that the
// NAT keeps every inside port as the public one (source-port preservation)
// and the generator knows the public endpoint of every flow. Flows beyond
// the number of endpoints reuse an endpoint towards another server, as a
// busy client does (endpoint-independent mapping keeps its public port).
const (
	tcpEndpoints  = 40000 // TCP ports 1024..41023
	ftpClients    = 10000 // control ports 41024+2j, data ports 41025+2j
	ftpDataPorts  = 4000  // passive server data ports 61024..65023
	udpEndpoints  = 60000 // UDP ports 1024..61023
	icmpEndpoints = 60000 // echo identifiers 1024..61023
	maxServers    = 255 * 256
)

// EngineConfig is the engine configuration the scenarios run: the topology
// above with a forward of tcp:21 to the inside FTP server, and room for
// maxFlows flows.
func EngineConfig(maxFlows int) nat.Config {
	cfg := nat.Config{
		Inside:   []netip.Prefix{InsidePrefix},
		Public:   []netip.Addr{PublicAddr},
		Forwards: []nat.Forward{{Proto: ipproto.TCP, Port: 21, PortEnd: 21, Target: FTPServer, TargetPort: 21}},
	}
	cfg.Conntrack.MaxFlows = maxFlows
	cfg.Conntrack.MaxExpectations = 1 << 16
	return cfg
}

// host returns inside host number i (i < 255*256).
func host(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}) }

// server returns outside host number i (i < 255*256).
func server(i int) netip.Addr {
	i %= maxServers
	return netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
}

func addrPort(a netip.Addr, p int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(p)) }

// tcpFlow is flow k of the plain TCP flows: inside endpoint k mod
// tcpEndpoints to server k / tcpEndpoints on port 80 or 443.
type tcpFlow struct {
	cli, srv, pub netip.AddrPort
	cseq, sseq    uint32
}

func newTCPFlow(k int) tcpFlow {
	e, s := k%tcpEndpoints, k/tcpEndpoints
	port := 1024 + e
	sp := 80
	if s&1 != 0 {
		sp = 443
	}
	return tcpFlow{
		cli:  addrPort(host(e/64), port),
		srv:  addrPort(server(s+e%97), sp),
		pub:  addrPort(PublicAddr, port),
		cseq: uint32(k)*7919 + 1, sseq: uint32(k)*104729 + 1,
	}
}

// handshake appends SYN, SYN+ACK and ACK.
func (f *tcpFlow) handshake(t *Trace) {
	t.tcp(f.cli, f.srv, f.cseq-1, 0, fSYN, nil, 0)
	t.tcp(f.srv, f.pub, f.sseq-1, f.cseq, fSYN|fACK, nil, 0)
	t.tcp(f.cli, f.srv, f.cseq, f.sseq, fACK, nil, 0)
}

// out appends a data segment from the inside client of IP length size.
func (f *tcpFlow) out(t *Trace, size int) {
	t.tcp(f.cli, f.srv, f.cseq, f.sseq, fACK|fPSH, nil, max(size, 41))
}

// in appends a data segment from the server of IP length size.
func (f *tcpFlow) in(t *Trace, size int) {
	t.tcp(f.srv, f.pub, f.sseq, f.cseq, fACK|fPSH, nil, max(size, 41))
}

// teardown appends FIN, FIN+ACK and the last ACK.
func (f *tcpFlow) teardown(t *Trace) {
	t.tcp(f.cli, f.srv, f.cseq, f.sseq, fFIN|fACK, nil, 0)
	t.tcp(f.srv, f.pub, f.sseq, f.cseq+1, fFIN|fACK, nil, 0)
	t.tcp(f.cli, f.srv, f.cseq+1, f.sseq+1, fACK, nil, 0)
}

// udpFlow is flow k of the UDP flows: a DNS-like exchange.
type udpFlow struct{ cli, srv, pub netip.AddrPort }

func newUDPFlow(k int) udpFlow {
	e, s := k%udpEndpoints, k/udpEndpoints
	return udpFlow{cli: addrPort(host(e/64), 1024+e), srv: addrPort(server(s+e%89), 53), pub: addrPort(PublicAddr, 1024+e)}
}

func (f *udpFlow) out(t *Trace, size int) { t.udp(f.cli, f.srv, []byte("query"), size) }
func (f *udpFlow) in(t *Trace, size int)  { t.udp(f.srv, f.pub, []byte("answer"), size) }

// icmpFlow is flow k of the ICMP echo flows.
type icmpFlow struct {
	cli, srv netip.Addr
	id       uint16
}

func newICMPFlow(k int) icmpFlow {
	e, s := k%icmpEndpoints, k/icmpEndpoints
	return icmpFlow{cli: host(e / 64), srv: server(s + e%83), id: uint16(1024 + e)}
}

func (f *icmpFlow) out(t *Trace, seq, size int) {
	t.icmpEcho(f.cli, f.srv, false, f.id, uint16(seq), size)
}
func (f *icmpFlow) in(t *Trace, seq, size int) {
	t.icmpEcho(f.srv, PublicAddr, true, f.id, uint16(seq), size)
}

// ftpSession is FTP control session j. Even sessions are active mode: the
// client is inside and announces its data port with PORT, which the gateway
// rewrites to the public address. Odd sessions are passive mode: the server
// is inside behind the forward of port 21 and announces its data port in a
// 227 reply, which the gateway rewrites. Every round (PORT or PASV, LIST,
// the data connection and its teardown, 226) makes one new data connection
// through an expectation.
type ftpSession struct {
	passive bool
	// As the packets carry them: client to server, server to client.
	c2sSrc, c2sDst, s2cSrc, s2cDst netip.AddrPort
	cseq, sseq                     uint32 // next original sequence numbers
	cdelta, sdelta                 uint32 // what the peer sees minus the original
	dataIn                         netip.AddrPort
	rounds                         int
	// For the data connection of passive sessions: the outside client.
	peer    netip.Addr
	ctlPort int
}

func newFTPSession(j int) *ftpSession {
	x := &ftpSession{passive: j&1 == 1, cseq: uint32(j)*31 + 1000, sseq: uint32(j)*17 + 5000}
	if !x.passive {
		c, s := (j/2)%ftpClients, (j/2)/ftpClients
		cli := addrPort(host(c/16), 41024+2*c)
		srv := addrPort(server(s+c%101), 21)
		x.c2sSrc, x.c2sDst = cli, srv
		x.s2cSrc, x.s2cDst = srv, addrPort(PublicAddr, 41024+2*c)
		x.dataIn = addrPort(cli.Addr(), 41025+2*c)
		return x
	}
	i := j / 2
	a := i % 60000
	x.peer = server(a)
	x.ctlPort = 1024 + 2*(i/60000)
	cli := addrPort(x.peer, x.ctlPort)
	x.c2sSrc, x.c2sDst = cli, addrPort(PublicAddr, 21)
	x.s2cSrc, x.s2cDst = addrPort(FTPServer, 21), cli
	x.dataIn = addrPort(FTPServer, 61024+i%ftpDataPorts)
	return x
}

// c2s appends a segment from the client; s2c one from the server.
func (x *ftpSession) c2s(t *Trace, flags uint8, text string) {
	t.tcp(x.c2sSrc, x.c2sDst, x.cseq, x.sseq+x.sdelta, flags, []byte(text), 0)
	x.cseq += uint32(len(text))
	if flags&(fSYN|fFIN) != 0 {
		x.cseq++
	}
}

func (x *ftpSession) s2c(t *Trace, flags uint8, text string) {
	t.tcp(x.s2cSrc, x.s2cDst, x.sseq, x.cseq+x.cdelta, flags, []byte(text), 0)
	x.sseq += uint32(len(text))
	if flags&(fSYN|fFIN) != 0 {
		x.sseq++
	}
}

// open appends the control connection's handshake and greeting.
func (x *ftpSession) open(t *Trace) {
	x.cseq--
	x.c2s(t, fSYN, "")
	x.sseq--
	x.s2c(t, fSYN|fACK, "")
	x.c2s(t, fACK, "")
	x.s2c(t, fACK|fPSH, "220 natalg bench FTP server ready\r\n")
	x.c2s(t, fACK, "")
}

func hostPort(a netip.Addr, p uint16) string {
	b := a.As4()
	return fmt.Sprintf("%d,%d,%d,%d,%d,%d", b[0], b[1], b[2], b[3], p>>8, p&0xff)
}

// Control and data segments per round.
const (
	ftpControlPerRound = 7
	ftpDataPerRound    = 8
	ftpPacketsPerRound = ftpControlPerRound + ftpDataPerRound
)

// round appends one transfer: the announcement (rewritten by the gateway),
// LIST, the data connection through the expectation, and the 226 reply.
// size is the IP length of the data segment.
func (x *ftpSession) round(t *Trace, size int) {
	pub := addrPort(PublicAddr, int(x.dataIn.Port()))
	if !x.passive {
		in := "PORT " + hostPort(x.dataIn.Addr(), x.dataIn.Port()) + "\r\n"
		out := "PORT " + hostPort(PublicAddr, x.dataIn.Port()) + "\r\n"
		x.c2s(t, fACK|fPSH, in)
		x.cdelta += uint32(len(out) - len(in))
		x.s2c(t, fACK|fPSH, "200 PORT command successful\r\n")
	} else {
		x.c2s(t, fACK|fPSH, "PASV\r\n")
		in := "227 Entering Passive Mode (" + hostPort(x.dataIn.Addr(), x.dataIn.Port()) + ").\r\n"
		out := "227 Entering Passive Mode (" + hostPort(PublicAddr, x.dataIn.Port()) + ").\r\n"
		x.s2c(t, fACK|fPSH, in)
		x.sdelta += uint32(len(out) - len(in))
	}
	x.c2s(t, fACK|fPSH, "LIST\r\n")
	x.s2c(t, fACK|fPSH, "150 Here comes the directory listing.\r\n")
	// The data connection, opened by the outside end towards the public
	// endpoint the announcement carried, from a port new in each round.
	var outside netip.AddrPort
	if !x.passive {
		outside = addrPort(x.c2sDst.Addr(), 20000+x.rounds%40000)
	} else {
		// Sessions sharing the peer address differ in m < 17.
		m := (x.ctlPort - 1024) / 2
		outside = addrPort(x.peer, 2048+(m+17*x.rounds)%63000)
	}
	x.rounds++
	os, is := uint32(x.rounds)*1000003, uint32(x.rounds)*7001
	t.tcp(outside, pub, os, 0, fSYN, nil, 0)
	t.tcp(x.dataIn, outside, is, os+1, fSYN|fACK, nil, 0)
	t.tcp(outside, pub, os+1, is+1, fACK, nil, 0)
	dl := max(size, 41) - 40
	t.tcp(x.dataIn, outside, is+1, os+1, fACK|fPSH, nil, max(size, 41))
	t.tcp(outside, pub, os+1, is+1+uint32(dl), fACK, nil, 0)
	t.tcp(x.dataIn, outside, is+1+uint32(dl), os+1, fFIN|fACK, nil, 0)
	t.tcp(outside, pub, os+1, is+2+uint32(dl), fFIN|fACK, nil, 0)
	t.tcp(x.dataIn, outside, is+2+uint32(dl), os+2, fACK, nil, 0)
	x.s2c(t, fACK|fPSH, "226 Directory send OK.\r\n")
	x.c2s(t, fACK, "")
}
