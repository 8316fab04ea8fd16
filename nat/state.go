package nat

// State files (natalg run --state): the engine's flows, expectations and
// FTP gateway state, saved on shutdown and restored on start, so that
// connections through the NAT, FTP control connections whose sequence
// numbers a rewrite shifted among them, survive a restart of the daemon.
//
// Each package encodes its own records (conntrack.FlowRecord,
// seqdelta.Ledger, alg's control state); this file holds the framing
// around them and the checks of a record against the configuration.
//
// The format is a small binary one of its own rather than encoding/gob:
// every length and count is bounded and checked by the reader, it needs no
// reflection, and it does not change with the Go types; gob's decoder is
// documented as not hardened against adversarial input, and this file is
// read by a process running as root. Layout, all integers big-endian:
//
//	magic "NATALGST", version uint16 (2), flags uint16 (version 2: 1 = a
//	snapshot taken while packets flowed, SaveSnapshot; else 0),
//	saved-at int64 (Unix ns), uint32 NAT64 IPv4 Identification counter
//	flows uint32, then each flow:
//	  the flow's record as conntrack.FlowRecord.AppendBinary writes it
//	  (its tuples, tag (the flow kind), TCP state, FINs seen, created and
//	  expires as absolute Unix ns)
//	  uint32 master (0 none, else 1 + the index of an earlier flow)
//	  uint8 gateway (0 none, 1 FTP), and for FTP: ledger original, ledger
//	  reply as seqdelta.Ledger.AppendBinary writes them, uint16 multi-line
//	  reply code, uint8 AUTH pending,
//	  stream original, stream reply (uint8 flags: 1 synced, 2 line start,
//	  4 TLS, 8 TLS framing lost, 16 record seen, 32 synced by its SYN;
//	  uint32 next, uint16 MSS, uint32 record bytes left, uint8 n < 5 +
//	  partial record header, uint8 n <= 8 rewrites × (uint32 start, uint8
//	  n + old text, uint8 n + new text, uint32 span, uint64 hash of the
//	  old text)),
//	  NAT64 gateway state (RFC 6384; zero on other flows): uint8 flags (1
//	  lost, 2 DISABLE64, 4 greeted, 8 unused (once EPSV ALL accepted), 16
//	  229 emitted, 32 torn down),
//	  uint8 EPSV support, uint16 probe PASV port, uint8 reply mode, uint8
//	  answer, uint8 n <= 8 pending replies × (uint8 kind, uint8 answer,
//	  uint16 commands)
//	expectations uint32, then each (addr: uint8 length 4 or 16, then the
//	  bytes): uint8 protocol, addr peer, addr public,
//	  uint16 public port, addr target, uint16 target port, uint32 master
//	  (1 + flow index), int64 created, int64 expires
//	CRC-32C (Castagnoli) uint32 of every byte before it
//
// The whole file is checked (magic, version, checksum, structure) before
// anything is restored: a truncated, corrupt or foreign file restores
// nothing and LoadState says why.
//
// Version 1 (natalg before NAT64 flows were saved) lacks the
// Identification counter, the flag 32 of a stream, the span and hash of a
// rewrite and the NAT64 gateway state. LoadState reads it too: its NAT64
// flows and expectations are skipped as misfits (their gateway state is not
// in the file), the rest is restored as version 1 restored it.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"time"

	"github.com/natalg/natalg/alg"
	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/ipproto"
	"github.com/natalg/natalg/seqdelta"
)

// StateVersion is the version of the state file format SaveState writes.
// LoadState reads it and version 1 (see the format above).
const StateVersion = 2

// stateVersionOld is the oldest version LoadState reads.
const stateVersionOld = 1

const (
	stateMagic = "NATALGST"
	// maxStateFile bounds what LoadState reads: far above the largest
	// table (1M flows of about 100 bytes, plus FTP state).
	maxStateFile = 1 << 30
	maxSaved     = 1 << 26 // flows or expectations in one file
	extNone      = 0
	extFTP       = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Errors of LoadState, wrapped with details.
var (
	// ErrStateFormat means the file is not a natalg state file, or is
	// truncated or corrupt.
	ErrStateFormat = errors.New("not a valid natalg state file")
	// ErrStateVersion means the file was written by a version of natalg
	// whose format this one does not read.
	ErrStateVersion = errors.New("unsupported state file version")
)

// LoadStats counts what LoadState restored and what it skipped.
type LoadStats struct {
	SavedAt      time.Time
	Flows        int // flows restored
	FTP          int // of which FTP control flows with their gateway state
	Expectations int // expectations restored
	Bindings     int // public port bindings after the restore
	Expired      int // flows and expectations past their deadline at load time
	Misfit       int // flows and expectations the current configuration would not make
	Full         int // flows and expectations over the table's limits
	Clash        int // flows and expectations whose tuple, key or port is taken
	Orphans      int // expectations whose control flow was not restored
	Superseded   int // in a snapshot, flows a fresher record holds or may be ahead of (SaveSnapshot)
	Refreshed    int // adopted FTP control flows already in the table, brought up to the kernel's labels
}

// savedFlow is one decoded flow record.
type savedFlow struct {
	rec    conntrack.FlowRecord
	master uint32 // 1 + index, 0 none
	ftp    bool
	led    [2]seqdelta.Ledger
	// badLedger: a ledger's points are inconsistent (seqdelta.ErrBadState);
	// the flow is a misfit, the rest of the file still loads.
	badLedger bool
	ctl       alg.ControlState
	// adopted: rebuilt from the kernel's conntrack entry (Adopt), not read
	// from a file; tls and stored are its FTP gateway's labels.
	adopted bool
	tls     [2]bool
	stored  [LabelBytes]byte
}

// decoded is a whole decoded state file.
type decoded struct {
	version  uint16
	savedAt  time.Time
	ids      uint32 // NAT64 IPv4 Identification counter
	flows    []savedFlow
	exps     []savedExp
	adopted  bool // made by Adopt from the kernel's entries, not read from a file
	snapshot bool // SaveSnapshot's: NAT64 plain flows only are restored
}

// savedExp is one decoded expectation record.
type savedExp struct {
	x      conntrack.Expectation
	master uint32
}

// SaveState writes the engine's flows, expectations and gateway state to w.
// Packets should be stopped first (natalg run saves after its queues are
// closed): a packet processed after the snapshot is not in it. FTP control
// flows are locked while their gateway state is read; see
// alg.ControlState for what is not saved.
func (e *Engine) SaveState(w io.Writer) error { return e.saveState(w, 0) }

// SaveSnapshot writes the engine's state while packets flow (natalg run
// --state-interval), flagged as a snapshot: LoadState restores from it only
// what no fresher record can hold. The NAT44/NAT66 flows are in the
// kernel's conntrack entries (crash-only: Adopt), whose facts are never
// behind; the FTP gateway state of a NAT64 control connection may be (its
// offsets and reply FIFO move with every command), and a gateway restored
// behind its stream drops what follows (see loadStateFile). What is left
// is NAT64's plain flows and bindings, whose facts do not change during
// their life.
func (e *Engine) SaveSnapshot(w io.Writer) error { return e.saveState(w, stateFlagSnapshot) }

const stateFlagSnapshot = 1

func (e *Engine) saveState(w io.Writer, flags uint16) error {
	var flows []*conntrack.Flow
	e.table.Range(func(f *conntrack.Flow) bool {
		flows = append(flows, f)
		return true
	})
	// Masters before the flows they announced: a flow refers to its master
	// by its index in the file.
	idx := make(map[*conntrack.Flow]uint32, len(flows))
	order := make([]*conntrack.Flow, 0, len(flows))
	for pass := 0; pass < 3 && len(order) < len(flows); pass++ {
		for _, f := range flows {
			if _, done := idx[f]; done {
				continue
			}
			if m := f.Master; pass < 2 && m != nil && !m.Dead() {
				if _, ok := idx[m]; !ok {
					continue // its master first (the last pass takes the rest)
				}
			}
			order = append(order, f)
			idx[f] = uint32(len(order))
		}
	}
	var exps []*conntrack.Expectation
	e.table.RangeExpectations(func(x *conntrack.Expectation) {
		if _, ok := idx[x.Master]; x.Master != nil && ok {
			exps = append(exps, x)
		}
	})

	sw := &stateWriter{w: bufio.NewWriterSize(w, 64<<10), crc: crc32.New(crcTable)}
	sw.bytes([]byte(stateMagic))
	sw.u16(StateVersion)
	sw.u16(flags)
	sw.i64(time.Now().UnixNano())
	var ids uint32
	if e.n64 != nil {
		ids = e.n64.ids.Counter()
	}
	sw.u32(ids)
	sw.u32(uint32(len(order)))
	for _, f := range order {
		r := f.Record()
		sw.scratchBuf, _ = r.AppendBinary(sw.scratchBuf[:0])
		sw.bytes(sw.scratchBuf)
		sw.u32(idx[f.Master]) // 0 for nil or unsaved
		e.saveExt(sw, f)
	}
	sw.u32(uint32(len(exps)))
	for _, x := range exps {
		sw.u8(uint8(x.Proto))
		sw.addr(x.Src)
		sw.addr(x.Dst)
		sw.u16(x.DstPort)
		sw.addr(x.Target.Addr())
		sw.u16(x.Target.Port())
		sw.u32(idx[x.Master])
		sw.i64(x.Created)
		sw.i64(x.Expires)
	}
	if sw.err != nil {
		return fmt.Errorf("save state: %w", sw.err)
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], sw.crc.Sum32())
	if _, err := sw.w.Write(sum[:]); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := sw.w.Flush(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// saveExt writes f's gateway state.
func (e *Engine) saveExt(sw *stateWriter, f *conntrack.Flow) {
	f.Lock()
	x, ok := f.Ext.(*ftpFlow)
	if !ok {
		f.Unlock()
		sw.u8(extNone)
		return
	}
	led := x.ledgers
	ctl := x.ctl.State()
	f.Unlock()
	sw.u8(extFTP)
	for _, l := range led {
		sw.scratchBuf, _ = l.AppendBinary(sw.scratchBuf[:0])
		sw.bytes(sw.scratchBuf)
	}
	// the gateway's own encoding (alg.ControlState.AppendBinary)
	ctlBytes, err := ctl.AppendBinary(nil)
	if err != nil {
		if sw.err == nil {
			sw.err = fmt.Errorf("FTP gateway state of %v: %w", f.Tuples[conntrack.Original], err)
		}
		return
	}
	sw.bytes(ctlBytes)
}

// LoadState restores the flows, expectations and gateway state saved by
// SaveState into the engine, at now. The engine should be fresh (nothing
// processed yet). The whole input is checked before anything is restored:
// a truncated, corrupt or foreign file, or one of a format version this
// natalg does not read (newer than StateVersion), restores nothing and
// returns an error wrapping ErrStateFormat or ErrStateVersion.
//
// Of a valid file, flows and expectations past their deadline at now, those
// the current configuration would not have made (an address no longer
// inside, another public address, a forward gone or changed, a public port
// now forwarded, an FTP control flow with shifted sequence numbers on a
// port no longer inspected; for NAT64, NAT64 off, or a prefix or pool that
// no longer holds the flow's addresses), those over the table's limits and
// those clashing with what was restored before are skipped and counted in
// the returned LoadStats. Deadlines are kept, cut to the current timeouts.
// The public port bindings, NAT64 pool bindings included, are rebuilt from
// the restored flows and expectations, one reference for each, as the
// engine holds them.
func (e *Engine) LoadState(r io.Reader, now time.Time) (LoadStats, error) {
	var st LoadStats
	buf, err := io.ReadAll(io.LimitReader(r, maxStateFile+1))
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	if len(buf) > maxStateFile {
		return st, fmt.Errorf("%w: larger than %d bytes", ErrStateFormat, maxStateFile)
	}
	dec, err := decodeState(buf)
	if err != nil {
		return st, err
	}
	st.SavedAt = dec.savedAt
	e.restore(dec, now.UnixNano(), &st)
	st.Bindings = e.Bindings()
	return st, nil
}

// decodeState checks and decodes a whole state file.
func decodeState(buf []byte) (*decoded, error) {
	const head = len(stateMagic) + 2 + 2 + 8
	if len(buf) < len(stateMagic) || string(buf[:len(stateMagic)]) != stateMagic {
		return nil, fmt.Errorf("%w: no %q magic", ErrStateFormat, stateMagic)
	}
	if len(buf) < head+4+4+4 {
		return nil, fmt.Errorf("%w: truncated (%d bytes)", ErrStateFormat, len(buf))
	}
	v := binary.BigEndian.Uint16(buf[len(stateMagic):])
	if v < stateVersionOld || v > StateVersion {
		return nil, fmt.Errorf("%w: version %d, this natalg reads %d to %d", ErrStateVersion, v, stateVersionOld, StateVersion)
	}
	body, tail := buf[:len(buf)-4], buf[len(buf)-4:]
	if got, want := crc32.Checksum(body, crcTable), binary.BigEndian.Uint32(tail); got != want {
		return nil, fmt.Errorf("%w: checksum mismatch (truncated or corrupt)", ErrStateFormat)
	}
	d := &stateReader{b: body[len(stateMagic)+2:], version: v}
	flags := d.u16()
	if flags > stateFlagSnapshot || flags != 0 && v < 2 {
		return nil, fmt.Errorf("%w: reserved field set", ErrStateFormat)
	}
	savedAt := time.Unix(0, d.i64())
	var ids uint32
	if v >= 2 {
		ids = d.u32()
	}
	n := d.count()
	flows := make([]savedFlow, 0, min(n, 4096))
	for i := 0; i < n && d.err == nil; i++ {
		var f savedFlow
		d.read(&f.rec)
		f.master = d.u32()
		if f.master > uint32(i) {
			d.fail("flow %d: master %d is not an earlier flow", i, f.master)
		}
		switch ext := d.u8(); ext {
		case extNone:
		case extFTP:
			f.ftp = true
			d.ftpState(&f)
		default:
			d.fail("flow %d: unknown gateway %d", i, ext)
		}
		flows = append(flows, f)
	}
	n = d.count()
	exps := make([]savedExp, 0, min(n, 4096))
	for i := 0; i < n && d.err == nil; i++ {
		var x savedExp
		x.x.Proto = ipproto.Proto(d.u8())
		x.x.Src = d.addr()
		x.x.Dst = d.addr()
		x.x.DstPort = d.u16()
		ta := d.addr()
		x.x.Target = netip.AddrPortFrom(ta, d.u16())
		x.master = d.u32()
		x.x.Created = d.i64()
		x.x.Expires = d.i64()
		if x.master == 0 || x.master > uint32(len(flows)) {
			d.fail("expectation %d: master %d is not a flow", i, x.master)
		}
		exps = append(exps, x)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the last record", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateFormat, d.err)
	}
	return &decoded{version: v, savedAt: savedAt, ids: ids, flows: flows, exps: exps, snapshot: flags&stateFlagSnapshot != 0}, nil
}

// ftpState decodes the FTP gateway state of f.
func (d *stateReader) ftpState(f *savedFlow) {
	for k := range f.led {
		if err := d.read(&f.led[k]); errors.Is(err, seqdelta.ErrBadState) {
			f.badLedger = true
		}
	}
	if d.err != nil {
		return
	}
	// the gateway's own encoding (alg.ControlState.DecodeBinary): version
	// 1 files hold its format 1, later ones its current format
	format := alg.StateFormat
	if d.version < 2 {
		format = 1
	}
	rest, err := f.ctl.DecodeBinary(d.b, format)
	if err != nil {
		d.fail("%v", err)
		return
	}
	d.b = rest
}

// restore adds the decoded records to the engine.
func (e *Engine) restore(dec *decoded, now int64, st *LoadStats) {
	flows, exps := dec.flows, dec.exps
	if e.n64 != nil && dec.version >= 2 && !dec.adopted {
		// Identification values go on from the saved ones (RFC 6864 §4.1:
		// none repeated within a datagram's lifetime).
		e.n64.ids.SetCounter(dec.ids)
	}
	made := make([]*conntrack.Flow, len(flows))
	for i := range flows {
		sf := &flows[i]
		if sf.rec.Expires <= now {
			st.Expired++
			continue
		}
		if sf.rec.Check() != nil {
			st.Misfit++
			continue
		}
		k := flowKind(sf.rec.Tag)
		if dec.snapshot && (!k.isNAT64() || sf.ftp) {
			// a periodic snapshot's NAT44/66 flows and FTP gateway state:
			// the kernel's conntrack entries are newer (crash-only)
			st.Superseded++
			continue
		}
		ki, known := k.info()
		if !known || k.isNAT64() && dec.version < 2 || !ki.fits(e, &sf.rec.Tuples[conntrack.Original], &sf.rec.Tuples[conntrack.Reply]) {
			// a kind this version does not restore, a NAT64 flow saved
			// without its gateway state (version 1), or one the current
			// configuration would not make
			st.Misfit++
			continue
		}
		if sf.adopted && sf.ftp {
			// Already here (a router of a pair becoming master again):
			// the kernel's labels are the truth, the other router may
			// have rewritten more since this natalg last stored them.
			if old, _ := e.table.Lookup(sf.rec.Tuples[conntrack.Original], now); old != nil {
				if e.refreshAdopted(old, sf) {
					st.Refreshed++
				} else {
					st.Clash++
				}
				continue
			}
		}
		f := conntrack.RestoreFlow(sf.rec)
		if sf.master != 0 {
			f.Master = made[sf.master-1] // nil when the master was skipped
		}
		ext, ok := e.restoreExt(f, sf)
		if !ok {
			st.Misfit++
			continue
		}
		f.Ext = ext
		// Take the bindings the flow holds again, one reference each.
		bs, n := e.held(k, &sf.rec.Tuples)
		taken := 0
		for taken < n && bs[taken].ports.bindRestored(bs[taken].in, bs[taken].public) {
			taken++
		}
		if taken < n {
			for j := range taken {
				bs[j].ports.release(bs[j].in)
			}
			st.Clash++
			continue
		}
		if err := e.table.Restore(f, now); err != nil {
			for j := range n {
				bs[j].ports.release(bs[j].in)
			}
			count(st, err)
			continue
		}
		if n > 0 && ki.peers {
			// address-dependent filtering knows whom the endpoint sent to
			bs[0].ports.addPeer(bs[0].in, sf.rec.Tuples[conntrack.Original].Dst)
		}
		if n > 0 && ki.active {
			bs[0].ports.sentThrough(bs[0].in, 1) // an active mapping, for hairpinning
		}
		if sf.adopted {
			f.MarkStored() // the kernel's entry has the mark already
		}
		made[i] = f
		st.Flows++
		if ext != nil {
			st.FTP++
		}
	}
	for i := range exps {
		sx := &exps[i]
		x := sx.x
		x.Master = made[sx.master-1]
		if x.Master == nil {
			st.Orphans++
			continue
		}
		if x.Expires <= now {
			st.Expired++
			continue
		}
		m, ok := e.expectFits(&x, dec.version)
		if !ok {
			st.Misfit++
			continue
		}
		in := endpoint{addr: x.Target.Addr(), port: x.Target.Port(), proto: x.Proto}
		if !m.bindRestored(in, x.DstPort) {
			st.Clash++
			continue
		}
		if err := e.table.RestoreExpectation(&x, now); err != nil {
			m.release(in)
			count(st, err)
			continue
		}
		st.Expectations++
	}
}

// expectFits reports whether the engine, as configured now, would have
// made expectation x of its (restored) master, and returns the port map its
// binding is in: the public one, or for a NAT64 expectation (an IPv4
// server expected at a pool address, to reach an IPv6 client) the pool
// address's, as expectationRemoved releases it.
func (e *Engine) expectFits(x *conntrack.Expectation, version uint16) (*portMap, bool) {
	t := x.Target.Addr()
	if x.Proto != ipproto.TCP || !x.Src.IsValid() || x.Src.Zone() != "" || x.Src.Is4In6() || x.Target.Port() == 0 || t.Zone() != "" {
		return nil, false
	}
	if x.Dst.Is4() && t.Is6() && !t.Is4In6() {
		n := e.n64
		mf := x.Master.Tuples
		if n == nil || version < 2 || !n.pool.Contains(x.Dst) || !x.Src.Is4() {
			return nil, false
		}
		switch kindOf(x.Master) {
		case kind64: // active mode of an IPv6 client (mapData64)
			if mf[conntrack.Reply].Dst != x.Dst || mf[conntrack.Reply].Src != x.Src || mf[conntrack.Original].Src != t {
				return nil, false
			}
		case kind64Static: // passive mode of an IPv6 server (mapStatic64)
			if mf[conntrack.Original].Dst != x.Dst || mf[conntrack.Original].Src != x.Src || mf[conntrack.Reply].Src != t {
				return nil, false
			}
		default:
			return nil, false
		}
		return n.ports[n.poolIndex(x.Dst)], true
	}
	pub := e.public[familyOf(x.Dst)]
	if !pub.IsValid() || x.Dst != pub || familyOf(t) != familyOf(pub) || familyOf(x.Src) != familyOf(pub) || !e.inside(t) {
		return nil, false
	}
	return e.ports, true
}

// count adds a refused restore to its counter.
func count(st *LoadStats, err error) {
	switch {
	case errors.Is(err, conntrack.ErrExpired):
		st.Expired++
	case errors.Is(err, conntrack.ErrFull), errors.Is(err, conntrack.ErrExpectFull):
		st.Full++
	case errors.Is(err, conntrack.ErrMasterGone):
		st.Orphans++
	case errors.Is(err, conntrack.ErrBadRecord):
		st.Misfit++
	default:
		st.Clash++
	}
}

// restoreExt returns the gateway state for a restored flow: the saved FTP
// state when the engine still inspects the flow's port, a fresh gateway
// when it now does (as for a connection picked up mid-stream), none when
// it does not. ok is false for a saved FTP flow whose sequence numbers were
// shifted on a port no longer inspected (it cannot be carried without its
// ledgers), or whose saved state is inconsistent.
func (e *Engine) restoreExt(f *conntrack.Flow, sf *savedFlow) (any, bool) {
	o, r := f.Tuples[conntrack.Original], f.Tuples[conntrack.Reply]
	isFTP := o.Proto == ipproto.TCP && f.Master == nil && sf.master == 0 && (e.isFTP(o.DstPort) || e.isFTP(r.SrcPort))
	if sf.adopted {
		if sf.ftp || isFTP {
			// (an FTP control connection without labels: no rewrite yet)
			return e.adoptExt(f, sf)
		}
		return nil, true
	}
	if !sf.ftp {
		if isFTP {
			return newFTPFlow(e, f), true
		}
		return nil, true
	}
	if sf.badLedger {
		return nil, false
	}
	led := sf.led
	if !isFTP {
		shifted := led[0].Offset() != 0 || led[1].Offset() != 0 || led[0].Len() != 0 || led[1].Len() != 0
		return nil, !shifted
	}
	ctl, err := alg.RestoreControl(&e.cfg.FTP, f.Tuples, sf.ctl)
	if err != nil {
		return nil, false
	}
	x := newFTPFlow(e, f)
	x.ctl = ctl
	x.ledgers = led
	return x, true
}

// bindRestored takes one reference to the binding of inside to public
// port pub, making it if needed. It fails when pub is 0 or forwarded, when
// inside is bound to another port, or pub to another inside endpoint.
func (m *portMap) bindRestored(inside endpoint, pub uint16) bool {
	if pub == 0 || !inside.addr.IsValid() {
		return false
	}
	k := publicKey{port: pub, proto: inside.proto, fam: uint8(familyOf(inside.addr))}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reserved[k] {
		return false
	}
	if b := m.byInside[inside]; b != nil {
		if b.public != pub {
			return false
		}
		b.refs++
		return true
	}
	if m.byPublic[k] != nil {
		return false
	}
	b := &binding{inside: inside, public: pub, refs: 1}
	m.byInside[inside] = b
	m.byPublic[k] = b
	return true
}

// stateWriter writes big-endian fields and keeps the checksum; the first
// error sticks.
type stateWriter struct {
	w   *bufio.Writer
	crc interface {
		io.Writer
		Sum32() uint32
	}
	err        error
	scratch    [8]byte
	scratchBuf []byte // a record's encoding
}

func (w *stateWriter) bytes(b []byte) {
	if w.err != nil {
		return
	}
	w.crc.Write(b)
	_, w.err = w.w.Write(b)
}

func (w *stateWriter) u8(v uint8) { w.scratch[0] = v; w.bytes(w.scratch[:1]) }
func (w *stateWriter) u16(v uint16) {
	binary.BigEndian.PutUint16(w.scratch[:], v)
	w.bytes(w.scratch[:2])
}
func (w *stateWriter) u32(v uint32) {
	binary.BigEndian.PutUint32(w.scratch[:], v)
	w.bytes(w.scratch[:4])
}
func (w *stateWriter) i64(v int64) {
	binary.BigEndian.PutUint64(w.scratch[:], uint64(v))
	w.bytes(w.scratch[:8])
}

func (w *stateWriter) addr(a netip.Addr) {
	a = a.Unmap()
	if a.Is4() {
		v := a.As4()
		w.u8(4)
		w.bytes(v[:])
		return
	}
	v := a.As16()
	w.u8(16)
	w.bytes(v[:])
}

// stateReader reads big-endian fields from a checked buffer; the first
// error sticks and later reads return zeros.
type stateReader struct {
	b       []byte
	err     error
	version uint16 // of the file's format
}

func (d *stateReader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *stateReader) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated record")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *stateReader) u8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *stateReader) u16() uint16 {
	if b := d.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *stateReader) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *stateReader) i64() int64 {
	if b := d.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// count reads a record count, bounded by maxSaved and by what the rest of
// the buffer can hold (every record takes more than 8 bytes).
func (d *stateReader) count() int {
	n := d.u32()
	if n > maxSaved || int(n) > len(d.b)/8 {
		d.fail("count %d too large for the file", n)
		return 0
	}
	return int(n)
}

func (d *stateReader) addr() netip.Addr {
	switch n := d.u8(); n {
	case 4:
		if b := d.take(4); b != nil {
			return netip.AddrFrom4([4]byte(b))
		}
	case 16:
		if b := d.take(16); b != nil {
			a := netip.AddrFrom16([16]byte(b))
			if a.Is4In6() {
				d.fail("IPv4-mapped address %v", a)
				return netip.Addr{}
			}
			return a
		}
	default:
		d.fail("address of %d bytes", n)
	}
	return netip.Addr{}
}

// binaryReader is a record that decodes itself from the front of a
// buffer: conntrack.FlowRecord, seqdelta.Ledger.
type binaryReader interface {
	ReadBinary(data []byte) (size int, err error)
}

// read decodes one record into r and steps past it. An error that leaves
// its size known (an inconsistent but well-formed ledger) is returned, not
// kept: the caller decides; any other fails the file.
func (d *stateReader) read(r binaryReader) error {
	if d.err != nil {
		return nil
	}
	size, err := r.ReadBinary(d.b)
	if err != nil && size == 0 {
		d.fail("%w", err)
		return nil
	}
	d.b = d.b[size:]
	return err
}
