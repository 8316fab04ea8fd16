package nat

import (
	"net/netip"

	"github.com/natalg/natalg/alg"
	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
	"github.com/natalg/natalg/seqdelta"
)

// ftpFlow is the gateway state of an FTP control flow: the ALG and the
// sequence ledgers of both directions. It is allocated with the flow, so the
// ledgers exist before the first rewrite (the kernel once crashed for lack
// of that, net-6.18-rc4). Guarded by the flow's lock.
type ftpFlow struct {
	engine  *Engine
	flow    *conntrack.Flow
	ctl     *alg.Control
	ledgers [2]seqdelta.Ledger // by direction
	// stored is the connection labels last stored in the kernel's
	// conntrack entry (ProcessCT): sent again only when they change.
	stored [LabelBytes]byte
}

func newFTPFlow(e *Engine, f *conntrack.Flow) *ftpFlow {
	return &ftpFlow{engine: e, flow: f, ctl: alg.NewControl(&e.cfg.FTP, f.Tuples)}
}

// Ledger returns the sequence ledger of direction dir (for inspection tools).
func (ftp *ftpFlow) Ledger(dir conntrack.Dir) *seqdelta.Ledger { return &ftp.ledgers[dir] }

// MapData implements alg.Translator: it binds the announced inside endpoint
// to a public port (the announced one when free) and expects the peer of
// the control connection to connect there.
func (ftp *ftpFlow) MapData(dir conntrack.Dir, announced netip.AddrPort, now int64) (netip.AddrPort, bool) {
	if kindOf(ftp.flow).isNAT64() {
		return ftp.mapData64(dir, announced, now)
	}
	inside := announced.Addr().Unmap()
	pub := ftp.engine.public[familyOf(inside)]
	if !pub.IsValid() {
		return netip.AddrPort{}, false
	}
	in := endpoint{addr: inside, port: announced.Port(), proto: ipproto.TCP}
	port, ok := ftp.engine.ports.acquire(in)
	if !ok {
		return netip.AddrPort{}, false
	}
	exp := &conntrack.Expectation{
		Proto:   ipproto.TCP,
		Src:     ftp.flow.Tuples[dir.Other()].Src, // the peer, as it reaches the NAT
		Dst:     pub,
		DstPort: port,
		Target:  netip.AddrPortFrom(inside, announced.Port()),
		Master:  ftp.flow,
	}
	if sink := ftp.engine.cfg.Expectations; sink != nil {
		// The kernel holds the expectation before the rewritten segment,
		// and so the peer's connection, can leave. A refusal still rewrites
		// the announcement (the sink counts it): the peer's connection then
		// finds nothing and fails, where dropping the segment would let its
		// retransmission out unrewritten (the gateway has consumed the
		// bytes), the inside address with it.
		exp.Expires = now + int64(ftp.engine.table.Timeouts().Expectation)
		_ = sink.ExpectationInstalled(exp)
	}
	if err := ftp.engine.table.Expect(exp, now); err != nil {
		if sink := ftp.engine.cfg.Expectations; sink != nil {
			sink.ExpectationRemoved(exp)
		}
		ftp.engine.ports.release(in)
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(pub, port), true
}

// processFTP runs a segment of an FTP control flow through the gateway, then
// shifts its SEQ by its direction's ledger and its ACK and SACK edges by the
// other direction's (RFC 9293 §3.4, RFC 2018 §3), translates it and fixes
// its checksum.
func (e *Engine) processFTP(p *header.Parsed, flow *conntrack.Flow, dir conntrack.Dir, ftp *ftpFlow, now int64, facts *CTFacts) (Verdict, []byte, DropReason) {
	flow.Lock()
	defer flow.Unlock()
	payload := p.Payload()
	seq := p.Seq
	rewrote := false
	flags := p.TCPFlags
	if len(payload) > 0 || flags&ipproto.TCPSYN != 0 {
		if len(payload) > 0 && !p.TCPChecksumValid() {
			// Never give a corrupted segment a valid checksum by rewriting it.
			v, dr := e.Stats.drop(DropBadL4Checksum)
			return v, nil, dr
		}
		seg := alg.Segment{Dir: dir, Seq: p.Seq, Payload: payload,
			SYN: flags&ipproto.TCPSYN != 0, FIN: flags&ipproto.TCPFIN != 0, RST: flags&ipproto.TCPRST != 0, MSS: p.MSS, Now: now}
		res := ftp.ctl.Segment(&seg, &ftp.ledgers[dir], ftp)
		e.Stats.algEvents(res.Events)
		switch res.Action {
		case alg.Drop:
			if res.Events&alg.EvTornDown != 0 && kindOf(flow).isNAT64() && dir == conntrack.Reply && flags&ipproto.TCPACK != 0 && flags&ipproto.TCPRST == 0 {
				// RFC 6384 §12, the server's side of a torn-down
				// session: its next segment goes back to it as a reset
				e.Stats.ALGResets.Add(1)
				e.Stats.Accepted.Add(1)
				return Accept, resetSender(p), DropNone
			}
			v, dr := e.Stats.drop(algDropReason(res.Events))
			return v, nil, dr
		case alg.Reset:
			// RFC 6384 §12: the gateway tore the session down; the
			// segment goes on as a reset, its payload never relayed
			p.Buf = p.Buf[:p.PayloadOff]
			p.SetIPLength(p.PayloadOff)
			p.SetTCPFlags(p.TCPFlags&ipproto.TCPACK | ipproto.TCPRST)
			seq, rewrote, flags = res.Seq, true, p.TCPFlags
			flow.Touch(dir, ipproto.TCPRST, now, e.table.Timeouts())
			if e.cfg.Log != nil {
				e.cfg.Log.Warn("nat64 ftp: the server did not answer 200 to a NOOP standing in for a command: control connection reset (RFC 6384 §12)",
					"client", flow.Tuples[conntrack.Original].Src, "client_port", flow.Tuples[conntrack.Original].SrcPort,
					"server", flow.Tuples[conntrack.Reply].Src, "server_port", flow.Tuples[conntrack.Reply].SrcPort)
			}
		case alg.Replace:
			size := p.PayloadOff + len(res.Payload)
			if size > cap(p.Buf) || size > 65535 {
				v, dr := e.Stats.drop(DropTooBig)
				return v, nil, dr
			}
			p.Buf = p.Buf[:size]
			copy(p.Buf[p.PayloadOff:], res.Payload)
			p.SetIPLength(size)
			seq = res.Seq
			rewrote = true
			if p.TCPFlags&ipproto.TCPURG != 0 {
				// the urgent pointer counts bytes of the old payload:
				// cleared rather than wrong (RFC 6384 §5)
				p.ClearTCPUrgent()
			}
			if res.Events&alg.EvRewrite != 0 || res.Events&alg.EvRetransRewrite != 0 {
				e.Stats.Rewrites.Add(1)
			}
		}
	}
	adjusted := false
	if mapped := ftp.ledgers[dir].Seq(seq); mapped != p.Seq {
		p.SetTCPSeq(mapped)
		adjusted = true
	}
	if flags&ipproto.TCPACK != 0 {
		back := &ftp.ledgers[dir.Other()]
		ack := back.Ack(p.Ack)
		if flags&ipproto.TCPRST == 0 && ftp.ctl.Outstanding(dir.Other()) > 0 &&
			(len(payload) > 0 || p.TCPChecksumValid()) {
			// What the receiver of the other direction has: the gateway
			// forgets the rewrites before it when it needs room for new
			// ones (their correction points, seqdelta.Ledger.Prune, and
			// history entries). Only an intact segment's ACK counts (a
			// payload's checksum was verified above).
			ftp.ctl.Acked(dir.Other(), ack)
		}
		if ack != p.Ack {
			p.SetTCPAck(ack)
			adjusted = true
		}
		for i := 0; i < p.SACKBlocks; i++ {
			left, right := p.SACKBlock(i)
			if newLeft, newRight := back.Ack(left), back.Ack(right); newLeft != left || newRight != right {
				p.SetSACKBlock(i, newLeft, newRight)
				adjusted = true
			}
		}
	}
	if adjusted {
		e.Stats.SeqAdjusted.Add(1)
	}
	if kindOf(flow).isNAT64() {
		if dr := e.translate64(p, flow, dir); dr != DropNone {
			v, dr := e.Stats.drop(dr)
			return v, nil, dr
		}
	} else {
		e.translate(p, flow, dir)
	}
	if rewrote {
		p.ComputeL4Checksum()
	}
	e.ctFacts(flow, ftp, facts)
	e.Stats.Accepted.Add(1)
	e.Stats.Translated.Add(1)
	return Accept, p.Buf, DropNone
}

// algDropReason picks the counter for a segment the gateway dropped.
func algDropReason(ev alg.Event) DropReason {
	switch {
	case ev&alg.EvMapFailed != 0:
		return DropALGMapFailed
	case ev&alg.EvOutOfOrder != 0:
		return DropALGOutOfOrder
	case ev&alg.EvRetransMismatch != 0:
		return DropALGRetransMismatch
	case ev&alg.EvTornDown != 0:
		return DropALGTornDown
	}
	return DropALGHeld
}

// resetSender turns p, a TCP segment with ACK, into a reset back to its
// sender, in its own family and sequence space: from p's destination to its
// source, SEQ the sender's next expected byte (p's ACK, so that the reset
// is accepted at once, RFC 5961 §3.2), ACK the end of p; no payload.
func resetSender(p *header.Parsed) []byte {
	src, dst, sport, dport := p.Src, p.Dst, p.SrcPort, p.DstPort
	end := p.Seq + uint32(len(p.Payload()))
	if p.TCPFlags&ipproto.TCPSYN != 0 {
		end++
	}
	if p.TCPFlags&ipproto.TCPFIN != 0 {
		end++
	}
	ack := p.Ack
	p.Buf = p.Buf[:p.PayloadOff]
	p.SetIPLength(p.PayloadOff)
	p.SetSrcAddr(dst)
	p.SetDstAddr(src)
	p.SetSrcPort(dport)
	p.SetDstPort(sport)
	p.SetTCPSeq(ack)
	p.SetTCPAck(end)
	p.ClearTCPUrgent()
	p.SetTCPFlags(ipproto.TCPRST | ipproto.TCPACK)
	p.ComputeL4Checksum()
	return p.Buf
}
