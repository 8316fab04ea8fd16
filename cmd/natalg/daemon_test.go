package main

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/nat"
)

func TestParseQueues(t *testing.T) {
	good := map[string][]uint16{"0": {0}, "3": {3}, "0-3": {0, 1, 2, 3}, "7-7": {7}}
	for in, want := range good {
		if got, err := parseQueues(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "3-1", "0-100", "-1", "70000"} {
		if _, err := parseQueues(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestConfigFileAndOverride(t *testing.T) {
	path := filepath.Join(t.TempDir(), "natalg.conf")
	os.WriteFile(path, []byte("# natalg\ninside 198.18.0.0/16\npublic 198.19.100.100 # the NAT address\nforward tcp:21=198.18.0.2:21\nallow-low-ports\nqueues 0-1\n"), 0o644)
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var nf natFlags
	nf.register(fs)
	fs.String("config", "", "")
	queues := fs.String("queues", "0", "")
	if _, err := parseWithConfig(fs, []string{"--config", path, "--queues", "2-3", "--inside", "198.20.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := nf.config()
	if err != nil {
		t.Fatal(err)
	}
	if *queues != "2-3" || len(cfg.Inside) != 2 || !cfg.FTP.AllowLowPorts || len(cfg.Forwards) != 1 || cfg.Public[0] != netip.MustParseAddr("198.19.100.100") {
		t.Fatalf("queues %s cfg %+v", *queues, cfg)
	}
	os.WriteFile(path, []byte("inside 198.18.0.0/16 extra\n"), 0o644)
	if _, err := parseWithConfig(flag.NewFlagSet("x", flag.ContinueOnError), []string{"--config", path}); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("bad config line: %v", err)
	}
}

func TestRulesText(t *testing.T) {
	text := rulesText("veth-in", "veth-out", "0-3", 0, 3)
	for _, want := range []string{
		"*mangle\n:NATALG-OUT - [0:0]\n-A FORWARD -i veth-in -o veth-out -m connmark --mark 0x20000000/0x20000000 -j NATALG-OUT\n" +
			"-A NATALG-OUT -j NFQUEUE --queue-balance 2:3\nCOMMIT\n",
		"*nat\n:NATALG-POST - [0:0]\n-A POSTROUTING -o veth-out -j NATALG-POST\n-A NATALG-POST -j MARK --or-mark 0x20000000\nCOMMIT\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rules lack\n%s\ngot\n%s", want, text)
		}
	}
	if strings.Contains(text, "bypass") {
		t.Error("rules must fail closed: no --queue-bypass")
	}
	// Inbound, natalg run's table queues (control_in, mark_in): no rule of these is
	// crossed by every inbound packet; the one MARK rule is in the NAT
	// chain (a connection's first packet).
	if strings.Contains(text, "PREROUTING") || strings.Count(text, "-j MARK") != 1 {
		t.Errorf("a per-packet inbound or MARK rule:\n%s", text)
	}
	if one := rulesText("a", "b", "5", 5, 5); !strings.Contains(one, "NFQUEUE --queue-num 5") {
		t.Errorf("single queue: %s", one)
	}
	code, _, stderr := runCmd(t, "rules", "--inside-if", "a", "--outside-if", "a")
	if code != 2 || !strings.Contains(stderr, "two different") {
		t.Fatalf("same interface twice: %d %s", code, stderr)
	}
	code, stdout, _ := runCmd(t, "rules", "--inside-if", "eth1", "--outside-if", "eth0", "--queues", "0-1")
	if code != 0 || strings.Contains(stdout, "--queue-num 0\n") ||
		!strings.Contains(stdout, "-A NATALG-OUT -j NFQUEUE --queue-num 1\n") {
		t.Fatalf("print: %d %s", code, stdout)
	}
	// RFC 4787 REQ-14: the kernel's defrag in front of the queues (see
	// defragText), unless --defrag=false.
	if !strings.Contains(stdout, "*raw\n:NATALG-DEFRAG - [0:0]\n-A NATALG-DEFRAG -m socket --nowildcard -j RETURN\nCOMMIT\n") {
		t.Fatalf("no defrag chain:\n%s", stdout)
	}
	if _, stdout, _ = runCmd(t, "rules", "--inside-if", "eth1", "--outside-if", "eth0", "--defrag=false"); strings.Contains(stdout, "NATALG-DEFRAG") {
		t.Fatalf("--defrag=false:\n%s", stdout)
	}
}

func TestFlowsOutput(t *testing.T) {
	e, err := nat.New(nat.Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{netip.MustParseAddr("198.19.100.100")}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	// A SYN from an inside FTP client creates a control flow.
	syn := []byte{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 19, 0, 2,
		0x9c, 0x40, 0, 21, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0}
	fixChecksums(syn)
	if v := processOne(e, syn, now); v != nat.Accept {
		t.Fatal("SYN dropped")
	}
	var b strings.Builder
	writeFlows(&b, e, now)
	out := b.String()
	want := "tcp SYN_SENT timeout=240 snat 198.18.0.2:40000 -> 198.19.0.2:21 => 198.19.100.100:40000 -> 198.19.0.2:21 [ftp seq_delta=+0 ack_delta=+0 corrections=0/0]"
	if !strings.Contains(out, want) || !strings.Contains(out, "# 1 flows, 0 expectations") {
		t.Fatalf("got\n%s\nwant a line\n%s", out, want)
	}
}

// processOne runs one packet through e as a batch of one (the engine's only
// entry point) and returns its verdict.
func processOne(e *nat.Engine, pkt []byte, now time.Time) nat.Verdict {
	batch := nat.NewBatch(1)
	batch[0].N = copy(batch[0].Buf, pkt)
	batch[0].Time = now
	e.ProcessBatch(batch)
	return batch[0].Verdict
}

// fixChecksums fills the IPv4 header and TCP checksums of a 20+20 packet.
func fixChecksums(b []byte) {
	sum := func(b []byte, s uint32) uint16 {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		for s>>16 != 0 {
			s = s&0xffff + s>>16
		}
		return ^uint16(s)
	}
	c := sum(b[:20], 0)
	b[10], b[11] = byte(c>>8), byte(c)
	var ph uint32
	for i := 12; i < 20; i += 2 {
		ph += uint32(b[i])<<8 | uint32(b[i+1])
	}
	ph += 6 + uint32(len(b)-20)
	c = sum(b[20:], ph)
	b[36], b[37] = byte(c>>8), byte(c)
}
