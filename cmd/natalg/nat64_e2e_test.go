package main

// NAT64 end-to-end suite: an IPv6-only client reaches an IPv4-only FTP
// server through natalg run's NAT64 datapath (RFC 6146 with an RFC 6052
// network-specific prefix: the well-known prefix may not embed the
// non-global 198.18.0.0/15, RFC 6052 §3.1; the FTP gateway of RFC 6384),
// in three network namespaces:
//
//	[client ns] i-eth <--veth--> r-in [router ns] r-out <--veth--> o-eth [server ns]
//	 fd00:64::2/64          fd00:64::1/64  198.18.64.1/24          198.18.64.2/24 (vsftpd)
//	 default via fd00:64::1     TUN nat64: 2001:db8:64::/96,           198.18.64.3/24 (noepsvftp.py)
//	                            198.19.64.0/24 (the pool)          198.19.64.0/24 via 198.18.64.1
//
// The client has no IPv4 address: it dials the server as 2001:db8:64::c612:4002
// (198.18.64.2 in the prefix). natalg run, with the NAT64 flags alone, makes
// the TUN device and its routes in the router namespace and removes them
// when it stops.
//
// Run: go test -run NAT64 ./cmd/natalg/ (root). Without root or a tool it
// skips, except under CI, where it fails. NATALG_E2E_KEEP=1 keeps the work
// directory (logs, captures: tun.pcap is what crossed the TUN device).

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natalg/natalg/cmd/internal/pcapreplay"
)

const (
	n64Client    = "fd00:64::2"
	n64ClientGW  = "fd00:64::1"
	n64RouterOut = "198.18.64.1"
	n64Server    = "198.18.64.2" // vsftpd
	n64NoEPSV    = "198.18.64.3" // noepsvftp.py
	n64Prefix    = "2001:db8:64::/96"
	n64Pool      = "198.19.64.0/24"
	n64Dev       = "nat64"
	// the IPv4 hosts as the client sees them (RFC 6052 §2.2, /96)
	n64ServerV6 = "2001:db8:64::c612:4002"
	n64NoEPSVV6 = "2001:db8:64::c612:4003"
)

// nat64Tools are what the NAT64 suite runs (no ProFTPD, iptables or
// conntrack: the router has natalg only).
var nat64Tools = [][2]string{
	{"ip", "iproute2"}, {"ss", "iproute2"}, {"ethtool", "ethtool"}, {"tcpdump", "tcpdump"},
	{"vsftpd", "vsftpd"}, {"curl", "curl"}, {"lftp", "lftp"}, {"/usr/bin/python3", "python3"},
}

// nat64Require skips without root or a tool, and fails instead under CI
// (as e2eRequire).
func nat64Require(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end suite skipped in -short mode")
	}
	var missing []string
	for _, tl := range nat64Tools {
		if _, err := exec.LookPath(tl[0]); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", tl[0], tl[1]))
		}
	}
	if _, err := user.Lookup("ftp"); err != nil {
		missing = append(missing, "user ftp (made by the vsftpd package)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing = append(missing, "/dev/net/tun")
	}
	if os.Geteuid() == 0 && len(missing) == 0 {
		return
	}
	why := fmt.Sprintf("needs root (euid %d) and its tools (missing: %v)", os.Geteuid(), missing)
	if os.Getenv("CI") != "" {
		t.Fatal("CI must run the NAT64 end-to-end suite: " + why + "; run make deps")
	}
	t.Skip(why)
}

// TestNAT64Flags checks the flag rules of NAT64 (no root needed).
func TestNAT64Flags(t *testing.T) {
	for _, c := range []struct {
		args []string
		err  string // "" for no error
	}{
		{[]string{"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool}, ""},
		{[]string{"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--inside", "198.18.0.0/16", "--public", "198.19.100.100"}, ""},
		{[]string{"--nat64-prefix", n64Prefix}, "go together"},
		{[]string{"--nat64-pool", n64Pool}, "go together"},
		{[]string{"--nat64-prefix", n64Pool, "--nat64-pool", n64Prefix}, "IPv6 prefix"},
		{[]string{"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--public", "198.19.100.100"}, "nothing to translate"},
		{[]string{"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--inside", "198.18.0.0/16"}, "--public is required"},
		{[]string{}, "--public is required"},
		{[]string{"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--nat64-forward", "tcp:21=[fd00:64::2]:21", "--nat64-forward", "udp:198.19.64.9:53=[fd00:64::3]:53"}, ""},
		{[]string{"--inside", "198.18.0.0/16", "--public", "198.19.100.100", "--nat64-forward", "tcp:21=[fd00:64::2]:21"}, "needs --nat64-prefix"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var nf natFlags
		nf.register(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Errorf("%v: parse: %v", c.args, err)
			continue
		}
		if c.err == "" && strings.Contains(strings.Join(c.args, " "), "--nat64-forward") && len(nf.nat64Forwards) != 2 {
			t.Errorf("%v: %d NAT64 forwards", c.args, len(nf.nat64Forwards))
		}
		cfg, err := nf.config()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: error %v, want one with %q", c.args, err, c.err)
		case c.err == "" && cfg.NAT64Prefix.String() != n64Prefix:
			t.Errorf("%v: NAT64Prefix %v", c.args, cfg.NAT64Prefix)
		}
	}
	for _, bad := range []string{"tcp:21=fd00:64::2", "sctp:21=[fd00:64::2]:21", "tcp:21=[198.18.0.1]:21"} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var nf natFlags
		nf.register(fs)
		if err := fs.Parse([]string{"--nat64-forward", bad}); err == nil {
			t.Errorf("--nat64-forward %s accepted", bad)
		}
	}
	var stderr strings.Builder
	if rc := cmdRun([]string{"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--queues", "1"}, io.Discard, &stderr); rc != 2 || !strings.Contains(stderr.String(), "--queues") {
		t.Errorf("run --queues with NAT64 alone: status %d, %q; want 2 and a word on --queues", rc, stderr.String())
	}
}

// newNAT64Run makes the work directory and payloads (smaller than the NAT44
// suite's: every transfer crosses the translator twice).
func newNAT64Run(t *testing.T) *e2eRun { return newE2EWork(t, 1<<20, 2<<20) }

// nat64Env is the NAT64 topology; e2eEnv's transfers, FTP servers and
// evidence work on it (nsIn is the client, nsOut the server).
type nat64Env struct {
	*e2eEnv
	tunCap  string
	tunCapP *bgProc
}

func newNAT64Env(t *testing.T, r *e2eRun) *nat64Env {
	id := fmt.Sprintf("%s%d-nat64", e2ePrefix, os.Getpid())
	e := &e2eEnv{run: r, mode: "nat64", dir: filepath.Join(r.dir, "nat64"),
		nsIn: id + "-in", nsR: id + "-rt", nsOut: id + "-out"}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// registered first, so it runs last: the namespaces (and the TUN
	// device, should natalg have left it) go whatever happened
	t.Cleanup(func() {
		for _, ns := range []string{e.nsIn, e.nsR, e.nsOut} {
			killNetnsPids(ns)
			_, _ = runIn(10*time.Second, "", "ip", "netns", "del", ns)
		}
	})
	t0 := time.Now()
	for _, ns := range []string{e.nsIn, e.nsR, e.nsOut} {
		mustIn(t, "", "ip", "netns", "add", ns)
		mustIn(t, ns, "ip", "link", "set", "lo", "up")
	}
	mustIn(t, "", "ip", "link", "add", "i-eth", "netns", e.nsIn, "type", "veth", "peer", "name", "r-in", "netns", e.nsR)
	mustIn(t, "", "ip", "link", "add", "o-eth", "netns", e.nsOut, "type", "veth", "peer", "name", "r-out", "netns", e.nsR)
	links := [][2]string{{e.nsIn, "i-eth"}, {e.nsR, "r-in"}, {e.nsR, "r-out"}, {e.nsOut, "o-eth"}}
	for _, d := range links {
		mustIn(t, d[0], "ethtool", "-K", d[1], "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off")
	}
	mustIn(t, e.nsIn, "ip", "-6", "addr", "add", n64Client+"/64", "dev", "i-eth", "nodad")
	mustIn(t, e.nsR, "ip", "-6", "addr", "add", n64ClientGW+"/64", "dev", "r-in", "nodad")
	mustIn(t, e.nsR, "ip", "addr", "add", n64RouterOut+"/24", "dev", "r-out")
	mustIn(t, e.nsOut, "ip", "addr", "add", n64Server+"/24", "dev", "o-eth")
	mustIn(t, e.nsOut, "ip", "addr", "add", n64NoEPSV+"/24", "dev", "o-eth")
	for _, d := range links {
		mustIn(t, d[0], "ip", "link", "set", d[1], "up")
	}
	mustIn(t, e.nsIn, "ip", "-6", "route", "add", "default", "via", n64ClientGW)
	mustIn(t, e.nsOut, "ip", "route", "add", n64Pool, "via", n64RouterOut)
	mustIn(t, e.nsR, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	mustIn(t, e.nsR, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	if out, err := runIn(10*time.Second, e.nsIn, "ip", "route", "get", n64Server); err == nil {
		t.Fatalf("the IPv6-only client has an IPv4 route to %s: %s", n64Server, out)
	}
	if out, err := runIn(10*time.Second, e.nsR, "ip", "link", "show", n64Dev); err == nil {
		t.Fatalf("%s exists before natalg started:\n%s", n64Dev, out)
	}

	bin := r.natalg
	e.control = filepath.Join(e.dir, "natalg.sock")
	e.daemon = startBg(t, "natalg run", filepath.Join(e.dir, "natalg.log"), e.nsR, bin, "run",
		"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--nat64-dev", n64Dev,
		"--metrics", e2eMetricsAddr, "--control", e.control)
	t.Cleanup(func() {
		if err := e.daemon.stop(10 * time.Second); err != nil {
			t.Errorf("natalg run did not exit cleanly on SIGTERM: %v\n%s", err, tail(e.daemon.output(), 30))
		}
	})
	// before the daemon stops: its counters and complaints
	t.Cleanup(func() {
		if e.daemon.exited() {
			return
		}
		logNAT64Counters(t, e)
	})
	if !waitFor(100, 100*time.Millisecond, func() bool {
		return e.daemon.exited() || strings.Contains(e.daemon.output(), "msg=ready")
	}) || e.daemon.exited() {
		t.Fatalf("natalg run not ready within 10 s (exited=%v, err=%v):\n%s", e.daemon.exited(), e.daemon.err, tail(e.daemon.output(), 40))
	}
	out := mustIn(t, e.nsR, "ip", "-d", "link", "show", n64Dev)
	if !strings.Contains(out, "tun type tun pi off") || !strings.Contains(out, "UP") {
		t.Errorf("%s is not an IFF_TUN|IFF_NO_PI device, up:\n%s", n64Dev, out)
	}
	r4 := mustIn(t, e.nsR, "ip", "route", "show", n64Pool)
	r6 := mustIn(t, e.nsR, "ip", "-6", "route", "show", n64Prefix)
	if !strings.Contains(r4, "dev "+n64Dev) || !strings.Contains(r6, "dev "+n64Dev) {
		t.Fatalf("routes of the pool and the prefix through %s missing:\n%s%s", n64Dev, r4, r6)
	}
	n := &nat64Env{e2eEnv: e}
	e.startCaptures(t)
	n.tunCap = filepath.Join(e.dir, "tun.pcap")
	// every packet, for the replay below: in immediate mode libpcap's
	// ring holds one snap length per packet (-s 0 and the default buffer
	// lost packets); the device's MTU is 1500 (1520 translated to IPv6)
	n.tunCapP = startBg(t, "tcpdump "+n64Dev, n.tunCap+".log", e.nsR, "tcpdump", "-i", n64Dev, "--immediate-mode", "-U", "-B", "32768", "-n", "-s", "4096", "-Z", "root", "-w", n.tunCap)
	if !waitFor(100, 50*time.Millisecond, func() bool { return strings.Contains(n.tunCapP.output(), "listening on") }) {
		t.Fatalf("tcpdump on %s did not start:\n%s", n64Dev, n.tunCapP.output())
	}
	t.Logf("NAT64 topology up in %v", time.Since(t0).Round(time.Millisecond))
	return n
}

func readPcap(t *testing.T, path string) []pcapreplay.Packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps, err := pcapreplay.ReadAll(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ps
}

// withoutIPv4ID returns an IPv4 packet with its Identification and header
// checksum zeroed (a copy), other packets as they are.
func withoutIPv4ID(ip []byte) []byte {
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return ip
	}
	c := append([]byte(nil), ip...)
	c[4], c[5], c[10], c[11] = 0, 0, 0, 0
	return c
}

// logNAT64Counters logs the daemon's non-zero counters and its warnings.
func logNAT64Counters(t *testing.T, e *e2eEnv) {
	out, err := runIn(10*time.Second, e.nsR, "curl", "-sS", "--max-time", "5", "http://"+e2eMetricsAddr+"/metrics")
	if err != nil {
		t.Logf("metrics: %v\n%s", err, out)
		return
	}
	var nz []string
	re := regexp.MustCompile(`^natalg_(packets_total|drops_total|alg_events_total|alg_rewrites_total|expectations_total|tun_packets_total|tun_errors_total|flows |nat64)`)
	for _, l := range strings.Split(out, "\n") {
		if re.MatchString(l) && !strings.HasSuffix(l, " 0") {
			nz = append(nz, "  "+l)
		}
	}
	t.Logf("natalg counters (non-zero):\n%s", strings.Join(nz, "\n"))
	var warn []string
	for _, l := range strings.Split(e.daemon.output(), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			warn = append(warn, "  "+l)
		}
	}
	if len(warn) > 0 {
		t.Logf("natalg logged %d warnings/errors:\n%s", len(warn), tail(strings.Join(warn, "\n"), 20))
	}
}

// startNoEPSV starts noepsvftp.py on addr in the server namespace, with the
// payloads in pub/ and a writable incoming/.
func (e *nat64Env) startNoEPSV(t *testing.T, addr string) *ftpd {
	return startNoEPSV(t, e.run, e.dir, e.nsOut, addr)
}

// startNoEPSV starts noepsvftp.py on addr in namespace ns, its files under
// a new directory in dir: the small and mid-sized payloads in pub/ and a
// writable incoming/.
func startNoEPSV(t *testing.T, r *e2eRun, dir, ns, addr string) *ftpd {
	dir = filepath.Join(dir, fmt.Sprintf("noepsvftp-%d", r.next()))
	s := &ftpd{kind: "noepsvftp", ns: ns, dir: dir, root: filepath.Join(dir, "root"), log: filepath.Join(dir, "protocol.log")}
	for _, d := range []string{filepath.Join(s.root, "pub"), filepath.Join(s.root, "incoming")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []e2eFile{r.small, r.mid} {
		if err := linkOrCopy(f.path, filepath.Join(s.root, "pub", filepath.Base(f.path))); err != nil {
			t.Fatal(err)
		}
	}
	s.proc = startBg(t, "noepsvftp", filepath.Join(dir, "noepsvftp.out"), ns, "/usr/bin/python3",
		filepath.Join(r.scripts, "noepsvftp.py"), "--addr", addr, "--root", s.root, "--log", s.log,
		"--lifetime", "300", "--timeout", "20")
	if !waitFor(100, 100*time.Millisecond, func() bool {
		b, _ := os.ReadFile(s.log)
		return s.proc.exited() || strings.Contains(string(b), "listening on")
	}) || s.proc.exited() {
		t.Fatalf("noepsvftp.py did not listen within 10 s (exited=%v %v):\n%s", s.proc.exited(), s.proc.err, s.proc.output())
	}
	return s
}

// TestNAT64E2E carries FTP sessions, pings and an ICMP error from an
// IPv6-only client to IPv4-only servers through natalg run --nat64-prefix
// --nat64-pool.
func TestNAT64E2E(t *testing.T) {
	nat64Require(t)
	e2ePreclean(t)
	r := newNAT64Run(t)
	r.buildNatalg(t)
	if r.natalg == "" {
		t.Fatal(r.natalgMissingWhy)
	}
	e := newNAT64Env(t, r)

	// vsftpd (IPv4 only) gets PASV for EPSV (RFC 6384 §6); EPRT |2| from
	// the client must reach it as PORT (or EPRT |1|) with a pool address
	// (RFC 6384 §7.2).
	t.Run("vsftpd", func(t *testing.T) {
		s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
		e.evidence(t, s)
		var xs []xfer
		for _, m := range []string{"epsv", "eprt"} {
			xs = append(xs, xfer{client: "curl", mode: m, file: e.run.small}, xfer{client: "curl", mode: m, put: true, file: e.run.up})
		}
		for _, c := range []string{"lftp", "ftplib"} {
			for _, m := range []string{"passive", "active"} {
				xs = append(xs, xfer{client: c, mode: m, file: e.run.small}, xfer{client: c, mode: m, put: true, file: e.run.up})
			}
		}
		e.transfers(t, s, e.nsIn, n64ServerV6, xs)
		// what vsftpd was told for the active transfers: IPv4 only, a
		// pool address (PORT, or EPRT |1| with the gateway's
		// NAT64KeepEPRT)
		var active []string
		for _, l := range strings.Split(s.serverLog(), "\n") {
			for _, verb := range []string{`"EPRT `, `"PORT `} {
				if i := strings.Index(l, verb); i >= 0 {
					active = append(active, strings.TrimSuffix(l[i+1:], `"`))
				}
			}
		}
		t.Logf("active-mode announcements at the server: %q", active)
		if len(active) == 0 {
			t.Error("no PORT or EPRT reached vsftpd")
		}
		for _, l := range active {
			if !strings.HasPrefix(l, "EPRT |1|198.19.64.") && !strings.HasPrefix(l, "PORT 198,19,64,") {
				t.Errorf("vsftpd got %q, want PORT or EPRT |1| with a pool address", l)
			}
		}
	})

	// The server refuses EPSV: natalg must send PASV for the client's EPSV
	// and answer it with a 229 made from the server's 227 (RFC 6384 §6).
	t.Run("noepsv-rfc6384", func(t *testing.T) {
		s := e.startNoEPSV(t, n64NoEPSV)
		e.evidence(t, s)
		e.transfers(t, s, e.nsIn, n64NoEPSVV6, []xfer{
			{client: "curl", mode: "epsv", file: e.run.small}, {client: "curl", mode: "epsv", put: true, file: e.run.up},
			{client: "ftplib", mode: "passive", file: e.run.small},
		})
		log := s.serverLog()
		t.Logf("server protocol log (tail):\n%s", tail(log, 16))
		if !strings.Contains(log, "<- PASV") {
			t.Error("the server never got PASV")
		}
	})

	// RFC 6384 §6: EPSV ALL is answered 504 by the gateway and never
	// reaches the server; EPSV 1 is answered 522; EPSV after them still
	// works, as PASV at the server.
	t.Run("epsv-all", func(t *testing.T) {
		s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
		e.evidence(t, s)
		script := filepath.Join(e.dir, "epsvall.py")
		writeFile(t, script, 0o644, `import ftplib, sys
f = ftplib.FTP()
f.connect(sys.argv[1], 21, timeout=10)
f.login()
for cmd in ("EPSV ALL", "EPSV 1", "EPSV"):
    try:
        r = f.sendcmd(cmd)
    except ftplib.all_errors as e:
        r = str(e)
    print(cmd + " => " + r, flush=True)
f.quit()
`)
		out, err := runIn(30*time.Second, e.nsIn, "/usr/bin/python3", script, n64ServerV6)
		t.Logf("client:\n%s", out)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		for _, want := range []string{"EPSV ALL => 504", "EPSV 1 => 522", "EPSV => 229 "} {
			if !strings.Contains(out, want) {
				t.Errorf("the client did not get %q", want)
			}
		}
		log := s.serverLog()
		if strings.Contains(log, "EPSV ALL") || strings.Contains(log, "EPSV 1") {
			t.Errorf("EPSV ALL or EPSV 1 reached the server:\n%s", tail(log, 20))
		}
		if !strings.Contains(log, `"NOOP"`) || !strings.Contains(log, `"PASV"`) {
			t.Errorf("the server did not get the stand-in NOOP and PASV:\n%s", tail(log, 20))
		}
	})

	// RFC 6384 §12: a server that answers the gateway's stand-in NOOP
	// with something else than 200: the client gets a reset instead of
	// any reply, the server's side is reset too, natalg logs it.
	t.Run("noop-not-200-teardown", func(t *testing.T) {
		const addr, addr6 = "198.18.64.4", "2001:db8:64::c612:4004"
		mustIn(t, e.nsOut, "ip", "addr", "add", addr+"/24", "dev", "o-eth")
		dir := filepath.Join(e.dir, fmt.Sprintf("noop502-%d", e.run.next()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		slog := filepath.Join(dir, "server.log")
		srv := startBg(t, "noepsvftp (NOOP 502)", filepath.Join(dir, "out"), e.nsOut, "/usr/bin/python3",
			filepath.Join(r.scripts, "noepsvftp.py"), "--addr", addr, "--root", dir, "--log", slog,
			"--lifetime", "60", "--timeout", "20", "--noop-reply", "502 NOOP not allowed here.")
		t.Cleanup(func() { _ = srv.stop(5 * time.Second) })
		if !waitFor(100, 100*time.Millisecond, func() bool {
			b, _ := os.ReadFile(slog)
			return srv.exited() || strings.Contains(string(b), "listening on")
		}) || srv.exited() {
			t.Fatalf("noepsvftp.py did not listen:\n%s", srv.output())
		}
		script := filepath.Join(dir, "client.py")
		writeFile(t, script, 0o644, `import ftplib, sys
f = ftplib.FTP()
f.connect(sys.argv[1], 21, timeout=10)
f.login()
try:
    print("EPSV ALL => " + f.sendcmd("EPSV ALL"), flush=True)
except EOFError:
    print("EPSV ALL => EOF", flush=True)
except ConnectionResetError:
    print("EPSV ALL => reset", flush=True)
except ftplib.all_errors as e:
    print("EPSV ALL => " + str(e), flush=True)
`)
		out, err := runIn(30*time.Second, e.nsIn, "/usr/bin/python3", script, addr6)
		t.Logf("client: %s (%v)", strings.TrimSpace(out), err)
		if !strings.Contains(out, "EPSV ALL => reset") {
			t.Errorf("the client did not get a reset for the NOOP's 502")
		}
		if strings.Contains(out, "502") {
			t.Errorf("the server's reply to the stand-in NOOP reached the client")
		}
		if !waitFor(100, 100*time.Millisecond, func() bool {
			b, _ := os.ReadFile(slog)
			return strings.Contains(string(b), "session closed")
		}) {
			t.Errorf("the server's session was not closed within 10 s (no reset reached it):\n%s", tail(func() string { b, _ := os.ReadFile(slog); return string(b) }(), 10))
		}
		if !strings.Contains(e.daemon.output(), "RFC 6384 §12") {
			t.Errorf("natalg logged no teardown")
		}
	})

	// RFC 6052 §3.1: a natalg run with the Well-Known Prefix drops, and
	// counts, packets to 64:ff9b::198.18.64.2 (198.18.0.0/15 is not
	// global, RFC 6890): nothing reaches the server, while the same
	// server answers through the network-specific prefix above.
	t.Run("well-known-prefix-non-global", func(t *testing.T) {
		const wkDev, wkPool, wkMetrics = "nat64wk", "198.19.65.0/24", "127.0.0.1:9164"
		d := startBg(t, "natalg run (well-known prefix)", filepath.Join(e.dir, "natalg-wkp.log"), e.nsR, r.natalg, "run",
			"--nat64-prefix", "64:ff9b::/96", "--nat64-pool", wkPool, "--nat64-dev", wkDev, "--metrics", wkMetrics, "--control", "")
		t.Cleanup(func() { _ = d.stop(10 * time.Second) })
		if !waitFor(100, 100*time.Millisecond, func() bool { return d.exited() || strings.Contains(d.output(), "msg=ready") }) || d.exited() {
			t.Fatalf("natalg run with 64:ff9b::/96 not ready within 10 s:\n%s", tail(d.output(), 20))
		}
		mustIn(t, e.nsOut, "ip", "route", "replace", wkPool, "via", n64RouterOut)
		t.Cleanup(func() { _, _ = runIn(10*time.Second, e.nsOut, "ip", "route", "del", wkPool) })
		out, _ := runIn(30*time.Second, e.nsIn, "/usr/bin/python3", filepath.Join(e.run.scripts, "icmp6probe.py"),
			"--dst", "64:ff9b::c612:4002", "echo", "--count", "3")
		t.Logf("echo to 64:ff9b::198.18.64.2: %s", lastLine(out))
		if strings.Contains(lastLine(out), `"ok": true`) || !strings.Contains(lastLine(out), `"sent": 3`) {
			t.Errorf("echo requests to 64:ff9b::198.18.64.2 were answered")
		}
		m, err := runIn(10*time.Second, e.nsR, "curl", "-sS", "--max-time", "5", "http://"+wkMetrics+"/metrics")
		if err != nil {
			t.Fatalf("metrics: %v\n%s", err, m)
		}
		drops := regexp.MustCompile(`natalg_drops_total\{reason="nat64_non_global"\} (\d+)`).FindStringSubmatch(m)
		accepted := regexp.MustCompile(`natalg_packets_total\{verdict="accept"\} (\d+)`).FindStringSubmatch(m)
		t.Logf("non-global drops %v, accepted %v", drops, accepted)
		if drops == nil || drops[1] == "0" {
			t.Errorf("no packet counted as nat64_non_global")
		}
		if accepted == nil || accepted[1] != "0" {
			t.Errorf("natalg with the well-known prefix translated packets: %v", accepted)
		}
		if err := d.stop(10 * time.Second); err != nil {
			t.Errorf("natalg run (well-known prefix) on SIGTERM: %v\n%s", err, tail(d.output(), 20))
		}
	})

	// A static binding (--nat64-forward, RFC 6146 §3.1) publishes an
	// IPv6-only vsftpd (in the client namespace) on a pool address for
	// IPv4 clients (in the server namespace); FTP works in that direction
	// (RFC 6384 mirrored: PASV sent as EPSV, its 229 returned as a 227
	// with the pool address; PORT sent as EPRT |2|). A natalg run of its
	// own, with its own prefix, pool and device.
	t.Run("static-binding", func(t *testing.T) {
		const fwDev, fwPrefix, fwPool, fwAddr = "nat64fw", "2001:db8:65::/96", "198.19.65.0/24", "198.19.65.1"
		d := startBg(t, "natalg run (static binding)", filepath.Join(e.dir, "natalg-fw.log"), e.nsR, r.natalg, "run",
			"--nat64-prefix", fwPrefix, "--nat64-pool", fwPool, "--nat64-dev", fwDev, "--metrics", "", "--control", "",
			"--nat64-forward", "tcp:"+fwAddr+":21=["+n64Client+"]:21")
		t.Cleanup(func() { _ = d.stop(10 * time.Second) })
		if !waitFor(100, 100*time.Millisecond, func() bool { return d.exited() || strings.Contains(d.output(), "msg=ready") }) || d.exited() {
			t.Fatalf("natalg run --nat64-forward not ready within 10 s:\n%s", tail(d.output(), 20))
		}
		mustIn(t, e.nsOut, "ip", "route", "replace", fwPool, "via", n64RouterOut)
		t.Cleanup(func() { _, _ = runIn(10*time.Second, e.nsOut, "ip", "route", "del", fwPool) })
		s := e.startFTPD(t, "vsftpd", e.nsIn, 6)
		e.evidence(t, s)
		e.transfers(t, s, e.nsOut, fwAddr, []xfer{
			{client: "curl", mode: "pasv", file: e.run.small}, {client: "curl", mode: "pasv", put: true, file: e.run.up},
			{client: "curl", mode: "epsv", file: e.run.small},
			{client: "curl", mode: "port", file: e.run.small},
			{client: "ftplib", mode: "passive", file: e.run.small},
		})
		log := s.serverLog()
		if !strings.Contains(log, `"EPSV"`) || strings.Contains(log, `"PASV"`) {
			t.Errorf("vsftpd should get EPSV for the client's PASV, never PASV:\n%s", tail(log, 20))
		}
		if !strings.Contains(log, `"EPRT |2|2001:`) {
			t.Errorf("vsftpd got no EPRT |2| with the client's RFC 6052 address for its PORT:\n%s", tail(log, 20))
		}
		if err := d.stop(10 * time.Second); err != nil {
			t.Errorf("natalg run --nat64-forward on SIGTERM: %v\n%s", err, tail(d.output(), 20))
		}
	})

	// natalg flows while an EPRT session waits between EPRT and RETR.
	t.Run("flows", func(t *testing.T) {
		s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
		e.evidence(t, s)
		pause := filepath.Join(e.dir, fmt.Sprintf("pause-%d", e.run.next()))
		if err := os.MkdirAll(pause, 0o755); err != nil {
			t.Fatal(err)
		}
		local := filepath.Join(e.dir, fmt.Sprintf("got-%d-pending", e.run.next()))
		cl := startBg(t, "ftplib", filepath.Join(pause, "client.log"), e.nsIn, "/usr/bin/python3",
			filepath.Join(e.run.scripts, "ftpclient.py"), "--host", n64ServerV6, "--mode", "active", "--op", "get",
			"--remote", "pub/small.bin", "--local", local, "--pause-dir", pause, "--pause-max", "30")
		if !waitFor(150, 100*time.Millisecond, func() bool {
			_, err := os.Stat(filepath.Join(pause, "ported"))
			return err == nil || cl.exited()
		}) || cl.exited() {
			t.Fatalf("client did not reach the pause (EPRT answered 200) within 15 s:\n%s", cl.output())
		}
		out, err := runIn(10*time.Second, "", e.run.natalg, "flows", "--control", e.control)
		t.Logf("natalg flows while an EPRT transfer is pending:\n%s", strings.TrimSpace(out))
		if err != nil {
			t.Errorf("natalg flows: %v", err)
		}
		// the control connection, from the client to the server's port 21
		ctlRE := regexp.MustCompile(`ESTABLISHED.*\[` + regexp.QuoteMeta(n64Client) + `\]:\d+ -> .*:21\b`)
		if !ctlRE.MatchString(out) {
			t.Errorf("natalg flows shows no ESTABLISHED control flow from [%s] to port 21", n64Client)
		}
		if !strings.Contains(out, "198.19.64.") {
			t.Errorf("natalg flows shows no pool address (198.19.64.0/24)")
		}
		writeFile(t, filepath.Join(pause, "go"), 0o644, "")
		if !waitFor(300, 100*time.Millisecond, cl.exited) {
			t.Fatalf("client did not finish within 30 s after go:\n%s", cl.output())
		}
		if cl.err != nil {
			t.Fatalf("client: %v\n%s", cl.err, cl.output())
		}
		if sum, n, err := fileSum(local); err != nil || sum != e.run.small.sum {
			t.Errorf("pending download: %d bytes sha256 %s (%v), want %s", n, sum, err, e.run.small.sum)
		}
	})

	// ICMP: echo (RFC 7915 §4.2, §5.2), an error generated by the IPv4
	// side (port unreachable, from the server) and one generated by the
	// router's IPv4 forwarding after the translator (time exceeded).
	t.Run("icmp", func(t *testing.T) {
		probe := func(args ...string) (map[string]any, error) {
			argv := append([]string{"/usr/bin/python3", filepath.Join(e.run.scripts, "icmp6probe.py")}, args...)
			out, err := runIn(30*time.Second, e.nsIn, argv...)
			var res map[string]any
			if jerr := json.Unmarshal([]byte(lastLine(out)), &res); jerr != nil {
				return nil, fmt.Errorf("icmp6probe.py %s: %v (%v)\n%s", strings.Join(args, " "), jerr, err, out)
			}
			t.Logf("icmp6probe.py %s: %s", strings.Join(args, " "), lastLine(out))
			return res, err
		}
		t.Run("echo", func(t *testing.T) {
			if _, err := probe("--dst", n64ServerV6, "echo", "--count", "3"); err != nil {
				t.Errorf("ping %s: not every echo request was answered: %v", n64ServerV6, err)
			}
		})
		t.Run("port-unreachable", func(t *testing.T) {
			if _, err := probe("--dst", n64ServerV6, "udp", "--port", "9"); err != nil {
				t.Errorf("UDP to port 9 of %s: no ICMPv6 port unreachable: %v", n64ServerV6, err)
			}
		})
		t.Run("time-exceeded", func(t *testing.T) {
			// hop limit 2: 1 after the router's IPv6 forwarding, TTL 1
			// after translation, expired by its IPv4 forwarding; the
			// ICMPv4 error comes from 198.18.64.1, so from
			// 2001:db8:64::c612:4001 once translated
			res, err := probe("--dst", n64ServerV6, "echo", "--count", "2", "--hop-limit", "2")
			if err != nil {
				t.Errorf("hop limit 2 to %s: no ICMPv6 error back: %v", n64ServerV6, err)
				return
			}
			if errs, _ := res["errors"].([]any); len(errs) > 0 {
				if m, _ := errs[0].(map[string]any); m["type"] != float64(3) {
					t.Errorf("error %v, want ICMPv6 time exceeded (type 3)", m)
				}
			}
		})
	})

	// what crossed the TUN device replays through natalg replay
	t.Run("replay-tun-capture", func(t *testing.T) {
		time.Sleep(200 * time.Millisecond) // tcpdump -U flushes per packet
		if err := e.tunCapP.stop(5 * time.Second); err == errKilled {
			t.Fatalf("tcpdump on %s: %v", n64Dev, err)
		}
		out, err := runIn(60*time.Second, "", e.run.natalg, "replay", "--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool,
			e.tunCap, filepath.Join(e.dir, "tun-replayed.pcap"))
		t.Logf("natalg replay of the TUN capture:\n%s", out)
		if err != nil {
			t.Fatalf("natalg replay: %v", err)
		}
		m := regexp.MustCompile(`translated (\d+)`).FindStringSubmatch(out)
		if m == nil || m[1] == "0" {
			t.Errorf("the replay translated nothing")
		}
		if !strings.Contains(out, "dropped 0\n") {
			t.Errorf("the replay dropped packets natalg run had translated")
		}
		// the replay translates as natalg run did: each of its output
		// packets is in the capture, as natalg run wrote it (but for
		// the IPv4 Identification nat/xlat numbers process-wide)
		live, replayed := readPcap(t, e.tunCap), readPcap(t, filepath.Join(e.dir, "tun-replayed.pcap"))
		seen := map[string]bool{}
		for _, p := range live {
			seen[string(withoutIPv4ID(p.IP()))] = true
		}
		missing := 0
		for i, p := range replayed {
			if !seen[string(withoutIPv4ID(p.IP()))] {
				if missing++; missing <= 5 {
					t.Errorf("replayed packet %d is not in the live capture: %s", i+1, pcapreplay.Describe(p.IP()))
				}
			}
		}
		t.Logf("%d packets replayed, %d of them not as natalg run wrote them", len(replayed), missing)
	})

	logNAT64Counters(t, e.e2eEnv)
	// SIGTERM: natalg exits 0 and takes the device and its routes along
	t.Run("teardown", func(t *testing.T) {
		if err := e.daemon.stop(10 * time.Second); err != nil {
			t.Fatalf("natalg run on SIGTERM: %v\n%s", err, tail(e.daemon.output(), 20))
		}
		if out, err := runIn(10*time.Second, e.nsR, "ip", "link", "show", n64Dev); err == nil {
			t.Errorf("%s is still there after natalg stopped:\n%s", n64Dev, out)
		}
		for _, argv := range [][]string{{"ip", "route", "show", n64Pool}, {"ip", "-6", "route", "show", n64Prefix}} {
			if out := mustIn(t, e.nsR, argv...); strings.TrimSpace(out) != "" {
				t.Errorf("%s: route left after natalg stopped: %s", strings.Join(argv, " "), out)
			}
		}
		if lg := e.daemon.output(); !strings.Contains(lg, "msg=\"nat64 stopped\"") {
			t.Errorf("no nat64 stopped line in the log:\n%s", tail(lg, 10))
		} else {
			for _, l := range strings.Split(lg, "\n") {
				if strings.Contains(l, "nat64 stopped") {
					t.Log(l)
				}
			}
		}
	})

	// NFQUEUE and NAT64 in one natalg run, over one engine: the queues
	// bind (no rule sends them anything here), the TUN datapath carries a
	// session, and SIGTERM stops both and removes the device
	t.Run("with-nfqueue", func(t *testing.T) {
		d := startBg(t, "natalg run (NFQUEUE and NAT64)", filepath.Join(e.dir, "natalg-both.log"), e.nsR, r.natalg, "run",
			"--inside", "fd00:64::/64", "--public", n64ClientGW, "--queues", "7-8",
			"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--metrics", "", "--control", "")
		if !waitFor(100, 100*time.Millisecond, func() bool { return d.exited() || strings.Contains(d.output(), "msg=ready") }) || d.exited() {
			t.Fatalf("natalg run with both not ready within 10 s (exited=%v, err=%v):\n%s", d.exited(), d.err, tail(d.output(), 20))
		}
		if !strings.Contains(d.output(), "queues=7-8") || !strings.Contains(d.output(), "nat64_dev="+n64Dev) {
			t.Errorf("ready line without the queues and the NAT64 device:\n%s", tail(d.output(), 5))
		}
		s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
		if err := e.transfer(t, s, xfer{ns: e.nsIn, host: n64ServerV6, client: "curl", mode: "eprt", file: e.run.small}); err != nil {
			t.Error(err)
		}
		if err := d.stop(10 * time.Second); err != nil {
			t.Fatalf("natalg run with both on SIGTERM: %v\n%s", err, tail(d.output(), 20))
		}
		if out, err := runIn(10*time.Second, e.nsR, "ip", "link", "show", n64Dev); err == nil {
			t.Errorf("%s is still there after natalg stopped:\n%s", n64Dev, out)
		}
	})

	// error paths: a setup that fails half way (the pool is routed
	// already) exits 1 and leaves no device; a natalg killed outright
	// leaves none either (the device is not persistent: the kernel removes
	// it, and its routes, with the last descriptor)
	t.Run("failures", func(t *testing.T) {
		mustIn(t, e.nsR, "ip", "route", "add", "blackhole", n64Pool)
		out, err := runIn(20*time.Second, e.nsR, r.natalg, "run", "--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--metrics", "", "--control", "")
		mustIn(t, e.nsR, "ip", "route", "del", "blackhole", n64Pool)
		if err == nil || !strings.Contains(out, "route "+n64Pool) {
			t.Errorf("natalg run with the pool routed already: %v, %q; want exit status 1 and the route named", err, out)
		}
		if out, err := runIn(10*time.Second, e.nsR, "ip", "link", "show", n64Dev); err == nil {
			t.Errorf("%s left after a failed setup:\n%s", n64Dev, out)
		}
		if out := mustIn(t, e.nsR, "ip", "-6", "route", "show", n64Prefix); strings.TrimSpace(out) != "" {
			t.Errorf("route left after a failed setup: %s", out)
		}
		d := startBg(t, "natalg run (killed)", filepath.Join(e.dir, "natalg-killed.log"), e.nsR, r.natalg, "run",
			"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--metrics", "", "--control", "")
		if !waitFor(100, 100*time.Millisecond, func() bool { return d.exited() || strings.Contains(d.output(), "msg=ready") }) || d.exited() {
			t.Fatalf("natalg run not ready within 10 s:\n%s", tail(d.output(), 20))
		}
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		if !waitFor(50, 100*time.Millisecond, d.exited) {
			t.Fatal("natalg run still there 5 s after SIGKILL")
		}
		if !waitFor(50, 100*time.Millisecond, func() bool {
			_, err := runIn(10*time.Second, e.nsR, "ip", "link", "show", n64Dev)
			return err != nil
		}) {
			t.Errorf("%s still there 5 s after natalg was killed", n64Dev)
		}
		for _, argv := range [][]string{{"ip", "route", "show", n64Pool}, {"ip", "-6", "route", "show", n64Prefix}} {
			if out := mustIn(t, e.nsR, argv...); strings.TrimSpace(out) != "" {
				t.Errorf("%s: route left after natalg was killed: %s", strings.Join(argv, " "), out)
			}
		}
	})
}
