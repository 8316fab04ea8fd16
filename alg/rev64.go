package alg

import (
	"net/netip"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/seqdelta"
)

// This file holds RFC 6384 in the other direction: an IPv4-only client
// reaching an IPv6-only server that a static NAT64 binding publishes on a
// pool address (nat.Forward64). The client's IPv4 commands are what the
// IPv6 server cannot serve, so the gateway mirrors RFC 6384 §6 and §7:
//
//   - PASV goes to the server as EPSV (RFC 2428 §3: the one passive
//     command an IPv6 server has) and the 229 answering it comes back as a
//     227 naming the pool address and a pool port the NAT maps to the
//     server's port (an expectation admits the client there);
//   - EPSV passes, and the 229 answering it gets the mapped pool port;
//   - PORT and EPRT |1| with the client's own address become EPRT |2|
//     with the client's RFC 6052 address, where the server connects: an
//     ordinary NAT64 session from the server, from its pool address. Any
//     other address passes unchanged (RFC 2577 §3, EvBounce), and so does
//     every other command with its reply (RFC 6384 §10).
//
// The in-band machinery (FIFO of replies, substitutions, teardown) is the
// one of nat64.go.

// commandRev handles a complete command line of an IPv4 client to an IPv6
// server.
func (c *Control) commandRev(out []byte, seq uint32, line []byte, a Announcement, ok bool, led *seqdelta.Ledger) ([]byte, Event, bool) {
	n := &c.n64
	if blank(line) {
		n.stop()
		return append(out, line...), 0, false
	}
	switch {
	case ok && a.Kind == KindPASV:
		if !c.canRewrite(conntrack.Original, seq, maxAnnounceText) {
			c.cut = true
			return out, 0, false
		}
		if !c.tracked() || !n.room(1) {
			n.push(pending{kind: pendPlain})
			return append(out, line...), EvQueueFull, false
		}
		n.push(pending{kind: pendTo227})
		return c.replaceLine(out, conntrack.Original, seq, line, "EPSV\r\n", led), EvEPSVToPASV, true
	case ok && (a.Kind == KindPORT || a.Kind == KindEPRT):
		if !c.canRewrite(conntrack.Original, seq, maxAnnounceText) {
			c.cut = true // the line comes again
			return out, 0, false
		}
		n.push(pending{kind: pendPlain})
		client := c.flow[conntrack.Original].Src
		if a.Addr.Unmap() != client.Unmap() {
			return append(out, line...), EvBounce, false
		}
		if a.Port < 1024 && !c.cfg.AllowLowPorts {
			return append(out, line...), EvLowPort, false
		}
		// the server sees the client at its RFC 6052 address
		var b [maxAnnounceText]byte
		text := AppendEPRT(append(b[:0], "EPRT "...), '|', c.flow[conntrack.Reply].Dst, a.Port)
		text = append(text, "\r\n"...)
		return c.replaceLine(out, conntrack.Original, seq, line, string(text), led), EvRewrite, true
	}
	n.push(pending{kind: pendPlain})
	return append(out, line...), 0, false
}

// to227 handles a line of the server's reply to an EPSV standing in for
// the client's PASV: the 229 becomes a 227 with the pool endpoint the NAT
// maps to the server's port; other lines of the reply are removed; a reply
// without a usable 229 line gives the client its last line.
func (c *Control) to227(out []byte, seq uint32, line []byte, a Announcement, final bool, led *seqdelta.Ledger, tr Translator) ([]byte, Event, bool) {
	n := &c.n64
	if !n.emitted && a.Kind == Kind229 && a.Port != 0 {
		pub, ok := tr.MapData(conntrack.Reply, netip.AddrPortFrom(c.flow[conntrack.Reply].Src, a.Port), c.now)
		if !ok || !pub.Addr().Unmap().Is4() {
			return append(out, line...), EvMapFailed, false
		}
		n.emitted = true
		var b [maxAnnounceText]byte
		text := append(b[:0], "227 Entering Passive Mode ("...)
		text = AppendPORT(text, pub.Addr(), pub.Port())
		text = append(text, ")\r\n"...)
		c.runAdd(conntrack.Reply, seq, line, text, led)
		return append(out, text...), EvReplySubstituted | EvEPSVToPASV | EvRewrite, true
	}
	if final && !n.emitted {
		return append(out, line...), 0, false
	}
	c.runAdd(conntrack.Reply, seq, line, nil, led)
	return out, EvReplySubstituted, true
}
