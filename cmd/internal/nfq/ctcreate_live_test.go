package nfq

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	ct "github.com/ti-mo/conntrack"

	"github.com/natalg/natalg/cmd/internal/netnstest"
	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// controlMark stands for natalg's mark in the made entries.
const controlMark = 0x20000000

// TestCreateEntryLive is the kernel contract of the one-chain design
// (nat.CTStore.MakeEntries): an entry ctStore makes with asymmetric tuples
// (nat.CTFacts.Create) carries a TCP connection whose
// packets are translated before conntrack in both directions (stateless nft
// rewrites at prerouting -301 stand in for natalg here), with no NAT
// status, no INVALID packet (a firewall drops them), and the liberal window
// flags kept through the handshake; IPv4 and IPv6. This thread's namespace
// is the router, a peer namespace on each side the hosts.
func TestCreateEntryLive(t *testing.T) {
	netnstest.Enter(t)
	run := func(args ...string) string { t.Helper(); return netnstest.Run(t, args...) }
	in, out := fmt.Sprintf("ctlent-in-%d", os.Getpid()), fmt.Sprintf("ctlent-out-%d", os.Getpid())
	for _, ns := range []string{in, out} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run("ip", "link", "add", "r-in", "type", "veth", "peer", "name", "i-eth", "netns", in)
	run("ip", "link", "add", "r-out", "type", "veth", "peer", "name", "o-eth", "netns", out)
	for _, c := range [][]string{
		{"ip", "addr", "add", "198.18.0.1/24", "dev", "r-in"}, {"ip", "addr", "add", "198.19.0.1/16", "dev", "r-out"},
		{"ip", "addr", "add", "198.19.100.100/32", "dev", "r-out"},
		{"ip", "addr", "add", "fd00:18::1/64", "dev", "r-in", "nodad"}, {"ip", "addr", "add", "2001:db8:19::1/64", "dev", "r-out", "nodad"},
		{"ip", "addr", "add", "2001:db8:19::100/128", "dev", "r-out", "nodad"},
		{"ip", "link", "set", "r-in", "up"}, {"ip", "link", "set", "r-out", "up"},
		{"ip", "-n", in, "addr", "add", "198.18.0.2/24", "dev", "i-eth"}, {"ip", "-n", in, "addr", "add", "fd00:18::2/64", "dev", "i-eth", "nodad"},
		{"ip", "-n", in, "link", "set", "i-eth", "up"},
		{"ip", "-n", in, "route", "add", "default", "via", "198.18.0.1"}, {"ip", "-n", in, "-6", "route", "add", "default", "via", "fd00:18::1"},
		{"ip", "-n", out, "addr", "add", "198.19.0.2/16", "dev", "o-eth"}, {"ip", "-n", out, "addr", "add", "2001:db8:19::2/64", "dev", "o-eth", "nodad"},
		{"ip", "-n", out, "link", "set", "o-eth", "up"},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"}, {"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		// natalg's outbound translation happens before routing: its source
		// is the router's own public address, a martian to IPv4 routing
		// unless the inside interface accepts local sources
		{"sysctl", "-qw", "net.ipv4.conf.r-in.accept_local=1"},
	} {
		run(c...)
	}
	nft := exec.Command("nft", "-f", "-")
	nft.Stdin = strings.NewReader(`table inet ctlent {
	chain mark_in {
		type filter hook prerouting priority -301;
		iifname "r-in" ip saddr 198.18.0.2 tcp sport 40000 tcp dport 2121 ip saddr set 198.19.100.100 tcp sport set 61000
		iifname "r-out" ip daddr 198.19.100.100 tcp sport 2121 tcp dport 61000 ip daddr set 198.18.0.2 tcp dport set 40000
		iifname "r-in" ip6 saddr fd00:18::2 tcp sport 40000 tcp dport 2121 ip6 saddr set 2001:db8:19::100 tcp sport set 61000
		iifname "r-out" ip6 daddr 2001:db8:19::100 tcp sport 2121 tcp dport 61000 ip6 daddr set fd00:18::2 tcp dport set 40000
	}
	chain forward {
		# a ct rule turns conntrack on in this namespace; the firewall
		# drops what conntrack calls INVALID
		type filter hook forward priority 0;
		ct state invalid drop
	}
}
`)
	if b, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, b)
	}
	c, err := ct.Dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	store, err := openCTStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.close()
	for _, fam := range []struct{ inside, server, public, pyFamily string }{
		{"198.18.0.2", "198.19.0.2", "198.19.100.100", "socket.AF_INET"},
		{"fd00:18::2", "2001:db8:19::2", "2001:db8:19::100", "socket.AF_INET6"},
	} {
		inside, server, public := netip.MustParseAddr(fam.inside), netip.MustParseAddr(fam.server), netip.MustParseAddr(fam.public)
		// the SYN as natalg received it and as it sent it on
		received := conntrack.Tuple{Src: inside, Dst: server, SrcPort: 40000, DstPort: 2121, Proto: ipproto.TCP}
		sent := conntrack.Tuple{Src: public, Dst: server, SrcPort: 61000, DstPort: 2121, Proto: ipproto.TCP}
		facts := nat.CTFacts{Tuple: sent, Create: true, Reply: received.Reverse(), SetMark: true, Mark: controlMark, Mask: 0xffffffff}
		for range 2 { // the second finds the entry there and updates it
			if err := store.put(&facts); err != nil {
				t.Fatalf("create %v: %v", sent, err)
			}
		}
		if n := testing.AllocsPerRun(10, func() { store.put(&facts) }); n != 0 {
			t.Errorf("a create allocates %v times", n)
		}
		srv := exec.Command("ip", "netns", "exec", out, "timeout", "20", "python3", "-c", fmt.Sprintf(`import socket
s = socket.socket(%s); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("%s", 2121)); s.listen(1); print("listening", flush=True)
c, a = s.accept(); n = 0
while n < 3000:
    d = c.recv(65536)
    if not d: break
    c.sendall(d); n += len(d)
print(a[0], a[1], flush=True); c.close()`, fam.pyFamily, fam.server))
		stdout, err := srv.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer srv.Process.Kill()
		buf := make([]byte, 64)
		if n, err := stdout.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "listening") {
			t.Fatalf("server: %q %v", buf[:n], err)
		}
		got := run("ip", "netns", "exec", in, "timeout", "15", "python3", "-c", fmt.Sprintf(`import socket
s = socket.socket(%s); s.settimeout(10); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("%s", 40000)); s.connect(("%s", 2121)); s.sendall(b"x" * 3000); n = 0
while n < 3000:
    d = s.recv(65536)
    if not d: break
    n += len(d)
print(n)`, fam.pyFamily, fam.inside, fam.server))
		if strings.TrimSpace(got) != "3000" {
			t.Fatalf("%s: echoed %q bytes, want 3000", fam.inside, got)
		}
		rest := make([]byte, 256)
		n, _ := stdout.Read(rest)
		if seen, want := strings.TrimSpace(string(rest[:n])), fam.public+" 61000"; seen != want {
			t.Errorf("the server saw the client as %q, want %q", seen, want)
		}
		srv.Wait()
		flows, err := c.Dump(nil)
		if err != nil {
			t.Fatal(err)
		}
		var entry *ct.Flow
		for i := range flows {
			if flows[i].TupleOrig.Proto.DestinationPort == 2121 && flows[i].TupleOrig.IP.DestinationAddress == server {
				if entry != nil {
					t.Fatalf("two entries for the connection: %v and %v", entry, flows[i])
				}
				entry = &flows[i]
			}
		}
		if entry == nil {
			t.Fatalf("no entry for the connection to %v in %v", server, flows)
		}
		if entry.TupleReply.IP.DestinationAddress != inside || entry.TupleReply.Proto.DestinationPort != 40000 {
			t.Errorf("reply tuple %v", entry.TupleReply)
		}
		if !entry.Status.SeenReply() || !entry.Status.Assured() {
			t.Errorf("%v: status %v: the replies did not match the entry", server, entry.Status)
		}
		if entry.Status.SrcNAT() || entry.Status.DstNAT() {
			t.Errorf("%v: status %v: the kernel NATs the connection", server, entry.Status)
		}
		if tcp := entry.ProtoInfo.TCP; tcp == nil || tcp.OriginalFlags>>8&tcpFlagBeLiberal == 0 || tcp.ReplyFlags>>8&tcpFlagBeLiberal == 0 || tcp.State < tcpConntrackEstablished {
			t.Errorf("%v: protoinfo %+v: the liberal window flags did not survive the handshake, or the state did not move on", server, entry.ProtoInfo.TCP)
		}
		if entry.Mark != controlMark {
			t.Errorf("%v: mark %#x, want %#x", server, entry.Mark, controlMark)
		}
	}
	stats, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.Invalid != 0 {
			t.Errorf("conntrack counted %d invalid packets on CPU %d", s.Invalid, s.CPUID)
		}
	}
}
