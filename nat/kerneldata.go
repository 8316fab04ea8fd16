package nat

import (
	"github.com/natalg/natalg/nat/ipproto"
	"net/netip"
)

// heldKey is one data connection's hold on a binding: its inside endpoint
// and public port.
type heldKey struct {
	inside endpoint
	public uint16
}

// HoldKernelData keeps public port public.Port() bound to the inside
// endpoint inside while a data connection that the kernel translates (the
// split datapath: an FTP data connection admitted by natalg's expectation
// element and DNATed by the kernel) uses it, so that natalg hands the port
// to no other endpoint meanwhile. A connection from the same peer and peer
// port to the same public port (an active-mode server connects from port
// 20 every time) would otherwise have the 5-tuple of the running one, and
// the kernel would take its SYN for a segment of that one. It is called
// when such a connection appears (a conntrack event), and for each one found
// in the kernel's table when natalg rebuilds its own (a restart, or a
// router of a pair taking over: the connections came from the other
// router, natalg never bound their ports here). It reports whether it holds
// the port: false when public is not the public address of its family, or
// the port is bound to another endpoint or forwarded. Holding it twice is
// one hold.
func (e *Engine) HoldKernelData(proto ipproto.Proto, inside, public netip.AddrPort) bool {
	if public.Addr().Unmap() != e.public[familyOf(public.Addr())] {
		return false
	}
	return e.ports.hold(endpoint{addr: inside.Addr().Unmap(), port: inside.Port(), proto: proto}, public.Port())
}

// ReleaseKernelData drops the hold of HoldKernelData: the data connection
// is gone (a conntrack destroy event). Without a hold it does nothing.
func (e *Engine) ReleaseKernelData(proto ipproto.Proto, inside, public netip.AddrPort) {
	e.ports.unhold(endpoint{addr: inside.Addr().Unmap(), port: inside.Port(), proto: proto}, public.Port())
}

// KernelDataHolds returns the number of data connections holding a binding.
func (e *Engine) KernelDataHolds() int {
	e.ports.mu.Lock()
	defer e.ports.mu.Unlock()
	return len(e.ports.held)
}

// KernelDataHold is one data connection's hold (HoldKernelData).
type KernelDataHold struct {
	Proto  ipproto.Proto
	Inside netip.AddrPort
	Public netip.AddrPort
}

// KernelDataHeld lists the holds of HoldKernelData, for a caller that lost
// conntrack events and must find the data connections that ended unseen.
func (e *Engine) KernelDataHeld() []KernelDataHold {
	e.ports.mu.Lock()
	defer e.ports.mu.Unlock()
	holds := make([]KernelDataHold, 0, len(e.ports.held))
	for h := range e.ports.held {
		pub := e.public[familyOf(h.inside.addr)]
		holds = append(holds, KernelDataHold{Proto: h.inside.proto,
			Inside: netip.AddrPortFrom(h.inside.addr, h.inside.port), Public: netip.AddrPortFrom(pub, h.public)})
	}
	return holds
}

// hold adds one reference to inside's binding to pub, creating the binding
// when neither inside nor pub is bound, once per (inside, pub).
func (m *portMap) hold(inside endpoint, pub uint16) bool {
	k := publicKey{port: pub, proto: inside.proto, fam: uint8(familyOf(inside.addr))}
	h := heldKey{inside: inside, public: pub}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.held[h]; ok {
		return true
	}
	if pub == 0 || m.reserved[k] {
		return false
	}
	b := m.byInside[inside]
	switch {
	case b != nil && b.public == pub:
		b.refs++
	case b != nil || m.byPublic[k] != nil:
		return false
	default:
		b = &binding{inside: inside, public: pub, refs: 1}
		m.byInside[inside] = b
		m.byPublic[k] = b
	}
	if m.held == nil {
		m.held = make(map[heldKey]struct{})
	}
	m.held[h] = struct{}{}
	return true
}

// unhold drops the reference hold added.
func (m *portMap) unhold(inside endpoint, pub uint16) {
	h := heldKey{inside: inside, public: pub}
	m.mu.Lock()
	_, ok := m.held[h]
	delete(m.held, h)
	m.mu.Unlock()
	if ok {
		m.release(inside)
	}
}
