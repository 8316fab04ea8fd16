package main

// Crash-only end-to-end test: natalg run is killed with SIGKILL in the
// middle of a transfer and started again at once with the same flags and
// no state file. It rebuilds its table from the kernel's conntrack entries
// (the connection mark holds each flow's kind and public port, the labels
// an FTP control connection's sequence offsets) and every transfer
// completes intact, and the next command on the same FTP control connection
// works. In both datapaths: in split mode only the FTP control connections
// are natalg's (the data connections, the plain TCP download and the DNAT
// upload are the kernel's); in full mode every flow is.
//
// Run: go test -run TestCrashE2E ./cmd/natalg/ (root; skips otherwise,
// except under CI, where it fails).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCrashE2E(t *testing.T) {
	r := newNatalgRun(t)
	for _, mode := range e2eNatalgModes {
		t.Run(mode, func(t *testing.T) {
			owner := t
			e := newE2EEnv(t, r, mode)
			// the same flags at every start from here on: a forward for the
			// DNAT upload, no --state
			extra := []string{"--forward", "tcp:8080=" + inHost4 + ":8080"}
			e.restartNatalg(owner, t, extra...)
			s := e.startFTPD(t, "vsftpd", e.nsOut, 4)
			e.evidence(t, s)
			// first: the control connection is then the only one in the
			// table, for logControlFlow
			t.Run("ftp-active-grown-port", func(t *testing.T) { e.crashFTP(owner, t, "port", extra) })
			t.Run("ftp-passive", func(t *testing.T) { e.crashFTP(owner, t, "pasv", extra) })
			t.Run("tcp-download", func(t *testing.T) {
				dir := e.crashDir(t)
				srv := startBg(t, "sender", filepath.Join(dir, "server.log"), e.nsOut, "/usr/bin/python3", e.crashScript(),
					"send", "--listen", "8000", "--file", r.mid.path, "--pause-dir", dir)
				waitFile(t, dir, "listening", srv)
				cl := startBg(t, "receiver", filepath.Join(dir, "client.log"), e.nsIn, "/usr/bin/python3", e.crashScript(),
					"recv", "--connect", outHost4+":8000", "--pause-dir", dir)
				waitFile(t, dir, "midway", cl)
				e.crash(owner, t, extra)
				res := waitResult(t, cl)
				checkGot(t, "download", res["recv"], r.mid)
				e.checkRebuilt(t, map[string]int{"natalg-full": 1})
			})
			t.Run("dnat-upload", func(t *testing.T) {
				dir := e.crashDir(t)
				srv := startBg(t, "receiver", filepath.Join(dir, "server.log"), e.nsIn, "/usr/bin/python3", e.crashScript(),
					"recv", "--listen", "8080", "--pause-dir", dir)
				waitFile(t, dir, "listening", srv)
				cl := startBg(t, "sender", filepath.Join(dir, "client.log"), e.nsOut, "/usr/bin/python3", e.crashScript(),
					"send", "--connect", public4+":8080", "--file", r.mid.path, "--pause-dir", dir)
				waitFile(t, dir, "midway", srv)
				e.crash(owner, t, extra)
				res := waitResult(t, srv)
				checkGot(t, "upload", res["recv"], r.mid)
				if out := waitResult(t, cl); out["failed_at"] != nil {
					t.Errorf("sender: %v", out)
				}
				e.checkRebuilt(t, map[string]int{"natalg-full": 1})
			})
			if e.datapath() == "split" {
				// Expectations are kernel state only in the split datapath
				// (full mode loses a pending one in a crash: README).
				t.Run("ftp-pending-expectation", func(t *testing.T) { e.crashPending(owner, t, extra) })
			}
		})
	}
}

// crashPending kills natalg while a PORT's expectation is pending in the
// kernel (answered 200, RETR not sent yet): the restarted natalg adopts the
// element (not a second one), the server's data connection comes in
// through it, and the element is gone once used.
func (e *e2eEnv) crashPending(owner, t *testing.T, extra []string) {
	dir := e.crashDir(t)
	cl := startBg(t, "restartftp.py", filepath.Join(dir, "client.log"), e.nsIn, "/usr/bin/python3",
		filepath.Join(e.run.scripts, "restartftp.py"), "--host", outHost4, "--remote", "pub/small.bin",
		"--local", filepath.Join(dir, "got"), "--pause-dir", dir, "--pending", "--data-port", "21000")
	waitFile(t, dir, "ready", cl)
	writeFile(t, filepath.Join(dir, "go"), 0o644, "")
	waitFile(t, dir, "ported", cl)
	before, _ := e.kernelExpectations(t)
	e.crash(owner, t, extra)
	after, nft := e.kernelExpectations(t)
	t.Logf("kernel expectations before the kill: %q; after the restart: %q\n%s", before, after, nft)
	if len(before) != 1 || len(after) != 1 {
		t.Errorf("want the one pending element kept and adopted, not doubled or lost")
	}
	if !regexp.MustCompile(`table rebuilt.* expectations=1 kernel_expectations=1 `).MatchString(e.daemon.output()) {
		t.Errorf("the restarted daemon did not adopt the pending expectation: %s", grepLines(e.daemon.output(), "crash-only"))
	}
	writeFile(t, filepath.Join(dir, "go2"), 0o644, "")
	if !waitFor(600, 100*time.Millisecond, cl.exited) {
		t.Fatalf("client did not finish within 60 s:\n%s", cl.output())
	}
	var res restartResult
	if err := json.Unmarshal([]byte(lastLine(strings.TrimSpace(cl.output()))), &res); err != nil {
		t.Fatalf("client output is not JSON: %v\n%s", err, cl.output())
	}
	if res.FailedAt != "" || res.Get3 == nil || res.Get3.SHA256 != e.run.small.sum {
		t.Errorf("download through the adopted expectation: %+v", res)
	}
	if left, _ := e.kernelExpectations(t); len(left) != 0 {
		t.Errorf("the element outlived its use (one-shot): %q", left)
	}
}

// crashFTP downloads mid.bin on one FTP control connection in mode (pasv or
// port), kills natalg when a quarter is in, restarts it, and checks the
// download, a NOOP and a second download on the same control connection.
// In active mode the client's data ports are 20000 and up: PORT
// 198,18,0,2,78,32 becomes 198,19,100,100,... (4 bytes longer at least), so
// every later client byte is shifted.
func (e *e2eEnv) crashFTP(owner, t *testing.T, mode string, extra []string) {
	dir := e.crashDir(t)
	argv := []string{"/usr/bin/python3", e.crashScript(), "ftp", "--host", outHost4, "--mode", mode,
		"--remote", "pub/mid.bin", "--next", "pub/small.bin", "--pause-dir", dir}
	if mode == "port" {
		argv = append(argv, "--data-port", "20000")
	}
	cl := startBg(t, "crashxfer.py ftp", filepath.Join(dir, "client.log"), e.nsIn, argv...)
	waitFile(t, dir, "midway", cl)
	if mode == "port" {
		e.logControlFlow(t, "before the kill", 4)
	}
	e.crash(owner, t, extra)
	if mode == "port" {
		// the adopted control connection carries the offset from its labels
		e.logControlFlow(t, "after the restart (rebuilt from the kernel)", 4)
	}
	res := waitResult(t, cl)
	checkGot(t, "download across the kill", res["get"], e.run.mid)
	if noop, _ := res["noop"].(string); !strings.HasPrefix(noop, "200") {
		t.Errorf("NOOP after the download: %q, want 200", noop)
	}
	checkGot(t, "next download on the same control connection", res["next"], e.run.small)
	want := map[string]int{"natalg": 1, "natalg-full": 2} // control (and data in full mode)
	e.checkRebuilt(t, want)
	if mode == "port" {
		ports := controlLines(e.capIn, 10)
		t.Logf("control lines on r-in: %s; on r-out: %s", ports, controlLines(e.capOut, 10))
	}
}

// crash kills natalg run with SIGKILL and starts it again at once with
// the same flags (no state file).
func (e *e2eEnv) crash(owner, t *testing.T, extra []string) {
	t.Helper()
	t0 := time.Now()
	if err := syscall.Kill(-e.daemon.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill natalg: %v", err)
	}
	<-e.daemon.done
	argv := []string{e.run.natalg, "run",
		"--inside", inside4, "--inside", inside6, "--public", public4, "--public", public6,
		"--forward", "tcp:21=" + inHost4 + ":21", "--queues", "0-1",
		"--metrics", e2eMetricsAddr, "--control", e.control, "--gso=false", "--datapath", e.datapath()}
	argv = append(argv, extra...)
	os.Remove(e.control) // a killed daemon leaves its socket
	e.daemon = startBg(owner, "natalg run", filepath.Join(e.dir, fmt.Sprintf("natalg-%d.log", e.run.next())), e.nsR, argv...)
	if !waitFor(100, 50*time.Millisecond, func() bool {
		return e.daemon.exited() || strings.Contains(e.daemon.output(), "msg=ready")
	}) || e.daemon.exited() {
		t.Fatalf("natalg run not ready within 5 s after the kill:\n%s", tail(e.daemon.output(), 40))
	}
	t.Logf("SIGKILL to ready: %v; %s", time.Since(t0).Round(time.Millisecond), grepLines(e.daemon.output(), "crash-only"))
}

// checkRebuilt checks that the restarted daemon adopted at least want[mode]
// flows from the kernel.
func (e *e2eEnv) checkRebuilt(t *testing.T, want map[string]int) {
	t.Helper()
	m := regexp.MustCompile(`table rebuilt.* flows=(\d+)`).FindStringSubmatch(e.daemon.output())
	if m == nil {
		t.Errorf("the restarted daemon did not rebuild its table:\n%s", tail(e.daemon.output(), 20))
		return
	}
	var n int
	fmt.Sscan(m[1], &n)
	if n < want[e.mode] {
		t.Errorf("rebuilt %d flows, want at least %d: %s", n, want[e.mode], m[0])
	}
}

func (e *e2eEnv) crashScript() string { return filepath.Join(e.run.scripts, "crashxfer.py") }

func (e *e2eEnv) crashDir(t *testing.T) string {
	dir := filepath.Join(e.dir, fmt.Sprintf("crash-%d", e.run.next()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitFile waits (30 s at most) for dir/name, which p creates.
func waitFile(t *testing.T, dir, name string, p *bgProc) {
	t.Helper()
	if !waitFor(300, 100*time.Millisecond, func() bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil || p.exited()
	}) || p.exited() {
		t.Fatalf("%s did not reach %s within 30 s:\n%s", p.name, name, p.output())
	}
}

// waitResult waits (90 s at most) for p to finish and returns its JSON.
func waitResult(t *testing.T, p *bgProc) map[string]any {
	t.Helper()
	if !waitFor(900, 100*time.Millisecond, p.exited) {
		t.Fatalf("%s did not finish within 90 s:\n%s", p.name, p.output())
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(lastLine(strings.TrimSpace(p.output()))), &res); err != nil {
		t.Fatalf("%s: output is not JSON: %v\n%s", p.name, err, p.output())
	}
	if res["failed_at"] != nil {
		t.Errorf("%s failed at %v: %v", p.name, res["failed_at"], res["error"])
	}
	return res
}

// checkGot compares a {"sha256", "bytes"} result with f.
func checkGot(t *testing.T, what string, got any, f e2eFile) {
	t.Helper()
	m, _ := got.(map[string]any)
	sum, _ := m["sha256"].(string)
	n, _ := m["bytes"].(float64)
	if sum != f.sum || int64(n) != f.size {
		t.Errorf("%s: got %v, want %d bytes sha256 %s", what, got, f.size, f.sum)
	}
}
