package nat

import (
	"testing"

	"github.com/natalg/natalg/alg"
)

// TestALGEventNames checks that every alg event bit has a metrics name:
// WriteMetrics stops at the first unnamed bit, so a new event without a name
// would hide itself and every event after it.
func TestALGEventNames(t *testing.T) {
	for ev := alg.Event(1); ev != 0 && ev&alg.EvAll != 0; ev <<= 1 {
		if algEventNames[ev] == "" {
			t.Errorf("alg event %#x has no metrics name", uint32(ev))
		}
	}
}
