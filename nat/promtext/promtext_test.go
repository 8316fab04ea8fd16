package promtext

import (
	"errors"
	"strings"
	"testing"
)

func TestWriter(t *testing.T) {
	var b strings.Builder
	pw := New(&b)
	drops := Family{"x_drops_total", Counter, "Dropped packets by reason."}
	flows := Family{"x_flows", Gauge, "Flows in the table."}
	empty := Family{"x_empty_total", Counter, `Nothing yet \ or
never.`}
	pw.Uint(drops, 3, "reason", "no_flow")
	// Another component writing to the same page through io.Writer gets
	// the same Writer, and the family is not announced twice.
	if New(pw) != pw {
		t.Fatal("New of a Writer is not the Writer")
	}
	New(pw).Uint(drops, 0, "reason", `bad "quote"`)
	pw.Uint(flows, 12)
	pw.Declare(empty)
	pw.Sample(drops, "7", "queue", "1", "cause", "queue_full")
	want := `# HELP x_drops_total Dropped packets by reason.
# TYPE x_drops_total counter
x_drops_total{reason="no_flow"} 3
x_drops_total{reason="bad \"quote\""} 0
# HELP x_flows Flows in the table.
# TYPE x_flows gauge
x_flows 12
# HELP x_empty_total Nothing yet \\ or\nnever.
# TYPE x_empty_total counter
x_drops_total{queue="1",cause="queue_full"} 7
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	if pw.Err() != nil {
		t.Fatal(pw.Err())
	}
}

type failing struct{}

var errBroken = errors.New("broken pipe")

func (failing) Write([]byte) (int, error) { return 0, errBroken }

func TestWriterError(t *testing.T) {
	pw := New(failing{})
	pw.Uint(Family{"a", Counter, "A."}, 1)
	pw.Uint(Family{"b", Counter, "B."}, 1)
	if !errors.Is(pw.Err(), errBroken) {
		t.Fatalf("Err %v", pw.Err())
	}
}
