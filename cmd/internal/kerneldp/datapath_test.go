package kerneldp

import (
	"bytes"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/cmd/internal/netnstest"
	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

func mustForward(t *testing.T, s string) nat.Forward {
	t.Helper()
	f, err := nat.ParseForward(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConfigCheck(t *testing.T) {
	ok := Config{EnginePorts: [2]uint16{49152, 65535}, KernelPorts: [2]uint16{1024, 49151}}
	if err := ok.check(); err != nil {
		t.Fatalf("disjoint ranges refused: %v", err)
	}
	for _, c := range []Config{
		{EnginePorts: [2]uint16{40000, 65535}, KernelPorts: [2]uint16{1024, 49151}}, // overlap
		{EnginePorts: [2]uint16{49152, 65535}, KernelPorts: [2]uint16{500, 49151}},  // kernel's below 1024
		{EnginePorts: [2]uint16{60000, 50000}, KernelPorts: [2]uint16{1024, 49151}}, // backwards
	} {
		if err := c.check(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	ftp := Config{FTPPorts: []uint16{21}}
	for s, want := range map[string]bool{
		"tcp:21=198.18.0.2:21":      true,
		"tcp:2121=198.18.0.2:21":    true, // FTP on the inside port
		"tcp:21=198.18.0.2:2121":    true, // FTP on the public port
		"tcp:20-30=198.18.0.2":      true, // a range holding 21
		"tcp:8080=198.18.0.2:80":    false,
		"udp:21=198.18.0.2":         false,
		"tcp:40000-40999=[fd00::2]": false,
	} {
		if got := ftp.isFTPForward(mustForward(t, s)); got != want {
			t.Errorf("isFTPForward(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestExpectElement(t *testing.T) {
	x := &conntrack.Expectation{Proto: ipproto.TCP, Src: netip.MustParseAddr("198.19.0.2"),
		Dst: netip.MustParseAddr("198.19.100.100"), DstPort: 0xc001, Target: netip.MustParseAddrPort("198.18.0.2:5001")}
	i, el := expectElement(x)
	wantKey := []byte{198, 19, 0, 2, 198, 19, 100, 100, 0xc0, 0x01, 0, 0}
	wantVal := []byte{198, 18, 0, 2, 0x13, 0x89, 0, 0}
	if i != 0 || !bytes.Equal(el.Key, wantKey) || !bytes.Equal(el.Val, wantVal) {
		t.Fatalf("IPv4 element %d %x : %x, want 0 %x : %x", i, el.Key, el.Val, wantKey, wantVal)
	}
	x6 := &conntrack.Expectation{Proto: ipproto.TCP, Src: netip.MustParseAddr("2001:db8:19::2"),
		Dst: netip.MustParseAddr("2001:db8:19::100"), DstPort: 50000, Target: netip.MustParseAddrPort("[fd00:18::2]:5001")}
	i, el = expectElement(x6)
	if i != 1 || len(el.Key) != 36 || len(el.Val) != 20 {
		t.Fatalf("IPv6 element %d: key %d bytes, value %d, want 1: 36 and 20", i, len(el.Key), len(el.Val))
	}
}

// nftList lists natalg's table as nft prints it, in this thread's netns.
// An xt target in an nft rule (queueTo without nft_queue) prints as nft
// translates it, after libxtables' complaint about the inet family: the
// complaint goes, and "queue num N-M" reads "queue to N-M", as nft's own
// queue expression prints.
func nftList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "inet", TableName).CombinedOutput()
	if err != nil {
		return ""
	}
	return normalizeNft(string(out))
}

// openTable opens natalg's table for cfg, closed with its table removed
// when the test ends, and returns it as nft lists it.
func openTable(t *testing.T, cfg Config) string {
	t.Helper()
	d, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(true) })
	return nftList(t)
}

// tableHas reports each of wants that the listed table lacks.
func tableHas(t *testing.T, table string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

// tableInOrder reports wants that the listed table lacks or lists before
// the want before them: the order of a chain's rules, which the kernel
// evaluates one after the other.
func tableInOrder(t *testing.T, table string, wants ...string) {
	t.Helper()
	at := 0
	for _, want := range wants {
		i := strings.Index(table[at:], want)
		if i < 0 {
			t.Errorf("table lacks %q after %q:\n%s", want, table[:at], table)
			return
		}
		at += i + len(want)
	}
}

func normalizeNft(s string) string {
	s = regexp.MustCompile(`libxtables: [^\n]*\n\s*`).ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "queue num ", "queue to ")
}

// TestDatapathLive: the table goes in; expectations go in with their
// timeout and out again; a repeated key replaces the element; a removal of
// a replaced expectation leaves the newer one; a restart's Open replaces
// the table; Close(true) removes it.
func TestDatapathLive(t *testing.T) {
	netnstest.Enter(t)
	cfg := Config{
		Inside:      []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16"), netip.MustParsePrefix("fd00:18::/64")},
		Public:      []netip.Addr{netip.MustParseAddr("198.19.100.100"), netip.MustParseAddr("2001:db8:19::100")},
		Forwards:    []nat.Forward{mustForward(t, "tcp:21=198.18.0.2:21"), mustForward(t, "tcp:8080=198.18.0.3:80")},
		FTPPorts:    []uint16{21},
		EnginePorts: [2]uint16{49152, 65535}, KernelPorts: [2]uint16{1024, 49151},
		Inbound: Queues{2, 3},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := Open(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	table := nftList(t)
	// control_in, at the input hook: only packets for the router cross
	// it, and it queues the inbound control packets among them.
	tableInOrder(t, table,
		"chain control_in {",
		"type filter hook input priority mangle - 1;",
		"meta l4proto != tcp accept",
		"ip daddr 198.19.100.100 th sport @ftp_ports th dport 49152-65535 counter packets 0 bytes 0 queue to 2-3",
		"ip daddr 198.19.100.100 th dport 21 counter packets 0 bytes 0 queue to 2-3",
		"ip6 daddr 2001:db8:19::100 th sport @ftp_ports th dport 49152-65535 counter packets 0 bytes 0 queue to 2-3",
		"}",
	)
	// nat_out: the first packet of a connection natalg sends on from the
	// router (to a forwarded FTP port) marks it a control connection,
	// with natalg's timeouts; the router's own connections are left alone.
	tableInOrder(t, table,
		"chain nat_out {",
		"type nat hook output priority -100;",
		"meta mark & 0x10000000 == 0x00000000 accept",
		"ct mark set ct mark | 0x20000000 accept",
		"}",
	)
	tableHas(t, table,
		"dnat ip to ip saddr . ip daddr . tcp dport map @expect4",
		"dnat ip6 to ip6 saddr . ip6 daddr . tcp dport map @expect6",
		"tcp dport 8080 dnat ip to 198.18.0.3:80",
		"snat ip to 198.19.100.100:1024-49151",
		// control connections: marked at their first packet, in the NAT
		// chain, and left untranslated by the kernel
		"ip saddr 198.18.0.0/16 tcp dport @ftp_ports ct mark set ct mark | 0x20000000 accept",
		"ct mark & 0x20000000 != 0x00000000 accept",
	)
	// A packet of a kernel-translated flow crosses no filter chain of the
	// table after its connection's first: control_in is at the input
	// hook, and nothing of the table is at prerouting or forward but NAT
	// chains. nat_post comes after the NAT chains at srcnat (the
	// MarkOutbound rule of "natalg rules").
	if n := strings.Count(table, "type filter hook"); n != 1 || !strings.Contains(table, "type filter hook input") {
		t.Errorf("split mode has %d filter base chains, want 1, control_in at the input hook:\n%s", n, table)
	}
	if !strings.Contains(table, "type nat hook postrouting priority srcnat + 1;") {
		t.Errorf("nat_post is not at srcnat + 1:\n%s", table)
	}
	if strings.Contains(table, "dport 21 dnat") {
		t.Errorf("the FTP forward is the kernel's too:\n%s", table)
	}
	now := time.Now()
	x4 := &conntrack.Expectation{Proto: ipproto.TCP, Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("198.19.100.100"),
		DstPort: 50001, Target: netip.MustParseAddrPort("198.18.0.2:5001"), Expires: now.Add(300 * time.Second).UnixNano()}
	x6 := &conntrack.Expectation{Proto: ipproto.TCP, Src: netip.MustParseAddr("2001:db8:19::2"), Dst: netip.MustParseAddr("2001:db8:19::100"),
		DstPort: 50002, Target: netip.MustParseAddrPort("[fd00:18::2]:5002"), Expires: now.Add(10 * time.Second).UnixNano()}
	for _, x := range []*conntrack.Expectation{x4, x6} {
		if err := d.ExpectationInstalled(x); err != nil {
			t.Fatal(err)
		}
	}
	els, err := d.Elements()
	if err != nil || len(els) != 2 {
		t.Fatalf("elements %+v (%v), want 2", els, err)
	}
	for _, el := range els {
		x := x4
		if el.Peer.Is6() {
			x = x6
		}
		life := time.Until(time.Unix(0, x.Expires))
		if el.Peer != x.Src || el.Public != netip.AddrPortFrom(x.Dst, x.DstPort) || el.Target != x.Target || el.Expires > life+time.Second || el.Expires < life-5*time.Second {
			t.Errorf("element %+v, want %v -> %v:%d -> %v expiring in %v", el, x.Src, x.Dst, x.DstPort, x.Target, life)
		}
	}
	// the same key again (a repeated PORT): the newer expectation owns it
	x4b := *x4
	x4b.Expires = now.Add(200 * time.Second).UnixNano()
	if err := d.ExpectationInstalled(&x4b); err != nil {
		t.Fatal(err)
	}
	d.ExpectationRemoved(x4) // the replaced one: must not take the element
	d.ExpectationRemoved(x6)
	time.Sleep(100 * time.Millisecond)
	els, _ = d.Elements()
	if len(els) != 1 || els[0].Peer != x4.Src || els[0].Expires > 201*time.Second {
		t.Fatalf("after replacing and removing: %+v, want the IPv4 element with the newer timeout", els)
	}
	if d.Stats.Installed.Load() != 3 || d.Stats.Withdrawn.Load() != 1 {
		t.Errorf("installed %d withdrawn %d, want 3 and 1", d.Stats.Installed.Load(), d.Stats.Withdrawn.Load())
	}
	if err := d.Close(false); err != nil {
		t.Fatal(err)
	}
	if table := nftList(t); table == "" || strings.Contains(table, "198.19.0.2 . ") {
		t.Fatalf("Close(false): want the table without expectations:\n%s", table)
	}
	// a restart replaces the table in one transaction
	d, err = Open(cfg, log)
	if err != nil {
		t.Fatalf("Open over an existing table: %v", err)
	}
	if err := d.Close(true); err != nil {
		t.Fatal(err)
	}
	if table := nftList(t); table != "" {
		t.Fatalf("Close(true) left the table:\n%s", table)
	}
}

// TestQueueTable: "natalg rules" can install table inet natalg_queue
// wherever the kernel queues from an nft rule: with nft's queue expression,
// or with xt's NFQUEUE target through nft_compat (this project's CI VM has
// only the latter). The outbound rule tests the conntrack mark first.
func TestQueueTable(t *testing.T) {
	netnstest.Enter(t)
	if !QueueTableSupported() {
		t.Fatal("the kernel queues from no nft rule: neither nft_queue nor xt's NFQUEUE through nft_compat")
	}
	t.Logf("nft queue expression: %v", QueueSupported())
	if err := ApplyQueueTable("r-in", "r-out", Queues{1, 1}); err != nil {
		t.Fatal(err)
	}
	list := func() string {
		out, _ := exec.Command("nft", "list", "table", "inet", QueueTableName).CombinedOutput()
		return normalizeNft(string(out))
	}
	tableHas(t, list(), `ct mark & 0x20000000 != 0x00000000 iifname "r-in" oifname "r-out" counter packets 0 bytes 0 queue to 1`,
		`type nat hook postrouting priority srcnat;`, `oifname "r-out" meta mark set meta mark | 0x20000000`)
	if err := RemoveQueueTable(); err != nil || strings.Contains(list(), "chain") {
		t.Fatalf("RemoveQueueTable: %v\n%s", err, list())
	}
}
