package main

// NAT64 state end-to-end test (natalg run --state with --nat64-prefix and
// --nat64-pool): the NAT64 topology of nat64_e2e_test.go, the client of
// state_e2e_test.go (testdata/e2e/restartftp.py) on the IPv6-only client,
// vsftpd on the IPv4-only server. Active mode over IPv6 is EPRT |2|, which
// the gateway turns into a PORT with a pool address (RFC 6384 §5.2): with
// the client's data ports 50001, 50002, 50003, "EPRT |2|fd00:64::2|50001|"
// becomes "PORT 198,19,64,24,195,81" (the client's pool address is a hash
// of its address: .24), one byte shorter, so the client's sequence numbers
// are shifted by -1, -2, then -3.
//
// On one control connection: a download, the daemon stopped (SIGTERM, the
// state saved) while the client sends NOOP, the daemon started again (the
// state restored: the control flow, its sequence corrections, its pool
// binding), a second download, a third EPRT answered, the daemon restarted
// once more with that data connection's expectation pending, and the third
// download over it.
//
// Run: go test -run TestNAT64StateE2E ./cmd/natalg/ (root; skips otherwise,
// except under CI, where it fails).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNAT64StateE2E(t *testing.T) {
	nat64Require(t)
	e2ePreclean(t)
	r := newNAT64Run(t)
	r.buildNatalg(t)
	if r.natalg == "" {
		t.Fatal(r.natalgMissingWhy)
	}
	e := newNAT64Env(t, r)
	state := filepath.Join(e.dir, "natalg.state")
	// stop stops the daemon, which saves the state.
	stop := func() {
		t.Helper()
		if err := e.daemon.stop(10 * time.Second); err != nil {
			t.Fatalf("natalg run did not exit cleanly on SIGTERM: %v\n%s", err, tail(e.daemon.output(), 30))
		}
	}
	// start starts the daemon with --state (the env's cleanup stops
	// whatever e.daemon is then) and returns its state: log lines.
	start := func() string {
		t.Helper()
		e.daemon = startBg(t, "natalg run", filepath.Join(e.dir, fmt.Sprintf("natalg-%d.log", e.run.next())), e.nsR, e.run.natalg, "run",
			"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--nat64-dev", n64Dev,
			"--metrics", e2eMetricsAddr, "--control", e.control, "--state", state)
		if !waitFor(100, 100*time.Millisecond, func() bool {
			return e.daemon.exited() || strings.Contains(e.daemon.output(), "msg=ready")
		}) || e.daemon.exited() {
			t.Fatalf("natalg run --state not ready within 10 s:\n%s", tail(e.daemon.output(), 40))
		}
		return grepLines(e.daemon.output(), "state:")
	}
	// flows logs the daemon's view of the control flow, which must carry
	// the sequence delta want.
	flows := func(when string, want int) {
		t.Helper()
		out, err := runIn(10*time.Second, "", e.run.natalg, "flows", "--control", e.control)
		if err != nil {
			t.Errorf("natalg flows %s: %v\n%s", when, err, out)
			return
		}
		var ls []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, ":21 ") || strings.Contains(l, ":21\t") || strings.HasSuffix(l, ":21") || strings.Contains(l, "seq_delta") {
				ls = append(ls, l)
			}
		}
		t.Logf("natalg flows %s:\n  %s", when, strings.Join(ls, "\n  "))
		re := regexp.MustCompile(fmt.Sprintf(`ESTABLISHED .*nat64 \[%s\]:\d+ -> .*:21 .*seq_delta=%+d `, regexp.QuoteMeta(n64Client), want))
		if len(ls) != 1 || !re.MatchString(ls[0]) {
			t.Errorf("natalg flows %s: want one ESTABLISHED NAT64 FTP control flow with seq_delta=%+d", when, want)
		}
	}
	stop()
	start()
	s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
	e.evidence(t, s)
	pause := filepath.Join(e.dir, fmt.Sprintf("restart-%d", e.run.next()))
	if err := os.MkdirAll(pause, 0o755); err != nil {
		t.Fatal(err)
	}
	cl := startBg(t, "restartftp.py", filepath.Join(pause, "client.log"), e.nsIn, "/usr/bin/python3",
		filepath.Join(e.run.scripts, "restartftp.py"), "--host", n64ServerV6, "--remote", "pub/small.bin",
		"--local", filepath.Join(pause, "got"), "--pause-dir", pause, "--pending", "--data-port", "50001")
	waitPause := func(name string) {
		t.Helper()
		if !waitFor(300, 100*time.Millisecond, func() bool {
			_, err := os.Stat(filepath.Join(pause, name))
			return err == nil || cl.exited()
		}) || cl.exited() {
			t.Fatalf("client did not reach %s within 30 s:\n%s", name, cl.output())
		}
	}
	waitPause("ready")
	flows("before the restart", -1)
	stop()
	t.Logf("daemon log at shutdown: %s", grepLines(e.daemon.output(), "state:"))
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file after SIGTERM: %v %v", fi, err)
	}
	// the NOOP goes while no daemon translates (the device and its routes
	// are gone: the router answers unreachable, TCP retransmits)
	writeFile(t, filepath.Join(pause, "go"), 0o644, "")
	time.Sleep(1500 * time.Millisecond)
	restoredRE := regexp.MustCompile(`msg="state: restored".* flows=[1-9].* ftp=1 .* skipped_config=0 `)
	got := start()
	t.Logf("daemon log at start: %s", got)
	if !restoredRE.MatchString(got) {
		t.Errorf("the daemon did not restore the NAT64 FTP control flow: %s", got)
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("state file %s still there after it was loaded", state)
	}
	waitPause("ported")
	flows("after the restart, third EPRT answered", -3)
	stop()
	got = start()
	t.Logf("restarted with the data connection's expectation pending: %s", got)
	if !regexp.MustCompile(`msg="state: restored".* ftp=1 expectations=1 `).MatchString(got) {
		t.Errorf("the daemon did not restore the pending expectation: %s", got)
	}
	writeFile(t, filepath.Join(pause, "go2"), 0o644, "")
	if !waitFor(600, 100*time.Millisecond, cl.exited) {
		t.Fatalf("client did not finish within 60 s:\n%s", cl.output())
	}
	out := strings.TrimSpace(cl.output())
	var res restartResult
	if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil {
		t.Fatalf("client output is not JSON: %v\n%s", err, out)
	}
	t.Logf("client: %s", lastLine(out))
	if res.FailedAt != "" {
		t.Logf("vsftpd log (tail):\n%s", tail(s.serverLog(), 12))
		t.Fatalf("session failed at %s: %s", res.FailedAt, res.Error)
	}
	for _, g := range []struct {
		name string
		got  *restartGot
	}{{"get1", res.Get1}, {"get2", res.Get2}, {"get3", res.Get3}} {
		if g.got == nil || g.got.SHA256 != r.small.sum || g.got.Bytes != r.small.size {
			t.Errorf("%s: got %+v, want %d bytes sha256 %s", g.name, g.got, r.small.size, r.small.sum)
		}
	}
	// what vsftpd was told: PORT with the pool address, three times
	var ports []string
	for _, l := range strings.Split(s.serverLog(), "\n") {
		if i := strings.Index(l, `"PORT `); i >= 0 {
			ports = append(ports, strings.TrimSuffix(l[i+1:], `"`))
		}
	}
	t.Logf("PORT commands at the server: %q", ports)
	if want := []string{"PORT 198,19,64,24,195,81", "PORT 198,19,64,24,195,82", "PORT 198,19,64,24,195,83"}; strings.Join(ports, "|") != strings.Join(want, "|") {
		t.Errorf("PORT commands at vsftpd %q, want %q", ports, want)
	}
}
