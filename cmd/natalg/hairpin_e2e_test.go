package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/cmd/internal/pcapreplay"
	"github.com/natalg/natalg/nat/xlat"
)

// hairpinPort is the TCP port the hairpin mode forwards, on both families,
// to the inside host (which is then client and server at once).
const hairpinPort = "8080"

// hairpinArgs are natalg run's extra flags in the natalg-hairpin mode.
func hairpinArgs(mode string) []string {
	if !strings.HasPrefix(mode, "natalg-hairpin") {
		return nil
	}
	return []string{"--forward", "tcp:" + hairpinPort + "=" + inHost4 + ":" + hairpinPort,
		"--forward", "tcp:" + hairpinPort + "=[" + inHost6 + "]:" + hairpinPort}
}

// peerServer answers each of n connections with the peer's address and port
// as it sees them ("ADDR PORT\n").
const peerServer = `import socket, sys
host, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, ` + hairpinPort + `))
s.listen(8)
s.settimeout(60)
for _ in range(n):
    c, a = s.accept()
    c.sendall(("%s %d\n" % (a[0], a[1])).encode())
    c.close()
`

// peerClient connects from source port argv[2] to argv[1] and prints what
// the server saw.
const peerClient = `import socket, sys
host, sport = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
c = socket.socket(fam)
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.settimeout(10)
c.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
c.connect((host, ` + hairpinPort + `))
data = b""
while not data.endswith(b"\n"):
    b = c.recv(100)
    if not b:
        break
    data += b
print(data.decode().strip())
`

// TestE2EHairpin (issue 14, item 2): through natalg run, an inside host
// reaches a forwarded inside service through the public address
// (hairpinning, RFC 4787 §6 REQ-9, RFC 5382 §7.2 REQ-8). The inside host is
// both client and forwarded server: its connection to the public address
// leaves the router back through the inside interface, and the server sees
// it coming from the public address and the client's public port ("External
// source IP address and port"); then FTP through the hairpin, passive and
// active, vsftpd inside and curl inside dialling the public address. Both
// datapaths: in the split one too, the hairpin rule queues every packet
// from the inside to a public address, which natalg translates whole.
func TestE2EHairpin(t *testing.T) {
	e2eRequire(t)
	e2ePreclean(t)
	r := newE2EWork(t, 1<<20, 1<<20)
	r.buildNatalg(t)
	if r.natalg == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the natalg modes: " + r.natalgMissingWhy)
		}
		t.Skip(r.natalgMissingWhy)
	}
	for _, mode := range []string{"natalg-hairpin", "natalg-hairpin-full"} {
		t.Run(mode, func(t *testing.T) { testHairpin(t, r, mode) })
	}
}

// testHairpin is TestE2EHairpin in one mode.
func testHairpin(t *testing.T, r *e2eRun, mode string) {
	e := newE2EEnv(t, r, mode)
	hairpinned := func() float64 { return e.metrics(t)["natalg_hairpinned_flows_total"] }
	// Every hairpinned packet arrives on the inside interface and leaves
	// by it: what came in (IPv4) replays through natalg replay below.
	capIn, capOut := filepath.Join(e.dir, "hairpin-in.pcap"), filepath.Join(e.dir, "hairpin-out.pcap")
	var caps []*bgProc
	for _, c := range [][2]string{{"in", capIn}, {"out", capOut}} {
		p := startBg(t, "tcpdump r-in "+c[0], c[1]+".log", e.nsR, "tcpdump", "-i", "r-in", "-Q", c[0], "--immediate-mode", "-U",
			"-n", "-s", "0", "-Z", "root", "-w", c[1], "ip and host "+public4)
		if !waitFor(100, 50*time.Millisecond, func() bool { return strings.Contains(p.output(), "listening on") }) {
			t.Fatalf("%s did not start:\n%s", p.name, p.output())
		}
		caps = append(caps, p)
	}

	for _, c := range []struct{ name, listen, public, sport string }{
		{"tcp4", inHost4, public4, "45678"},
		{"tcp6", inHost6, public6, "45679"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := hairpinned()
			srv := startBg(t, "peer server", fmt.Sprintf("%s/peer-%s.log", e.dir, c.name), e.nsIn, "/usr/bin/python3", "-c", peerServer, c.listen, "2")
			if !waitFor(50, 100*time.Millisecond, func() bool {
				out, _ := runIn(5*time.Second, e.nsIn, "ss", "-Hltn", "sport = :"+hairpinPort)
				return srv.exited() || strings.TrimSpace(out) != ""
			}) || srv.exited() {
				t.Fatalf("peer server did not listen:\n%s", srv.output())
			}
			// Direct, for reference: the server sees the inside address.
			out, err := runIn(20*time.Second, e.nsIn, "/usr/bin/python3", "-c", peerClient, c.listen, c.sport)
			if want := c.listen + " " + c.sport; err != nil || strings.TrimSpace(out) != want {
				t.Fatalf("direct connection: %v %q, want %q", err, out, want)
			}
			// Through the public address: the server sees the public
			// address and the client's port (free, so kept).
			out, err = runIn(20*time.Second, e.nsIn, "/usr/bin/python3", "-c", peerClient, c.public, c.sport)
			if want := c.public + " " + c.sport; err != nil || strings.TrimSpace(out) != want {
				t.Fatalf("hairpinned connection: %v %q, want the server to see %q\nnatalg:\n%s", err, out, want, tail(e.daemon.output(), 20))
			}
			t.Logf("%s: through %s:%s the server saw %s", c.name, c.public, hairpinPort, strings.TrimSpace(out))
			// What the router's own conntrack made of it (translated in raw
			// PREROUTING, before conntrack: each direction is seen apart).
			ct, _ := runIn(5*time.Second, e.nsR, "conntrack", "-L", "-f", map[string]string{"tcp4": "ipv4", "tcp6": "ipv6"}[c.name], "-p", "tcp", "--dport", hairpinPort)
			st, _ := runIn(5*time.Second, e.nsR, "conntrack", "-S")
			t.Logf("router conntrack entries:\n%s\nconntrack -S:\n%s", strings.TrimSpace(ct), strings.TrimSpace(st))
			if after := hairpinned(); after < before+1 {
				t.Fatalf("natalg_hairpinned_flows_total %v -> %v: the connection did not go through natalg", before, after)
			}
		})
	}

	t.Run("ftp", func(t *testing.T) {
		before := hairpinned()
		s := e.startFTPD(t, "vsftpd", e.nsIn, 4)
		var xs []xfer
		for _, m := range []string{"pasv", "epsv", "port", "eprt"} {
			xs = append(xs, xfer{client: "curl", mode: m, file: e.run.small}, xfer{client: "curl", mode: m, put: true, file: e.run.up})
		}
		e.transfers(t, s, e.nsIn, public4, xs)
		if t.Failed() {
			t.Logf("vsftpd log:\n%s", tail(s.serverLog(), 40))
			return
		}
		// The server saw every session from the public address.
		log := s.serverLog()
		if !strings.Contains(log, `CONNECT: Client "`+public4+`"`) || strings.Contains(log, `Client "`+inHost4+`"`) {
			t.Fatalf("vsftpd did not see the client at the public address only:\n%s", tail(log, 20))
		}
		// A control connection and a data connection per transfer.
		after := hairpinned()
		if after-before < float64(2*len(xs)) {
			t.Fatalf("natalg_hairpinned_flows_total %v -> %v, want %d more", before, after, 2*len(xs))
		}
		m := e.metrics(t)
		t.Logf("hairpinned flows %v, rewrites %v", after-before, m["natalg_alg_rewrites_total"])
	})

	// natalg replay of what arrived on the inside interface translates it
	// as natalg run did: each replayed packet left the router the same
	// (but for the TTL the router decremented).
	t.Run("replay", func(t *testing.T) {
		if e.datapath() != "full" {
			// natalg replay is the full datapath's engine; the split
			// one keeps natalg's ports in its own range (--ports).
			t.Skip("replay compares with the full datapath only")
		}
		time.Sleep(200 * time.Millisecond) // tcpdump -U flushes per packet
		for _, p := range caps {
			if err := p.stop(5 * time.Second); err == errKilled {
				t.Fatalf("%s: %v", p.name, err)
			}
		}
		replayed := filepath.Join(e.dir, "hairpin-replayed.pcap")
		out, err := runIn(60*time.Second, "", e.run.natalg, "replay", "--inside", inside4, "--public", public4,
			"--forward", "tcp:21="+inHost4+":21", "--forward", "tcp:"+hairpinPort+"="+inHost4+":"+hairpinPort, capIn, replayed)
		t.Logf("natalg replay of the inside capture:\n%s", out)
		if err != nil {
			t.Fatalf("natalg replay: %v", err)
		}
		if m := regexp.MustCompile(`translated (\d+)`).FindStringSubmatch(out); m == nil || m[1] == "0" {
			t.Fatalf("the replay translated nothing")
		}
		if !strings.Contains(out, "dropped 0\n") {
			t.Errorf("the replay dropped packets natalg run had translated")
		}
		// IPv4 with the TTL and header checksum zeroed
		norm := func(ip []byte) string {
			c := append([]byte(nil), ip...)
			if len(c) >= 20 && c[0]>>4 == 4 {
				c[8], c[10], c[11] = 0, 0, 0
			}
			return string(c)
		}
		live := map[string]bool{}
		for _, p := range readPcap(t, capOut) {
			live[norm(p.IP())] = true
		}
		rp := readPcap(t, replayed)
		missing := 0
		for i, p := range rp {
			if !live[norm(p.IP())] {
				if missing++; missing <= 5 {
					t.Errorf("replayed packet %d is not in the live capture: %s", i+1, pcapreplay.Describe(p.IP()))
				}
			}
		}
		t.Logf("%d packets replayed, %d of them not as natalg run sent them", len(rp), missing)
	})
}

// udpEcho answers each datagram on argv[1]:7 with the address and port it
// came from ("ADDR PORT"), for 60 s at most.
const udpEcho = `import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7))
s.settimeout(60)
while True:
    d, a = s.recvfrom(100)
    s.sendto(("%s %d" % a).encode(), a)
`

// nat64Hairpin runs in the IPv6-only client. Socket A (port 5000) learns
// its pool transport address T:5000 from the IPv4 echo server; socket B
// (port 5001) sends to T:5000 as the client dials IPv4 hosts (T in the
// prefix); A prints where the datagram came from and answers; B prints
// where the answer came from.
const nat64Hairpin = `import ipaddress, socket, sys
prefix, echo = sys.argv[1], sys.argv[2]
base = int(ipaddress.IPv6Address(prefix.split("/")[0]))
def in6(v4):
    return str(ipaddress.IPv6Address(base + int(ipaddress.IPv4Address(v4))))
a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); a.bind(("::", 5000)); a.settimeout(5)
b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); b.bind(("::", 5001)); b.settimeout(5)
a.sendto(b"binding?", (in6(echo), 7))
pool, port = a.recvfrom(100)[0].decode().split()
print("mapped", pool, port)
b.sendto(b"hello a", (in6(pool), int(port)))
d, src = a.recvfrom(100)
print("a got", d.decode(), src[0], src[1])
a.sendto(b"hello b", src[:2])
d, src = b.recvfrom(100)
print("b got", d.decode(), src[0], src[1])
`

// TestNAT64E2EHairpin (issue 14, item 2): through natalg run's NAT64
// datapath, an IPv6 client reaching, through the prefix, a pool transport
// address bound to an IPv6 endpoint is hairpinned (RFC 6146 §3.8): the
// datagram comes back over IPv6 from the sender's own pool transport
// address (in the prefix), and the answer returns the same way.
func TestNAT64E2EHairpin(t *testing.T) {
	nat64Require(t)
	e2ePreclean(t)
	r := newNAT64Run(t)
	r.buildNatalg(t)
	if r.natalg == "" {
		t.Fatal(r.natalgMissingWhy)
	}
	e := newNAT64Env(t, r)
	echo := startBg(t, "udp echo", e.dir+"/udp-echo.log", e.nsOut, "/usr/bin/python3", "-c", udpEcho, n64Server)
	if !waitFor(50, 100*time.Millisecond, func() bool {
		out, _ := runIn(5*time.Second, e.nsOut, "ss", "-Hlun", "sport = :7")
		return echo.exited() || strings.TrimSpace(out) != ""
	}) || echo.exited() {
		t.Fatalf("UDP echo server did not start:\n%s", echo.output())
	}
	out, err := runIn(30*time.Second, e.nsIn, "/usr/bin/python3", "-c", nat64Hairpin, n64Prefix, n64Server)
	t.Logf("client:\n%s", strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("hairpin through NAT64: %v\nnatalg:\n%s", err, tail(e.daemon.output(), 20))
	}
	var pool, port, gotA, fromA, fromAPort, gotB, fromB, fromBPort string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "mapped":
			pool, port = f[1], f[2]
		case len(f) == 6 && f[0] == "a":
			gotA, fromA, fromAPort = f[3], f[4], f[5]
		case len(f) == 6 && f[0] == "b":
			gotB, fromB, fromBPort = f[3], f[4], f[5]
		}
	}
	// Both sockets are seen from the pool address embedded in the prefix
	// (RFC 6052 §2.2), each at its own port.
	var want string
	if a, err := netip.ParseAddr(pool); err == nil {
		want = xlat.Embed(netip.MustParsePrefix(n64Prefix), a).String()
	}
	if want == "" || port != "5000" || gotA != "a" || gotB != "b" ||
		fromA != want || fromB != want || fromAPort != "5001" || fromBPort != "5000" {
		t.Fatalf("mapped %s:%s; A got %q from %s port %s; B got %q from %s port %s: want both from the pool address %s in %s, ports 5001 and 5000",
			pool, port, gotA, fromA, fromAPort, gotB, fromB, fromBPort, pool, n64Prefix)
	}
	m := e.metrics(t)
	if m["natalg_hairpinned_flows_total"] < 1 {
		t.Fatalf("natalg_hairpinned_flows_total %v", m["natalg_hairpinned_flows_total"])
	}
	t.Logf("A (port 5000, pool %s:%s) heard B from [%s]:%s; B heard A from [%s]:%s", pool, port, fromA, fromAPort, fromB, fromBPort)
}
