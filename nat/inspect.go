package nat

import (
	"net/netip"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
)

// FlowInfo is a snapshot of one flow for operators (natalg flows).
type FlowInfo struct {
	Orig, Reply conntrack.Tuple
	State       conntrack.TCPState
	Expires     time.Time
	Created     time.Time
	// Kind is how the flow was made: "snat", "forward", "expected", "nat64"
	// (an IPv6 client's flow to an IPv4 host) or "nat64-expected" (an
	// IPv4 server's data connection to an IPv6 client through NAT64),
	// "hairpin" (an inside host to a forwarded port through the public
	// address) or "hairpin-bound" (an inside host to an expected port or
	// another inside endpoint's mapping through the public address) or
	// "nat64-hairpin" (an IPv6 client to another's binding through a pool
	// address, RFC 6146 §3.8).
	Kind string
	// FTP is set on FTP control flows; SeqDelta is the offset now applied
	// to new data of each direction ([0] original, [1] reply) and
	// Corrections the number of correction points each ledger holds.
	FTP         bool
	TLS         bool
	SeqDelta    [2]int32
	Corrections [2]int
	// Related is set on connections an FTP gateway announced.
	Related bool
}

// Flows calls fn with a snapshot of every live flow.
func (e *Engine) Flows(fn func(FlowInfo)) {
	var infos []FlowInfo
	e.table.Range(func(f *conntrack.Flow) bool {
		fi := FlowInfo{
			Orig: f.Tuples[conntrack.Original], Reply: f.Tuples[conntrack.Reply],
			State: f.State(), Expires: time.Unix(0, f.Expires()), Created: time.Unix(0, f.Created),
			Kind: kindOf(f).String(), Related: f.Master != nil,
		}
		infos = append(infos, fi)
		return true
	})
	// Read gateway state outside the table's shard locks.
	for i := range infos {
		fi := &infos[i]
		if f, _ := e.table.Lookup(fi.Orig, 0); f != nil {
			f.Lock()
			if x, ok := f.Ext.(*ftpFlow); ok {
				fi.FTP, fi.TLS = true, x.ctl.TLS()
				for d := 0; d < 2; d++ {
					fi.SeqDelta[d] = x.ledgers[d].Offset()
					fi.Corrections[d] = x.ledgers[d].Len()
				}
			}
			f.Unlock()
		}
		fn(*fi)
	}
}

// ExpectationInfo is a snapshot of one pending expectation.
type ExpectationInfo struct {
	Proto   ipproto.Proto
	Peer    string // the only address allowed to connect
	Public  string // address:port it connects to
	Target  string // inside address:port it goes to
	Expires time.Time
	Master  conntrack.Tuple
}

// Expectations calls fn with a snapshot of every pending expectation.
func (e *Engine) Expectations(fn func(ExpectationInfo)) {
	e.table.RangeExpectations(func(x *conntrack.Expectation) {
		ei := ExpectationInfo{Proto: x.Proto, Peer: x.Src.String(),
			Public: netip.AddrPortFrom(x.Dst, x.DstPort).String(), Target: x.Target.String(),
			Expires: time.Unix(0, x.Expires)}
		if x.Master != nil {
			ei.Master = x.Master.Tuples[conntrack.Original]
		}
		fn(ei)
	})
}
