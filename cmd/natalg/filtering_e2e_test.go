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
	t.Run("natalg", func(t *testing.T) {
		mt := t
		e := newE2EEnv(t, r, "natalg")
		mustIn(t, e.nsOut, "ip", "addr", "add", outHostZ4+"/16", "dev", "o-eth")
		for i, c := range []struct {
			name string
			args []string
			want []string // the tags that reach the inside host
		}{
			{"eif", []string{"--filtering", "eif"}, []string{"from-y", "from-y2", "from-z"}},
			{"adf-default", nil, []string{"from-y", "from-y2"}},
			{"adf", []string{"--filtering", "adf"}, []string{"from-y", "from-y2"}},
			{"apdf", []string{"--filtering", "apdf"}, []string{"from-y"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				e.restartNatalg(mt, t, c.args...)
				e.udpFiltering(t, 5000+i, c.want)
			})
		}
	})
}

var (
	gotRE     = regexp.MustCompile(`(?m)^got (\S+) from (\S+)$`)
	mappingRE = regexp.MustCompile(`(?m)^mapping (\S+)$`)
	backRE    = regexp.MustCompile(`(?m)^back-to (\S+) from (\S+)$`)
)

// udpFiltering runs testdata/e2e/udpfilter.py on both hosts, the inside one
// sending from port, and checks that exactly the tags want reach it.
func (e *e2eEnv) udpFiltering(t *testing.T, port int, want []string) {
	script := filepath.Join(e.run.scripts, "udpfilter.py")
	out := startBg(t, "udpfilter outside", filepath.Join(e.dir, fmt.Sprintf("udpfilter-%d.log", e.run.next())), e.nsOut,
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
	// What was kept out is counted as filtered.
	metrics, err := runIn(10*time.Second, e.nsR, "curl", "-sS", "--max-time", "5", "http://"+e2eMetricsAddr+"/metrics")
	if err != nil {
		t.Fatalf("metrics: %v\n%s", err, metrics)
	}
	fm := regexp.MustCompile(`(?m)^natalg_drops_total\{reason="filtered"\} (\d+)$`).FindStringSubmatch(metrics)
	if fm == nil {
		t.Fatal("no filtered counter in the metrics")
	}
	if n, _ := strconv.Atoi(fm[1]); n != 3-len(want) {
		t.Errorf("natalg_drops_total{reason=\"filtered\"} %d, want %d", n, 3-len(want))
	}
}
