package nat

import (
	"net/netip"
	"sync"

	"github.com/natalg/natalg/nat/ipproto"
)

// endpoint is a transport endpoint: an address, a port (or ICMP identifier)
// and a protocol.
type endpoint struct {
	addr  netip.Addr
	port  uint16
	proto ipproto.Proto
}

// publicKey names a public port of one protocol and address family.
type publicKey struct {
	port  uint16
	proto ipproto.Proto
	fam   uint8
}

// binding is an endpoint-independent mapping (RFC 4787 §4.1 REQ-1, RFC 5382
// REQ-1): one inside endpoint is seen from every destination at the same
// public port. refs counts the flows and expectations using it.
type binding struct {
	inside endpoint
	public uint16
	refs   int32
	// sent counts the outbound flows (kindSNAT) of the inside endpoint: the
	// flows that make the mapping one the endpoint itself opened, through
	// which filtering may let other remote endpoints in.
	sent int32
}

// peerKey is an inside endpoint and a remote address it has sent to.
type peerKey struct {
	inside endpoint
	remote netip.Addr
}

// portMap allocates public ports. A public port belongs to one inside
// endpoint at a time (no port overloading, RFC 4787 §4.1), and an inside
// port is kept when it is free (source-port preservation).
type portMap struct {
	mu       sync.Mutex
	byInside map[endpoint]*binding
	byPublic map[publicKey]*binding
	reserved map[publicKey]bool // forwarded public ports
	// peers counts the outbound flows of each inside endpoint to each
	// remote address: address-dependent filtering (RFC 4787 §5) admits a
	// packet from Y only when X:x "has sent packets to Y:any previously".
	peers    map[peerKey]int32
	min, max uint16
	cursor   uint32
	// strict: only ports in [min, max], even when the inside port is free
	strict bool
	// held are the bindings of data connections the kernel translates
	// (split datapath), one reference each (kerneldata.go)
	held map[heldKey]struct{}
}

func newPortMap(min, max uint16) *portMap {
	return &portMap{
		byInside: make(map[endpoint]*binding),
		byPublic: make(map[publicKey]*binding),
		reserved: make(map[publicKey]bool),
		peers:    make(map[peerKey]int32),
		min:      min, max: max,
	}
}

// reserve takes public ports out of allocation (DNAT forwards).
func (m *portMap) reserve(proto ipproto.Proto, fam uint8, lo, hi uint16) {
	for p := uint32(lo); p <= uint32(hi); p++ {
		m.reserved[publicKey{port: uint16(p), proto: proto, fam: fam}] = true
	}
}

// acquire returns the public port bound to inside, creating the binding if
// needed: the inside port itself when it is free (and, with strict, in
// [min, max]), else a free port from [min, max]. ok is false when every
// port is taken.
func (m *portMap) acquire(inside endpoint) (uint16, bool) { return m.acquirePort(inside, m.strict) }

// acquireHairpin is acquire for the source of a hairpinned flow: the
// inside port is kept when free even outside [min, max] with strict. A
// hairpinned flow's public port is seen only on the inside, so it cannot
// meet the kernel's own mappings of the split datapath on the outside, and
// keeping the port gives the inside host the source port the kernel's
// port-preserving masquerade gives its other flows: RFC 4787 §6 REQ-9a,
// "External source IP address and port".
func (m *portMap) acquireHairpin(inside endpoint) (uint16, bool) { return m.acquirePort(inside, false) }

func (m *portMap) acquirePort(inside endpoint, strict bool) (uint16, bool) {
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
	if port != 0 && (!strict || port >= m.min && port <= m.max) && free(port) {
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

// addPeer records an outbound flow of inside, which holds a binding, to
// remote.
func (m *portMap) addPeer(inside endpoint, remote netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.byInside[inside]
	if b == nil {
		return
	}
	b.sent++
	m.peers[peerKey{inside: inside, remote: remote}]++
}

// dropPeer forgets an outbound flow of inside to remote; call it before
// the flow's binding is released.
func (m *portMap) dropPeer(inside endpoint, remote netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := peerKey{inside: inside, remote: remote}
	n, ok := m.peers[k]
	if !ok {
		return
	}
	if n <= 1 {
		delete(m.peers, k)
	} else {
		m.peers[k] = n - 1
	}
	if b := m.byInside[inside]; b != nil {
		b.sent--
	}
}

// admit applies filtering mode (RFC 4787 §5) to a packet from remote to
// public port pub that belongs to no flow. It returns the inside endpoint
// of the mapping and takes a reference to its binding when the packet may
// open a flow: under endpoint-independent filtering when the inside
// endpoint has an outbound flow to anyone, under address-dependent
// filtering when it has one to remote. found reports whether pub is the
// mapping of an endpoint with outbound flows at all (otherwise there is no
// mapping to filter). Bindings that only
// FTP expectations or data connections hold admit nothing.
func (m *portMap) admit(pub publicKey, remote netip.Addr, mode Filtering) (in endpoint, found, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.byPublic[pub]
	if b == nil || b.sent <= 0 {
		return endpoint{}, false, false
	}
	switch mode {
	case FilterEndpointIndependent:
	case FilterAddressDependent:
		if m.peers[peerKey{inside: b.inside, remote: remote}] <= 0 {
			return endpoint{}, true, false
		}
	default:
		return endpoint{}, true, false
	}
	b.refs++
	return b.inside, true, true
}

// pin binds inside to public port pub for good: a static binding (RFC 6146
// §3.1, a manually configured BIB entry) whose reference is never dropped,
// so that the port stays the endpoint's whether or not a session uses it.
// It fails when pub is 0, or is bound or forwarded already.
func (m *portMap) pin(inside endpoint, pub uint16) bool {
	k := publicKey{port: pub, proto: inside.proto, fam: uint8(familyOf(inside.addr))}
	m.mu.Lock()
	defer m.mu.Unlock()
	if pub == 0 || m.reserved[k] || m.byPublic[k] != nil || m.byInside[inside] != nil {
		return false
	}
	b := &binding{inside: inside, public: pub, refs: 1}
	m.byInside[inside] = b
	m.byPublic[k] = b
	return true
}
