package nat

import (
	"bytes"
	"strings"
	"testing"

	"github.com/natalg/natalg/alg"
)

// TestALGEventNames checks that the metrics carry a counter, under the
// event's alg name, for every alg event bit (alg.TestEventNames checks that
// each has a name of its own).
func TestALGEventNames(t *testing.T) {
	var s Stats
	var out bytes.Buffer
	s.WriteMetrics(&out)
	text := out.String()
	for ev := alg.Event(1); ev != 0 && ev&alg.EvAll != 0; ev <<= 1 {
		line := "natalg_alg_events_total{event=\"" + ev.String() + "\"} 0\n"
		if !strings.Contains(text, line) {
			t.Errorf("alg event %#x (%s) has no metrics line", uint32(ev), ev)
		}
	}
	if alg.NumEvents > len(s.ALGEvents) {
		t.Errorf("%d alg events, %d counters", alg.NumEvents, len(s.ALGEvents))
	}
}
