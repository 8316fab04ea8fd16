package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/natalg/natalg/cmd/internal/kerneldp"
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
// Only packets carrying the queue mark (kerneldp.MarkQueue) are queued (and
// only they jump to natalg's chains): natalg run's nftables table (inet
// natalg, chains just before these hooks) sets it on FTP control packets in
// split mode and on every packet of the NAT in full mode. The rules also
// mark packets forwarded from inside to outside (MarkOutbound), which is how
// the table's masquerade knows the interfaces.
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
	q := fmt.Sprintf("-m mark --mark %#x/%#x", kerneldp.MarkQueue, kerneldp.MarkQueue)
	var b strings.Builder
	fmt.Fprintf(&b, "# natalg rules: inside %s, outside %s, queues %s\n", inside, outside, queues)
	fmt.Fprintf(&b, "*raw\n:%s - [0:0]\n-A PREROUTING -i %s %s -j %s\n-A %s -j %s\nCOMMIT\n",
		chainIn, outside, q, chainIn, chainIn, target(inLo, inHi))
	fmt.Fprintf(&b, "*mangle\n:%s - [0:0]\n-A FORWARD -i %s -o %s -j MARK --or-mark %#x\n-A FORWARD -i %s -o %s %s -j %s\n-A %s -j %s\nCOMMIT\n",
		chainOut, inside, outside, kerneldp.MarkOutbound, inside, outside, q, chainOut, chainOut, target(outLo, outHi))
	return b.String()
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

// removeText undoes rulesText (for iptables-restore --noflush).
func removeText(inside, outside string) string {
	q := fmt.Sprintf("-m mark --mark %#x/%#x", kerneldp.MarkQueue, kerneldp.MarkQueue)
	return fmt.Sprintf("*raw\n-D PREROUTING -i %s %s -j %s\n-F %s\n-X %s\nCOMMIT\n*mangle\n-D FORWARD -i %s -o %s -j MARK --or-mark %#x\n-D FORWARD -i %s -o %s %s -j %s\n-F %s\n-X %s\nCOMMIT\n",
		outside, q, chainIn, chainIn, chainIn, inside, outside, kerneldp.MarkOutbound, inside, outside, q, chainOut, chainOut, chainOut)
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
	if !*apply && !*remove {
		fmt.Fprint(stdout, text)
		return 0
	}
	if *apply && *backend == "auto" {
		*backend = "xt"
		if kerneldp.QueueSupported() {
			*backend = "nft"
		}
	}
	// Removing first makes --apply idempotent (and switches backends);
	// errors from rules that are not there are expected then.
	for _, tool := range []string{"iptables-restore", "ip6tables-restore"} {
		restore(tool, removeText(*inside, *outside))
		if *apply && *backend == "xt" {
			if out, err := restore(tool, text); err != nil {
				fmt.Fprintf(stderr, "natalg rules: %s: %v\n%s", tool, err, out)
				return 1
			}
		}
	}
	if err := kerneldp.RemoveQueueTable(); err != nil {
		fmt.Fprintf(stderr, "natalg rules: remove table inet %s: %v\n", kerneldp.QueueTableName, err)
		return 1
	}
	switch {
	case *apply && *backend == "nft":
		in, out := queueHalves(lo, hi)
		if err := kerneldp.ApplyQueueTable(*inside, *outside, in, out); err != nil {
			fmt.Fprintf(stderr, "natalg rules: %v (use --queue-backend xt)\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "installed table inet %s (nft queue expression): inbound on %s to queues %d-%d, outbound %s -> %s to queues %d-%d\n",
			kerneldp.QueueTableName, *outside, in.First, in.Last, *inside, *outside, out.First, out.Last)
	case *apply:
		fmt.Fprintf(stdout, "installed (IPv4 and IPv6):\n%s", text)
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
