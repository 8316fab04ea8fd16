package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natalg/natalg/bench"
)

const kernel = "../../testdata/kernel/"

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func caseArgs(t *testing.T, name string) []string {
	b, err := os.ReadFile(kernel + name + "/args")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func TestReplayCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.pcap")
	args := append([]string{"replay"}, caseArgs(t, "snat-port")...)
	args = append(args, kernel+"snat-port/in.pcap", out, "--expect", kernel+"snat-port/golden.pcap", "--show")
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 || !strings.Contains(stdout, "identical to") || !strings.Contains(stdout, `after  "PORT 198,19,100,100,`) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "packets: in 108, out 108, dropped 0") {
		t.Fatalf("summary missing:\n%s", stdout)
	}
}

func TestReplayCommandReportsDifferences(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.pcap")
	// Translating with another public address than the kernel used must
	// not pass for the kernel's output.
	code, stdout, _ := runCmd(t, "replay", "--inside", "198.18.0.0/16", "--public", "198.19.100.101",
		kernel+"snat-port/in.pcap", out, "--expect", kernel+"snat-port/golden.pcap")
	if code != 1 || !strings.Contains(stdout, "DIFFERENT") || !strings.Contains(stdout, "want tcp") {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
}

func TestReplayCommandErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pcap")
	os.WriteFile(garbage, []byte("this is not a capture at all"), 0o644)
	truncated := filepath.Join(dir, "truncated.pcap")
	b, _ := os.ReadFile(kernel + "snat-port/in.pcap")
	os.WriteFile(truncated, b[:len(b)/2+7], 0o644)
	out := filepath.Join(dir, "out.pcap")
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"replay", "--inside", "198.18.0.0/16", "a", "b"}, 2, "--public is required"},
		{[]string{"replay", "--public", "198.19.0.1", "a", "b"}, 2, "nothing to translate"},
		{[]string{"replay", "--inside", "198.18.0.0/16", "--public", "198.19.0.1", "a"}, 2, "want IN.pcap OUT.pcap"},
		{[]string{"replay", "--inside", "nonsense", "--public", "198.19.0.1", "a", "b"}, 2, "not a prefix"},
		{[]string{"replay", "--inside", "198.18.0.0/16", "--public", "198.19.0.1", "--forward", "tcp:21", "a", "b"}, 2, "forward"},
		{[]string{"replay", "--inside", "fd00::/64", "--public", "198.19.0.1", "a", "b"}, 2, "no public address of its family"},
		{[]string{"replay", "--inside", "198.18.0.0/16", "--public", "198.19.0.1", filepath.Join(dir, "missing.pcap"), out}, 1, "no such file"},
		{[]string{"replay", "--inside", "198.18.0.0/16", "--public", "198.19.0.1", garbage, out}, 1, "garbage.pcap"},
		{[]string{"replay", "--inside", "198.18.0.0/16", "--public", "198.19.0.1", truncated, out}, 1, "truncated.pcap"},
		{[]string{"replay", "--inside", "198.18.0.0/16", "--public", "198.19.0.1", kernel + "snat-port/in.pcap", filepath.Join(dir, "no/such/dir/out.pcap")}, 1, "no such file"},
	}
	for _, c := range cases {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.msg) {
			t.Errorf("%v: exit %d (want %d)\nstdout: %s\nstderr: %s", c.args, code, c.code, stdout, stderr)
		}
	}
}

// TestBenchRounds: natalg bench --rounds runs the flow counts in turn and
// ends with a summary object of as many rounds, the medians of the last
// count under a Result's names.
func TestBenchRounds(t *testing.T) {
	code, stdout, stderr := runCmd(t, "bench", "--scenario", "established", "--flows", "500,3000",
		"--packets", "20000", "--rounds", "3", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 6 runs and a summary:\n%s", len(lines), stdout)
	}
	var s bench.Summary
	if err := json.Unmarshal([]byte(lines[6]), &s); err != nil {
		t.Fatal(err)
	}
	if s.Rounds != 3 || len(s.Counts) != 2 || s.Counts[1].Flows != 3000 || s.Flows != 3000 ||
		s.Counts[0].CPURatio != 1 || s.Counts[1].CPURatio <= 0 || s.CPUNsPerPacket != s.Counts[1].CPUNsPerPacket {
		t.Fatalf("summary %+v", s)
	}
	if code, _, _ := runCmd(t, "bench", "--flows", "500", "--rounds", "0"); code != 2 {
		t.Fatalf("--rounds 0: exit %d, want 2", code)
	}
}
