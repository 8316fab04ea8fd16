package main

// NAT64 crash end-to-end test: NAT64 flows run on the TUN device and have no
// kernel conntrack entry to rebuild from, so --state carries them: with
// --state-interval natalg run writes a snapshot while running, and a start
// after a SIGKILL restores NAT64's plain flows from it. A TCP download
// from the IPv4 server to the IPv6 client, killed a quarter of the way,
// completes intact.
//
// Run: go test -run TestNAT64CrashE2E ./cmd/natalg/ (root; skips otherwise,
// except under CI, where it fails).

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNAT64CrashE2E(t *testing.T) {
	nat64Require(t)
	e2ePreclean(t)
	r := newNAT64Run(t)
	r.buildNatalg(t)
	if r.natalg == "" {
		t.Fatal(r.natalgMissingWhy)
	}
	e := newNAT64Env(t, r)
	state := filepath.Join(e.dir, "natalg.state")
	start := func() {
		t.Helper()
		e.daemon = startBg(t, "natalg run", filepath.Join(e.dir, fmt.Sprintf("natalg-%d.log", e.run.next())), e.nsR, e.run.natalg, "run",
			"--nat64-prefix", n64Prefix, "--nat64-pool", n64Pool, "--nat64-dev", n64Dev,
			"--metrics", e2eMetricsAddr, "--control", e.control, "--state", state, "--state-interval", "1s")
		if !waitFor(100, 100*time.Millisecond, func() bool {
			return e.daemon.exited() || strings.Contains(e.daemon.output(), "msg=ready")
		}) || e.daemon.exited() {
			t.Fatalf("natalg run --state not ready within 10 s:\n%s", tail(e.daemon.output(), 40))
		}
	}
	if err := e.daemon.stop(10 * time.Second); err != nil {
		t.Fatalf("natalg run did not exit cleanly on SIGTERM: %v", err)
	}
	start()
	dir := filepath.Join(e.dir, "crash64")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(r.scripts, "crashxfer.py")
	srv := startBg(t, "sender", filepath.Join(dir, "server.log"), e.nsOut, "/usr/bin/python3", script,
		"send", "--listen", "8000", "--file", r.mid.path, "--pause-dir", dir)
	waitFile(t, dir, "listening", srv)
	quarter := fmt.Sprint(r.mid.size / 4)
	cl := startBg(t, "receiver", filepath.Join(dir, "client.log"), e.nsIn, "/usr/bin/python3", script,
		"recv", "--connect", "["+n64ServerV6+"]:8000", "--pause-dir", dir, "--rate", quarter, "--midway", quarter)
	waitFile(t, dir, "midway", cl)
	// a snapshot taken since the flow exists
	t0 := time.Now()
	if !waitFor(50, 100*time.Millisecond, func() bool {
		fi, err := os.Stat(state)
		return err == nil && fi.ModTime().After(t0)
	}) {
		t.Fatalf("no state snapshot within 5 s")
	}
	if err := syscall.Kill(-e.daemon.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.daemon.done
	os.Remove(e.control)
	start()
	restored := grepLines(e.daemon.output(), "state:")
	t.Logf("after the kill: %s", restored)
	if !regexp.MustCompile(`msg="state: restored".* flows=[1-9]`).MatchString(restored) {
		t.Errorf("the NAT64 flow was not restored from the snapshot: %s", restored)
	}
	res := waitResult(t, cl)
	checkGot(t, "NAT64 download across the kill", res["recv"], r.mid)
}
