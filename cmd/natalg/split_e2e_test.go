package main

// The split datapath (natalg run's default): only FTP control connections
// reach natalg's queues; the kernel translates the data connections, from
// the expectations natalg installs in table inet natalg. Run:
// go test -run TestSplitE2E ./cmd/natalg/ (root).

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const otherOutside4 = "198.19.0.3" // a second outside address: the wrong peer

func TestSplitE2E(t *testing.T) {
	r := newNatalgRun(t)
	owner := t
	e := newE2EEnv(t, r, "natalg")
	// an IPv6 FTP forward too, and closed control flows reaped after 3 s
	e.restartNatalg(owner, t, "--forward", "tcp:21=["+inHost6+"]:21", "--timeout-tcp-transitory", "3s", "--allow-nonconforming-timeouts")
	t.Run("data-never-queued", e.dataNeverQueued)
	t.Run("wrong-peer", e.wrongPeer)
	t.Run("expectation-gone-with-control", e.expectationGoneWithControl)
	t.Run("kernel-flows-survive-restart", func(t *testing.T) { e.kernelFlowsSurviveRestart(owner, t) })
	t.Run("hairpin", func(t *testing.T) { e.hairpin(owner, t) })
	t.Run("stateful-firewall", e.statefulFirewall)
}

// firewallRules is a router's stateful filter with every policy drop, and
// the rules README.md ("The firewall rule for data connections") documents
// for natalg: natalg's data connections by their conntrack mark (forward),
// the packets natalg sends on from the router by their mark (output). The
// loopback interface is open (the tests read natalg's metrics there), and
// ICMPv6 (neighbour discovery).
const firewallRules = `table inet natalgtestfw {
	chain input {
		type filter hook input priority filter; policy drop;
		iif lo accept
		ct state established,related accept
		meta l4proto ipv6-icmp accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		ct state invalid drop
		iifname "r-in" oifname "r-out" accept
		ct mark and 0x10000000 == 0x10000000 accept
	}
	chain output {
		type filter hook output priority filter; policy drop;
		oif lo accept
		ct state established,related accept
		meta l4proto ipv6-icmp accept
		meta mark and 0x10000000 == 0x10000000 accept
	}
}
`

// statefulFirewall: behind a router filter whose every policy drops, with
// the documented rules, FTP works in each mode, direction and family (the
// inbound control packets go to natalg at the input hook before the filter
// and leave through OUTPUT; the data connections pass by their mark);
// without the output rule, a connection to a forwarded FTP port does not
// (its first packet, sent on from the router, is NEW in OUTPUT).
func (e *e2eEnv) statefulFirewall(t *testing.T) {
	rules := filepath.Join(e.dir, "firewall.nft")
	if err := os.WriteFile(rules, []byte(firewallRules), 0o644); err != nil {
		t.Fatal(err)
	}
	mustIn(t, e.nsR, "nft", "-f", rules)
	t.Cleanup(func() { runIn(10*time.Second, e.nsR, "nft", "delete", "table", "inet", "natalgtestfw") })
	cases := []struct {
		name, serverNS string
		fam            int
		clientNS, host string
		mode           string
	}{
		{"snat4-active", e.nsOut, 4, e.nsIn, outHost4, "port"},
		{"snat6-passive", e.nsOut, 6, e.nsIn, outHost6, "epsv"},
		{"dnat4-passive", e.nsIn, 4, e.nsOut, public4, "pasv"},
		{"dnat6-active", e.nsIn, 6, e.nsOut, public6, "eprt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := e.startFTPD(t, "vsftpd", c.serverNS, c.fam)
			if err := e.transfer(t, s, xfer{ns: c.clientNS, host: c.host, client: "curl", mode: c.mode, file: e.run.small}); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("dnat4-without-output-rule", func(t *testing.T) {
		mustIn(t, e.nsR, "nft", "delete", "rule", "inet", "natalgtestfw", "output", "handle", outputMarkRuleHandle(t, e))
		s := e.startFTPD(t, "vsftpd", e.nsIn, 4)
		if err := e.transfer(t, s, xfer{ns: e.nsOut, host: public4, client: "curl", mode: "pasv", file: e.run.small, connect: 3 * time.Second}); err == nil {
			t.Fatal("a connection to the forwarded FTP port got through a dropping OUTPUT filter without the mark rule")
		}
	})
}

// outputMarkRuleHandle returns the handle of the mark rule of the test
// firewall's output chain.
func outputMarkRuleHandle(t *testing.T, e *e2eEnv) string {
	t.Helper()
	out := mustIn(t, e.nsR, "nft", "-a", "list", "chain", "inet", "natalgtestfw", "output")
	m := regexp.MustCompile(`meta mark & 0x10000000 == 0x10000000 accept # handle (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no mark rule in\n%s", out)
	}
	return m[1]
}

// queueSequence sums the packet ids the router's queues have handed out
// (/proc/net/netfilter/nfnetlink_queue, field 8, id_sequence): the packets
// ever queued.
func (e *e2eEnv) queueSequence(t *testing.T) int64 {
	t.Helper()
	out := mustIn(t, e.nsR, "cat", "/proc/net/netfilter/nfnetlink_queue")
	var n int64
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 8 {
			v, err := strconv.ParseInt(f[7], 10, 64)
			if err != nil {
				t.Fatalf("nfnetlink_queue line %q: %v", l, err)
			}
			n += v
		}
	}
	return n
}

// dataNeverQueued: a 64 MiB download in each mode, direction and family
// goes through the kernel: the queues and natalg's packet counter rise by
// the control connection's packets only (a few dozen; the data are some
// 46 000 segments of 1448 bytes). The expectation modes use one kernel
// expectation each.
func (e *e2eEnv) dataNeverQueued(t *testing.T) {
	cases := []struct {
		name       string
		serverNS   string
		fam        int
		clientNS   string
		host, mode string
		expects    bool // the data connection comes through an expectation
	}{
		{"snat4-active", e.nsOut, 4, e.nsIn, outHost4, "port", true},
		{"snat4-passive", e.nsOut, 4, e.nsIn, outHost4, "pasv", false},
		{"snat6-active", e.nsOut, 6, e.nsIn, outHost6, "eprt", true},
		{"snat6-passive", e.nsOut, 6, e.nsIn, outHost6, "epsv", false},
		{"dnat4-active", e.nsIn, 4, e.nsOut, public4, "port", false},
		{"dnat4-passive", e.nsIn, 4, e.nsOut, public4, "pasv", true},
		{"dnat6-active", e.nsIn, 6, e.nsOut, public6, "eprt", false},
		{"dnat6-passive", e.nsIn, 6, e.nsOut, public6, "epsv", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := e.startFTPD(t, "vsftpd", c.serverNS, c.fam)
			e.evidence(t, s)
			q0, m0 := e.queueSequence(t), e.metrics(t)
			t0 := time.Now()
			if err := e.transfer(t, s, xfer{ns: c.clientNS, host: c.host, client: "curl", mode: c.mode, file: e.run.big}); err != nil {
				t.Fatal(err)
			}
			el := time.Since(t0)
			q1, m1 := e.queueSequence(t), e.metrics(t)
			recv := `natalg_nfqueue_packets_total{event="received"}`
			queued, seen := q1-q0, m1[recv]-m0[recv]
			t.Logf("%s: 64 MiB in %v; %d packets queued, natalg received %v", c.name, el.Round(time.Millisecond), queued, seen)
			if queued > 100 || seen > 100 {
				t.Errorf("%s: %d packets queued and %v received during a 64 MiB transfer: the data connection went through natalg", c.name, queued, seen)
			}
			if queued == 0 || seen == 0 {
				t.Errorf("%s: the control connection was not queued (%d queued, %v received)", c.name, queued, seen)
			}
			// The inbound control packets were queued at the input hook
			// (control_in) and sent on from the router: about half of
			// what natalg received, and none refused by the socket.
			resent := m1[`natalg_nfqueue_packets_total{event="resent"}`] - m0[`natalg_nfqueue_packets_total{event="resent"}`]
			resendErrors := m1[`natalg_nfqueue_errors_total{kind="resend"}`] - m0[`natalg_nfqueue_errors_total{kind="resend"}`]
			if e.datapath() == "split" && (resent < seen/4 || resent > seen*3/4 || resendErrors != 0) {
				t.Errorf("%s: %v of %v control packets sent on from the router, %v refused: want the inbound ones (about half), none refused", c.name, resent, seen, resendErrors)
			}
			used := `natalg_kernel_expectations_total{event="used"}`
			installed := `natalg_kernel_expectations_total{event="installed"}`
			want := 0.0
			if c.expects {
				want = 1
			}
			if d := m1[installed] - m0[installed]; d != want {
				t.Errorf("%s: %v kernel expectations installed, want %v", c.name, d, want)
			}
			if d := m1[used] - m0[used]; d != want {
				t.Errorf("%s: %v kernel expectations used, want %v", c.name, d, want)
			}
		})
	}
}

// kernelExpectations returns the kernel-expect lines of natalg flows and
// the elements nft lists in the expectation maps.
func (e *e2eEnv) kernelExpectations(t *testing.T) (flows []string, nft string) {
	t.Helper()
	out, err := runIn(10*time.Second, "", e.run.natalg, "flows", "--control", e.control)
	if err != nil {
		t.Fatalf("natalg flows: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "kernel-expect ") {
			flows = append(flows, l)
		}
	}
	nft = mustIn(t, e.nsR, "nft", "list", "map", "inet", "natalg", "expect4")
	return flows, nft
}

var kernelExpectRE = regexp.MustCompile(`^kernel-expect tcp from (\S+) to (\S+):(\d+) -> (\S+) timeout=(\d+)s`)

// pausedActive starts an active-mode download from the inside host that
// pauses once its PORT was answered, and returns the client, its pause
// directory and the kernel's expectation for it.
func (e *e2eEnv) pausedActive(t *testing.T, s *ftpd) (*bgProc, string, []string) {
	t.Helper()
	pause := filepath.Join(e.dir, fmt.Sprintf("pause-%d", e.run.next()))
	if err := os.MkdirAll(pause, 0o755); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(e.dir, fmt.Sprintf("got-%d-paused", e.run.next()))
	cl := startBg(t, "ftplib", filepath.Join(pause, "client.log"), e.nsIn, "/usr/bin/python3",
		filepath.Join(e.run.scripts, "ftpclient.py"), "--host", outHost4, "--mode", "active", "--op", "get",
		"--remote", "pub/small.bin", "--local", local, "--pause-dir", pause, "--pause-max", "30")
	if !waitFor(150, 100*time.Millisecond, func() bool {
		_, err := os.Stat(filepath.Join(pause, "ported"))
		return err == nil || cl.exited()
	}) || cl.exited() {
		t.Fatalf("client did not reach the pause (PORT answered 200) within 15 s:\n%s", cl.output())
	}
	flows, nft := e.kernelExpectations(t)
	if len(flows) != 1 {
		t.Fatalf("want one expectation in the kernel while the PORT is pending, natalg flows shows %q; nft:\n%s", flows, nft)
	}
	m := kernelExpectRE.FindStringSubmatch(flows[0])
	if m == nil || m[1] != outHost4 || m[2] != public4 || !strings.HasPrefix(m[4], inHost4+":") {
		t.Fatalf("kernel expectation %q: want from %s to %s:PORT -> %s:PORT", flows[0], outHost4, public4, inHost4)
	}
	if !strings.Contains(nft, outHost4+" . "+public4+" . "+m[3]+" ") {
		t.Errorf("nft does not list the element %s . %s . %s:\n%s", outHost4, public4, m[3], nft)
	}
	return cl, pause, m
}

// connectFrom reports whether src in the outside namespace can open a TCP
// connection to public4:port (2 s).
func (e *e2eEnv) connectFrom(src, port string) bool {
	_, err := runIn(10*time.Second, e.nsOut, "/usr/bin/python3", "-c",
		"import socket,sys; s=socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=2, source_address=(sys.argv[1], 0)); s.close()",
		src, public4, port)
	return err == nil
}

// wrongPeer: an expectation admits its peer only: another outside host
// connecting to the announced public port reaches nothing, and the element
// stays for the real peer, whose connection then uses it up (one-shot).
func (e *e2eEnv) wrongPeer(t *testing.T) {
	mustIn(t, e.nsOut, "ip", "addr", "replace", otherOutside4+"/16", "dev", "o-eth")
	s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
	e.evidence(t, s)
	before := e.metrics(t)
	cl, pause, m := e.pausedActive(t, s)
	if e.connectFrom(otherOutside4, m[3]) {
		t.Errorf("%s reached the public port %s announced to %s", otherOutside4, m[3], outHost4)
	}
	if flows, nft := e.kernelExpectations(t); len(flows) != 1 {
		t.Errorf("the wrong peer's attempt used the expectation up: %q\n%s", flows, nft)
	}
	writeFile(t, filepath.Join(pause, "go"), 0o644, "")
	if !waitFor(300, 100*time.Millisecond, cl.exited) || cl.err != nil {
		t.Fatalf("client did not finish within 30 s after go (%v):\n%s", cl.err, cl.output())
	}
	after := e.metrics(t)
	if k := `natalg_kernel_expectations_total{event="used"}`; after[k]-before[k] != 1 {
		t.Errorf("%s rose by %v, want 1", k, after[k]-before[k])
	}
	if flows, nft := e.kernelExpectations(t); len(flows) != 0 || strings.Contains(nft, public4) {
		t.Errorf("the used expectation is still in the kernel: %q\n%s", flows, nft)
	}
	// one-shot: the real peer cannot come again
	if e.connectFrom(outHost4, m[3]) {
		t.Errorf("%s reached public port %s again after its data connection", outHost4, m[3])
	}
}

// expectationGoneWithControl: the client goes away with its PORT pending;
// once its control flow is gone (3 s after the close here) so is the
// kernel's element, and the peer reaches nothing.
func (e *e2eEnv) expectationGoneWithControl(t *testing.T) {
	s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
	e.evidence(t, s)
	before := e.metrics(t)
	cl, _, m := e.pausedActive(t, s)
	cl.stop(5 * time.Second)
	var flows []string
	var nft string
	if !waitFor(150, 100*time.Millisecond, func() bool {
		flows, nft = e.kernelExpectations(t)
		return len(flows) == 0 && !strings.Contains(nft, public4)
	}) {
		t.Fatalf("the expectation outlived its control connection by 15 s: %q\n%s", flows, nft)
	}
	after := e.metrics(t)
	if k := `natalg_kernel_expectations_total{event="withdrawn"}`; after[k]-before[k] != 1 {
		t.Errorf("%s rose by %v, want 1", k, after[k]-before[k])
	}
	if e.connectFrom(outHost4, m[3]) {
		t.Errorf("%s reached public port %s after the control connection was gone", outHost4, m[3])
	}
}

// kernelFlowsSurviveRestart: natalg stops (cleanly, saving its state) in
// the middle of a rate-limited passive download: the data connection, a
// kernel flow, keeps moving while no natalg runs; FTP control fails closed
// meanwhile; the transfer ends intact once natalg is back (its control
// connection restored from --state).
func (e *e2eEnv) kernelFlowsSurviveRestart(owner, t *testing.T) {
	flags := []string{"--forward", "tcp:21=[" + inHost6 + "]:21", "--timeout-tcp-transitory", "3s", "--allow-nonconforming-timeouts", "--state", filepath.Join(e.dir, "split.state")}
	e.restartNatalg(owner, t, flags...)
	s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
	e.evidence(t, s)
	done := make(chan error, 1)
	go func() {
		done <- e.transfer(t, s, xfer{ns: e.nsIn, host: outHost4, client: "curl", mode: "epsv", file: e.run.big, rate: "16M"})
	}()
	size := func() int64 {
		ms, _ := filepath.Glob(filepath.Join(e.dir, "got-*-curl-epsv-get"))
		var n int64
		for _, p := range ms {
			if fi, err := os.Stat(p); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	if !waitFor(100, 100*time.Millisecond, func() bool { return size() > 4<<20 }) {
		t.Fatalf("the download did not start within 10 s")
	}
	if err := e.daemon.stop(10 * time.Second); err != nil {
		t.Fatalf("natalg run did not exit cleanly on SIGTERM: %v", err)
	}
	a := size()
	time.Sleep(1500 * time.Millisecond)
	b := size()
	t.Logf("natalg stopped: the download moved %d bytes in 1.5 s", b-a)
	if b-a < 8<<20 {
		t.Errorf("the data connection stalled while natalg was down: %d bytes in 1.5 s at 16 MB/s", b-a)
	}
	// a new control connection meanwhile: queued, nobody reads: refused
	if out, err := runIn(8*time.Second, e.nsIn, "curl", "-sS", "--connect-timeout", "3", "-o", "/dev/null", "ftp://"+outHost4+"/"); err == nil {
		t.Errorf("an FTP control connection got through while natalg was down: %s", out)
	}
	e.restartNatalg(owner, t, flags...)
	if err := <-done; err != nil {
		t.Fatalf("the download across natalg's restart: %v", err)
	}
}

const hairpinServer4 = "198.18.0.99" // a second inside address: the forwarded server

// hairpin: an inside host reaches a forward through the public address
// (RFC 4787 §6 REQ-9, RFC 5382 §7.2 REQ-8): the server, inside too, sees
// the public address as the source.
func (e *e2eEnv) hairpin(owner, t *testing.T) {
	mustIn(t, e.nsIn, "ip", "addr", "replace", hairpinServer4+"/16", "dev", "i-eth")
	e.restartNatalg(owner, t, "--forward", "tcp:8080="+hairpinServer4+":80")
	defer e.restartNatalg(owner, t, "--forward", "tcp:21=["+inHost6+"]:21", "--timeout-tcp-transitory", "3s", "--allow-nonconforming-timeouts")
	srv := startBg(t, "hairpin server", filepath.Join(e.dir, fmt.Sprintf("hairpin-%d.log", e.run.next())), e.nsIn, "/usr/bin/python3", "-c", `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 80)); s.listen(1); print("listening", flush=True)
c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
`, hairpinServer4)
	if !waitFor(50, 100*time.Millisecond, func() bool { return strings.Contains(srv.output(), "listening") || srv.exited() }) || srv.exited() {
		t.Fatalf("hairpin server did not start:\n%s", srv.output())
	}
	m0 := e.metrics(t)
	out, err := runIn(10*time.Second, e.nsIn, "/usr/bin/python3", "-c", `
import socket, sys
c = socket.create_connection((sys.argv[2], 8080), timeout=3, source_address=(sys.argv[1], 0))
print(c.recv(100).decode())
`, inHost4, public4)
	if err != nil {
		t.Fatalf("%s could not reach %s:8080 (forwarded to %s:80): %v\n%s", inHost4, public4, hairpinServer4, err, out)
	}
	if got := strings.TrimSpace(out); got != public4 {
		t.Errorf("the hairpinned connection reached the server from %q, want the public address %s", got, public4)
	}
	// natalg rules --public queues every packet from the inside to a public
	// address (chain NATALG-HP), in both datapaths: natalg translates the
	// hairpinned connection whole, from the inside host's port (TestE2EHairpin
	// proves FTP through the hairpin too). Without --public the table's own
	// hairpin rules would serve kernel forwards.
	m1 := e.metrics(t)
	if k := "natalg_hairpinned_flows_total"; m1[k] <= m0[k] {
		t.Errorf("%s did not rise (%v -> %v): the hairpin rule did not queue the connection", k, m0[k], m1[k])
	}
}
