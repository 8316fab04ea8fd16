package bench

import (
	"fmt"
	"math/rand/v2"
)

// Scenarios lists the scenario names Run accepts.
var Scenarios = []string{"established", "ftp-control", "setup", "mixed"}

// plan is what a scenario plays: per worker, an untimed setup trace (flows
// opened before the measurement) and the timed trace.
type plan struct {
	setup []*Trace
	timed []*Trace
	// loop: the timed traces are stateless (established packets) and are
	// played in a loop up to Options.Packets packets in all.
	loop bool
	// Counts over all workers' timed traces.
	control  uint64 // FTP control segments
	newFlows uint64 // flows the timed traces open
	maxFlows int    // flows the table must hold
}

func newPlan(workers int) *plan {
	p := &plan{setup: make([]*Trace, workers), timed: make([]*Trace, workers)}
	return p
}

// imix is the packet size of flow k in the mixed scenario: the simple IMIX
// of 7 small, 4 medium and 1 large packets.
func imix(k int) int {
	switch m := k % 12; {
	case m < 7:
		return 64
	case m < 11:
		return 576
	}
	return 1500
}

// build makes the traces of o.Scenario.
func build(o *Options) (*plan, error) {
	w, n := o.Workers, o.Flows
	p := newPlan(w)
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x6e6174616c67))
	per := (n + w - 1) / w
	switch o.Scenario {
	case "established":
		// Open n TCP flows; then time data segments of every flow, out and
		// in, in a random order, looped.
		for i := range w {
			p.setup[i] = NewTrace(3*per, 64)
			p.timed[i] = NewTrace(2*per, 64)
		}
		flows := make([][]tcpFlow, w)
		for k := range n {
			f := newTCPFlow(k)
			f.handshake(p.setup[k%w])
			flows[k%w] = append(flows[k%w], f)
		}
		for i, fs := range flows {
			for _, j := range rng.Perm(len(fs)) {
				fs[j].out(p.timed[i], o.Size)
			}
			for _, j := range rng.Perm(len(fs)) {
				fs[j].in(p.timed[i], o.Size)
			}
		}
		p.loop = true
		p.maxFlows = n
	case "setup":
		// Time the opening of n TCP flows (SYN, SYN+ACK, ACK).
		for i := range w {
			p.timed[i] = NewTrace(3*per, 64)
		}
		for _, k := range rng.Perm(n) {
			f := newTCPFlow(k)
			f.handshake(p.timed[k%w])
		}
		p.newFlows = uint64(n)
		p.maxFlows = n
	case "ftp-control":
		// Open n control sessions (half active with PORT, half passive
		// with 227); then time rounds of transfers: announcement rewritten,
		// LIST, the data connection through the expectation, 226.
		rounds := roundsFor(o.Packets, n*ftpPacketsPerRound)
		for i := range w {
			p.setup[i] = NewTrace(5*per, 80)
			p.timed[i] = NewTrace(rounds*per*ftpPacketsPerRound, 60)
		}
		ss := make([]*ftpSession, n)
		for j := range ss {
			ss[j] = newFTPSession(j)
			ss[j].open(p.setup[j%w])
		}
		for range rounds {
			for _, j := range rng.Perm(n) {
				ss[j].round(p.timed[j%w], o.Size)
			}
		}
		p.control = uint64(rounds * n * ftpControlPerRound)
		p.newFlows = uint64(rounds * n)
		p.maxFlows = n + rounds*n
	case "mixed":
		p.mixed(o, rng)
	default:
		return nil, fmt.Errorf("unknown scenario %q (want one of %v)", o.Scenario, Scenarios)
	}
	return p, nil
}

// roundsFor returns how many rounds of per packets make about want packets:
// at least 1, at most 2000.
func roundsFor(want, per int) int {
	if per <= 0 {
		return 1
	}
	return min(max(1, (want+per-1)/per), 2000)
}

// mixed builds the mixed scenario: of n flows, 85% TCP, 10% UDP, 4% ICMP
// echo and 1% FTP control sessions are opened untimed. Each timed round
// sends one packet each way on every TCP, UDP and ICMP flow (IMIX sizes),
// runs one transfer on every FTP session, and opens, uses and closes n/50
// new TCP connections, all in a random order.
func (p *plan) mixed(o *Options, rng *rand.Rand) {
	w, n := o.Workers, o.Flows
	nFTP := max(1, n/100)
	nICMP := n * 4 / 100
	nUDP := n * 10 / 100
	nTCP := max(0, n-nFTP-nICMP-nUDP)
	churn := max(1, n/50)
	perRound := 2*(nTCP+nUDP+nICMP) + nFTP*ftpPacketsPerRound + churn*8
	rounds := roundsFor(o.Packets, perRound)
	for i := range w {
		p.setup[i] = NewTrace((3*nTCP+2*nUDP+2*nICMP+5*nFTP)/w+8, 64)
		p.timed[i] = NewTrace(rounds*perRound/w+16, 64)
	}
	tcp := make([]tcpFlow, nTCP)
	for k := range tcp {
		tcp[k] = newTCPFlow(k)
		tcp[k].handshake(p.setup[k%w])
	}
	udp := make([]udpFlow, nUDP)
	for k := range udp {
		udp[k] = newUDPFlow(k)
		udp[k].out(p.setup[k%w], 0)
		udp[k].in(p.setup[k%w], 0)
	}
	icmp := make([]icmpFlow, nICMP)
	for k := range icmp {
		icmp[k] = newICMPFlow(k)
		icmp[k].out(p.setup[k%w], 0, 0)
		icmp[k].in(p.setup[k%w], 0, 0)
	}
	ftp := make([]*ftpSession, nFTP)
	for j := range ftp {
		ftp[j] = newFTPSession(j)
		ftp[j].open(p.setup[j%w])
	}
	// A unit is what must be played in order: one packet of a stateless
	// flow, an FTP transfer, a short connection's life.
	type unit struct {
		kind uint8 // 0 tcp out, 1 tcp in, 2 udp out, 3 udp in, 4 icmp out, 5 icmp in, 6 ftp, 7 churn
		k    int32
	}
	units := make([]unit, 0, 2*(nTCP+nUDP+nICMP)+nFTP+churn)
	for r := range rounds {
		units = units[:0]
		for k := range nTCP {
			units = append(units, unit{0, int32(k)}, unit{1, int32(k)})
		}
		for k := range nUDP {
			units = append(units, unit{2, int32(k)}, unit{3, int32(k)})
		}
		for k := range nICMP {
			units = append(units, unit{4, int32(k)}, unit{5, int32(k)})
		}
		for j := range nFTP {
			units = append(units, unit{6, int32(j)})
		}
		for c := range churn {
			units = append(units, unit{7, int32(nTCP + r*churn + c)})
		}
		rng.Shuffle(len(units), func(i, j int) { units[i], units[j] = units[j], units[i] })
		for _, u := range units {
			k := int(u.k)
			t := p.timed[k%w]
			switch u.kind {
			case 0:
				tcp[k].out(t, imix(k))
			case 1:
				tcp[k].in(t, imix(k))
			case 2:
				udp[k].out(t, imix(k))
			case 3:
				udp[k].in(t, imix(k))
			case 4:
				icmp[k].out(t, r+1, imix(k))
			case 5:
				icmp[k].in(t, r+1, imix(k))
			case 6:
				ftp[k].round(t, imix(k))
			case 7:
				f := newTCPFlow(k)
				f.handshake(t)
				f.out(t, imix(k))
				f.in(t, imix(k))
				f.teardown(t)
			}
		}
	}
	p.control = uint64(rounds * nFTP * ftpControlPerRound)
	p.newFlows = uint64(rounds * (nFTP + churn))
	p.maxFlows = n + rounds*(nFTP+churn)
}

// packets returns the number of packets in the timed traces.
func (p *plan) packets() int {
	n := 0
	for _, t := range p.timed {
		n += t.Len()
	}
	return n
}
