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

// starRouted is star with what a real lab file has per namespace: IPv4 and
// IPv6 addresses and default routes through the bridge's own address.
func starRouted(n int) string {
	var b strings.Builder
	b.WriteString("name: star\nbridges:\n  sw: {addresses: [10.0.0.1/16, fd00::1/64]}\nnamespaces:\n")
	for i := range n {
		fmt.Fprintf(&b, "  h%04d:\n    interfaces:\n      eth0: {peer: sw/p%04d, addresses: [10.0.%d.%d/16, fd00::%x/64]}\n", i, i, 1+i/250, i%250+1, i+2)
		b.WriteString("    routes:\n      - {to: default, via: 10.0.0.1}\n      - {to: default, via: fd00::1}\n")
	}
	return b.String()
}

// What `netlab plan FILE` does apart from observing: parse and validate the
// file (topology.Parse), then plan it on an empty machine, for labs of up to
// 1000 namespaces; ns/namespace must stay flat as N grows.
func BenchmarkParseValidatePlan(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		src := []byte(starRouted(n))
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				lab, err := topology.Parse("star.yaml", src)
				if err != nil {
					b.Fatal(err)
				}
				m := newMachine()
				p, err := Make(Input{Lab: lab, Snapshot: m.snap, Datapath: "netdev"})
				if err != nil || len(p) < n {
					b.Fatalf("plan: %v (%d actions)", err, len(p))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/namespace")
		})
	}
}
