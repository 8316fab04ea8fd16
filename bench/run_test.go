package bench

import (
	"encoding/json"
	"testing"
)

func TestScenariosSmall(t *testing.T) {
	for _, s := range Scenarios {
		r, err := Run(Options{Scenario: s, Flows: 200, Packets: 20000})
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		b, _ := json.Marshal(r)
		t.Logf("%s", b)
		if r.Dropped != 0 {
			t.Errorf("%s: %d drops %v", s, r.Dropped, r.Drops)
		}
	}
}
