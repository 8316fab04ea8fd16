package main

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/natalg/natalg/cmd/internal/nfq"
	"github.com/natalg/natalg/nat"
)

// TestMetricsPage checks the /metrics page that natalg run serves: every
// family announced by exactly one HELP and one TYPE line, before its
// samples, and the series the e2e suites and dashboards read present under
// their names and labels.
func TestMetricsPage(t *testing.T) {
	eng, err := nat.New(nat.Config{Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, Public: []netip.Addr{netip.MustParseAddr("198.19.100.100")}})
	if err != nil {
		t.Fatal(err)
	}
	var st nfq.Stats
	st.Received.Add(7)
	rec := httptest.NewRecorder()
	metricsHandler(eng, &st, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	page := rec.Body.String()
	help, typ := map[string]int{}, map[string]int{}
	for _, line := range strings.Split(strings.TrimSuffix(page, "\n"), "\n") {
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "# HELP "):
			help[fields[2]]++
		case strings.HasPrefix(line, "# TYPE "):
			typ[fields[2]]++
			if fields[3] != "counter" && fields[3] != "gauge" {
				t.Errorf("type %q", line)
			}
		default:
			name, _, _ := strings.Cut(fields[0], "{")
			if help[name] != 1 || typ[name] != 1 {
				t.Errorf("sample %q before its family's HELP and TYPE", line)
			}
		}
	}
	for name, n := range help {
		if n != 1 || typ[name] != 1 {
			t.Errorf("family %s: %d HELP, %d TYPE lines", name, n, typ[name])
		}
	}
	for _, want := range []string{
		`natalg_packets_total{verdict="accept"} 0`,
		`natalg_drops_total{reason="no_flow"} 0`,
		`natalg_flows 0`,
		`natalg_flows_total{event="table_full"} 0`,
		`natalg_expectations_total{event="refused_full"} 0`,
		`natalg_nfqueue_packets_total{event="received"} 7`,
		`natalg_nfqueue_errors_total{kind="verdict"} 0`,
		`natalg_bindings 0`,
		"# HELP natalg_flows_max Flow table size.\n# TYPE natalg_flows_max gauge\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q in the page", want)
		}
	}
}
