package nat

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/natalg/natalg/nat/header"
)

// TestConcurrentWorkers runs four workers over one engine, as several
// NFQUEUE queues do: each drives its own FTP control sessions (with PORT
// rewrites, their data connections and retransmissions) and plain flows,
// while the fifth goroutine sweeps. Run with -race. Every rewrite and every
// data connection must come out right.
func TestConcurrentWorkers(t *testing.T) {
	e := snatEngine(t)
	var wg sync.WaitGroup
	const workers, sessions = 4, 60
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 0, 65535)
			do := func(s tcpSeg) (Verdict, seen) {
				v, out := e.processPacket(append(buf[:0], s.build()...), t0)
				if v != Accept {
					return v, seen{}
				}
				var p header.Parsed
				if p.Decode(bytes.Clone(out)) != header.Ok || !checksumsValid(out) {
					return Drop, seen{} // reported by the caller as a failure
				}
				return v, seen{Parsed: p, payload: string(p.Payload())}
			}
			for i := 0; i < sessions; i++ {
				host := netip.AddrFrom4([4]byte{198, 18, byte(w + 1), byte(i + 1)})
				c := netip.AddrPortFrom(host, 40000)
				dport := uint16(50000 + w*100 + i)
				port := fmt.Sprintf("PORT 198,18,%d,%d,%d,%d\r\n", w+1, i+1, dport>>8, dport&0xff)
				steps := []tcpSeg{
					{src: c, dst: srv, seq: 1000, flags: fSYN},
					{src: c, dst: srv, seq: 1001, ack: 5001, flags: fACK},
					{src: c, dst: srv, seq: 1001, ack: 5001, flags: fACK | fPSH, payload: port},
					{src: c, dst: srv, seq: 1001, ack: 5001, flags: fACK | fPSH, payload: port}, // retransmission
				}
				var outs []seen
				for _, s := range steps {
					v, o := do(s)
					if v != Accept {
						errs <- fmt.Errorf("worker %d session %d: dropped %q", w, i, s.payload)
						return
					}
					outs = append(outs, o)
				}
				pub := outs[0].SrcPort
				want := fmt.Sprintf("PORT 198,19,100,100,%d,%d\r\n", dport>>8, dport&0xff)
				if outs[2].payload != want || outs[3].payload != want {
					errs <- fmt.Errorf("worker %d session %d: %q / %q", w, i, outs[2].payload, outs[3].payload)
					return
				}
				v, o := do(tcpSeg{src: ap("198.19.0.2:20"), dst: netip.AddrPortFrom(pubIP, dport), seq: 1, flags: fSYN})
				if v != Accept || o.Dst != host || o.DstPort != dport {
					errs <- fmt.Errorf("worker %d session %d: data connection %v %v:%d", w, i, v, o.Dst, o.DstPort)
					return
				}
				v, o = do(tcpSeg{src: srv, dst: netip.AddrPortFrom(pubIP, pub), seq: 5001, ack: 1001 + uint32(len(want)), flags: fACK})
				if v != Accept || o.Ack != 1001+uint32(len(port)) || o.Dst != host {
					errs <- fmt.Errorf("worker %d session %d: ack %d to %v", w, i, o.Ack, o.Dst)
					return
				}
			}
		}(w)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				e.Expire(t0)
			}
		}
	}()
	wg.Wait()
	close(done)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.Table().Len(); got != workers*sessions*2 {
		t.Fatalf("%d flows, want %d", got, workers*sessions*2)
	}
}
