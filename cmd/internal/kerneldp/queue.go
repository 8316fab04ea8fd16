package kerneldp

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// QueueTableName is the table (family inet) "natalg rules" installs where
// the kernel has nft's queue expression, in place of its xt rules.
const QueueTableName = "natalg_queue"

// Queues is a range of queue numbers, first to last.
type Queues struct{ First, Last uint16 }

// SplitQueues splits the queues first-last into the inbound and outbound
// ones: with two queues or more, disjoint halves of the range, so a
// flow's data and its ACKs always have separate readers and are
// translated in parallel. Within each half the kernel's balancing puts
// one direction of a flow on one queue, so its verdicts stay in order.
// "natalg rules" (outbound) and natalg run's table (inbound, control_in or mark_in)
// both split --queues this way.
func SplitQueues(first, last uint16) (in, out Queues) {
	in, out = Queues{first, last}, Queues{first, last}
	if last > first {
		mid := first + (last-first)/2
		in.Last, out.First = mid, mid+1
	}
	return in, out
}

// matchIfname matches the input (in) or output interface's name.
func matchIfname(in bool, name string) []expr.Any {
	key := expr.MetaKeyOIFNAME
	if in {
		key = expr.MetaKeyIIFNAME
	}
	b := make([]byte, 16) // IFNAMSIZ, zero padded
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: b},
	}
}

// queueTo queues the packet to qs, balanced by flow hash, without bypass
// (with no reader the kernel drops it: fail-closed). With nftQueue, nft's
// queue expression; without (a kernel lacking nft_queue, as this project's
// CI VM), xt's NFQUEUE target, revision 3, through nft_compat: the target
// the xt rules of "natalg rules" use, in an nft rule.
func queueTo(qs Queues, nftQueue bool) []expr.Any {
	total := qs.Last - qs.First + 1
	if nftQueue {
		return []expr.Any{&expr.Queue{Num: qs.First, Total: total}}
	}
	// struct xt_NFQ_info_v3 {u16 queuenum, queues_total, flags} in host
	// byte order, padded to XT_ALIGN (8 bytes).
	info := xt.Unknown(make([]byte, 8))
	copy(info[0:], binaryutil.NativeEndian.PutUint16(qs.First))
	copy(info[2:], binaryutil.NativeEndian.PutUint16(total))
	return []expr.Any{&expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}}
}

// ApplyQueueTable replaces table inet natalg_queue: the rules of "natalg
// rules" (see its rulesText) in nft. Outbound packets (inside to outside)
// of connections with CtMarkControl are queued to out, after routing
// (forward, priority mangle), the conntrack mark tested first: it is all a
// packet of a kernel-translated connection pays (the counter counts the
// queued ones). The first packet of a connection leaving on the outside
// interface gets MarkOutbound in a NAT chain (postrouting, srcnat, just
// before natalg's nat_post), so the table's masquerade knows the
// interface. It queues with nft's queue expression where the kernel has
// it, else with xt's NFQUEUE target (queueTo), and fails on a kernel with
// neither (QueueTableSupported).
func ApplyQueueTable(inside, outside string, out Queues) error {
	cc, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: QueueTableName, Family: nftables.TableFamilyINet}
	if _, err := cc.ListTableOfFamily(QueueTableName, nftables.TableFamilyINet); err == nil {
		cc.DelTable(t)
	}
	cc.AddTable(t)
	chPost := cc.AddChain(&nftables.Chain{Name: "outbound_nat", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	rule := func(c *nftables.Chain, e ...[]expr.Any) {
		cc.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: cat(e...)})
	}
	chOut := cc.AddChain(&nftables.Chain{Name: "outbound", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityMangle})
	rule(chOut, testCtMark(CtMarkControl), matchIfname(true, inside), matchIfname(false, outside),
		[]expr.Any{&expr.Counter{}}, queueTo(out, QueueSupported()))
	rule(chPost, matchIfname(false, outside), setMark(MarkOutbound))
	if err := cc.Flush(); err != nil {
		return fmt.Errorf("kerneldp: table inet %s (nft queue): %w", QueueTableName, err)
	}
	return nil
}

// RemoveQueueTable deletes table inet natalg_queue, if there is one.
func RemoveQueueTable() error {
	cc, err := nftables.New()
	if err != nil {
		return err
	}
	if _, err := cc.ListTableOfFamily(QueueTableName, nftables.TableFamilyINet); err != nil {
		return nil
	}
	cc.DelTable(&nftables.Table{Name: QueueTableName, Family: nftables.TableFamilyINet})
	return cc.Flush()
}
