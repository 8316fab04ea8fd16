package kerneldp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/natalg/natalg/cmd/internal/netnstest"
	"github.com/natalg/natalg/conntrack"
)

// TestCtTimeoutPolicies: natalg's timeouts map onto the kernel's states
// (RFC 5382 §5 REQ-5: half-closed keeps established; RFC 7857 §2.2 close
// after RST transitory; RFC 4787 §4.3 REQ-5 UDP; RFC 5508 §3.2 REQ-2 ICMP).
func TestCtTimeoutPolicies(t *testing.T) {
	to := conntrack.DefaultTimeouts
	pols := ctTimeoutPolicies(to)
	if len(pols) != 6 {
		t.Fatalf("%d policies, want 6", len(pols))
	}
	est, trans := uint32(to.TCPEstablished/time.Second), uint32(to.TCPTransitory/time.Second)
	tcp := pols[0].policy
	for state, want := range map[uint16]uint32{0: trans, 1: trans, 2: est, 3: est, 4: est, 5: trans, 6: trans, 7: trans} {
		if tcp[state] != want {
			t.Errorf("tcp state %d: %d s, want %d", state, tcp[state], want)
		}
	}
	if u := pols[1].policy; u[0] != uint32(to.UDP/time.Second) || u[1] != uint32(to.UDP/time.Second) {
		t.Errorf("udp %v", u)
	}
	if i := pols[5].policy; i[ctICMPTimeout] != uint32(to.ICMP/time.Second) || pols[5].l4 != 58 || pols[2].l4 != 1 {
		t.Errorf("icmp %v", pols[5])
	}
}

// TestCtTimeoutLive: the table carries the timeout objects with natalg's
// values, and a UDP datagram with no reply that reaches the namespace gets
// a kernel entry with natalg's UDP timeout, not the kernel's 30 s.
func TestCtTimeoutLive(t *testing.T) {
	netnstest.Enter(t)
	to := conntrack.DefaultTimeouts
	to.UDP = 7 * time.Minute
	to.ICMP = 90 * time.Second
	cfg := Config{
		Inside:      []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")},
		Public:      []netip.Addr{netip.MustParseAddr("198.19.100.100")},
		FTPPorts:    []uint16{21},
		EnginePorts: [2]uint16{49152, 65535}, KernelPorts: [2]uint16{1024, 49151},
		CtTimeouts: to,
	}
	tableHas(t, openTable(t, cfg),
		`ct timeout timeout_udp4`, `l3proto ip`, `policy = { unreplied : 420, replied : 420 }`,
		`ct timeout timeout_icmp6`, `ct timeout set "timeout_tcp4"`,
		`established : 7440, fin_wait : 7440, close_wait : 7440, last_ack : 240, time_wait : 240, close : 240`,
	)
	// A peer namespace sends one datagram to this one over a veth pair.
	peer := fmt.Sprintf("splitct-peer-%d", os.Getpid())
	run := func(args ...string) { t.Helper(); netnstest.Run(t, args...) }
	run("ip", "netns", "add", peer)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", peer).Run() })
	run("ip", "link", "add", "ctv0", "type", "veth", "peer", "name", "ctv1")
	run("ip", "link", "set", "ctv1", "netns", peer)
	run("ip", "addr", "add", "198.18.0.1/24", "dev", "ctv0")
	run("ip", "link", "set", "ctv0", "up")
	run("ip", "-n", peer, "addr", "add", "198.18.0.2/24", "dev", "ctv1")
	run("ip", "-n", peer, "link", "set", "ctv1", "up")
	run("ip", "netns", "exec", peer, "python3", "-c",
		`import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"x", ("198.18.0.1", 40000))`)
	out, err := exec.Command("conntrack", "-L", "-p", "udp", "--dport", "40000").CombinedOutput()
	if err != nil {
		t.Fatalf("conntrack -L: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`udp\s+17\s+(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no UDP entry:\n%s", out)
	}
	secs, _ := strconv.Atoi(m[1])
	if secs < 400 || secs > 420 {
		t.Errorf("UDP entry timeout %d s, want about 420 (natalg's --timeout-udp):\n%s", secs, out)
	}

	// A TCP connection half-closed by the peer (one FIN): RFC 5382 §5
	// REQ-5 and RFC 7857 §2 keep it at the established timeout, not the
	// kernel's fin_wait/close_wait 120/60 s.
	ln, err := net.Listen("tcp4", "198.18.0.1:40001")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	run("ip", "netns", "exec", peer, "python3", "-c",
		`import socket,time; s=socket.create_connection(("198.18.0.1", 40001), timeout=5); s.shutdown(socket.SHUT_WR); time.sleep(0.3)`)
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no TCP connection accepted")
	}
	out, err = exec.Command("conntrack", "-L", "-p", "tcp", "--dport", "40001").CombinedOutput()
	if err != nil {
		t.Fatalf("conntrack -L: %v\n%s", err, out)
	}
	m = regexp.MustCompile(`tcp\s+6\s+(\d+)\s+(\w+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no TCP entry:\n%s", out)
	}
	secs, _ = strconv.Atoi(m[1])
	if (m[2] != "CLOSE_WAIT" && m[2] != "FIN_WAIT") || secs < 7400 || secs > 7440 {
		t.Errorf("half-closed TCP entry %s with %d s, want CLOSE_WAIT/FIN_WAIT near 7440 (natalg's --timeout-tcp-established):\n%s", m[2], secs, out)
	}

	// An ICMP echo: RFC 5508 §3.2 REQ-2, natalg's --timeout-icmp (the
	// kernel's default is 30 s).
	// (no ping binary here: one echo request from a raw socket)
	run("ip", "netns", "exec", peer, "python3", "-c", `import socket,struct
def csum(b):
    s=sum(struct.unpack("!%dH" % (len(b)//2), b)); s=(s>>16)+(s&0xffff); s+=s>>16; return ~s&0xffff
h=struct.pack("!BBHHH",8,0,0,0x4e41,1)+b"natalg00"
pkt=h[:2]+struct.pack("!H",csum(h))+h[4:]
s=socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.sendto(pkt,("198.18.0.1",0))`)
	out, err = exec.Command("conntrack", "-L", "-p", "icmp").CombinedOutput()
	if err != nil {
		t.Fatalf("conntrack -L: %v\n%s", err, out)
	}
	m = regexp.MustCompile(`icmp\s+1\s+(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no ICMP entry:\n%s", out)
	}
	secs, _ = strconv.Atoi(m[1])
	if want := int(to.ICMP / time.Second); secs < want-5 || secs > want {
		t.Errorf("ICMP entry timeout %d s, want about %d (natalg's --timeout-icmp):\n%s", secs, want, out)
	}
}
