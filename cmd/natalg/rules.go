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

// Chains natalg owns in the kernel's tables. Every chain of natalg's is
// named NATALG-*, and every rule of natalg's in a built-in chain jumps to
// one: that is how the removal finds them (removeSavedText).
const (
	chainOut  = "NATALG-OUT"  // mangle FORWARD: outbound control packets, to the queue
	chainPost = "NATALG-POST" // nat POSTROUTING: marks connections leaving by the outside interface
	chainHP   = "NATALG-HP"   // raw PREROUTING: inside to a public address (hairpin)
	prefix    = "NATALG-"
)

// rulesText returns the iptables-restore input of "natalg rules": what
// natalg run's nftables table (inet natalg) needs to know about the
// interfaces, which only "natalg rules" is told.
//
//   - Outbound, in mangle FORWARD (after routing, after conntrack has seen
//     the untranslated packet): packets from the inside interface to the
//     outside one, of connections the table gave the control conntrack
//     mark (kerneldp.CtMarkControl: FTP control connections in split mode,
//     every connection of the NAT in full mode), are queued to the
//     outbound half of the queues. One rule, crossed by every forwarded
//     packet.
//   - In nat POSTROUTING, which the kernel evaluates for a connection's
//     first packet only: connections leaving by the outside interface get
//     kerneldp.MarkOutbound on that packet, just before the table's
//     nat_post masquerades what carries it.
//
// Inbound, the table queues itself (to the inbound half of natalg run's
// --queues; split mode: chain control_in, at the input hook, where routing
// delivers the control packets the kernel left addressed to the router;
// full mode: chain mark_in, before conntrack): it knows which packets are
// FTP control packets, by their addresses and ports.
//
// So the kernel's conntrack sees every queued flow from the inside,
// consistently in both directions and in the inside host's sequence space
// (natalg maps ACKs back before the control connection's entry sees them;
// split mode sends an inbound packet on from the router, where conntrack
// meets it translated, in the output path): it neither NATs these
// flows (the table's NAT chains accept them untouched) nor marks shifted
// sequence numbers invalid. No --queue-bypass: without natalg the queued
// traffic stops (fail-closed).
func rulesText(inside, outside, queues string, lo, hi uint16) string {
	_, out := kerneldp.SplitQueues(lo, hi)
	target := fmt.Sprintf("NFQUEUE --queue-balance %d:%d", out.First, out.Last)
	if out.First == out.Last {
		target = fmt.Sprintf("NFQUEUE --queue-num %d", out.First)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# natalg rules: inside %s, outside %s, queues %s\n", inside, outside, queues)
	fmt.Fprintf(&b, "*mangle\n:%s - [0:0]\n-A FORWARD -i %s -o %s -m connmark --mark %#x/%#x -j %s\n-A %s -j %s\nCOMMIT\n",
		chainOut, inside, outside, kerneldp.CtMarkControl, kerneldp.CtMarkControl, chainOut, chainOut, target)
	fmt.Fprintf(&b, "*nat\n:%s - [0:0]\n-A POSTROUTING -o %s -j %s\n-A %s -j MARK --or-mark %#x\nCOMMIT\n",
		chainPost, outside, chainPost, chainPost, kerneldp.MarkOutbound)
	return b.String()
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
// (-300), and routing comes after them, so both queues get
// whole datagrams: an NFQUEUE verdict replaces one packet with one, and
// could not send a datagram natalg reassembled as several fragments. On
// output the kernel cuts the translated datagram again, at most as large
// as its largest fragment (frag_max_size), as it does behind conntrack.
// RFC 4787 REQ-14 and RFC 6146 §3.4: fragments arrive in any order.
func defragText() string {
	return fmt.Sprintf("*raw\n:%s - [0:0]\n-A %s -m socket --nowildcard -j RETURN\nCOMMIT\n", chainDefrag, chainDefrag)
}

// removeSavedText returns the iptables-restore input (for --noflush) that
// takes away everything of natalg's that saved (what iptables-save or
// ip6tables-save prints, all tables) shows, whichever natalg installed it,
// with whichever interfaces and addresses: every rule of a built-in chain
// that jumps to a chain of natalg's, then those chains (flushed and
// deleted), and the mangle FORWARD rule "-i IN -o OUT -j MARK" that set
// MarkOutbound on every forwarded packet until 2026-12-05. "" when there is
// nothing of natalg's.
func removeSavedText(saved string) string {
	var b strings.Builder
	var table string
	var dels, chains []string
	legacyMark := fmt.Sprintf(" -j MARK --set-xmark %#x/%#x", kerneldp.MarkOutbound, kerneldp.MarkOutbound)
	for _, line := range strings.Split(saved, "\n") {
		switch fields := strings.Fields(line); {
		case strings.HasPrefix(line, "*"):
			table, dels, chains = line[1:], nil, nil
		case strings.HasPrefix(line, ":"+prefix) && len(fields) > 0:
			chains = append(chains, fields[0][1:])
		case strings.HasPrefix(line, "-A ") && len(fields) > 1 && !strings.HasPrefix(fields[1], prefix):
			jump := slices.ContainsFunc(fields[2:], func(f string) bool { return strings.HasPrefix(f, prefix) })
			legacy := table == "mangle" && fields[1] == "FORWARD" && strings.HasSuffix(line, legacyMark) &&
				strings.Contains(line, " -i ") && strings.Contains(line, " -o ")
			if jump || legacy {
				dels = append(dels, "-D "+line[len("-A "):])
			}
		case line == "COMMIT" && len(dels)+len(chains) > 0:
			fmt.Fprintf(&b, "*%s\n", table)
			for _, d := range dels {
				fmt.Fprintln(&b, d)
			}
			for _, c := range chains {
				fmt.Fprintf(&b, "-F %s\n", c)
			}
			for _, c := range chains {
				fmt.Fprintf(&b, "-X %s\n", c)
			}
			b.WriteString("COMMIT\n")
		}
	}
	return b.String()
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
	backend := fs.String("queue-backend", "auto", "how outbound packets are queued: xt (iptables NFQUEUE rules), nft (table inet natalg_queue: nft's queue expression, else xt's NFQUEUE target in an nft rule), auto (nft where the kernel takes either)")
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
		if *backend != "xt" {
			fmt.Fprintf(stdout, "# with --queue-backend %s, where the kernel queues from an nft rule, the mangle and nat rules\n# below go in as table inet %s instead (the same tests)\n", *backend, kerneldp.QueueTableName)
		}
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
		if kerneldp.QueueTableSupported() {
			*backend = "nft"
		}
	}
	// Removing first makes --apply idempotent (and switches backends, and
	// upgrades the rules of an older natalg). The hairpin rules are xt
	// rules with either backend: they queue every packet from the inside
	// to a public address, which natalg translates whole in both
	// datapaths.
	for i, tool := range []string{"iptables-restore", "ip6tables-restore"} {
		save := strings.TrimSuffix(tool, "-restore") + "-save"
		saved, err := exec.Command(save).Output()
		if err != nil {
			fmt.Fprintf(stderr, "natalg rules: %s: %v\n", save, err)
			return 1
		}
		if text := removeSavedText(string(saved)); text != "" {
			if out, err := restore(tool, text); err != nil {
				fmt.Fprintf(stderr, "natalg rules: %s (removing natalg's rules): %v\n%s", tool, err, out)
				return 1
			}
		}
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
	// accept_local: for hairpinning (RFC 4787 REQ-9a), which translates
	// packets before routing, so they arrive with the public address, a
	// local one, as source.
	if *apply && slices.ContainsFunc(public, netip.Addr.Is4) {
		if err := acceptLocal(*inside); err != nil {
			fmt.Fprintf(stderr, "natalg rules: %v\n", err)
			return 1
		}
	}
	hairpinNote := fmt.Sprintf("# hairpin, IPv4 (and net.ipv4.conf.%s.accept_local=1)\n%s# hairpin, IPv6\n%s", *inside, hairpin[0], hairpin[1])
	switch {
	case *apply && *backend == "nft":
		_, out := kerneldp.SplitQueues(lo, hi)
		if err := kerneldp.ApplyQueueTable(*inside, *outside, out); err != nil {
			fmt.Fprintf(stderr, "natalg rules: %v (use --queue-backend xt)\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "installed table inet %s (nft queue expression): outbound %s -> %s to queues %d-%d\n%s",
			kerneldp.QueueTableName, *inside, *outside, out.First, out.Last, hairpinNote)
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
