package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlotFromBenchJSON: the JSON lines of two rounds and their summary
// give a PNG of the last round's runs.
func TestPlotFromBenchJSON(t *testing.T) {
	in := strings.Join([]string{
		`{"scenario":"established","flows":1000,"workers":1,"packet_size":100,"ns_per_packet":50,"bytes_per_flow":300}`,
		`{"scenario":"established","flows":100,"workers":1,"packet_size":100,"ns_per_packet":40,"bytes_per_flow":320}`,
		`{"scenario":"established","flows":1000,"workers":1,"packet_size":100,"ns_per_packet":55,"bytes_per_flow":310}`,
		`{"scenario":"established","flows":100,"workers":1,"packet_size":100,"ns_per_packet":42,"bytes_per_flow":330}`,
		`{"scenario":"established","rounds":2,"counts":[]}`,
	}, "\n")
	rs, err := readResults(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	rs = lastPerFlowCount(rs)
	if len(rs) != 2 || rs[0].Flows != 100 || rs[0].NsPerPacket != 42 || rs[1].Flows != 1000 || rs[1].NsPerPacket != 55 {
		t.Fatalf("plotted runs %+v %+v, want the last round's, by flow count", rs[0], rs[1])
	}
	png := filepath.Join(t.TempDir(), "out.png")
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"-o", png}, strings.NewReader(in), &stdout, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	b, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s is not a PNG", png)
	}
	if rc := run([]string{"-o", png}, strings.NewReader("{\"rounds\":1}\n"), &stdout, &stderr); rc == 0 {
		t.Fatal("input without results: exit 0")
	}
}
