package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/topology"
)

// star is an OVS bridge with n namespaces attached.
func star(n int) string {
	var b strings.Builder
	b.WriteString("name: star\nbridges:\n  sw: {}\nnamespaces:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  h%03d:\n    interfaces:\n      eth0: {peer: sw/p%03d, addresses: [10.1.%d.%d/16]}\n", i, i, i/250, i%250+1)
	}
	return b.String()
}

// The planner's cost per namespace must stay flat as labs grow: plan a star
// of N namespaces on an empty machine and on a converged one.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{10, 100, 250} {
		lab, err := topology.Parse("star.yaml", []byte(star(n)))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("empty/n=%d", n), func(b *testing.B) {
			m := newMachine()
			for b.Loop() {
				if _, err := Make(Input{Lab: lab, Snapshot: m.snap, Datapath: "netdev"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/namespace")
		})
		b.Run(fmt.Sprintf("converged/n=%d", n), func(b *testing.B) {
			t := &testing.T{}
			m := newMachine()
			p, _ := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: "netdev"})
			for _, a := range p {
				m.apply(t, a)
			}
			for b.Loop() {
				if p, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: "netdev"}); err != nil || len(p) != 0 {
					b.Fatalf("%v %d", err, len(p))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/namespace")
		})
	}
}
