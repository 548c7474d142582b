package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/netlab-dev/netlab/topology"
)

// The shipped traces are what gen writes (run `go run ./labs/traces/gen
// labs/traces` after changing it), and each is a valid trace with the
// capacity it is named for.
func TestShippedTraces(t *testing.T) {
	for name, ms := range Traces() {
		path := filepath.Join("..", name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (go run ./labs/traces/gen labs/traces)", name, err)
		}
		if string(b) != Text(ms) {
			t.Errorf("%s is not what gen writes (go run ./labs/traces/gen labs/traces)", name)
		}
		tr, err := topology.ParseTrace(name, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d entries over %d ms, %.2f Mb/s on average", name, len(tr.MS), tr.MS[len(tr.MS)-1], tr.Rate(1500)/1e6)
	}
	if r := rate(steady(12, 1000)); r != 12 {
		t.Errorf("steady 12: %v Mb/s", r)
	}
	if r := rate(stepped([]float64{2, 6, 12, 24, 12, 6}, 2000)); r < 10.3 || r > 10.4 {
		t.Errorf("stepped: %v Mb/s, want the mean of its steps, 10.33", r)
	}
}

func rate(ms []uint32) float64 {
	return float64(len(ms)) * 1500 * 8 / (float64(ms[len(ms)-1]) / 1000) / 1e6
}
