package main

// LPRT and LPSV (RFC 1639) through natalg run: inetutils-ftp falls back to
// "LPRT 4,4,..." when PORT fails, and a NAT that passes it unrewritten
// leaks the inside address and breaks the transfer. vsftpd and ProFTPD do
// not speak LPRT, so testdata/e2e/lprtftp.py is both the server and the
// client. Same topology and helpers as e2e_test.go.
//
// Run: go test -run TestLPRTE2E ./cmd/natalg/ (root; skips otherwise,
// except under CI, where it fails).

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lprtResult is what lprtftp.py client prints.
type lprtResult struct {
	OK        bool     `json:"ok"`
	Replies   []string `json:"replies"`
	Announced string   `json:"announced"`
	Reply228  string   `json:"reply228"`
	Bytes     int      `json:"bytes"`
	Error     string   `json:"error"`
}

// lprtServerLog is what lprtftp.py server prints.
type lprtServerLog struct {
	Lines []string `json:"lines"`
	LPRT  string   `json:"lprt"`
	Error string   `json:"error"`
}

func TestLPRTE2E(t *testing.T) {
	r := newNatalgRun(t)
	for _, mode := range e2eNatalgModes {
		t.Run(mode, func(t *testing.T) { testLPRT(t, r, mode) })
	}
}

// testLPRT is TestLPRTE2E in one datapath.
func testLPRT(t *testing.T, r *e2eRun, mode string) {
	e := newE2EEnv(t, r, mode)
	script := filepath.Join(r.scripts, "lprtftp.py")
	// session runs lprtftp.py's server in serverNS on listen and its client
	// in clientNS against host, and returns both reports.
	session := func(t *testing.T, name, serverNS, listen, clientNS, host, me, mode string) (lprtResult, lprtServerLog) {
		t.Helper()
		srv := startBg(t, name+" server", filepath.Join(e.dir, name+"-server.log"), serverNS,
			"/usr/bin/python3", script, "server", "--listen", listen, "--timeout", "20")
		if !waitFor(50, 100*time.Millisecond, func() bool { return strings.Contains(srv.output(), "listening") }) {
			t.Fatalf("%s server not listening:\n%s", name, srv.output())
		}
		out, err := runIn(60*time.Second, clientNS, "/usr/bin/python3", script, "client", "--host", host, "--me", me, "--mode", mode)
		var res lprtResult
		if jerr := json.Unmarshal([]byte(lastLine(out)), &res); jerr != nil {
			t.Fatalf("%s client: %v (%v)\n%s", name, jerr, err, out)
		}
		if !waitFor(100, 100*time.Millisecond, srv.exited) {
			t.Fatalf("%s server did not end:\n%s", name, srv.output())
		}
		var log lprtServerLog
		if jerr := json.Unmarshal([]byte(lastLine(srv.output())), &log); jerr != nil {
			t.Fatalf("%s server: %v\n%s", name, jerr, srv.output())
		}
		t.Logf("%s: client %+v; server got %q", name, res, log.Lines)
		return res, log
	}
	// SNAT, active: the client inside announces its own address with LPRT;
	// the server outside must see the public address and reach the client.
	t.Run("snat-lprt", func(t *testing.T) {
		before := e.metrics(t)
		res, log := session(t, "snat-lprt", e.nsOut, outHost4, e.nsIn, outHost4, inHost4, "lprt")
		port := res.Announced[strings.LastIndexByte(res.Announced, ':')+1:]
		if e.datapath() == "full" {
			if want := public4 + ":" + port; log.LPRT != want {
				t.Errorf("server got LPRT for %q, want %q (the public address, the client's port)", log.LPRT, want)
			}
		} else if host, p, _ := strings.Cut(log.LPRT, ":"); host != public4 || atoiOr0(p) < 49152 {
			// split: natalg's ports are its own range (--ports 49152-65535)
			t.Errorf("server got LPRT for %q, want %s and a port of natalg's range", log.LPRT, public4)
		}
		if !res.OK || res.Bytes != 256<<10 {
			t.Errorf("active transfer after LPRT: ok=%v, %d bytes, %s", res.OK, res.Bytes, res.Error)
		}
		after := e.metrics(t)
		if k := "natalg_alg_rewrites_total"; after[k] <= before[k] {
			t.Errorf("%s did not rise: %v -> %v", k, before[k], after[k])
		}
	})
	// DNAT, passive: the server inside answers LPSV with its own address in
	// the 228; the client outside must see the public address.
	t.Run("dnat-lpsv", func(t *testing.T) {
		res, log := session(t, "dnat-lpsv", e.nsIn, inHost4, e.nsOut, public4, outHost4, "lpsv")
		host, port, ok := strings.Cut(res.Reply228, ":")
		if !ok || host != public4 {
			t.Errorf("client got the 228 endpoint %q, want %s:port (the public address)", res.Reply228, public4)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1024 {
			t.Errorf("228 port %q", port)
		}
		if !res.OK || res.Bytes != 256<<10 {
			t.Errorf("passive transfer after LPSV: ok=%v, %d bytes, %s (server: %s)", res.OK, res.Bytes, res.Error, log.Error)
		}
	})
}

// atoiOr0 is strconv.Atoi with 0 for what is not a number.
func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
