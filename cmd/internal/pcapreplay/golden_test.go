package pcapreplay

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/nat"
)

// kernelCases lists the recorded sessions in testdata/kernel: each holds
// in.pcap (what reached the kernel router), golden.pcap (what the kernel's
// NAT and FTP helper sent) and args (the equivalent natalg flags).
func kernelCases(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("../../../testdata/kernel/*/args")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no recorded kernel sessions in testdata/kernel")
	}
	for i := range dirs {
		dirs[i] = filepath.Dir(dirs[i])
	}
	return dirs
}

// configFromArgs reads the args file's --inside, --public and --forward.
func configFromArgs(t *testing.T, path string) nat.Config {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	var c nat.Config
	for i := 0; i+1 < len(f); i += 2 {
		switch f[i] {
		case "--inside":
			c.Inside = append(c.Inside, netip.MustParsePrefix(f[i+1]))
		case "--public":
			c.Public = append(c.Public, netip.MustParseAddr(f[i+1]))
		case "--forward":
			fw, err := nat.ParseForward(f[i+1])
			if err != nil {
				t.Fatal(err)
			}
			c.Forwards = append(c.Forwards, fw)
		case "--nat64-prefix":
			c.NAT64Prefix = netip.MustParsePrefix(f[i+1])
		case "--nat64-pool":
			c.NAT64Pool = netip.MustParsePrefix(f[i+1])
		default:
			t.Fatalf("%s: unknown flag %q", path, f[i])
		}
	}
	return c
}

// replayDir replays dir/in.pcap through a new engine configured by
// dir/args and returns the engine, the summary and the output packets.
func replayDir(t *testing.T, dir string) (*nat.Engine, Summary, []Packet) {
	t.Helper()
	eng, err := nat.New(configFromArgs(t, filepath.Join(dir, "args")))
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(filepath.Join(dir, "in.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum, err := Replay(eng, bytes.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(&out)
	if err != nil {
		t.Fatal(err)
	}
	return eng, sum, got
}

func readFile(t *testing.T, path string) []Packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps, err := ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// TestKernelGolden replays what reached the kernel's router through natalg
// and requires natalg's output to equal what the kernel sent, byte for byte
// at the IP layer but for TTL and the IPv4 header checksum.
func TestKernelGolden(t *testing.T) {
	for _, dir := range kernelCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) { checkAgainstKernel(t, dir, 0) })
	}
}

// TestKernelLive records fresh sessions through this machine's kernel (NAT
// and FTP helper, in network namespaces of its own) and checks natalg
// against them, so the oracle is the running kernel, not only the stored
// files. It needs root and the recording tools; under CI it fails rather
// than skip when they are missing.
func TestKernelLive(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	var missing []string
	for _, c := range []string{"ip", "iptables", "ip6tables", "tcpdump", "curl", "vsftpd", "mergecap", "capinfos", "ethtool", "conntrack"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if os.Geteuid() != 0 || len(missing) > 0 {
		why := fmt.Sprintf("needs root (euid %d) and %v", os.Geteuid(), missing)
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the live kernel comparison: " + why + "; run make deps")
		}
		t.Skip(why)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../../testdata/record.sh", dir, "^(snat-port|snat-eprt|dnat-pasv-shrink|nat66-eprt)$")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("record.sh: %v\n%s", err, log.String())
	}
	cases, _ := filepath.Glob(filepath.Join(dir, "*", "args"))
	if len(cases) != 4 {
		t.Fatalf("recorded %d cases, want 4\n%s", len(cases), log.String())
	}
	for _, a := range cases {
		d := filepath.Dir(a)
		t.Run(filepath.Base(d), func(t *testing.T) { checkAgainstKernel(t, d, liveReorder) })
	}
}

// liveReorder is how far the kernel may have moved a packet in a fresh
// recording (see CompareReordered); the stored recordings are compared in
// strict order.
const liveReorder = 8

// checkAgainstKernel replays dir/in.pcap and compares with dir/golden.pcap:
// in strict order within each direction, or, with reorder > 0, allowing a
// packet to have left the kernel up to reorder places from where it
// arrived.
func checkAgainstKernel(t *testing.T, dir string, reorder int) {
	t.Helper()
	eng, sum, got := replayDir(t, dir)
	if sum.Dropped != 0 {
		t.Errorf("dropped %d packets: %v", sum.Dropped, sum.Engine.Drops)
	}
	golden := readFile(t, filepath.Join(dir, "golden.pcap"))
	if reorder == 0 {
		for _, d := range Compare(got, golden, eng.Config().Inside, 10) {
			t.Error(d)
		}
	} else {
		diffs, moved := CompareReordered(got, golden, eng.Config().Inside, 10, reorder)
		for _, d := range diffs {
			t.Error(d)
		}
		if moved > 0 {
			t.Logf("%d packets left the kernel out of their arrival order (within %d places); their bytes match", moved, reorder)
		}
	}
	// The input must differ from the golden output wherever the
	// kernel rewrote payload: a replay that changed nothing would
	// not pass for the cases where the text changed.
	if !hasPayloadChange(readFile(t, filepath.Join(dir, "in.pcap")), golden) && sum.Engine.Rewrites > 0 {
		t.Errorf("natalg rewrote %d segments where the kernel changed no payload", sum.Engine.Rewrites)
	}
	t.Logf("%d packets, %d rewrites, %d segments shifted, ALG events %v", sum.In, sum.Engine.Rewrites, sum.Engine.SeqAdjusted, sum.Engine.ALG)
}

// hasPayloadChange reports whether any golden packet is longer or shorter
// than its input counterpart (a rewrite that changed the length).
func hasPayloadChange(in, golden []Packet) bool {
	var a, b int
	for i := range in {
		a += len(in[i].IP())
	}
	for i := range golden {
		b += len(golden[i].IP())
	}
	return a != b
}
