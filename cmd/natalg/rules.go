package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/natalg/natalg/cmd/internal/kerneldp"
)

// Chains natalg owns in the kernel's tables.
const (
	chainIn  = "NATALG-IN"  // raw PREROUTING: inbound, before conntrack
	chainOut = "NATALG-OUT" // mangle FORWARD: outbound, after routing
	chainHP  = "NATALG-HP"  // raw PREROUTING: inside to a public address (hairpin)
)

// rulesText returns the iptables-restore input that diverts the NAT's
// traffic to natalg's queues:
//
//   - inbound (arriving on the outside interface) in raw PREROUTING, before
//     routing and before conntrack: the translated destination decides the
//     route, and the kernel's conntrack sees the flow with inside addresses;
//   - outbound (inside interface to outside interface) in mangle FORWARD,
//     after routing and after conntrack has seen the untranslated packet.
//
// Only what natalg run's nftables table (inet natalg) marked is queued (and
// only it jumps to natalg's chains): inbound, packets with the queue mark
// (kerneldp.MarkQueue), which the table's chain just before raw sets;
// outbound, packets of connections with the control conntrack mark
// (kerneldp.CtMarkControl), which the table sets at a connection's first
// packet. The table marks the FTP control connections in split mode and
// every connection of the NAT in full mode. The rules also mark packets
// forwarded from inside to outside (MarkOutbound), which is how the
// table's masquerade knows the interfaces.
//
// So the kernel's conntrack sees every queued flow from the inside,
// consistently in both directions and in the inside host's sequence space
// (natalg maps ACKs back before conntrack sees them): it neither NATs these
// flows (the table's NAT chains accept queued packets untouched) nor marks
// shifted sequence numbers invalid. No --queue-bypass: without natalg the
// queued traffic stops (fail-closed).
func rulesText(inside, outside, queues string, lo, hi uint16) string {
	in, out := queueHalves(lo, hi)
	inLo, inHi, outLo, outHi := in.First, in.Last, out.First, out.Last
	target := func(a, b uint16) string {
		if a == b {
			return fmt.Sprintf("NFQUEUE --queue-num %d", a)
		}
		return fmt.Sprintf("NFQUEUE --queue-balance %d:%d", a, b)
	}
	q, cq := queueMatches()
	var b strings.Builder
	fmt.Fprintf(&b, "# natalg rules: inside %s, outside %s, queues %s\n", inside, outside, queues)
	fmt.Fprintf(&b, "*raw\n:%s - [0:0]\n-A PREROUTING -i %s %s -j %s\n-A %s -j %s\nCOMMIT\n",
		chainIn, outside, q, chainIn, chainIn, target(inLo, inHi))
	fmt.Fprintf(&b, "*mangle\n:%s - [0:0]\n-A FORWARD -i %s -o %s -j MARK --or-mark %#x\n-A FORWARD -i %s -o %s %s -j %s\n-A %s -j %s\nCOMMIT\n",
		chainOut, inside, outside, kerneldp.MarkOutbound, inside, outside, cq, chainOut, chainOut, target(outLo, outHi))
	return b.String()
}

// queueMatches are the xt matches of the queue rules: the packet mark
// (inbound, raw PREROUTING) and the conntrack mark (outbound, mangle
// FORWARD).
func queueMatches() (mark, connmark string) {
	return fmt.Sprintf("-m mark --mark %#x/%#x", kerneldp.MarkQueue, kerneldp.MarkQueue),
		fmt.Sprintf("-m connmark --mark %#x/%#x", kerneldp.CtMarkControl, kerneldp.CtMarkControl)
}

// queueHalves splits the queues lo-hi: with two queues or more, inbound
// and outbound get disjoint halves of the range, so a flow's data and its
// ACKs always have separate readers and are translated in parallel. Within
// each half the kernel's balancing puts one direction of a flow on one
// queue, so its verdicts stay in order.
func queueHalves(lo, hi uint16) (in, out kerneldp.Queues) {
	in, out = kerneldp.Queues{First: lo, Last: hi}, kerneldp.Queues{First: lo, Last: hi}
	if hi > lo {
		mid := lo + (hi-lo)/2
		in.Last, out.First = mid, mid+1
	}
	return in, out
}

// chainDefrag is natalg's chain that turns the kernel's defragmentation on
// in the namespace (defragText).
const chainDefrag = "NATALG-DEFRAG"

// defragText returns the iptables-restore input that makes the kernel
// reassemble fragments before natalg's queues see them: a chain no rule
// jumps to, holding one rule with the socket match, whose only effect is
// that the kernel enables nf_defrag_ipv4 (nf_defrag_ipv6 for ip6tables) in
// this network namespace, as long as the rule exists (xt_socket's
// checkentry; conntrack rules do the same, with conntrack besides). The
// defrag hooks run at PREROUTING priority -400, before raw PREROUTING
// (-300, NATALG-IN), and routing comes after them, so both queues get
// whole datagrams: an NFQUEUE verdict replaces one packet with one, and
// could not send a datagram natalg reassembled as several fragments. On
// output the kernel cuts the translated datagram again, at most as large
// as its largest fragment (frag_max_size), as it does behind conntrack.
// RFC 4787 REQ-14 and RFC 6146 §3.4: fragments arrive in any order.
func defragText() string {
	return fmt.Sprintf("*raw\n:%s - [0:0]\n-A %s -m socket --nowildcard -j RETURN\nCOMMIT\n", chainDefrag, chainDefrag)
}

// removeDefragText undoes defragText.
func removeDefragText() string {
	return fmt.Sprintf("*raw\n-F %s\n-X %s\nCOMMIT\n", chainDefrag, chainDefrag)
}

// removeText undoes rulesText (for iptables-restore --noflush).
func removeText(inside, outside string) string {
	q, cq := queueMatches()
	return removeTextMatching(inside, outside, q, cq)
}

// removeOldText undoes the rules of a natalg before 2026-12-05, whose
// outbound rule tested the packet mark (kerneldp.MarkQueue), not the
// conntrack mark: an upgraded router's "natalg rules --apply" or
// "--remove" takes them away too.
func removeOldText(inside, outside string) string {
	q, _ := queueMatches()
	return removeTextMatching(inside, outside, q, q)
}

func removeTextMatching(inside, outside, q, cq string) string {
	return fmt.Sprintf("*raw\n-D PREROUTING -i %s %s -j %s\n-F %s\n-X %s\nCOMMIT\n*mangle\n-D FORWARD -i %s -o %s -j MARK --or-mark %#x\n-D FORWARD -i %s -o %s %s -j %s\n-F %s\n-X %s\nCOMMIT\n",
		outside, q, chainIn, chainIn, chainIn, inside, outside, kerneldp.MarkOutbound, inside, outside, cq, chainOut, chainOut, chainOut)
}

// hairpinText returns the iptables-restore (v6 false) or ip6tables-restore
// (v6 true) input that diverts hairpin packets to natalg: packets arriving
// on the inside interface for one of the public addresses of that family
// (RFC 4787 §6: "X1 sends traffic to X2':x2', it goes to the NAT, which
// must relay the traffic from X1 to X2"). They are addressed to the router
// itself, so routing would deliver them locally (INPUT) and they would never
// reach the outbound rule in FORWARD; they are queued in raw PREROUTING,
// before routing, so that the destination natalg translates them to (the
// forwarded or mapped inside host) decides the route: back out the inside
// interface. The replies of the inside host, to the client's public
// endpoint, arrive the same way and take the same rule. The queues are the
// outbound half, and --queue-bypass lets such packets reach the router's
// own services unchanged while natalg is not running, as without the rule
// (packets for the router's own services pass natalg unchanged too). With
// no public address of the family, the chain is empty.
//
// Unlike the other flows, a hairpinned one is not seen consistently by the
// kernel's conntrack, when it is loaded: natalg translates before conntrack
// and the two directions carry different addresses there, so conntrack
// makes two one-way entries, and a stateful filter FORWARD must let
// inside-to-inside traffic through before its state rules.
//
// The jump tests the destination itself: every packet from the inside
// crosses raw PREROUTING, and only the hairpin ones should pay for a jump.
// With no public address of the family there is no rule at all ("").
func hairpinText(inside string, public []netip.Addr, v6 bool, lo, hi uint16) string {
	if hi > lo {
		lo = lo + (hi-lo)/2 + 1
	}
	target := fmt.Sprintf("NFQUEUE --queue-balance %d:%d --queue-bypass", lo, hi)
	if lo == hi {
		target = fmt.Sprintf("NFQUEUE --queue-num %d --queue-bypass", lo)
	}
	var b strings.Builder
	for _, a := range public {
		if a.Is6() == v6 {
			fmt.Fprintf(&b, "-A PREROUTING -i %s -d %s -j %s\n", inside, a, chainHP)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return fmt.Sprintf("*raw\n:%s - [0:0]\n%s-A %s -j %s\nCOMMIT\n", chainHP, b.String(), chainHP, target)
}

// hairpinRemoveText undoes hairpinText, given what iptables-save -t raw
// (ip6tables-save) prints: every PREROUTING rule that jumps to the hairpin
// chain goes (whichever addresses and interface it was installed with, by
// this natalg or an older one), then the chain. "" when there is no chain.
// It is restored on its own, so that a chain installed by an older natalg
// without it does not fail the removal of the others.
func hairpinRemoveText(saved string) string {
	if !strings.Contains(saved, "\n:"+chainHP+" ") && !strings.HasPrefix(saved, ":"+chainHP+" ") {
		return ""
	}
	var b strings.Builder
	b.WriteString("*raw\n")
	for _, line := range strings.Split(saved, "\n") {
		if rest, ok := strings.CutPrefix(line, "-A PREROUTING "); ok && strings.HasSuffix(line, " -j "+chainHP) {
			fmt.Fprintf(&b, "-D PREROUTING %s\n", rest)
		}
	}
	fmt.Fprintf(&b, "-F %s\n-X %s\nCOMMIT\n", chainHP, chainHP)
	return b.String()
}

// acceptLocal sets net.ipv4.conf.IFACE.accept_local to 1: a hairpinned
// IPv4 packet leaves natalg with the public address, a local address of
// the router, as its source (RFC 4787 REQ-9a), and the kernel drops a
// forwarded packet with a local source address as a martian unless the
// arrival interface accepts them. (IPv6 has no such check.)
func acceptLocal(iface string) error {
	path := "/proc/sys/net/ipv4/conf/" + iface + "/accept_local"
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("accept_local on %s: %w", iface, err)
	}
	return nil
}

// cmdRules implements "natalg rules".
func cmdRules(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	inside := fs.String("inside-if", "", "interface towards the inside hosts")
	outside := fs.String("outside-if", "", "interface towards the outside")
	queues := fs.String("queues", "0", "NFQUEUE numbers natalg serves: N or N-M")
	apply := fs.Bool("apply", false, "install the rules (iptables-restore and ip6tables-restore)")
	remove := fs.Bool("remove", false, "remove the rules, and natalg run's nftables table (inet natalg)")
	backend := fs.String("queue-backend", "auto", "how packets are queued: xt (iptables NFQUEUE rules), nft (table inet natalg_queue, nft's queue expression), auto (nft where the kernel has it)")
	var public []netip.Addr
	fs.Func("public", "public address natalg translates to (repeatable, as for natalg run): packets from the inside interface to it are queued too, for hairpinning", func(s string) error {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("bad address %q", s)
		}
		public = append(public, a.Unmap())
		return nil
	})
	defrag := fs.Bool("defrag", true, "have the kernel reassemble fragments before natalg sees them (chain "+chainDefrag+"; see README)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *inside == "" || *outside == "" || *inside == *outside {
		fmt.Fprintln(stderr, "natalg rules: give --inside-if and --outside-if (two different interfaces)")
		return 2
	}
	for _, n := range []string{*inside, *outside} {
		if strings.ContainsAny(n, " \t\n/") || len(n) > 15 {
			fmt.Fprintf(stderr, "natalg rules: bad interface name %q\n", n)
			return 2
		}
	}
	if *apply && *remove {
		fmt.Fprintln(stderr, "natalg rules: --apply or --remove, not both")
		return 2
	}
	switch *backend {
	case "auto", "xt", "nft":
	default:
		fmt.Fprintf(stderr, "natalg rules: --queue-backend %q: want auto, xt or nft\n", *backend)
		return 2
	}
	qs, err := parseQueues(*queues)
	if err != nil {
		fmt.Fprintf(stderr, "natalg rules: --queues: %v\n", err)
		return 2
	}
	lo, hi := qs[0], qs[len(qs)-1]
	text := rulesText(*inside, *outside, *queues, lo, hi)
	hairpin := [2]string{hairpinText(*inside, public, false, lo, hi), hairpinText(*inside, public, true, lo, hi)}
	if !*apply && !*remove {
		fmt.Fprint(stdout, text)
		if *defrag {
			fmt.Fprintf(stdout, "# defragmentation in front of the queues\n%s", defragText())
		}
		fmt.Fprintf(stdout, "# hairpin, IPv4 (iptables-restore; needs net.ipv4.conf.%s.accept_local=1)\n%s", *inside, hairpin[0])
		fmt.Fprintf(stdout, "# hairpin, IPv6 (ip6tables-restore)\n%s", hairpin[1])
		return 0
	}
	if *apply && *backend == "auto" {
		*backend = "xt"
		if kerneldp.QueueSupported() {
			*backend = "nft"
		}
	}
	// Removing first makes --apply idempotent (and switches backends);
	// errors from rules that are not there are expected then. The hairpin
	// rules are xt rules with either backend: they queue every packet from
	// the inside to a public address, which natalg translates whole in
	// both datapaths.
	for i, tool := range []string{"iptables-restore", "ip6tables-restore"} {
		restore(tool, removeText(*inside, *outside))
		restore(tool, removeOldText(*inside, *outside))
		if saved, err := exec.Command(strings.TrimSuffix(tool, "-restore")+"-save", "-t", "raw").Output(); err == nil {
			if text := hairpinRemoveText(string(saved)); text != "" {
				restore(tool, text)
			}
		}
		restore(tool, removeDefragText()) // on its own: it may be absent when the rest is not
		if !*apply {
			continue
		}
		texts := []string{hairpin[i]}
		if *backend == "xt" {
			texts = append(texts, text)
		}
		if *defrag {
			texts = append(texts, defragText())
		}
		for _, t := range texts {
			if t == "" {
				continue
			}
			if out, err := restore(tool, t); err != nil {
				fmt.Fprintf(stderr, "natalg rules: %s: %v\n%s", tool, err, out)
				return 1
			}
		}
	}
	if err := kerneldp.RemoveQueueTable(); err != nil {
		fmt.Fprintf(stderr, "natalg rules: remove table inet %s: %v\n", kerneldp.QueueTableName, err)
		return 1
	}
	if *apply && slices.ContainsFunc(public, netip.Addr.Is4) {
		if err := acceptLocal(*inside); err != nil {
			fmt.Fprintf(stderr, "natalg rules: %v\n", err)
			return 1
		}
	}
	hairpinNote := fmt.Sprintf("# hairpin, IPv4 (and net.ipv4.conf.%s.accept_local=1)\n%s# hairpin, IPv6\n%s", *inside, hairpin[0], hairpin[1])
	switch {
	case *apply && *backend == "nft":
		in, out := queueHalves(lo, hi)
		if err := kerneldp.ApplyQueueTable(*inside, *outside, in, out); err != nil {
			fmt.Fprintf(stderr, "natalg rules: %v (use --queue-backend xt)\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "installed table inet %s (nft queue expression): inbound on %s to queues %d-%d, outbound %s -> %s to queues %d-%d\n%s",
			kerneldp.QueueTableName, *outside, in.First, in.Last, *inside, *outside, out.First, out.Last, hairpinNote)
	case *apply:
		fmt.Fprintf(stdout, "installed (IPv4 and IPv6):\n%s%s", text, hairpinNote)
		if *defrag {
			fmt.Fprintf(stdout, "# defragmentation in front of the queues\n%s", defragText())
		}
	default:
		if err := kerneldp.Remove(); err != nil {
			fmt.Fprintf(stderr, "natalg rules: remove table inet %s: %v\n", kerneldp.TableName, err)
			return 1
		}
		fmt.Fprintf(stdout, "removed (and table inet %s)\n", kerneldp.TableName)
	}
	return 0
}

func restore(tool, text string) ([]byte, error) {
	cmd := exec.Command(tool, "--noflush")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}
