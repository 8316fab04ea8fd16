package nat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/natalg/natalg/conntrack"
)

// saveLoad saves e and loads the file into a fresh engine made by mk at now.
func saveLoad(t *testing.T, e *Engine, mk func(*testing.T) *Engine, now time.Time) (*Engine, LoadStats, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := e.SaveState(&buf); err != nil {
		t.Fatal(err)
	}
	e2 := mk(t)
	st, err := e2.LoadState(bytes.NewReader(buf.Bytes()), now)
	if err != nil {
		t.Fatalf("LoadState: %v", err)
	}
	return e2, st, buf.Bytes()
}

// An active-mode control connection whose PORT grew by 4 bytes, saved with
// its data connection's expectation pending, keeps translating in a fresh
// engine: the same SEQ and ACK shifts, the retransmitted PORT rewritten
// again (same public port, no second expectation), the data SYN let in.
func TestStatePortRewriteSurvivesRestore(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	first := mustSend(t, e, cmd(1001, portIn))
	if first.payload != portOut {
		t.Fatalf("PORT out %q", first.payload)
	}
	flows, exps, binds := e.Table().Len(), e.Table().ExpectationCount(), e.Bindings()
	if flows != 1 || exps != 1 || binds != 2 {
		t.Fatalf("before: %d flows, %d expectations, %d bindings", flows, exps, binds)
	}
	e2, st, _ := saveLoad(t, e, snatEngine, t0.Add(time.Second))
	if st.Flows != 1 || st.FTP != 1 || st.Expectations != 1 || st.Bindings != 2 ||
		st.Expired+st.Misfit+st.Full+st.Clash+st.Orphans != 0 {
		t.Fatalf("load stats %+v", st)
	}
	if e2.Table().Len() != flows || e2.Table().ExpectationCount() != exps || e2.Bindings() != binds {
		t.Fatalf("after: %d flows, %d expectations, %d bindings", e2.Table().Len(), e2.Table().ExpectationCount(), e2.Bindings())
	}
	var fi FlowInfo
	e2.Flows(func(f FlowInfo) { fi = f })
	if !fi.FTP || fi.SeqDelta != [2]int32{4, 0} || fi.Corrections != [2]int{1, 0} || fi.Kind != "snat" {
		t.Fatalf("restored flow %+v", fi)
	}
	// the PORT segment again (its ACK lost in the restart): rewritten the
	// same, byte for byte
	again := mustSend(t, e2, cmd(1001, portIn))
	if !bytes.Equal(first.Buf, again.Buf) {
		t.Fatalf("retransmitted PORT after restore:\n%x\nwant\n%x", again.Buf, first.Buf)
	}
	if n := e2.Table().ExpectationCount(); n != 1 {
		t.Fatalf("%d expectations after the retransmission, want 1", n)
	}
	afterPort(t, e2) // server ACK 1029 -> 1025, client 1025 -> 1029
	checkDataConnection(t, e2)
	// the data flow holds the binding the expectation held
	if e2.Bindings() != binds {
		t.Fatalf("%d bindings with the data connection, want %d", e2.Bindings(), binds)
	}
	// and a second save and load carries the data flow with its master
	e3, st, _ := saveLoad(t, e2, snatEngine, t0.Add(2*time.Second))
	if st.Flows != 2 || st.FTP != 1 || e3.Bindings() != binds {
		t.Fatalf("second load: %+v, %d bindings", st, e3.Bindings())
	}
	related := 0
	e3.Flows(func(f FlowInfo) {
		if f.Related && f.Kind == "expected" {
			related++
		}
	})
	if related != 1 {
		t.Fatalf("%d related data flows after the second load, want 1", related)
	}
	o := mustSend(t, e3, tcpSeg{src: srv, dst: pubCli, seq: 5022, ack: 1035, flags: fACK | fPSH, payload: "150 ok\r\n"})
	if o.Ack != 1031 {
		t.Fatalf("server ACK 1035 mapped to %d, want 1031", o.Ack)
	}
	// everything expires and releases its bindings
	e3.Expire(t0.Add(3 * time.Hour))
	if e3.Table().Len() != 0 || e3.Bindings() != 0 {
		t.Fatalf("after expiry: %d flows, %d bindings", e3.Table().Len(), e3.Bindings())
	}
}

// A partial PORT held at the time of the save is not saved: the sender's
// retransmission brings it again and it is rewritten whole.
func TestStateHeldCommandReleased(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustDrop(t, e, cmd(1001, "PORT 198,18,0,2,1"), DropALGHeld)
	e2, st, _ := saveLoad(t, e, snatEngine, t0)
	if st.FTP != 1 {
		t.Fatalf("load stats %+v", st)
	}
	// the continuation alone is beyond what the restored gateway expects
	mustDrop(t, e2, cmd(1018, "95,80\r\n"), DropALGOutOfOrder)
	o := mustSend(t, e2, cmd(1001, portIn))
	if o.payload != portOut || o.Seq != 1001 {
		t.Fatalf("retransmitted PORT: seq %d %q", o.Seq, o.payload)
	}
	afterPort(t, e2)
	checkDataConnection(t, e2)
}

// DNAT: a forwarded control connection with a grown 227 reply and its
// pending expectation.
func TestStateDNATPassive(t *testing.T) {
	fw, _ := ParseForward("tcp:21=198.18.0.2:21")
	mk := func(t *testing.T) *Engine {
		e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}, Forwards: []Forward{fw}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := mk(t)
	client := ap("198.19.0.7:50123")
	pub21 := netip.AddrPortFrom(pubIP, 21)
	server := ap("198.18.0.2:21")
	mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 100, flags: fSYN})
	mustSend(t, e, tcpSeg{src: server, dst: client, seq: 7000, ack: 101, flags: fSYN | fACK})
	mustSend(t, e, tcpSeg{src: client, dst: pub21, seq: 101, ack: 7001, flags: fACK})
	in := "227 Entering Passive Mode (198,18,0,2,234,96).\r\n"
	mustSend(t, e, tcpSeg{src: server, dst: client, seq: 7001, ack: 101, flags: fACK | fPSH, payload: in})
	e2, st, _ := saveLoad(t, e, mk, t0)
	if st.Flows != 1 || st.FTP != 1 || st.Expectations != 1 || st.Bindings != 1 {
		t.Fatalf("load stats %+v", st)
	}
	o := mustSend(t, e2, tcpSeg{src: client, dst: pub21, seq: 101, ack: 7001 + uint32(len(in)) + 4, flags: fACK})
	if o.Ack != 7001+uint32(len(in)) {
		t.Fatalf("client ack mapped to %d", o.Ack)
	}
	o = mustSend(t, e2, tcpSeg{src: ap("198.19.0.7:50124"), dst: netip.AddrPortFrom(pubIP, 60000), seq: 1, flags: fSYN})
	if netip.AddrPortFrom(o.Dst, o.DstPort) != ap("198.18.0.2:60000") {
		t.Fatalf("data connection to %v:%d", o.Dst, o.DstPort)
	}
}

// Flows the current configuration would not make are skipped and counted,
// and hold no binding.
func TestStateConfigChanged(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustSend(t, e, cmd(1001, portIn))
	other := func(t *testing.T) *Engine {
		e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{netip.MustParseAddr("198.19.100.101")}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e2, st, _ := saveLoad(t, e, other, t0)
	if st.Flows != 0 || st.Misfit != 1 || st.Orphans != 1 || e2.Bindings() != 0 || e2.Table().Len() != 0 {
		t.Fatalf("another public address: %+v, %d bindings", st, e2.Bindings())
	}
	// FTP off: the control flow's sequence numbers were shifted, it
	// cannot be carried without its ledgers
	noFTP := func(t *testing.T) *Engine {
		e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}, DisableFTP: true})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e2, st, _ = saveLoad(t, e, noFTP, t0)
	if st.Flows != 0 || st.Misfit != 1 || e2.Bindings() != 0 {
		t.Fatalf("FTP off: %+v, %d bindings", st, e2.Bindings())
	}
	// the public port of the control flow now forwarded
	fw, _ := ParseForward("tcp:40000=198.18.0.9")
	fwd := func(t *testing.T) *Engine {
		e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP}, Forwards: []Forward{fw}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e2, st, _ = saveLoad(t, e, fwd, t0)
	if st.Flows != 0 || st.Clash != 1 || st.Orphans != 1 || e2.Bindings() != 0 {
		t.Fatalf("port forwarded now: %+v, %d bindings", st, e2.Bindings())
	}
}

// Deadlines are absolute: what expired meanwhile is not restored; the
// table's size is respected.
func TestStateExpiredAndFull(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustSend(t, e, cmd(1001, portIn)) // expectation: 300 s
	for i := range 5 {
		mustSendOut(t, e, tcpSeg{src: netip.AddrPortFrom(cli.Addr(), uint16(41000+i)), dst: ap("198.19.0.2:80"), seq: 1, flags: fSYN})
	}
	// 250 s later the SYN_SENT flows (4 min) have expired, not the
	// expectation (300 s); 301 s later it has too
	e2, st, _ := saveLoad(t, e, snatEngine, t0.Add(250*time.Second))
	if st.Flows != 1 || st.Expectations != 1 || st.Expired != 5 || e2.Bindings() != 2 {
		t.Fatalf("250 s later: %+v, %d bindings", st, e2.Bindings())
	}
	e2, st, _ = saveLoad(t, e, snatEngine, t0.Add(301*time.Second))
	if st.Flows != 1 || st.Expectations != 0 || st.Expired != 6 || e2.Bindings() != 1 {
		t.Fatalf("301 s later: %+v, %d bindings", st, e2.Bindings())
	}
	small := func(t *testing.T) *Engine {
		e, err := New(Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{pubIP},
			Conntrack: conntrack.Config{MaxFlows: 3}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e2, st, _ = saveLoad(t, e, small, t0)
	if st.Flows != 3 || st.Full != 3 || e2.Table().Len() != 3 || e2.Bindings() != st.Flows+st.Expectations {
		t.Fatalf("table of 3: %+v, %d bindings", st, e2.Bindings())
	}
}

// A truncated, corrupt or foreign file, or one of another version, is
// refused whole with a clear error; the engine stays empty.
func TestStateBadFiles(t *testing.T) {
	e := snatEngine(t)
	handshake(t, e)
	mustSend(t, e, cmd(1001, portIn))
	var buf bytes.Buffer
	if err := e.SaveState(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	flip := bytes.Clone(good)
	flip[len(flip)/2] ^= 0x40
	newer := bytes.Clone(good)
	binary.BigEndian.PutUint16(newer[8:], StateVersion+1)
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrStateFormat},
		{"foreign", []byte("#!/bin/sh\necho hello\n"), ErrStateFormat},
		{"truncated", good[:len(good)-7], ErrStateFormat},
		{"header only", good[:20], ErrStateFormat},
		{"bit flipped", flip, ErrStateFormat},
		{"newer version", newer, ErrStateVersion},
	} {
		e2 := snatEngine(t)
		st, err := e2.LoadState(bytes.NewReader(c.b), t0)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
		t.Logf("%s: %v", c.name, err)
		if st.Flows != 0 || e2.Table().Len() != 0 || e2.Bindings() != 0 || e2.Table().ExpectationCount() != 0 {
			t.Errorf("%s: restored something: %+v", c.name, st)
		}
	}
}
