package nat

import (
	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// icmpError translates an ICMP or ICMPv6 error (RFC 5508 §4, RFC 792,
// RFC 4443 §2.4) about a packet of a known flow: the outer header like a
// packet of the error's direction, and the embedded packet, which travelled
// the other way, back to what its sender sent or its receiver got. Path-MTU
// discovery (fragmentation needed, packet too big) and traceroute (time
// exceeded) work through the NAT this way, and so do errors about a
// hairpinned flow (RFC 5508 §5 REQ-7: "All NAT devices ... MUST support the
// traversal of hairpinned ICMP Error messages", the outer destination being
// "the source IP address of the embedded IP packet after the translation"):
// the inside host's error reaches the other inside host from the public
// address, quoting what that host sent. Errors about no known flow are
// dropped, so they never reveal inside addresses nor reach inside hosts
// unsolicited.
func (e *Engine) icmpError(p *header.Parsed, outbound bool, now int64) (Verdict, []byte, DropReason) {
	var in header.Parsed
	f, dir, dr := e.quotedFlow(p, &in, now)
	if dr == DropNone && kindOf(f).isNAT64() {
		dr = DropICMPErrorNoFlow // a NAT64 flow's errors arrive by process64
	}
	if dr != DropNone {
		v, dr := e.Stats.drop(dr)
		return v, nil, dr
	}
	t := f.Tuples[dir.Other()] // the error leaves from t.Dst towards t.Src
	fam := familyOf(p.Src)
	switch {
	case p.Src == f.Tuples[dir].Src:
		p.SetSrcAddr(t.Dst) // sent by the flow's own endpoint
	case outbound:
		p.SetSrcAddr(e.public[fam]) // an inside router: never reveal it
	}
	if p.Dst != t.Src {
		p.SetDstAddr(t.Src)
	}
	// The quoted packet becomes the reverse of what leaves: t.Src -> t.Dst.
	if in.Src != t.Src {
		in.SetSrcAddr(t.Src)
	}
	if in.Dst != t.Dst {
		in.SetDstAddr(t.Dst)
	}
	if in.SrcPort != t.SrcPort && (!in.Proto.IsICMP() || in.SrcPort != 0) {
		in.SetSrcPort(t.SrcPort)
	}
	if in.DstPort != t.DstPort && (!in.Proto.IsICMP() || in.DstPort != 0) {
		in.SetDstPort(t.DstPort)
	}
	if x, ok := f.Ext.(*ftpFlow); ok && in.Proto == ipproto.TCP {
		x.unmapQuoted(&in, dir.Other())
	}
	// The outer checksum covers the quoted packet (and, for ICMPv6, the
	// pseudo-header): recompute it whole.
	p.ComputeL4Checksum()
	// The flow is not refreshed: RFC 5508 §4.3 REQ-6, "a NAT device MUST
	// NOT refresh or delete the NAT Session that pertains to the embedded
	// payload", so forged errors cannot keep a session alive.
	e.Stats.ICMPErrors.Add(1)
	e.Stats.Accepted.Add(1)
	return Accept, p.Buf, DropNone
}

// quotedFlow decodes the packet quoted by ICMP error p into in and finds
// its flow. The quoted packet went the other way; its reverse is a tuple of
// the flow in the error's direction. A quote that does not decode is
// counted as malformed (DropMalformed); one of another IP version, without
// its transport header, or of no known flow gives DropICMPErrorNoFlow.
//
// The error's own checksum is verified first (RFC 5508 §4.1 REQ-3: "if the
// ICMP checksum fails to validate, the NAT SHOULD silently drop the ICMP
// Error packet"), since the translation recomputes it whole and would
// otherwise make a corrupted error valid; DropBadL4Checksum. The quoted
// IPv4 header's checksum is verified by DecodeInner (REQ-3 a), and the
// quoted transport checksum is not (REQ-3 c: quotes are usually cut short).
func (e *Engine) quotedFlow(p, in *header.Parsed, now int64) (*conntrack.Flow, conntrack.Dir, DropReason) {
	if !p.L4ChecksumValid() {
		return nil, 0, DropBadL4Checksum
	}
	if r := in.DecodeInner(p.Buf[p.PayloadOff:]); r != header.Ok {
		e.Stats.Malformed[r&31].Add(1)
		return nil, 0, DropMalformed
	}
	if in.Version != p.Version || in.L4Off == 0 {
		return nil, 0, DropICMPErrorNoFlow
	}
	quoted := conntrack.Tuple{Src: in.Src, Dst: in.Dst, SrcPort: in.SrcPort, DstPort: in.DstPort, Proto: in.Proto}
	f, dir := e.table.Lookup(quoted.Reverse(), now)
	if f == nil {
		return nil, 0, DropICMPErrorNoFlow
	}
	return f, dir, DropNone
}

// unmapQuoted maps the sequence numbers of a quoted segment of an FTP
// control flow, sent in direction q and shifted by the gateway's rewrites,
// back to the ones its sender used: SEQ through q's ledger, and, when the
// quote holds them, the ACK and SACK edges through the other direction's.
// Stacks act only on an error whose quoted SEQ lies in SND.UNA =< SEG.SEQ <
// SND.NXT (RFC 5927 §4.1, Linux among them), so an unmapped SEQ after a
// rewrite that changed the length would make them drop a fragmentation
// needed or packet too big error (RFC 1191, RFC 8201), and path-MTU
// discovery would stall. The quoted TCP checksum is updated incrementally
// when the quote holds it; the caller recomputes the ICMP checksum. The
// quoted payload keeps the rewritten text: only the headers are the
// sender's again.
func (x *ftpFlow) unmapQuoted(in *header.Parsed, q conntrack.Dir) {
	x.flow.Lock()
	defer x.flow.Unlock()
	fwd, back := &x.ledgers[q], &x.ledgers[q.Other()]
	// Ack maps a forwarded sequence number back: a segment's first byte is
	// never inside rewritten text, except where a rewrite starts (Ack's
	// "inside" case returns that start, which is where the segment began).
	if s := fwd.Ack(in.Seq); s != in.Seq {
		in.SetTCPSeq(s)
	}
	if in.TCPFlags&ipproto.TCPACK == 0 {
		return // the quote stops before the flags, or carries no ACK
	}
	if a := back.Seq(in.Ack); a != in.Ack {
		in.SetTCPAck(a)
	}
	for i := 0; i < in.SACKBlocks; i++ {
		l, r := in.SACKBlock(i)
		if nl, nr := back.Seq(l), back.Seq(r); nl != l || nr != r {
			in.SetSACKBlock(i, nl, nr)
		}
	}
}
