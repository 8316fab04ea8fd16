package nat

import (
	"net/netip"
	"testing"
	"time"
)

// filterEngine is a NAT44 engine with filtering mode.
func filterEngine(t *testing.T, mode Filtering) *Engine {
	t.Helper()
	e, err := New(Config{
		Inside:    []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")},
		Public:    []netip.Addr{pubIP},
		Filtering: mode,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestFilteringModes: RFC 4787 §5 REQ-8 and RFC 5382 §4.3 REQ-3. The inside
// endpoint X:x = 198.18.0.2:5000 sends to Y:y = 198.19.0.2:3478 (mapped to
// the public port 5000). Then packets come to that public port from Y:y
// (always in), from Y:y2 (in unless address and port-dependent), and from
// another address Z:z (in only when endpoint-independent).
func TestFilteringModes(t *testing.T) {
	x := ap("198.18.0.2:5000")
	y := ap("198.19.0.2:3478")
	y2 := ap("198.19.0.2:3479")
	z := ap("198.19.0.3:3478")
	pub := netip.AddrPortFrom(pubIP, 5000)
	for _, tc := range []struct {
		mode          Filtering
		fromY2, fromZ bool
	}{
		{FilterEndpointIndependent, true, true},
		{FilterAddressDependent, true, false},
		{FilterAddressPortDependent, false, false},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			for _, proto := range []string{"udp", "tcp"} {
				e := filterEngine(t, tc.mode)
				pkt := func(src, dst netip.AddrPort) []byte {
					if proto == "udp" {
						return udpPkt(src, dst, "hello", false)
					}
					return tcpSeg{src: src, dst: dst, seq: 1, flags: fSYN}.build()
				}
				v, out := e.processPacket(pkt(x, y), t0)
				if v != Accept {
					t.Fatalf("%s: outbound dropped", proto)
				}
				if o := decodeOut(t, out); netip.AddrPortFrom(o.Src, o.SrcPort) != pub {
					t.Fatalf("%s: mapped to %v:%d, want %v", proto, o.Src, o.SrcPort, pub)
				}
				if proto == "udp" {
					if v, _, r := e.processPacketReason(pkt(y, pub), t0); v != Accept {
						t.Fatalf("udp: the answer of Y:y dropped (%v)", r)
					}
				}
				for _, c := range []struct {
					name string
					src  netip.AddrPort
					want bool
				}{{"Y:y2", y2, tc.fromY2}, {"Z:z", z, tc.fromZ}} {
					v, out, r := e.processPacketReason(pkt(c.src, pub), t0)
					if (v == Accept) != c.want {
						t.Fatalf("%s from %s: verdict %v (%v), want accepted %v", proto, c.name, v, r, c.want)
					}
					if !c.want {
						if r != DropFiltered {
							t.Fatalf("%s from %s: drop reason %v, want filtered", proto, c.name, r)
						}
						continue
					}
					// In, to X:x, from the sender itself.
					o := decodeOut(t, out)
					if netip.AddrPortFrom(o.Dst, o.DstPort) != x || netip.AddrPortFrom(o.Src, o.SrcPort) != c.src {
						t.Fatalf("%s from %s: delivered as %v:%d -> %v:%d", proto, c.name, o.Src, o.SrcPort, o.Dst, o.DstPort)
					}
					// X:x answers from the same mapping (endpoint-independent).
					var back []byte
					if proto == "udp" {
						back = udpPkt(x, c.src, "back", false)
					} else {
						back = tcpSeg{src: x, dst: c.src, seq: 50, ack: 2, flags: fSYN | fACK}.build()
					}
					v, out = e.processPacket(back, t0)
					if v != Accept {
						t.Fatalf("%s: the answer to %s dropped", proto, c.name)
					}
					if o := decodeOut(t, out); netip.AddrPortFrom(o.Src, o.SrcPort) != pub || netip.AddrPortFrom(o.Dst, o.DstPort) != c.src {
						t.Fatalf("%s: the answer to %s left as %v:%d -> %v:%d", proto, c.name, o.Src, o.SrcPort, o.Dst, o.DstPort)
					}
				}
			}
		})
	}
}

// TestFilteringNeedsAMapping: no mode lets a packet in through a public
// port no inside endpoint has sent from, nor through a mapping whose
// outbound flows have all timed out; a TCP segment other than a SYN opens
// nothing through a mapping.
func TestFilteringNeedsAMapping(t *testing.T) {
	e := filterEngine(t, FilterEndpointIndependent)
	x := ap("198.18.0.2:5000")
	y := ap("198.19.0.2:3478")
	z := ap("198.19.0.3:3478")
	if _, _, r := e.processPacketReason(udpPkt(z, netip.AddrPortFrom(pubIP, 5000), "x", false), t0); r != DropNoFlow {
		t.Fatalf("unmapped port: %v, want no_flow", r)
	}
	e.processPacket(udpPkt(x, y, "out", false), t0)
	e.processPacket(tcpSeg{src: x, dst: y, seq: 1, flags: fSYN}.build(), t0)
	if _, _, r := e.processPacketReason(tcpSeg{src: z, dst: netip.AddrPortFrom(pubIP, 5000), seq: 1, ack: 1, flags: fACK}.build(), t0); r != DropNoFlow {
		t.Fatalf("TCP ACK through a mapping: %v, want no_flow", r)
	}
	later := t0.Add(6 * time.Minute) // past the UDP and transitory TCP timeouts
	e.Expire(later)
	if e.Bindings() != 0 {
		t.Fatalf("%d bindings left after the flows expired", e.Bindings())
	}
	if _, _, r := e.processPacketReason(udpPkt(z, netip.AddrPortFrom(pubIP, 5000), "x", false), later); r != DropNoFlow {
		t.Fatalf("expired mapping: %v, want no_flow", r)
	}
}

// TestFilteredFlowHoldsMapping: a flow let in through a mapping keeps it
// (and the public port) after the outbound flow that made it has gone, and
// releases it when it goes itself; address-dependent filtering forgets a
// peer once its last outbound flow has gone.
func TestFilteredFlowHoldsMapping(t *testing.T) {
	e := filterEngine(t, FilterAddressDependent)
	x := ap("198.18.0.2:5000")
	y := ap("198.19.0.2:3478")
	y2 := ap("198.19.0.2:3479")
	pub := netip.AddrPortFrom(pubIP, 5000)
	e.processPacket(udpPkt(x, y, "out", false), t0)
	at := t0.Add(4 * time.Minute)
	if v, _ := e.processPacket(udpPkt(y2, pub, "in", false), at); v != Accept {
		t.Fatal("address-dependent: Y:y2 refused")
	}
	e.Expire(t0.Add(5*time.Minute + time.Second)) // the outbound flow goes
	if e.Table().Len() != 1 || e.Bindings() != 1 {
		t.Fatalf("flows %d, bindings %d; want the admitted flow and its binding", e.Table().Len(), e.Bindings())
	}
	// X:x has no outbound flow left: nothing more comes in through the
	// mapping, not even from Y.
	if _, _, r := e.processPacketReason(udpPkt(ap("198.19.0.2:3480"), pub, "in", false), at.Add(time.Minute)); r != DropNoFlow {
		t.Fatalf("Y after the outbound flow went: %v, want no_flow", r)
	}
	// A new outbound flow of the same endpoint keeps its public port.
	v, out := e.processPacket(udpPkt(x, ap("198.19.0.9:53"), "q", false), at.Add(time.Minute))
	if o := decodeOut(t, out); v != Accept || o.SrcPort != 5000 {
		t.Fatalf("mapping not kept: port %d", o.SrcPort)
	}
	// X:x now sends to 198.19.0.9 only: Y, whose outbound flow has gone,
	// is filtered.
	if _, _, r := e.processPacketReason(udpPkt(ap("198.19.0.2:3481"), pub, "in", false), at.Add(time.Minute)); r != DropFiltered {
		t.Fatalf("Y with no outbound flow to it left: %v, want filtered", r)
	}
	e.Expire(at.Add(time.Hour))
	if e.Table().Len() != 0 || e.Bindings() != 0 || len(e.ports.peers) != 0 {
		t.Fatalf("flows %d, bindings %d, peers %d after all expired", e.Table().Len(), e.Bindings(), len(e.ports.peers))
	}
}

func TestParseFiltering(t *testing.T) {
	for s, want := range map[string]Filtering{"eif": FilterEndpointIndependent, "ADF": FilterAddressDependent,
		"apdf": FilterAddressPortDependent, "endpoint-independent": FilterEndpointIndependent} {
		if got, err := ParseFiltering(s); err != nil || got != want {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	if _, err := ParseFiltering("full-cone"); err == nil {
		t.Error("full-cone accepted")
	}
	if _, err := New(Config{Public: []netip.Addr{pubIP}, Filtering: 7}); err == nil {
		t.Error("unknown filtering accepted")
	}
}

// TestFilteringAcrossRestore: a saved state restores the flows a mapping
// let in (kind "mapped", holding the mapping's binding) and what
// address-dependent filtering knows of the peers the inside endpoint sent
// to, so the same packets are let in or filtered after a restart.
func TestFilteringAcrossRestore(t *testing.T) {
	mk := func(t *testing.T) *Engine { return filterEngine(t, FilterAddressDependent) }
	e := mk(t)
	x := ap("198.18.0.2:5000")
	pub := netip.AddrPortFrom(pubIP, 5000)
	e.processPacket(udpPkt(x, ap("198.19.0.2:3478"), "out", false), t0)
	if v, _ := e.processPacket(udpPkt(ap("198.19.0.2:3479"), pub, "in", false), t0); v != Accept {
		t.Fatal("Y:y2 refused before the restart")
	}
	e2, st, _ := saveLoad(t, e, mk, t0.Add(time.Second))
	if st.Flows != 2 || st.Misfit+st.Clash != 0 || e2.Bindings() != 1 {
		t.Fatalf("load stats %+v, %d bindings", st, e2.Bindings())
	}
	kinds := map[string]int{}
	e2.Flows(func(fi FlowInfo) { kinds[fi.Kind]++ })
	if kinds["snat"] != 1 || kinds["mapped"] != 1 {
		t.Fatalf("restored kinds %v", kinds)
	}
	later := t0.Add(2 * time.Second)
	if v, _, r := e2.processPacketReason(udpPkt(ap("198.19.0.2:3480"), pub, "in", false), later); v != Accept {
		t.Fatalf("another port of Y after the restart: %v", r)
	}
	if _, _, r := e2.processPacketReason(udpPkt(ap("198.19.0.3:3478"), pub, "in", false), later); r != DropFiltered {
		t.Fatalf("Z after the restart: %v, want filtered", r)
	}
	// Everything it holds is released when it goes.
	e2.Expire(later.Add(time.Hour))
	if e2.Table().Len() != 0 || e2.Bindings() != 0 || len(e2.ports.peers) != 0 {
		t.Fatalf("%d flows, %d bindings, %d peers left", e2.Table().Len(), e2.Bindings(), len(e2.ports.peers))
	}
}

// TestMappingRefresh: RFC 4787 §4.3 REQ-6, outbound packets refresh the
// mapping ("NAT Outbound refresh behavior" of "True"; inbound packets of
// the flow do too, which REQ-6a allows); RFC 7857 §7, inbound packets the
// filtering refuses do not ("such packets SHOULD NOT refresh the mapping");
// RFC 7857 §6, filtering is protocol-dependent: a UDP mapping lets no TCP
// in, even under endpoint-independent filtering.
func TestMappingRefresh(t *testing.T) {
	e := filterEngine(t, FilterAddressDependent)
	x := ap("198.18.0.2:5000")
	y := ap("198.19.0.2:3478")
	pub := netip.AddrPortFrom(pubIP, 5000)
	udp := e.Table().Timeouts().UDP
	e.processPacket(udpPkt(x, y, "out", false), t0)
	// Refused packets from Z, just before the timeout, change nothing.
	for i := range 10 {
		e.processPacket(udpPkt(ap("198.19.0.3:3478"), pub, "in", false), t0.Add(udp-time.Duration(10-i)*time.Second))
	}
	e.Expire(t0.Add(udp + time.Second))
	if e.Table().Len() != 0 || e.Bindings() != 0 {
		t.Fatalf("refused inbound packets kept the mapping: %d flows, %d bindings", e.Table().Len(), e.Bindings())
	}
	// An outbound packet refreshes it.
	e.processPacket(udpPkt(x, y, "out", false), t0)
	e.processPacket(udpPkt(x, y, "again", false), t0.Add(udp-time.Second))
	e.Expire(t0.Add(udp + time.Second))
	if e.Bindings() != 1 {
		t.Fatal("an outbound packet did not refresh the mapping")
	}
	// Protocol-dependent: TCP to the UDP mapping's port is not let in.
	ei := filterEngine(t, FilterEndpointIndependent)
	ei.processPacket(udpPkt(x, y, "out", false), t0)
	if _, _, r := ei.processPacketReason(tcpSeg{src: y, dst: pub, seq: 1, flags: fSYN}.build(), t0); r != DropNoFlow {
		t.Fatalf("TCP through a UDP mapping: %v, want no_flow", r)
	}
}

// TestTCPSimultaneousOpen: RFC 5382 §4.2 REQ-2a, "A NAT MUST handle the TCP
// simultaneous-open mode of connection initiation": the inside SYN, the
// crossing inbound SYN, then SYN+ACKs both ways and the ACKs, all
// translated, and the flow ends ESTABLISHED. Under address-dependent
// filtering the inbound SYN may even come first when the endpoint already
// talks to that peer's address.
func TestTCPSimultaneousOpen(t *testing.T) {
	e := filterEngine(t, FilterAddressDependent)
	x := ap("198.18.0.2:6000")
	y := ap("198.19.0.2:7000")
	pub := netip.AddrPortFrom(pubIP, 6000)
	for i, s := range []tcpSeg{
		{src: x, dst: y, seq: 100, flags: fSYN},
		{src: y, dst: pub, seq: 500, flags: fSYN},
		{src: x, dst: y, seq: 100, ack: 501, flags: fSYN | fACK},
		{src: y, dst: pub, seq: 500, ack: 101, flags: fSYN | fACK},
		{src: x, dst: y, seq: 101, ack: 501, flags: fACK},
		{src: y, dst: pub, seq: 501, ack: 101, flags: fACK},
	} {
		v, out, r := e.processPacketReason(s.build(), t0)
		if v != Accept {
			t.Fatalf("segment %d dropped: %v", i, r)
		}
		o := decodeOut(t, out)
		if s.src == x && (o.Src != pubIP || o.SrcPort != 6000) || s.src == y && (o.Dst != x.Addr() || o.DstPort != 6000) {
			t.Fatalf("segment %d translated to %v:%d -> %v:%d", i, o.Src, o.SrcPort, o.Dst, o.DstPort)
		}
	}
	var state []string
	e.Flows(func(fi FlowInfo) { state = append(state, fi.State.String()) })
	if len(state) != 1 || state[0] != "ESTABLISHED" {
		t.Fatalf("flows %v, want one ESTABLISHED", state)
	}
	// The peer's SYN before the inside one: let in through the mapping of
	// an endpoint that already sent to Y (from another port of Y), and
	// the inside SYN then joins that flow.
	x2 := ap("198.18.0.2:6001")
	e.processPacket(tcpSeg{src: x2, dst: ap("198.19.0.2:80"), seq: 1, flags: fSYN}.build(), t0)
	pub2 := netip.AddrPortFrom(pubIP, 6001)
	if v, _, r := e.processPacketReason(tcpSeg{src: y, dst: pub2, seq: 900, flags: fSYN}.build(), t0); v != Accept {
		t.Fatalf("early peer SYN: %v", r)
	}
	v, out := e.processPacket(tcpSeg{src: x2, dst: y, seq: 10, flags: fSYN}.build(), t0)
	if o := decodeOut(t, out); v != Accept || o.Src != pubIP || o.SrcPort != 6001 {
		t.Fatalf("inside SYN after the peer's: %v %v:%d", v, o.Src, o.SrcPort)
	}
}
