package main

import (
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/natalg/natalg/cmd/internal/pcapreplay"
	"github.com/natalg/natalg/nat/frag"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// udpEchoPy is a UDP echo server: every datagram goes back to its sender,
// sent with DF clear (IP_PMTUDISC_DONT), so that the kernel fragments what
// does not fit the link (RFC 791 §3.2).
const udpEchoPy = `
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
if fam == socket.AF_INET:
    s.setsockopt(socket.IPPROTO_IP, 10, 0)    # IP_MTU_DISCOVER: IP_PMTUDISC_DONT
else:
    s.setsockopt(socket.IPPROTO_IPV6, 23, 0)  # IPV6_MTU_DISCOVER: IPV6_PMTUDISC_DONT
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d, a)
`

// udpClientPy sends N random bytes in one datagram (DF clear) and waits
// for the same bytes back: "ok N", or "differs"/"timeout" (3 tries of 2 s).
const udpClientPy = `
import socket, sys, os
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
if fam == socket.AF_INET:
    s.setsockopt(socket.IPPROTO_IP, 10, 0)
else:
    s.setsockopt(socket.IPPROTO_IPV6, 23, 0)
s.settimeout(2)
data = os.urandom(n)
for attempt in range(3):
    s.sendto(data, (host, port))
    try:
        d, a = s.recvfrom(65535)
    except socket.timeout:
        continue
    print("ok" if d == data else "differs", len(d), flush=True)
    sys.exit(0 if d == data else 2)
print("timeout", flush=True)
sys.exit(1)
`

// startUDPEcho starts udpEchoPy in ns on addr:port.
func startUDPEcho(t *testing.T, dir, ns, addr string, port int) {
	t.Helper()
	p := startBg(t, "udp echo "+addr, filepath.Join(dir, "udpecho-"+strings.ReplaceAll(addr, ":", "_")+".log"), ns,
		"python3", "-u", "-c", udpEchoPy, addr, strconv.Itoa(port))
	if !waitFor(200, 100*time.Millisecond, func() bool { return strings.Contains(p.output(), "listening") || p.exited() }) || p.exited() {
		t.Fatalf("UDP echo server on %s did not start:\n%s", addr, p.output())
	}
}

// udpRoundTrip sends n bytes from ns to addr:port and checks that the
// echo brings them back intact.
func udpRoundTrip(t *testing.T, ns, addr string, port, n int) {
	t.Helper()
	out, err := runIn(15*time.Second, ns, "python3", "-c", udpClientPy, addr, strconv.Itoa(port), strconv.Itoa(n))
	if err != nil || strings.TrimSpace(out) != "ok "+strconv.Itoa(n) {
		t.Fatalf("%d-byte UDP datagram to %s and back: %v\n%s", n, addr, err, out)
	}
}

// snmpCounter reads one counter of /proc/net/snmp ("Ip", "ReasmOKs") or
// /proc/net/snmp6 ("", "Ip6FragCreates") in ns.
func snmpCounter(t *testing.T, ns, group, name string) int {
	t.Helper()
	if group == "" {
		out := mustIn(t, ns, "cat", "/proc/net/snmp6")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == name {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
		t.Fatalf("no %s in /proc/net/snmp6", name)
	}
	out := mustIn(t, ns, "cat", "/proc/net/snmp")
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != group+":" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, n := range names {
			if n == name && i+1 < len(f) {
				v, _ := strconv.Atoi(f[i+1])
				return v
			}
		}
	}
	t.Fatalf("no %s %s in /proc/net/snmp", group, name)
	return 0
}

// metricValue reads one series of natalg's /metrics in the router.
func metricValue(t *testing.T, ns, series string) int {
	t.Helper()
	out := mustIn(t, ns, "curl", "-sS", "--max-time", "5", "http://"+e2eMetricsAddr+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\d+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s in /metrics", series)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestFragmentsE2E: RFC 4787 REQ-14 on the full datapath — a 3000-byte UDP
// datagram, fragmented by the inside host's kernel (MTU 1500), crosses
// natalg run to an outside echo server, and the 3000-byte echo, fragmented
// by the outside host, comes back through it, content intact, IPv4 and
// IPv6. natalg rules turned the kernel's defrag on in the router (chain
// NATALG-DEFRAG): the queues get whole datagrams and the kernel fragments
// them again on output (the router's reassembly and fragmentation counters
// move; natalg drops no fragment). Then natalg replay of the fragments
// captured on the router's two interfaces reassembles and translates them
// itself: the datagram leaves the replay as fragments that reassemble to
// the translated datagram, both ways.
func TestFragmentsE2E(t *testing.T) {
	e2eRequire(t)
	e2ePreclean(t)
	r := newE2EWork(t, 1<<20, 2<<20)
	r.buildNatalg(t)
	if r.natalg == "" {
		t.Fatal(r.natalgMissingWhy)
	}
	e := newE2EEnv(t, r, "natalg")
	if out := mustIn(t, e.nsR, "iptables", "-t", "raw", "-S", chainDefrag); !strings.Contains(out, "-m socket") {
		t.Fatalf("natalg rules installed no %s chain:\n%s", chainDefrag, out)
	}
	// Every packet to or from the outside host on both router interfaces,
	// for the replay below.
	capIn, capOut := filepath.Join(e.dir, "frag-in.pcap"), filepath.Join(e.dir, "frag-out.pcap")
	for _, c := range [][2]string{{"r-in", capIn}, {"r-out", capOut}} {
		p := startBg(t, "tcpdump "+c[0], c[1]+".log", e.nsR, "tcpdump", "-i", c[0], "--immediate-mode", "-U", "-n", "-s", "0", "-Z", "root", "-w", c[1],
			"host "+outHost4+" or host "+outHost6)
		if !waitFor(100, 50*time.Millisecond, func() bool { return strings.Contains(p.output(), "listening on") }) {
			t.Fatalf("tcpdump on %s did not start:\n%s", c[0], p.output())
		}
		defer p.stop(5 * time.Second)
	}
	reasm4, frag4 := snmpCounter(t, e.nsR, "Ip", "ReasmOKs"), snmpCounter(t, e.nsR, "Ip", "FragCreates")
	frag6 := snmpCounter(t, e.nsR, "", "Ip6FragCreates")
	for _, addr := range []string{outHost4, outHost6} {
		startUDPEcho(t, e.dir, e.nsOut, addr, 7007)
		udpRoundTrip(t, e.nsIn, addr, 7007, 3000)
	}
	if d := snmpCounter(t, e.nsR, "Ip", "ReasmOKs") - reasm4; d < 2 {
		t.Errorf("the router reassembled %d IPv4 datagrams, want 2 (the kernel's defrag in front of the queues)", d)
	}
	if d := snmpCounter(t, e.nsR, "Ip", "FragCreates") - frag4; d < 4 {
		t.Errorf("the router made %d IPv4 fragments, want at least 4", d)
	}
	if d := snmpCounter(t, e.nsR, "", "Ip6FragCreates") - frag6; d < 4 {
		t.Errorf("the router made %d IPv6 fragments, want at least 4", d)
	}
	if n := metricValue(t, e.nsR, `natalg_drops_total{reason="fragment"}`); n != 0 {
		t.Errorf("natalg dropped %d fragments", n)
	}
	time.Sleep(500 * time.Millisecond) // tcpdump writes the last packets
	replayFragments(t, e, capIn, capOut)
}

// replayFragments merges what natalg's queues would get from the two
// captures (inside host to outside on r-in, outside to the public
// addresses on r-out), runs natalg replay over it, and checks the output:
// fragments only, which reassemble to the datagrams translated, with
// their payloads intact.
func replayFragments(t *testing.T, e *e2eEnv, capIn, capOut string) {
	var pkts []pcapreplay.Packet
	frags := 0
	for _, c := range []struct {
		path string
		keep func(src, dst string) bool
	}{
		{capIn, func(src, dst string) bool { return src == inHost4 || src == inHost6 }},
		{capOut, func(src, dst string) bool { return dst == public4 || dst == public6 }},
	} {
		for _, p := range readPcap(t, c.path) {
			ip := p.IP()
			src, dst, isFrag, ok := ipAddrs(ip)
			if ok && c.keep(src, dst) {
				pkts = append(pkts, p)
				if isFrag {
					frags++
				}
			}
		}
	}
	if frags < 8 {
		t.Fatalf("the captures hold %d fragments to replay, want at least 8 (2 datagrams each way, IPv4 and IPv6)", frags)
	}
	sort.SliceStable(pkts, func(i, j int) bool { return pkts[i].Time.Before(pkts[j].Time) })
	in := filepath.Join(e.dir, "frag-replay-in.pcap")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: len(p.Data)}, p.Data); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	out := filepath.Join(e.dir, "frag-replay-out.pcap")
	res := mustIn(t, "", e.run.natalg, "replay", "--inside", inside4, "--inside", inside6, "--public", public4, "--public", public6, in, out)
	t.Logf("natalg replay of %d packets (%d fragments):\n%s", len(pkts), frags, strings.TrimSpace(res))
	// Reassemble the output per direction and family.
	r := frag.New(frag.Config{})
	got := map[string]int{}
	for _, p := range readPcap(t, out) {
		ip := p.IP()
		dg, res := r.Add(ip, 0, nil)
		switch res {
		case frag.Held:
			continue
		case frag.Complete:
		case frag.NotFragment:
			var h header.Parsed
			if h.Decode(ip) == header.Ok && h.Proto == ipproto.UDP {
				t.Fatalf("replay output: a whole UDP datagram %v > %v of %d bytes: natalg replay did not cut it again", h.Src, h.Dst, len(ip))
			}
			continue // neighbour discovery and the like
		default:
			t.Fatalf("replay output %x: %v", ip[:min(len(ip), 40)], res)
		}
		var h header.Parsed
		if h.Decode(dg.Packet) != header.Ok || !h.L4ChecksumValid() || h.Proto != ipproto.UDP || len(h.Payload()) != 3000 {
			t.Fatalf("reassembled replay output does not decode as a 3000-byte UDP datagram with a right checksum")
		}
		got[h.Src.String()+">"+h.Dst.String()]++
	}
	for _, want := range []string{public4 + ">" + outHost4, outHost4 + ">" + inHost4, public6 + ">" + outHost6, outHost6 + ">" + inHost6} {
		if got[want] == 0 {
			t.Errorf("no reassembled %s datagram in the replay output (got %v)", want, got)
		}
	}
}

// ipAddrs returns an IP packet's addresses and whether it is a fragment.
func ipAddrs(ip []byte) (src, dst string, isFrag, ok bool) {
	var h header.Parsed
	if len(ip) == 0 || h.Decode(ip) != header.Ok {
		return "", "", false, false
	}
	return h.Src.String(), h.Dst.String(), h.Fragment, true
}

// TestNAT64FragmentsE2E: RFC 6146 §3.4 and RFC 7915 §4.1/§5.1.1 through
// natalg run's TUN — a 3000-byte UDP datagram from the IPv6-only client,
// fragmented by its kernel, reaches the IPv4 echo server as IPv4 fragments
// (natalg reassembles and cuts again), and the 3000-byte echo, fragmented
// by the IPv4 server, comes back as IPv6 fragments of at most 1280 bytes;
// a 1400-byte echo (one IPv4 packet, DF clear) is fragmented into IPv6 by
// natalg (lowest-ipv6-mtu 1280). Content intact both ways.
func TestNAT64FragmentsE2E(t *testing.T) {
	nat64Require(t)
	e2ePreclean(t)
	r := newNAT64Run(t)
	r.buildNatalg(t)
	if r.natalg == "" {
		t.Fatal(r.natalgMissingWhy)
	}
	e := newNAT64Env(t, r)
	capC := filepath.Join(e.dir, "frag-client.pcap")
	p := startBg(t, "tcpdump r-in", capC+".log", e.nsR, "tcpdump", "-i", "r-in", "--immediate-mode", "-U", "-n", "-s", "0", "-Z", "root", "-w", capC, "ip6")
	if !waitFor(100, 50*time.Millisecond, func() bool { return strings.Contains(p.output(), "listening on") }) {
		t.Fatalf("tcpdump did not start:\n%s", p.output())
	}
	startUDPEcho(t, e.dir, e.nsOut, n64Server, 7007)
	udpRoundTrip(t, e.nsIn, n64ServerV6, 7007, 3000)
	udpRoundTrip(t, e.nsIn, n64ServerV6, 7007, 1400)
	if n := metricValue(t, e.nsR, "natalg_fragments_reassembled_total"); n < 2 {
		t.Errorf("natalg reassembled %d datagrams, want at least 2", n)
	}
	if n := metricValue(t, e.nsR, "natalg_fragments_sent_total"); n < 6 {
		t.Errorf("natalg sent %d fragments, want at least 6", n)
	}
	time.Sleep(500 * time.Millisecond)
	p.stop(5 * time.Second)
	// What reached the client: IPv6 fragments no larger than 1280 bytes.
	toClient := 0
	for _, pk := range readPcap(t, capC) {
		ip := pk.IP()
		if len(ip) < 40 || ip[0]>>4 != 6 || [16]byte(ip[24:40]) != netip.MustParseAddr(n64Client).As16() || ipproto.Proto(ip[6]) != ipproto.Fragment {
			continue
		}
		toClient++
		if len(ip) > 1280 {
			t.Errorf("an IPv6 fragment of %d bytes reached the client (lowest-ipv6-mtu 1280)", len(ip))
		}
	}
	if toClient < 5 {
		t.Errorf("%d IPv6 fragments reached the client, want at least 5 (3 for 3000 bytes, 2 for 1400)", toClient)
	}
}

// TestFragmentFlags: the reassembly and lowest-ipv6-mtu flags reach the
// engine's configuration; values the RFCs forbid are refused (no root).
func TestFragmentFlags(t *testing.T) {
	base := []string{"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{nil, ""},
		{[]string{"--frag-timeout4", "1s"}, "at least 2s"},
		{[]string{"--frag-timeout6", "500ms"}, "at least 2s"},
		{[]string{"--frag-max-bytes", "1000"}, "--frag-max-bytes"},
		{[]string{"--nat64-mtu6", "1500", "--frag-timeout4", "30s", "--frag-max-per-source", "8", "--no-reassembly"}, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var nf natFlags
		nf.register(fs)
		if err := fs.Parse(append(append([]string(nil), base...), c.args...)); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		cfg, err := nf.config()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want one with %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if c.args == nil && (cfg.NAT64MTU6 != 1280 || cfg.Fragments.Timeout4 != 15*time.Second || cfg.Fragments.Timeout6 != 60*time.Second || cfg.NoReassembly) {
			t.Errorf("defaults: %+v, mtu6 %d", cfg.Fragments, cfg.NAT64MTU6)
		}
		if c.args != nil && (cfg.NAT64MTU6 != 1500 || cfg.Fragments.Timeout4 != 30*time.Second || cfg.Fragments.MaxPerSource != 8 || !cfg.NoReassembly) {
			t.Errorf("%v: %+v, mtu6 %d", c.args, cfg.Fragments, cfg.NAT64MTU6)
		}
	}
	var stderr strings.Builder
	if rc := cmdRun(append(base, "--nat64-mtu6", "1000"), io.Discard, &stderr); rc != 2 || !strings.Contains(stderr.String(), "1280") {
		t.Errorf("run --nat64-mtu6 1000: status %d, %q", rc, stderr.String())
	}
}
