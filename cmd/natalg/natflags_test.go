package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/nat"
)

// parseNATFlags parses args as the NAT flags (after a config file, when
// conf is not empty) and builds the engine configuration.
func parseNATFlags(t *testing.T, conf string, args ...string) (nat.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var nf natFlags
	nf.register(fs)
	fs.String("config", "", "")
	base := []string{"--inside", "198.18.0.0/16", "--public", "198.19.100.100"}
	if conf != "" {
		path := filepath.Join(t.TempDir(), "natalg.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		base = append(base, "--config", path)
	}
	if _, err := parseWithConfig(fs, append(base, args...)); err != nil {
		return nat.Config{}, err
	}
	return nf.config()
}

// TestSettingsSayWhatTheyDo (issue 14, item 12): --max-flows 0 is refused
// rather than silently meaning the default, and timeouts below the RFC
// minimums are refused unless --allow-nonconforming-timeouts is given.
func TestSettingsSayWhatTheyDo(t *testing.T) {
	cfg, err := parseNATFlags(t, "")
	if err != nil || cfg.Conntrack.MaxFlows != 1<<20 || cfg.Filtering != nat.FilterAddressDependent {
		t.Fatalf("defaults: max flows %d, filtering %v, %v", cfg.Conntrack.MaxFlows, cfg.Filtering, err)
	}
	for _, c := range []struct {
		args []string
		want string // "" = accepted
	}{
		{[]string{"--max-flows", "0"}, "--max-flows 0"},
		{[]string{"--max-flows", "-5"}, "--max-flows -5"},
		{[]string{"--max-flows", "1"}, ""},
		{[]string{"--timeout-tcp-transitory", "10s"}, "RFC 5382"},
		{[]string{"--timeout-tcp-transitory", "4m"}, ""},
		{[]string{"--timeout-tcp-established", "2h"}, "2h4m0s"},
		{[]string{"--timeout-udp", "119s"}, "RFC 4787"},
		{[]string{"--timeout-udp", "2m"}, ""},
		{[]string{"--timeout-icmp", "59s"}, "RFC 5508"},
		{[]string{"--timeout-expect", "10s"}, "RFC 6384"},
		{[]string{"--timeout-tcp-transitory", "10s", "--allow-nonconforming-timeouts"}, ""},
		{[]string{"--timeout-udp", "0s", "--allow-nonconforming-timeouts"}, "positive"},
		{[]string{"--filtering", "full-cone"}, "eif, adf or apdf"},
	} {
		_, err := parseNATFlags(t, "", c.args...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: error %v, want one with %q", c.args, err, c.want)
		}
	}
	cfg, err = parseNATFlags(t, "", "--timeout-tcp-transitory", "10s", "--allow-nonconforming-timeouts")
	if err != nil || cfg.Conntrack.Timeouts.TCPTransitory != 10*time.Second {
		t.Fatalf("opt-in transitory: %v %v", cfg.Conntrack.Timeouts.TCPTransitory, err)
	}
	// The config file has the same keys, and the same checks.
	for mode, want := range map[string]nat.Filtering{"eif": nat.FilterEndpointIndependent, "adf": nat.FilterAddressDependent, "apdf": nat.FilterAddressPortDependent} {
		cfg, err := parseNATFlags(t, "filtering "+mode+"\n")
		if err != nil || cfg.Filtering != want {
			t.Errorf("config file filtering %s: %v %v", mode, cfg.Filtering, err)
		}
	}
	if _, err := parseNATFlags(t, "max-flows 0\n"); err == nil {
		t.Error("config file max-flows 0 accepted")
	}
	if _, err := parseNATFlags(t, "timeout-udp 30s\n"); err == nil || !strings.Contains(err.Error(), "RFC 4787") {
		t.Errorf("config file timeout-udp 30s: %v", err)
	}
	if _, err := parseNATFlags(t, "timeout-udp 30s\nallow-nonconforming-timeouts\n"); err != nil {
		t.Errorf("config file timeout-udp 30s with the opt-in: %v", err)
	}
}

// fakeControl serves a control socket that answers any request with n
// lines of flows, and returns its path.
func fakeControl(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	line := "tcp ESTABLISHED src=198.18.0.2 dst=198.19.0.2 sport=40000 dport=80 src=198.19.0.2 dst=198.19.100.100 sport=80 dport=40000\n"
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 64)
				c.Read(buf)
				for range n {
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return path
}

// TestFlowsClosedPipe (issue 14, item 12): natalg flows writing to a pipe
// whose reader has gone ends quietly with status 0.
func TestFlowsClosedPipe(t *testing.T) {
	if os.Getenv("NATALG_FLOWS_CHILD") != "" {
		// The child: natalg flows with the real standard output.
		os.Exit(run([]string{"flows", "--control", os.Getenv("NATALG_FLOWS_CHILD")}, os.Stdout, os.Stderr))
	}
	path := fakeControl(t, 200000) // about 25 MB: far more than a pipe holds
	// In process, to a pipe closed at the reading end.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	var stderr strings.Builder
	rc := cmdFlows([]string{"--control", path}, w, &stderr)
	w.Close()
	if rc != 0 || stderr.Len() != 0 {
		t.Fatalf("flows to a closed pipe: status %d, stderr %q", rc, stderr.String())
	}
	// As a user runs it: natalg flows | head -1, with pipefail.
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	cmd := exec.Command(bash, "-o", "pipefail", "-c", `"$0" -test.run='^TestFlowsClosedPipe$' | head -1`, os.Args[0])
	cmd.Env = append(os.Environ(), "NATALG_FLOWS_CHILD="+path)
	out, err := cmd.Output()
	var errOut []byte
	if ee, ok := err.(*exec.ExitError); ok {
		errOut = ee.Stderr
	}
	if err != nil || !strings.HasPrefix(string(out), "tcp ESTABLISHED") || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("natalg flows | head -1: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
}

// TestNoPickupFlag: --no-pickup (set by the HA configuration, testdata/ha/natalg.conf) reaches
// the engine; without it a mid-stream segment opens a flow, as before.
func TestNoPickupFlag(t *testing.T) {
	if cfg, err := parseNATFlags(t, ""); err != nil || cfg.NoPickup {
		t.Fatalf("default: NoPickup %v, %v", cfg.NoPickup, err)
	}
	if cfg, err := parseNATFlags(t, "no-pickup\n"); err != nil || !cfg.NoPickup {
		t.Fatalf("no-pickup in a config file: NoPickup %v, %v", cfg.NoPickup, err)
	}
	if cfg, err := parseNATFlags(t, "", "--no-pickup"); err != nil || !cfg.NoPickup {
		t.Fatalf("--no-pickup: NoPickup %v, %v", cfg.NoPickup, err)
	}
}

// TestCTMarkMaskKeepsOffTheSplitMarks: the kernel datapath owns two
// conntrack mark bits (data connections, control connections); a
// --ct-mark-mask that covers either is refused, the default is accepted.
func TestCTMarkMaskKeepsOffTheSplitMarks(t *testing.T) {
	if _, err := parseCTStore(fmt.Sprintf("%#x", nat.DefaultCTMarkMask), 128); err != nil {
		t.Fatalf("default mask refused: %v", err)
	}
	for _, mask := range []string{"0x10000000", "0x20000000", "0xfffff000", "0x3ffff000"} {
		if _, err := parseCTStore(mask, 128); err == nil || !strings.Contains(err.Error(), "overlaps") {
			t.Errorf("--ct-mark-mask %s: err %v, want an overlap error", mask, err)
		}
	}
}
