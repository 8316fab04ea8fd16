package main

// Security end-to-end tests (issue 5, hostile input): FTP control traffic
// that tries to open a pinhole into the inside network through the NAT's FTP
// gateway, and FTPS through the gateway. Same topology and helpers as
// e2e_test.go (TestE2E); the attacks come from testdata/e2e/attackftp.py on
// the inside host against vsftpd on the outside host. For each attack the
// outside host then tries to connect to the public address at the attacked
// port while the control connection is still open (an expectation lives as
// long as its control connection) and an inside listener waits there: the
// connection must fail and the listener must have accepted nothing.
//
// Run: go test -run TestSecurityE2E ./cmd/natalg/ (root; skips otherwise,
// except under CI, where it fails).

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/alg"
)

const thirdParty4 = "198.18.0.99" // a second inside address: the bounce target

func TestSecurityE2E(t *testing.T) {
	r := newNatalgRun(t)
	for _, mode := range e2eNatalgModes {
		t.Run(mode, func(t *testing.T) {
			mt := t
			e := newE2EEnv(t, r, mode)
			mustIn(t, e.nsIn, "ip", "addr", "add", thirdParty4+"/16", "dev", "i-eth")
			e.pinholes(t)
			// the probe sees a pinhole when there is one: with the low-port
			// check off, the same PORT 22 opens public port 22 to the inside
			// host's port 22 (what the kernel's helper does by default)
			t.Run("low-port-22-allowed", func(t *testing.T) {
				e.restartNatalg(mt, t, "--allow-low-ports")
				defer e.restartNatalg(mt, t)
				s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
				e.evidence(t, s)
				e.pinhole(t, attack{name: "low-port-22-allowed", kind: "lowport", listen: []string{inHost4 + ":22"},
					open: []int{22}, expects: 1, made: 1})
			})
			t.Run("ccc", e.ccc)
			t.Run("ftps", func(t *testing.T) { e.ftps(mt, t) })
		})
	}
	// the kernel's helper, for contrast: logged, not asserted
	t.Run("kernel", func(t *testing.T) {
		e := newE2EEnv(t, r, "kernel")
		mustIn(t, e.nsIn, "ip", "addr", "add", thirdParty4+"/16", "dev", "i-eth")
		e.pinholes(t)
		t.Run("ccc", e.ccc)
	})
}

// attackResult is what attackftp.py prints.
type attackResult struct {
	OK        bool           `json:"ok"`
	Sent      any            `json:"sent"`
	Replies   []string       `json:"replies"`
	OKReplies int            `json:"ok_replies"`
	Accepted  map[string]int `json:"accepted"`
	Error     string         `json:"error"`
	Seconds   float64        `json:"seconds"`
	// endless
	JunkBytes    int     `json:"junk_bytes"`
	SendSeconds  float64 `json:"send_seconds"`
	AckedSeconds float64 `json:"acked_seconds"`
	NOOPReply    string  `json:"noop_reply"`
}

// attack describes one hostile control session and what it must not open.
type attack struct {
	name    string
	kind    string   // attackftp.py --attack
	listen  []string // inside endpoints a pinhole would reach
	closed  []int    // public ports the outside host must not reach
	open    []int    // public ports it must reach (the one legitimate expectation)
	count   int      // flood: PORT commands
	batch   int      // flood: PORT commands per segment
	live    int      // flood: the port of the one expectation left
	event   string   // natalg_alg_events_total{event=...} that must rise, if any
	expects int      // expectations of this session left while it is open
	made    int      // expectations made (and rewrites) by a single-command attack
	args    []string // more attackftp.py options
	// during, if set, runs while the attack is being sent (pause is the
	// attack's pause directory) and returns the expectations (and
	// rewrites) it made itself, legitimately
	during func(t *testing.T, pause string) int
	// check, if set, makes more assertions at the end (attacks without
	// count)
	check func(t *testing.T, before, after map[string]float64, res attackResult)
}

func (e *e2eEnv) pinholes(t *testing.T) {
	port := func(p int) string { return inHost4 + ":" + strconv.Itoa(p) }
	attacks := []attack{
		{name: "bounce-third-party", kind: "bounce", listen: []string{thirdParty4 + ":5001"}, closed: []int{5001}, event: "bounce_refused"},
		{name: "low-port-22", kind: "lowport", listen: []string{port(22)}, closed: []int{22}, event: "low_port_refused"},
		{name: "low-port-80", kind: "lowport", listen: []string{port(80)}, closed: []int{80}, event: "low_port_refused"},
		{name: "port-in-site-argument", kind: "site-arg", listen: []string{port(5002)}, closed: []int{5002}},
		{name: "port-mid-line-segment", kind: "mid-line", listen: []string{port(5003)}, closed: []int{5003}},
		{name: "port-after-crlf-text", kind: "crlf-text", listen: []string{port(5004)}, closed: []int{5004}},
		// one at a time: every PORT is rewritten and expected, each
		// expectation replacing the one before
		{name: "port-flood", kind: "flood", count: 2000, batch: 1, live: 21999,
			listen: []string{port(20000), port(21998), port(21999)}, closed: []int{20000, 21998}, open: []int{21999}, expects: 1},
		// 50 in each segment: the first alg.MaxRewritesPerSegment of each
		// are rewritten, the rest pass unchanged (the server refuses them)
		{name: "port-flood-pipelined", kind: "flood", count: 2000, batch: 50, live: 21950 + alg.MaxRewritesPerSegment - 1,
			listen: []string{port(20000), port(21950 + alg.MaxRewritesPerSegment - 1), port(21999)},
			closed: []int{20000, 21999}, open: []int{21950 + alg.MaxRewritesPerSegment - 1}, expects: 1},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
			e.evidence(t, s)
			e.pinhole(t, a)
		})
	}
}

func (e *e2eEnv) pinhole(t *testing.T, a attack) {
	t0 := time.Now()
	var before map[string]float64
	if e.mode != "kernel" {
		before = e.metrics(t)
	}
	pause := filepath.Join(e.dir, fmt.Sprintf("attack-%d", e.run.next()))
	if err := os.MkdirAll(pause, 0o755); err != nil {
		t.Fatal(err)
	}
	argv := []string{"/usr/bin/python3", filepath.Join(e.run.scripts, "attackftp.py"), "--host", outHost4,
		"--attack", a.kind, "--pause-dir", pause, "--pause-max", "60", "--timeout", "8"}
	for _, l := range a.listen {
		argv = append(argv, "--listen", l)
	}
	if a.count > 0 {
		argv = append(argv, "--count", strconv.Itoa(a.count), "--batch", strconv.Itoa(a.batch), "--base-port", "20000")
	}
	argv = append(argv, a.args...)
	cl := startBg(t, "attackftp", filepath.Join(pause, "client.log"), e.nsIn, argv...)
	made := a.made
	if a.during != nil {
		made += a.during(t, pause)
	}
	ready := filepath.Join(pause, "ready")
	if !waitFor(600, 100*time.Millisecond, func() bool {
		_, err := os.Stat(ready)
		return err == nil || cl.exited()
	}) || cl.exited() {
		t.Fatalf("attack client did not reach its pause within 60 s:\n%s", cl.output())
	}
	var res attackResult
	b, _ := os.ReadFile(ready)
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("ready: %v: %s", err, b)
	}
	t.Logf("%s: sent %v; %d replies 200; replies %q (%.3f s)", a.name, res.Sent, res.OKReplies, res.Replies, res.Seconds)

	// what the NAT holds while the control connection is open
	var flows string
	var exps []string
	if e.mode == "kernel" {
		flows = mustIn(t, e.nsR, "conntrack", "-L", "expect")
		for _, l := range strings.Split(flows, "\n") {
			if strings.Contains(l, "dst="+public4) {
				exps = append(exps, l)
			}
		}
	} else {
		out, err := runIn(10*time.Second, "", e.run.natalg, "flows", "--control", e.control)
		if err != nil {
			t.Fatalf("natalg flows: %v\n%s", err, out)
		}
		flows = out
		var kexps []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "expect ") {
				exps = append(exps, l)
			}
			if strings.HasPrefix(l, "kernel-expect ") {
				kexps = append(kexps, l)
			}
		}
		if g := e.metrics(t)["natalg_expectations"]; g != float64(a.expects) {
			t.Errorf("%s: natalg_expectations = %v while the session is open, want %d", a.name, g, a.expects)
		}
		if e.datapath() == "split" {
			// what the kernel admits: exactly natalg's expectations
			if len(kexps) != a.expects {
				t.Errorf("%s: %d expectations in the kernel while the session is open, want %d:\n%s", a.name, len(kexps), a.expects, out)
			}
			for _, x := range exps {
				if m := expectLineRE.FindStringSubmatch(x); m != nil && !slices.Contains(kexps, "kernel-expect tcp from "+m[1]+" to "+m[2]+" -> "+m[3]+" timeout="+m[4]) &&
					!slices.ContainsFunc(kexps, func(k string) bool {
						return strings.HasPrefix(k, "kernel-expect tcp from "+m[1]+" to "+m[2]+" -> "+m[3]+" ")
					}) {
					t.Errorf("%s: natalg's %q is not in the kernel:\n%s", a.name, x, out)
				}
			}
		}
	}
	// The public port each announced inside port got (split mode keeps
	// natalg's ports in its own range, so it is not the inside port).
	publicOf := map[int]int{}
	for _, x := range exps {
		if m := expectLineRE.FindStringSubmatch(x); m != nil {
			pub, _ := netip.ParseAddrPort(m[2])
			in, _ := netip.ParseAddrPort(m[3])
			publicOf[int(in.Port())] = int(pub.Port())
		}
	}
	public := func(p int) int {
		if q, ok := publicOf[p]; ok {
			return q
		}
		return p
	}
	t.Logf("expectations while the attacker's control connection is open (%d):\n%s", len(exps), strings.Join(exps, "\n"))

	// the outside host tries each port
	reached := map[int]bool{}
	for _, p := range append(append([]int{}, a.closed...), a.open...) {
		ok, d := e.outsideConnect(public(p))
		reached[p] = ok
		t.Logf("outside %s -> %s:%d (inside port %d): connected=%v (%v)", outHost4, public4, public(p), p, ok, d.Round(time.Millisecond))
	}

	writeFile(t, filepath.Join(pause, "go"), 0o644, "")
	if !waitFor(200, 100*time.Millisecond, cl.exited) {
		t.Fatalf("attack client did not finish within 20 s after go:\n%s", cl.output())
	}
	if err := json.Unmarshal([]byte(lastLine(cl.output())), &res); err != nil {
		t.Fatalf("attackftp.py: %v (%v)\n%s", err, cl.err, cl.output())
	}
	t.Logf("inside listeners accepted: %v; session %.3f s, case %v", res.Accepted, res.Seconds, time.Since(t0).Round(time.Millisecond))
	if !res.OK {
		t.Errorf("attack session failed: %s", res.Error)
	}

	if e.mode == "kernel" {
		for _, p := range a.closed {
			if reached[p] {
				t.Logf("CONTRAST: the kernel's helper let the outside host reach public port %d (%s)", p, a.name)
			}
		}
		return
	}
	for _, p := range a.closed {
		if reached[p] {
			t.Errorf("%s: the outside host reached public port %d: a pinhole was opened", a.name, p)
		}
	}
	for _, p := range a.open {
		if !reached[p] {
			t.Errorf("%s: the outside host could not reach public port %d, the one legitimate expectation (the probe cannot see pinholes)", a.name, p)
		}
	}
	wantAccepted := map[string]int{}
	for _, p := range a.open {
		wantAccepted[inHost4+":"+strconv.Itoa(p)] = 1
	}
	for ep, n := range res.Accepted {
		if n != wantAccepted[ep] {
			t.Errorf("%s: inside listener %s accepted %d connections, want %d", a.name, ep, n, wantAccepted[ep])
		}
	}
	if len(exps) != a.expects {
		t.Errorf("%s: %d expectations while the session was open, want %d:\n%s", a.name, len(exps), a.expects, flows)
	}
	after := e.metrics(t)
	if a.event != "" {
		k := fmt.Sprintf("natalg_alg_events_total{event=%q}", a.event)
		if after[k] <= before[k] {
			t.Errorf("%s did not rise: %v -> %v", k, before[k], after[k])
		}
	}
	created := `natalg_expectations_total{event="created"}`
	if a.count == 0 {
		for _, k := range []string{created, "natalg_alg_rewrites_total"} {
			if d := after[k] - before[k]; d != float64(made) {
				t.Errorf("%s: %s rose by %v, want %d", a.name, k, d, made)
			}
		}
		if a.check != nil {
			a.check(t, before, after, res)
		}
		return
	}
	// the flood: every PORT rewritten (up to the limit per segment) and
	// expected, each expectation replacing the one before
	rewritten := a.count
	if a.batch > alg.MaxRewritesPerSegment {
		rewritten = a.count / a.batch * alg.MaxRewritesPerSegment
	}
	evicted := `natalg_expectations_total{event="evicted"}`
	if d := after[created] - before[created]; d != float64(rewritten) {
		t.Errorf("%s: %v expectations created, want %d", a.name, d, rewritten)
	}
	if d := after[evicted] - before[evicted]; d != float64(rewritten-1) {
		t.Errorf("%s: %v expectations evicted, want %d", a.name, d, rewritten-1)
	}
	if res.OKReplies != rewritten {
		t.Errorf("%s: %d of %d PORT commands answered 200, want %d", a.name, res.OKReplies, a.count, rewritten)
	}
	live := strconv.Itoa(a.live)
	pubLive := live
	if e.datapath() == "split" {
		pubLive = `\d+` // natalg's own range
	}
	expRE := regexp.MustCompile(`^expect tcp from ` + regexp.QuoteMeta(outHost4) + ` to ` + regexp.QuoteMeta(public4) + `:` + pubLive + ` -> ` + regexp.QuoteMeta(inHost4) + `:` + live + ` `)
	if len(exps) != 1 || !expRE.MatchString(exps[0]) {
		t.Errorf("%s: want the one expectation of the last PORT rewritten (public port %s), got %q", a.name, live, exps)
	}
}

// expectLineRE reads a line of natalg flows' expectations: peer, public
// endpoint, inside endpoint, timeout.
var expectLineRE = regexp.MustCompile(`^expect tcp from (\S+) to (\S+) -> (\S+) timeout=(-?\d+)s`)

// outsideConnect reports whether the outside host can open a TCP connection
// to the public IPv4 address at port p (2 s to connect).
func (e *e2eEnv) outsideConnect(p int) (bool, time.Duration) {
	t1 := time.Now()
	_, err := runIn(10*time.Second, e.nsOut, "/usr/bin/python3", "-c",
		"import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()",
		public4, strconv.Itoa(p))
	return err == nil, time.Since(t1)
}

// restartNatalg replaces the router's daemon by one started with the same
// flags plus extra (the topology, rules and captures stay). owner is the
// test that owns the environment: the new daemon lives until its end.
func (e *e2eEnv) restartNatalg(owner, t *testing.T, extra ...string) {
	t.Helper()
	if err := e.daemon.stop(10 * time.Second); err != nil {
		t.Fatalf("natalg run did not exit cleanly on SIGTERM: %v\n%s", err, tail(e.daemon.output(), 30))
	}
	argv := []string{e.run.natalg, "run",
		"--inside", inside4, "--inside", inside6, "--public", public4, "--public", public6,
		"--forward", "tcp:21=" + inHost4 + ":21", "--queues", "0-1",
		"--metrics", e2eMetricsAddr, "--control", e.control, "--gso=false", "--datapath", e.datapath()}
	argv = append(argv, extra...)
	// startNatalg's cleanup stops and checks whatever e.daemon is then
	e.daemon = startBg(owner, "natalg run", filepath.Join(e.dir, fmt.Sprintf("natalg-%d.log", e.run.next())), e.nsR, argv...)
	if !waitFor(100, 100*time.Millisecond, func() bool {
		return e.daemon.exited() || strings.Contains(e.daemon.output(), "msg=ready")
	}) || e.daemon.exited() {
		t.Fatalf("natalg run %v not ready within 10 s:\n%s", extra, tail(e.daemon.output(), 40))
	}
	// and its metrics endpoint (it may come up just after msg=ready)
	if !waitFor(50, 100*time.Millisecond, func() bool {
		_, err := runIn(5*time.Second, e.nsR, "curl", "-sS", "--max-time", "2", "-o", "/dev/null", "http://"+e2eMetricsAddr+"/metrics")
		return err == nil
	}) {
		t.Fatalf("natalg run %v: no metrics within 5 s", extra)
	}
	t.Logf("natalg run restarted with %v", extra)
}

// --- FTPS ------------------------------------------------------------------

// startFTPS starts vsftpd with explicit TLS (AUTH TLS, RFC 4217) required for
// anonymous logins and data, with a throwaway self-signed certificate.
// pasvPublic makes it announce the public address and a fixed passive port
// range (the documented DNAT setup: the server knows it is behind the NAT,
// since the NAT cannot read the encrypted 227).
func (e *e2eEnv) startFTPS(t *testing.T, ns string, pasvPublic bool) *ftpd {
	t.Helper()
	dir := filepath.Join(e.dir, fmt.Sprintf("vsftpd-tls-%d", e.run.next()))
	s := &ftpd{kind: "vsftpd-tls", ns: ns, dir: dir, root: filepath.Join(dir, "root"), log: filepath.Join(dir, "vsftpd.log")}
	for _, d := range []string{dir, s.root, filepath.Join(s.root, "pub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []e2eFile{e.run.small, e.run.mid} {
		if err := linkOrCopy(f.path, filepath.Join(s.root, "pub", filepath.Base(f.path))); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	mustIn(t, "", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=natalg-e2e", "-keyout", key, "-out", cert)
	pasv := ""
	if pasvPublic {
		pasv = "pasv_address=" + public4 + "\npasv_addr_resolve=NO\npasv_min_port=40000\npasv_max_port=40099\n"
	}
	conf := filepath.Join(dir, "vsftpd.conf")
	writeFile(t, conf, 0o600, fmt.Sprintf(`listen=YES
listen_ipv6=NO
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root=%s
write_enable=NO
connect_from_port_20=YES
port_promiscuous=NO
pasv_promiscuous=NO
pasv_enable=YES
port_enable=YES
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=YES
xferlog_std_format=NO
log_ftp_protocol=YES
vsftpd_log_file=%s
use_localtime=NO
ftpd_banner=natalg e2e vsftpd TLS
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
require_ssl_reuse=NO
rsa_cert_file=%s
rsa_private_key_file=%s
%s`, s.root, s.log, cert, key, pasv))
	s.proc = startBg(t, s.kind, filepath.Join(dir, "vsftpd.out"), ns, "vsftpd", conf)
	if !waitFor(50, 100*time.Millisecond, func() bool {
		if s.proc.exited() {
			return true
		}
		out, _ := runIn(5*time.Second, ns, "ss", "-Hltn", "sport = :21")
		return strings.TrimSpace(out) != ""
	}) || s.proc.exited() {
		t.Fatalf("vsftpd (TLS) did not listen on port 21 within 5 s (exited=%v %v):\n%s\n%s", s.proc.exited(), s.proc.err, s.proc.output(), s.serverLog())
	}
	return s
}

// ftpsGet downloads f with curl over explicit FTPS (AUTH TLS, control and
// data encrypted) and checks it by SHA-256. mode: epsv, pasv or port.
func (e *e2eEnv) ftpsGet(t *testing.T, ns, host, mode string, f e2eFile) error {
	local := filepath.Join(e.dir, fmt.Sprintf("got-%d-ftps-%s", e.run.next(), mode))
	defer os.Remove(local)
	argv := []string{"curl", "-sS", "-g", "--ssl-reqd", "--insecure", "--connect-timeout", "10", "--max-time", "40",
		"--no-ftp-skip-pasv-ip"}
	switch mode {
	case "epsv":
	case "pasv":
		argv = append(argv, "--disable-epsv")
	case "port":
		argv = append(argv, "-P", "-", "--disable-eprt")
	default:
		t.Fatalf("mode %q", mode)
	}
	argv = append(argv, "-o", local, "ftp://"+urlHost(host)+"/pub/"+filepath.Base(f.path))
	t0 := time.Now()
	out, err := runIn(50*time.Second, ns, argv...)
	if err != nil {
		return fmt.Errorf("curl --ssl-reqd %s: %v\n%s", mode, err, tail(out, 10))
	}
	sum, n, err := fileSum(local)
	if err != nil || sum != f.sum || n != f.size {
		return fmt.Errorf("curl --ssl-reqd %s: %d bytes sha256 %s (%v), want %d bytes %s", mode, n, sum, err, f.size, f.sum)
	}
	t.Logf("ftps %s: %d bytes intact in %v", mode, n, time.Since(t0).Round(time.Millisecond))
	return nil
}

// ftps carries explicit FTPS through natalg: the gateway must see AUTH TLS
// answered by 234 (tls_detected), stop inspecting and leave the encrypted
// control channel alone (no rewrite; any corruption fails TLS's integrity
// check), while the passive data connections work: outbound ones under SNAT
// without help, inbound ones under DNAT through a forwarded port range,
// since the server announces the public address itself.
func (e *e2eEnv) ftps(owner, t *testing.T) {
	tlsEv := `natalg_alg_events_total{event="tls_detected"}`
	check := func(t *testing.T, before map[string]float64, sessions int) {
		after := e.metrics(t)
		d := after[tlsEv] - before[tlsEv]
		if d < float64(sessions) {
			t.Errorf("%s rose by %v for %d FTPS sessions", tlsEv, d, sessions)
		}
		t.Logf("%s +%v for %d sessions; rewrites %v -> %v", tlsEv, d, sessions, before["natalg_alg_rewrites_total"], after["natalg_alg_rewrites_total"])
		if k := "natalg_alg_rewrites_total"; after[k] != before[k] {
			t.Errorf("%s moved during FTPS sessions: %v -> %v", k, before[k], after[k])
		}
	}
	t.Run("snat-passive", func(t *testing.T) {
		s := e.startFTPS(t, e.nsOut, false)
		e.evidence(t, s)
		before := e.metrics(t)
		for _, m := range []string{"epsv", "pasv"} {
			if err := e.ftpsGet(t, e.nsIn, outHost4, m, e.run.mid); err != nil {
				t.Error(err)
			}
		}
		check(t, before, 2)
	})
	t.Run("dnat-passive", func(t *testing.T) {
		e.restartNatalg(owner, t, "--forward", "tcp:40000-40099="+inHost4)
		s := e.startFTPS(t, e.nsIn, true)
		e.evidence(t, s)
		before := e.metrics(t)
		for _, m := range []string{"pasv", "epsv"} {
			if err := e.ftpsGet(t, e.nsOut, public4, m, e.run.mid); err != nil {
				t.Error(err)
			}
		}
		check(t, before, 2)
	})
}

// ccc: FTP over TLS that returns to clear text with CCC (RFC 4217 §6), then
// an active-mode download whose PORT is sent in clear: the gateway must
// follow the TLS records of both directions, see the close_notify exchange
// end them, resume inspection and rewrite the PORT, or the server (which
// refuses a PORT naming another address than its peer's) refuses it.
// testdata/e2e/cccftp.py is both ends: vsftpd has no CCC.
func (e *e2eEnv) ccc(t *testing.T) {
	dir := filepath.Join(e.dir, fmt.Sprintf("ccc-%d", e.run.next()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	mustIn(t, "", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=natalg-e2e", "-keyout", key, "-out", cert)
	script := filepath.Join(e.run.scripts, "cccftp.py")
	srv := startBg(t, "cccftp server", filepath.Join(dir, "server.log"), e.nsOut, "/usr/bin/python3", script, "server",
		"--addr", outHost4, "--port", "21", "--cert", cert, "--key", key, "--file", e.run.small.path, "--max-sessions", "2", "--timeout", "15")
	if !waitFor(50, 100*time.Millisecond, func() bool { return srv.exited() || strings.Contains(srv.output(), "listening") }) || srv.exited() {
		t.Fatalf("cccftp server did not start:\n%s", srv.output())
	}
	var before map[string]float64
	if e.mode != "kernel" {
		before = e.metrics(t)
	}
	local := filepath.Join(dir, "got.bin")
	out, err := runIn(40*time.Second, e.nsIn, "/usr/bin/python3", script, "client", "--host", outHost4, "--port", "21", "--out", local, "--timeout", "15")
	var res struct {
		OK     bool   `json:"ok"`
		CCC    string `json:"ccc"`
		Retr   string `json:"retr"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
		Error  string `json:"error"`
	}
	if jerr := json.Unmarshal([]byte(lastLine(out)), &res); jerr != nil {
		t.Fatalf("cccftp client: %v (%v)\n%s", jerr, err, out)
	}
	port := ""
	for _, l := range strings.Split(srv.output(), "\n") {
		if strings.HasPrefix(l, "< PORT ") {
			port = strings.TrimPrefix(l, "< ")
		}
	}
	intact := res.OK && res.SHA256 == e.run.small.sum && res.Bytes == e.run.small.size
	t.Logf("CCC session: ok=%v intact=%v ccc=%q retr=%q error=%q; the server got %q", res.OK, intact, res.CCC, res.Retr, res.Error, port)
	if e.mode == "kernel" {
		t.Logf("kernel helper after CCC (contrast, not asserted): transfer intact=%v, PORT at the server %q", intact, port)
		return
	}
	if !intact || !strings.HasPrefix(port, "PORT "+strings.ReplaceAll(public4, ".", ",")+",") {
		t.Errorf("after CCC: transfer intact=%v (%s), PORT at the server %q (want the public address)\nserver log:\n%s", intact, res.Error, port, tail(srv.output(), 30))
	}
	after := e.metrics(t)
	for _, k := range []string{`natalg_alg_events_total{event="tls_detected"}`, "natalg_alg_rewrites_total", `natalg_expectations_total{event="used"}`} {
		if after[k] <= before[k] {
			t.Errorf("%s did not rise: %v -> %v", k, before[k], after[k])
		}
	}
}
