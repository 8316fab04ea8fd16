package main

// Filtering e2e (issue 14, item 4; RFC 4787 §5 REQ-8): through natalg run in
// the namespaces of e2e_test.go, the inside host 198.18.0.2:PORT sends one
// UDP datagram to the outside host Y = 198.19.0.2:3478. Then Y answers from
// that port, Y from another port (3479), and a second outside address Z =
// 198.19.0.3:3478 sends too, all to the mapping the first datagram made.
// What reaches the inside host depends on --filtering: all three under eif,
// Y's two under adf (the default), Y:3478's alone under apdf. The inside
// host answers whatever reaches it, and every answer must leave from the
// same public address and port (the mapping stays endpoint-independent,
// RFC 4787 REQ-1).
//
// The same for TCP (RFC 5382 §4.3 REQ-3): the inside endpoint connects to
// Y:3478 and, keeping that connection, listens on its own port too; Y from
// port 3479 and Z then try to connect to its mapping, and get through
// under the same rules as UDP.
//
// Run: go test -run TestFilteringE2E ./cmd/natalg/ (root).

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const outHostZ4 = "198.19.0.3" // a second outside address

func TestFilteringE2E(t *testing.T) {
	e2eRequire(t)
	e2ePreclean(t)
	r := newE2EWork(t, 64<<10, 64<<10) // no transfers here: small payloads
	r.buildNatalg(t)
	if r.natalg == "" {
		t.Skip(r.natalgMissingWhy)
	}
	// --filtering is the full datapath's: in the split one the kernel
	// translates every flow but FTP control, with its own conntrack's
	// filtering (only replies of a connection get in).
	t.Run("natalg-full", func(t *testing.T) {
		mt := t
		e := newE2EEnv(t, r, "natalg-full")
		mustIn(t, e.nsOut, "ip", "addr", "add", outHostZ4+"/16", "dev", "o-eth")
		for i, c := range []struct {
			name string
			args []string
			want []string // the tags that reach the inside host
			tcp  []string // the outside endpoints that connect to it
		}{
			{"eif", []string{"--filtering", "eif"}, []string{"from-y", "from-y2", "from-z"}, []string{"y2", "z"}},
			{"adf-default", nil, []string{"from-y", "from-y2"}, []string{"y2"}},
			{"adf", []string{"--filtering", "adf"}, []string{"from-y", "from-y2"}, []string{"y2"}},
			{"apdf", []string{"--filtering", "apdf"}, []string{"from-y"}, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				e.restartNatalg(mt, t, c.args...)
				e.udpFiltering(t, 5000+i, c.want)
				e.tcpFiltering(t, 5100+i, c.tcp)
			})
		}
	})
}

var (
	gotRE     = regexp.MustCompile(`(?m)^got (\S+) from (\S+)$`)
	mappingRE = regexp.MustCompile(`(?m)^mapping (\S+)$`)
	backRE    = regexp.MustCompile(`(?m)^back-to (\S+) from (\S+)$`)
)

// udpFiltering runs testdata/e2e/filterprobe.py on both hosts, the inside one
// sending from port, and checks that exactly the tags want reach it.
func (e *e2eEnv) udpFiltering(t *testing.T, port int, want []string) {
	script := filepath.Join(e.run.scripts, "filterprobe.py")
	out := startBg(t, "filterprobe outside", filepath.Join(e.dir, fmt.Sprintf("filterprobe-%d.log", e.run.next())), e.nsOut,
		"/usr/bin/python3", script, "outside", outHost4, "3478", "3479", outHostZ4, "3478", "6")
	if !waitFor(50, 100*time.Millisecond, func() bool { return out.exited() || strings.Contains(out.output(), "listening") }) || out.exited() {
		t.Fatalf("outside probe did not start:\n%s", out.output())
	}
	in, err := runIn(15*time.Second, e.nsIn, "/usr/bin/python3", script, "inside", inHost4, strconv.Itoa(port), outHost4, "3478", "4")
	if err != nil {
		t.Fatalf("inside probe: %v\n%s", err, in)
	}
	select {
	case <-out.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("outside probe did not end:\n%s", out.output())
	}
	outLog := out.output()
	t.Logf("inside host:\n%s\noutside host:\n%s", strings.TrimSpace(in), strings.TrimSpace(outLog))
	m := mappingRE.FindStringSubmatch(outLog)
	if m == nil {
		t.Fatalf("the first datagram did not reach the outside host")
	}
	mapping := m[1]
	if !strings.HasPrefix(mapping, public4+":") {
		t.Fatalf("mapping %s is not on the public address %s", mapping, public4)
	}
	var got []string
	for _, g := range gotRE.FindAllStringSubmatch(in, -1) {
		got = append(got, g[1])
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("reached the inside host: %v, want %v", got, want)
	}
	// The inside host answered each of them, and every answer left from
	// the one mapping.
	backs := backRE.FindAllStringSubmatch(outLog, -1)
	if len(backs) != len(got) {
		t.Errorf("%d answers reached the outside host, want %d", len(backs), len(got))
	}
	for _, b := range backs {
		if b[2] != mapping {
			t.Errorf("the answer to %s left from %s, not from the mapping %s", b[1], b[2], mapping)
		}
	}
	// What was kept out is counted as filtered (the daemon is fresh).
	if n := e.filtered(t); n != 3-len(want) {
		t.Errorf("natalg_drops_total{reason=\"filtered\"} %d, want %d", n, 3-len(want))
	}
}

// filtered returns the daemon's count of packets dropped as filtered.
func (e *e2eEnv) filtered(t *testing.T) int {
	t.Helper()
	metrics, err := runIn(10*time.Second, e.nsR, "curl", "-sS", "--max-time", "5", "http://"+e2eMetricsAddr+"/metrics")
	if err != nil {
		t.Fatalf("metrics: %v\n%s", err, metrics)
	}
	fm := regexp.MustCompile(`(?m)^natalg_drops_total\{reason="filtered"\} (\d+)$`).FindStringSubmatch(metrics)
	if fm == nil {
		t.Fatal("no filtered counter in the metrics")
	}
	n, _ := strconv.Atoi(fm[1])
	return n
}

var (
	reachedRE = regexp.MustCompile(`(?m)^reached (\S+) as (\S+)$`)
	acceptRE  = regexp.MustCompile(`(?m)^got from (\S+)$`)
)

// tcpFiltering runs the TCP probe of testdata/e2e/filterprobe.py: the
// inside endpoint connects from port to Y:3478 and listens on port; want
// are the outside endpoints ("y2" = Y:3479, "z" = Z:3478) that must get a
// connection to it through its mapping.
func (e *e2eEnv) tcpFiltering(t *testing.T, port int, want []string) {
	before := e.filtered(t)
	script := filepath.Join(e.run.scripts, "filterprobe.py")
	out := startBg(t, "filterprobe tcp-outside", filepath.Join(e.dir, fmt.Sprintf("filterprobe-%d.log", e.run.next())), e.nsOut,
		"/usr/bin/python3", script, "tcp-outside", outHost4, "3478", "3479", outHostZ4, "3478", "8")
	if !waitFor(50, 100*time.Millisecond, func() bool { return out.exited() || strings.Contains(out.output(), "listening") }) || out.exited() {
		t.Fatalf("outside TCP probe did not start:\n%s", out.output())
	}
	in, err := runIn(20*time.Second, e.nsIn, "/usr/bin/python3", script, "tcp-inside", inHost4, strconv.Itoa(port), outHost4, "3478", "7")
	if err != nil {
		t.Fatalf("inside TCP probe: %v\n%s", err, in)
	}
	select {
	case <-out.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("outside TCP probe did not end:\n%s", out.output())
	}
	outLog := out.output()
	t.Logf("TCP, inside host:\n%s\noutside host:\n%s", strings.TrimSpace(in), strings.TrimSpace(outLog))
	m := mappingRE.FindStringSubmatch(outLog)
	if m == nil || !strings.HasPrefix(m[1], public4+":") {
		t.Fatalf("the inside host's connection did not reach the outside host from the public address")
	}
	mapping := m[1]
	var reached []string
	for _, r := range reachedRE.FindAllStringSubmatch(outLog, -1) {
		reached = append(reached, r[1])
	}
	if !slices.Equal(reached, want) {
		t.Errorf("connected through the mapping %s: %v, want %v", mapping, reached, want)
	}
	// The inside listener saw each connection from its real source (and
	// its SYN+ACK left from the mapping, or the connect would not have
	// completed).
	source := map[string]string{"y2": outHost4 + ":3479", "z": outHostZ4 + ":3478"}
	var wantFrom, from []string
	for _, w := range want {
		wantFrom = append(wantFrom, source[w])
	}
	for _, a := range acceptRE.FindAllStringSubmatch(in, -1) {
		from = append(from, a[1])
	}
	if !slices.Equal(from, wantFrom) {
		t.Errorf("the inside host accepted connections from %v, want %v", from, wantFrom)
	}
	if n := e.filtered(t) - before; (n > 0) != (len(want) < 2) {
		t.Errorf("%d TCP SYNs counted as filtered, want some exactly when a peer was refused", n)
	}
}
