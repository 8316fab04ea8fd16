package kerneldp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
	"github.com/natalg/natalg/nat/promtext"
)

// Stats count what happened to the expectations natalg put in the kernel.
type Stats struct {
	Installed     atomic.Uint64 // elements added before their announcement left
	InstallFailed atomic.Uint64 // additions the kernel refused (the announcement still left: its data connection fails)
	Used          atomic.Uint64 // a data connection came through (seen in a conntrack event)
	Expired       atomic.Uint64 // lapsed unused
	Withdrawn     atomic.Uint64 // removed unused before their time: control connection gone, evicted, replaced, or left by an earlier natalg and not adopted
	Adopted       atomic.Uint64 // left in the kernel by an earlier natalg and adopted (Sync)
	Events        atomic.Uint64 // conntrack events read
	EventErrors   atomic.Uint64 // conntrack event socket errors (events lost: elements then lapse by timeout)
	EventOverruns atomic.Uint64 // event socket buffer overruns (ENOBUFS), each followed by a read of the kernel's table
}

// Datapath is natalg's table in the kernel and the expectations in it. It
// implements nat.ExpectationSink.
type Datapath struct {
	cfg   Config
	log   *slog.Logger
	Stats Stats
	// KeepExpectations: Close(false) leaves the expectation elements in
	// the kernel, for the next natalg to adopt (crash-only: a clean stop
	// then loses no more than a crash); each lapses by its timeout.
	KeepExpectations bool

	mu     sync.Mutex // guards cc, obj and owners
	cc     *nftables.Conn
	obj    *objects
	owners map[string]*conntrack.Expectation // by element key (family byte + key)

	removals chan *conntrack.Expectation
	done     chan struct{}
}

// Open replaces natalg's table (one transaction: a running kernel is never
// without it) with one for cfg.
func Open(cfg Config, log *slog.Logger) (*Datapath, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cc, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("kerneldp: nftables netlink: %w", err)
	}
	old, lerr := cc.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	var keep [2][]nftables.SetElement
	if lerr == nil && !cfg.Full {
		keep = pending(cc, old, log)
	}
	obj, err := build(cc, &cfg, lerr == nil, keep, QueueSupported())
	if err == nil {
		err = cc.Flush()
	}
	if err != nil {
		cc.CloseLasting()
		return nil, fmt.Errorf("kerneldp: install table inet %s: %w", TableName, err)
	}
	d := &Datapath{cfg: cfg, log: log, cc: cc, obj: obj, owners: map[string]*conntrack.Expectation{},
		removals: make(chan *conntrack.Expectation, 4096), done: make(chan struct{})}
	go d.removeLoop()
	return d, nil
}

// Close stops the datapath and removes natalg's expectations from the
// kernel (a restart with --state installs the restored ones again). With
// remove, natalg's table goes too; without, it stays, so the kernel keeps
// translating every flow but FTP control (whose queued packets the kernel
// drops while no natalg reads the queue: fail-closed), until a restart
// replaces the table or "natalg rules --remove" deletes it.
func (d *Datapath) Close(remove bool) error {
	close(d.removals)
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	if remove {
		d.cc.DelTable(d.obj.table)
	} else if !d.KeepExpectations {
		for _, s := range d.obj.expect {
			if s != nil {
				d.cc.FlushSet(s)
			}
		}
	}
	clear(d.owners)
	err := d.cc.Flush()
	d.cc.CloseLasting()
	return err
}

// Remove deletes natalg's table, if there is one (natalg rules --remove).
func Remove() error {
	cc, err := nftables.New()
	if err != nil {
		return err
	}
	if _, err := cc.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		return nil // none
	}
	cc.DelTable(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
	return cc.Flush()
}

// QueueSupported reports whether the kernel has nft's queue expression
// (nft_queue).
func QueueSupported() bool { return queueProbe(true) }

// QueueTableSupported reports whether the kernel queues from an nft rule at
// all: with nft's queue expression, or with xt's NFQUEUE target through
// nft_compat (queueTo). "natalg rules --queue-backend auto" installs
// table inet natalg_queue where it does.
func QueueTableSupported() bool { return QueueSupported() || queueProbe(false) }

// queueProbe adds a rule queueing as queueTo does (nftQueue: nft's queue
// expression, else xt's target) to a prerouting chain of a throwaway
// table, and removes the table.
func queueProbe(nftQueue bool) bool {
	cc, err := nftables.New()
	if err != nil {
		return false
	}
	t := cc.AddTable(&nftables.Table{Name: TableName + "_probe", Family: nftables.TableFamilyINet})
	c := cc.AddChain(&nftables.Chain{Name: "probe", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
	cc.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: cat([]expr.Any{&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ne32(0xfffffffe)}}, queueTo(Queues{0, 0}, nftQueue))})
	ok := cc.Flush() == nil
	cc.DelTable(t)
	cc.Flush()
	return ok
}

func ownerKey(i int, el *nftables.SetElement) string {
	return string(append([]byte{byte(i)}, el.Key...))
}

// ExpectationInstalled adds x to the kernel (nat.ExpectationSink). The
// element lapses with x (x.Expires), so it never outlives natalg's
// expectation even when natalg cannot remove it.
func (d *Datapath) ExpectationInstalled(x *conntrack.Expectation) error {
	if x.Proto != ipproto.TCP {
		return fmt.Errorf("kerneldp: expectation of protocol %d", x.Proto)
	}
	i, el := expectElement(x)
	if d.obj.expect[i] == nil {
		return fmt.Errorf("kerneldp: no public address of the family of %v", x.Dst)
	}
	el.Timeout = time.Until(time.Unix(0, x.Expires)).Round(time.Millisecond)
	if el.Timeout < time.Millisecond {
		el.Timeout = time.Millisecond
	}
	k := ownerKey(i, &el)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.owners[k]; ok {
		// The same peer and public port again (a repeated PORT): the kernel
		// keeps an existing element's timeout on "add", so the old one goes
		// first. It may have lapsed in the kernel already: no error then.
		d.cc.SetDeleteElements(d.obj.expect[i], []nftables.SetElement{{Key: el.Key}})
		d.cc.Flush()
		delete(d.owners, k)
	}
	if err := d.cc.SetAddElements(d.obj.expect[i], []nftables.SetElement{el}); err != nil {
		d.Stats.InstallFailed.Add(1)
		return fmt.Errorf("kerneldp: expectation element: %w", err)
	}
	if err := d.cc.Flush(); err != nil {
		d.Stats.InstallFailed.Add(1)
		return fmt.Errorf("kerneldp: add expectation %v -> %v:%d: %w", x.Src, x.Dst, x.DstPort, err)
	}
	d.owners[k] = x
	d.Stats.Installed.Add(1)
	return nil
}

// ExpectationRemoved removes x from the kernel (nat.ExpectationSink). The
// engine may call it holding its locks, so the netlink work is done by a
// goroutine; an expectation installed again with the same key meanwhile is
// left alone.
func (d *Datapath) ExpectationRemoved(x *conntrack.Expectation) {
	select {
	case d.removals <- x:
	default:
		d.remove(x) // queue full: remove in line
	}
}

func (d *Datapath) removeLoop() {
	defer close(d.done)
	for x := range d.removals {
		d.remove(x)
	}
}

func (d *Datapath) remove(x *conntrack.Expectation) {
	i, el := expectElement(x)
	k := ownerKey(i, &el)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.owners[k] != x {
		return // never installed, used, or replaced by a newer one
	}
	delete(d.owners, k)
	if time.Now().UnixNano() >= x.Expires {
		d.Stats.Expired.Add(1)
	} else {
		d.Stats.Withdrawn.Add(1)
	}
	d.cc.SetDeleteElements(d.obj.expect[i], []nftables.SetElement{{Key: el.Key}})
	if err := d.cc.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		d.log.Debug("kerneldp: remove expectation (lapsed already?)", "peer", x.Src, "public", netip.AddrPortFrom(x.Dst, x.DstPort), "err", err)
	}
}

// Sync makes the kernel's expectation maps hold exactly the engine's
// pending expectations (restored from --state, or adopted from the kernel
// by Rebuild), each once: an element already in the kernel for one of them
// is adopted as it is (the kernel's timeout stands), a missing one is
// installed, and an element no expectation of the engine claims (its
// control connection was not adopted, or another natalg left it) is
// removed. It returns the number installed.
func (d *Datapath) Sync(eng *nat.Engine) (int, error) {
	if d.cfg.Full {
		return 0, nil
	}
	var xs []*conntrack.Expectation
	eng.Table().RangeExpectations(func(x *conntrack.Expectation) {
		if x.Proto == ipproto.TCP && !(x.Dst.Is4() && x.Target.Addr().Is6()) { // not NAT64's
			xs = append(xs, x)
		}
	})
	d.mu.Lock()
	inKernel := map[string][]byte{} // by owner key: the element's key
	for i, s := range d.obj.expect {
		if s == nil {
			continue
		}
		els, err := d.cc.GetSetElements(s)
		if err != nil {
			d.mu.Unlock()
			return 0, fmt.Errorf("kerneldp: list %s: %w", s.Name, err)
		}
		for _, el := range els {
			inKernel[ownerKey(i, &el)] = el.Key
		}
	}
	var install []*conntrack.Expectation
	for _, x := range xs {
		i, el := expectElement(x)
		k := ownerKey(i, &el)
		if owner, ok := d.owners[k]; ok && owner == x {
			delete(inKernel, k)
			continue
		}
		if _, ok := inKernel[k]; ok {
			d.owners[k] = x // adopted: the element is there
			delete(inKernel, k)
			d.Stats.Adopted.Add(1)
			continue
		}
		install = append(install, x)
	}
	for k, key := range inKernel {
		if _, owned := d.owners[k]; owned {
			continue
		}
		d.cc.SetDeleteElements(d.obj.expect[k[0]], []nftables.SetElement{{Key: key}})
		d.Stats.Withdrawn.Add(1)
	}
	err := d.cc.Flush()
	d.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("kerneldp: withdraw unclaimed expectations: %w", err)
	}
	n := 0
	for _, x := range install {
		if err := d.ExpectationInstalled(x); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// pending reads the expectation elements of natalg's table as an earlier
// run left it, with the life each has left.
func pending(cc *nftables.Conn, t *nftables.Table, log *slog.Logger) (keep [2][]nftables.SetElement) {
	for i := range families {
		s, err := cc.GetSetByName(t, families[i].expect)
		if err != nil {
			continue // none (an older table, or full mode)
		}
		els, err := cc.GetSetElements(s)
		if err != nil {
			log.Warn("kerneldp: cannot read the expectations left in the kernel; they are dropped", "map", s.Name, "err", err)
			continue
		}
		for _, el := range els {
			if el.Expires <= 0 {
				continue
			}
			keep[i] = append(keep[i], nftables.SetElement{Key: el.Key, Val: el.Val, Timeout: el.Expires.Round(time.Millisecond)})
		}
	}
	return keep
}

// Watch reads conntrack events until ctx is done: a new connection with
// CtMarkData came through one of natalg's expectations, whose element is
// then removed (one-shot) and whose engine expectation is used up; the
// events of other connections never reach natalg (dataEventFilter). When
// the socket's buffer overruns, the events lost are read back from the
// kernel's table (resync).
func (d *Datapath) Watch(ctx context.Context, eng *nat.Engine) error {
	c, err := dialEvents()
	if err != nil {
		return err
	}
	if err := c.SetReadBuffer(4 << 20); err != nil {
		d.log.Debug("kerneldp: conntrack event buffer", "err", err)
	}
	// NEW: a data connection came through an element; UPDATE to TIME_WAIT
	// or CLOSE, or DESTROY: it ended, and the public port it held is free
	// again
	err = readEvents(ctx, c, func(ev *ct.Event) { d.event(eng, ev) }, func() {
		d.Stats.EventOverruns.Add(1)
		if err := d.resync(eng); err != nil {
			d.Stats.EventErrors.Add(1)
			d.log.Warn("kerneldp: conntrack events lost, and the table could not be read back", "err", err)
		}
	})
	if err != nil {
		d.Stats.EventErrors.Add(1)
		return fmt.Errorf("kerneldp: conntrack events: %w", err)
	}
	return nil
}

// used handles the data connection from peer to public.
func (d *Datapath) used(eng *nat.Engine, peer netip.Addr, public netip.AddrPort) {
	x := &conntrack.Expectation{Proto: ipproto.TCP, Src: peer, Dst: public.Addr(), DstPort: public.Port()}
	i, el := expectElement(x)
	k := ownerKey(i, &el)
	d.mu.Lock()
	_, ok := d.owners[k]
	if ok {
		delete(d.owners, k)
		d.cc.SetDeleteElements(d.obj.expect[i], []nftables.SetElement{{Key: el.Key}})
		if err := d.cc.Flush(); err != nil {
			d.log.Debug("kerneldp: remove used expectation", "peer", peer, "public", public, "err", err)
		}
	}
	d.mu.Unlock()
	if !ok {
		return
	}
	d.Stats.Used.Add(1)
	eng.ExpectationUsed(ipproto.TCP, peer, public, time.Now())
	d.log.Debug("kerneldp: expectation used", "peer", peer, "public", public)
}

// Element is an expectation as the kernel holds it.
type Element struct {
	Peer    netip.Addr
	Public  netip.AddrPort
	Target  netip.AddrPort
	Expires time.Duration // life left
}

// Elements lists the expectation maps' elements.
func (d *Datapath) Elements() ([]Element, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Element
	for i, s := range d.obj.expect {
		if s == nil {
			continue
		}
		els, err := d.cc.GetSetElements(s)
		if err != nil {
			return out, fmt.Errorf("kerneldp: list %s: %w", s.Name, err)
		}
		n := int(families[i].addrLen)
		for _, el := range els {
			if len(el.Key) < 2*n+2 || len(el.Val) < n+2 {
				continue
			}
			peer, _ := netip.AddrFromSlice(el.Key[:n])
			pub, _ := netip.AddrFromSlice(el.Key[n : 2*n])
			tgt, _ := netip.AddrFromSlice(el.Val[:n])
			out = append(out, Element{Peer: peer, Public: netip.AddrPortFrom(pub, uint16(el.Key[2*n])<<8|uint16(el.Key[2*n+1])),
				Target: netip.AddrPortFrom(tgt, uint16(el.Val[n])<<8|uint16(el.Val[n+1])), Expires: el.Expires})
		}
	}
	return out, nil
}

// Pending returns the number of expectations natalg holds in the kernel.
func (d *Datapath) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.owners)
}

// The kernel datapath's metric families.
var (
	metricKernelExpectations = promtext.Family{Name: "natalg_kernel_expectations", Type: promtext.Gauge,
		Help: "Expectations natalg holds in the kernel's maps."}
	metricKernelExpectationsTotal = promtext.Family{Name: "natalg_kernel_expectations_total", Type: promtext.Counter,
		Help: "Expectations in the kernel by event."}
	metricKernelEvents = promtext.Family{Name: "natalg_kernel_conntrack_events_total", Type: promtext.Counter,
		Help: "Conntrack events read, and event socket errors."}
)

// WriteMetrics writes the kernel expectation counters in the Prometheus
// text format, through a promtext.Writer on w (w itself when it is one).
func (d *Datapath) WriteMetrics(w io.Writer) {
	pw := promtext.New(w)
	pw.Uint(metricKernelExpectations, uint64(d.Pending()))
	for _, e := range []struct {
		name string
		v    *atomic.Uint64
	}{{"installed", &d.Stats.Installed}, {"install_failed", &d.Stats.InstallFailed}, {"used", &d.Stats.Used},
		{"expired", &d.Stats.Expired}, {"withdrawn", &d.Stats.Withdrawn}, {"adopted", &d.Stats.Adopted}} {
		pw.Uint(metricKernelExpectationsTotal, e.v.Load(), "event", e.name)
	}
	pw.Uint(metricKernelEvents, d.Stats.Events.Load(), "kind", "read")
	pw.Uint(metricKernelEvents, d.Stats.EventErrors.Load(), "kind", "error")
	pw.Uint(metricKernelEvents, d.Stats.EventOverruns.Load(), "kind", "overrun")
}
