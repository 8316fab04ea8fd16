package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Chains natalg owns in the kernel's tables.
const (
	chainIn  = "NATALG-IN"  // raw PREROUTING: inbound, before conntrack
	chainOut = "NATALG-OUT" // mangle FORWARD: outbound, after routing
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
// So the kernel's conntrack sees every flow from the inside, consistently
// in both directions and in the inside host's sequence space (natalg maps
// ACKs back before conntrack sees them): it neither NATs these flows (no
// NAT rules apply to them) nor marks shifted sequence numbers invalid. No
// --queue-bypass: without natalg the traffic stops (fail-closed).
func rulesText(inside, outside, queues string, lo, hi uint16) string {
	// With two queues or more, inbound and outbound get disjoint halves of
	// the range: a flow's data and its ACKs then always have separate
	// readers and are translated in parallel. Within each half the
	// kernel's balancing puts one direction of a flow on one queue, so its
	// verdicts stay in order.
	inLo, inHi, outLo, outHi := lo, hi, lo, hi
	if hi > lo {
		mid := lo + (hi-lo)/2
		inHi, outLo = mid, mid+1
	}
	target := func(a, b uint16) string {
		if a == b {
			return fmt.Sprintf("NFQUEUE --queue-num %d", a)
		}
		return fmt.Sprintf("NFQUEUE --queue-balance %d:%d", a, b)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# natalg rules: inside %s, outside %s, queues %s\n", inside, outside, queues)
	fmt.Fprintf(&b, "*raw\n:%s - [0:0]\n-A PREROUTING -i %s -j %s\n-A %s -j %s\nCOMMIT\n", chainIn, outside, chainIn, chainIn, target(inLo, inHi))
	fmt.Fprintf(&b, "*mangle\n:%s - [0:0]\n-A FORWARD -i %s -o %s -j %s\n-A %s -j %s\nCOMMIT\n", chainOut, inside, outside, chainOut, chainOut, target(outLo, outHi))
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
	return fmt.Sprintf("*raw\n-D PREROUTING -i %s -j %s\n-F %s\n-X %s\nCOMMIT\n*mangle\n-D FORWARD -i %s -o %s -j %s\n-F %s\n-X %s\nCOMMIT\n",
		outside, chainIn, chainIn, chainIn, inside, outside, chainOut, chainOut, chainOut)
}

// cmdRules implements "natalg rules".
func cmdRules(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	inside := fs.String("inside-if", "", "interface towards the inside hosts")
	outside := fs.String("outside-if", "", "interface towards the outside")
	queues := fs.String("queues", "0", "NFQUEUE numbers natalg serves: N or N-M")
	apply := fs.Bool("apply", false, "install the rules (iptables-restore and ip6tables-restore)")
	defrag := fs.Bool("defrag", true, "have the kernel reassemble fragments before natalg sees them (chain "+chainDefrag+"; see README)")
	remove := fs.Bool("remove", false, "remove the rules")
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
	qs, err := parseQueues(*queues)
	if err != nil {
		fmt.Fprintf(stderr, "natalg rules: --queues: %v\n", err)
		return 2
	}
	lo, hi := qs[0], qs[len(qs)-1]
	text := rulesText(*inside, *outside, *queues, lo, hi)
	if *defrag {
		text += defragText()
	}
	if !*apply && !*remove {
		fmt.Fprint(stdout, text)
		return 0
	}
	// Removing first makes --apply idempotent; errors from rules that are
	// not there are expected then.
	for _, tool := range []string{"iptables-restore", "ip6tables-restore"} {
		restore(tool, removeText(*inside, *outside))
		restore(tool, removeDefragText()) // on its own: it may be absent when the rest is not
		if *apply {
			if out, err := restore(tool, text); err != nil {
				fmt.Fprintf(stderr, "natalg rules: %s: %v\n%s", tool, err, out)
				return 1
			}
		}
	}
	if *apply {
		fmt.Fprintf(stdout, "installed (IPv4 and IPv6):\n%s", text)
	} else {
		fmt.Fprintln(stdout, "removed")
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
