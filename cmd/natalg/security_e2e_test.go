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
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/alg"
)

const thirdParty4 = "198.18.0.99" // a second inside address: the bounce target

func TestSecurityE2E(t *testing.T) {
	e2eRequire(t)
	e2ePreclean(t)
	r := newE2ERun(t)
	r.buildNatalg(t)
	if r.natalg == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the natalg modes: " + r.natalgMissingWhy)
		}
		t.Skip(r.natalgMissingWhy)
	}
	t.Run("natalg", func(t *testing.T) {
		e := newE2EEnv(t, r, "natalg")
		mustIn(t, e.nsIn, "ip", "addr", "add", thirdParty4+"/16", "dev", "i-eth")
		e.pinholes(t)
	})
	// the kernel's helper, for contrast: logged, not asserted
	t.Run("kernel", func(t *testing.T) {
		e := newE2EEnv(t, r, "kernel")
		mustIn(t, e.nsIn, "ip", "addr", "add", thirdParty4+"/16", "dev", "i-eth")
		e.pinholes(t)
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
	cl := startBg(t, "attackftp", filepath.Join(pause, "client.log"), e.nsIn, argv...)
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
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "expect ") {
				exps = append(exps, l)
			}
		}
		if g := e.metrics(t)["natalg_expectations"]; g != float64(a.expects) {
			t.Errorf("%s: natalg_expectations = %v while the session is open, want %d", a.name, g, a.expects)
		}
	}
	t.Logf("expectations while the attacker's control connection is open (%d):\n%s", len(exps), strings.Join(exps, "\n"))

	// the outside host tries each port
	probe := func(p int) (bool, time.Duration) {
		t1 := time.Now()
		_, err := runIn(10*time.Second, e.nsOut, "/usr/bin/python3", "-c",
			"import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()",
			public4, strconv.Itoa(p))
		return err == nil, time.Since(t1)
	}
	reached := map[int]bool{}
	for _, p := range append(append([]int{}, a.closed...), a.open...) {
		ok, d := probe(p)
		reached[p] = ok
		t.Logf("outside %s -> %s:%d: connected=%v (%v)", outHost4, public4, p, ok, d.Round(time.Millisecond))
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
			if after[k] != before[k] {
				t.Errorf("%s: %s moved: %v -> %v", a.name, k, before[k], after[k])
			}
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
	expRE := regexp.MustCompile(`^expect tcp from ` + regexp.QuoteMeta(outHost4) + ` to ` + regexp.QuoteMeta(public4) + `:` + live + ` -> ` + regexp.QuoteMeta(inHost4) + `:` + live + ` `)
	if len(exps) != 1 || !expRE.MatchString(exps[0]) {
		t.Errorf("%s: want the one expectation of the last PORT rewritten (public port %s), got %q", a.name, live, exps)
	}
}
