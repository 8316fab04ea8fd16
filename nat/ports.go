package nat

import (
	"net/netip"
	"sync"
)

// endpoint is a transport endpoint: an address, a port (or ICMP identifier)
// and a protocol.
type endpoint struct {
	addr  netip.Addr
	port  uint16
	proto uint8
}

// publicKey names a public port of one protocol and address family.
type publicKey struct {
	port  uint16
	proto uint8
	fam   uint8
}

// binding is an endpoint-independent mapping (RFC 4787 §4.1 REQ-1, RFC 5382
// REQ-1): one inside endpoint is seen from every destination at the same
// public port. refs counts the flows and expectations using it.
type binding struct {
	inside endpoint
	public uint16
	refs   int32
}

// portMap allocates public ports. A public port belongs to one inside
// endpoint at a time (no port overloading, RFC 4787 §4.1), and an inside
// port is kept when it is free (source-port preservation).
type portMap struct {
	mu       sync.Mutex
	byInside map[endpoint]*binding
	byPublic map[publicKey]*binding
	reserved map[publicKey]bool // forwarded public ports
	min, max uint16
	cursor   uint32
	// strict: only ports in [min, max], even when the inside port is free
	strict bool
}

func newPortMap(min, max uint16) *portMap {
	return &portMap{
		byInside: make(map[endpoint]*binding),
		byPublic: make(map[publicKey]*binding),
		reserved: make(map[publicKey]bool),
		min:      min, max: max,
	}
}

// reserve takes public ports out of allocation (DNAT forwards).
func (m *portMap) reserve(proto uint8, fam uint8, lo, hi uint16) {
	for p := uint32(lo); p <= uint32(hi); p++ {
		m.reserved[publicKey{port: uint16(p), proto: proto, fam: fam}] = true
	}
}

// acquire returns the public port bound to inside, creating the binding if
// needed: the inside port itself when it is free, else a free port from
// [min, max]. ok is false when every port is taken.
func (m *portMap) acquire(inside endpoint) (uint16, bool) {
	fam := uint8(familyOf(inside.addr))
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.byInside[inside]; b != nil {
		b.refs++
		return b.public, true
	}
	free := func(p uint16) bool {
		k := publicKey{port: p, proto: inside.proto, fam: fam}
		return m.byPublic[k] == nil && !m.reserved[k]
	}
	port, found := inside.port, false
	if port != 0 && (!m.strict || port >= m.min && port <= m.max) && free(port) {
		found = true
	} else {
		n := uint32(m.max) - uint32(m.min) + 1
		start := m.cursor
		for i := uint32(0); i < n; i++ {
			p := uint16(uint32(m.min) + (start+i)%n)
			if free(p) {
				port, found = p, true
				m.cursor = start + i + 1
				break
			}
		}
	}
	if !found {
		return 0, false
	}
	b := &binding{inside: inside, public: port, refs: 1}
	m.byInside[inside] = b
	m.byPublic[publicKey{port: port, proto: inside.proto, fam: fam}] = b
	return port, true
}

// release drops one reference to inside's binding.
func (m *portMap) release(inside endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.byInside[inside]
	if b == nil {
		return
	}
	if b.refs--; b.refs <= 0 {
		delete(m.byInside, inside)
		delete(m.byPublic, publicKey{port: b.public, proto: inside.proto, fam: uint8(familyOf(inside.addr))})
	}
}

// bindings returns the number of live bindings.
func (m *portMap) bindings() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byInside)
}
