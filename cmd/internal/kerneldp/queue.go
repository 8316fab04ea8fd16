package kerneldp

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// QueueTableName is the table (family inet) "natalg rules" installs where
// the kernel has nft's queue expression, in place of its xt NFQUEUE rules.
const QueueTableName = "natalg_queue"

// Queues is a range of queue numbers, first to last.
type Queues struct{ First, Last uint16 }

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

// queueTo queues the packet to qs, balanced by flow hash (no bypass:
// without a reader the kernel drops it).
func queueTo(qs Queues) []expr.Any {
	return []expr.Any{&expr.Queue{Num: qs.First, Total: qs.Last - qs.First + 1}}
}

// ApplyQueueTable replaces table inet natalg_queue: the same rules as the
// xt ones of "natalg rules", at the same hooks and priorities (raw
// PREROUTING for packets arriving on outside, mangle FORWARD for packets
// from inside to outside, which get MarkOutbound): inbound packets with
// MarkQueue and outbound packets of connections with CtMarkControl are
// queued. It fails on a kernel without nft_queue.
func ApplyQueueTable(inside, outside string, in, out Queues) error {
	cc, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: QueueTableName, Family: nftables.TableFamilyINet}
	if _, err := cc.ListTableOfFamily(QueueTableName, nftables.TableFamilyINet); err == nil {
		cc.DelTable(t)
	}
	cc.AddTable(t)
	filter := nftables.ChainTypeFilter
	chIn := cc.AddChain(&nftables.Chain{Name: "inbound", Table: t, Type: filter, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
	chOut := cc.AddChain(&nftables.Chain{Name: "outbound", Table: t, Type: filter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityMangle})
	rule := func(c *nftables.Chain, e ...[]expr.Any) {
		cc.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: cat(e...)})
	}
	rule(chIn, matchIfname(true, outside), testMark(MarkQueue, true), queueTo(in))
	rule(chOut, matchIfname(true, inside), matchIfname(false, outside), setMark(MarkOutbound))
	rule(chOut, matchIfname(true, inside), matchIfname(false, outside), testCtMark(CtMarkControl), queueTo(out))
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
