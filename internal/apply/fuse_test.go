package apply

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

func act(s plan.Step) plan.Action { return plan.Action{Step: s} }

// unitsText prints each unit of the plan as its actions joined by " + ".
func unitsText(p plan.Plan) []string {
	s := New(Config{Lab: "l"}, nil)
	var out []string
	for _, u := range s.units(p) {
		var parts []string
		for _, a := range u {
			parts = append(parts, a.String())
		}
		out = append(out, strings.Join(parts, " + "))
	}
	return out
}

// Which later actions a namespace's and a veth's creation carry out: the
// namespace's sysctls right after it; a new veth end's settings, offloads
// and addresses past the kinds a plan puts between them, up to anything
// else or an action on the end itself of another kind. Every action is
// carried out once, in some unit.
func TestFuse(t *testing.T) {
	br, none := "br", ""
	addr := netip.MustParsePrefix("10.0.0.1/24")
	veth := act(plan.AddVeth{NS: "a", Link: "eth0", PeerNS: topology.Host, Peer: "pa"})
	cases := []struct {
		name string
		p    plan.Plan
		want []string
	}{
		{"namespace with its sysctls", plan.Plan{
			act(plan.AddNamespace{NS: "a"}),
			act(plan.SetSysctl{NS: "a", Key: "k1", Value: "0"}),
			act(plan.SetSysctl{NS: "a", Key: "k2", Value: "0"}),
			act(plan.AddNamespace{NS: "b"}),
			act(plan.SetSysctl{NS: "b", Key: "k1", Value: "0"}),
			act(plan.SetSysctl{NS: "a", Key: "k3", Value: "0"}), // not right after a
		}, []string{"0+1+2", "3+4", "5"}},
		{"veth with its ends' state", plan.Plan{
			veth,
			act(plan.AddVeth{NS: "b", Link: "eth0", PeerNS: topology.Host, Peer: "pb"}),
			act(plan.SetTxChecksum{NS: topology.Host, Link: "pa"}),
			act(plan.SetLink{NS: topology.Host, Link: "br", Up: true}),
			act(plan.SetLink{NS: topology.Host, Link: "pa", Master: &br, Up: true}),
			act(plan.SetLink{NS: "a", Link: "eth0", MTU: 9000, Up: true}),
			act(plan.AddPorts{Bridge: "ovs", Ports: []plan.Port{{Name: "pb"}}}),
			act(plan.AddAddr{NS: "a", Link: "eth0", Addr: addr}),
			act(plan.AddAddr{NS: "b", Link: "eth0", Addr: addr}),
		}, []string{"0+2+4+5+7", "1", "3", "6", "8"}}, // b stops at its end's port
		{"stops at another kind", plan.Plan{
			veth,
			act(plan.ReplaceRoute{NS: "a", Route: &state.Route{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.254")}}),
			act(plan.AddAddr{NS: "a", Link: "eth0", Addr: addr}),
		}, []string{"0", "1", "2"}},
		{"stops at its end's port", plan.Plan{
			veth,
			act(plan.SetLink{NS: topology.Host, Link: "pa", Up: true}),
			act(plan.AddPorts{Bridge: "ovs", Ports: []plan.Port{{Name: "pa"}}}),
			act(plan.SetLink{NS: topology.Host, Link: "pa", Master: &none}),
		}, []string{"0+1", "2", "3"}},
		{"stops at its end's GRO", plan.Plan{
			veth,
			act(plan.SetGRO{NS: "a", Link: "eth0"}),
			act(plan.AddAddr{NS: "a", Link: "eth0", Addr: addr}),
		}, []string{"0", "1", "2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := unitsText(tc.p)
			var want []string
			for _, w := range tc.want {
				var parts []string
				for _, i := range strings.Split(w, "+") {
					parts = append(parts, tc.p[atoi(i)].String())
				}
				want = append(want, strings.Join(parts, " + "))
			}
			// Units come in the order of their first action.
			slices.SortStableFunc(want, func(a, b string) int {
				return slices.IndexFunc(tc.p, func(x plan.Action) bool { return strings.HasPrefix(a, x.String()) }) -
					slices.IndexFunc(tc.p, func(x plan.Action) bool { return strings.HasPrefix(b, x.String()) })
			})
			if !slices.Equal(got, want) {
				t.Errorf("units\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// scanVethEnds is fuseVethEnds as it was before its index: a scan from
// the veth to the first action of another kind. The index must take the
// same actions.
func scanVethEnds(p plan.Plan, i int, taken []bool) []int {
	v := p[i].Step.(plan.AddVeth)
	end := func(ns, link string) bool { return ns == v.NS && link == v.Link || ns == v.PeerNS && link == v.Peer }
	hostEnd := func(name string) bool { return end(topology.Host, name) }
	var out []int
	for j := i + 1; j < len(p); j++ {
		if !throughVeths[p[j].Op()] {
			break
		}
		if taken[j] {
			continue
		}
		switch st := p[j].Step.(type) {
		case plan.SetLink:
			if end(st.NS, st.Link) {
				out = append(out, j)
			}
		case plan.SetTxChecksum:
			if end(st.NS, st.Link) {
				out = append(out, j)
			}
		case plan.AddAddr:
			if end(st.NS, st.Link) {
				out = append(out, j)
			}
		case plan.AddVeth:
			if end(st.NS, st.Link) || end(st.PeerNS, st.Peer) {
				return out
			}
		case plan.SetGRO:
			if end(st.NS, st.Link) {
				return out
			}
		case plan.AddPorts:
			if slices.ContainsFunc(st.Ports, func(p plan.Port) bool { return hostEnd(p.Name) }) {
				return out
			}
		case plan.SetOFPort:
			if slices.ContainsFunc(st.Ports, func(p plan.Port) bool { return hostEnd(p.Name) }) {
				return out
			}
		case plan.SetPortType:
			if slices.ContainsFunc(st.Ports, func(p plan.Port) bool { return hostEnd(p.Name) }) {
				return out
			}
		}
	}
	return out
}

// Random plans over a few names, so that ends repeat, actions name them in
// every order and kinds outside throughVeths cut the runs: the indexed
// fuser takes what the scan takes, unit by unit.
func TestFuseVethEndsIndexedAsScanned(t *testing.T) {
	nss := []string{topology.Host, "a", "b"}
	links := []string{"eth0", "eth1", "pa"}
	addr := netip.MustParsePrefix("10.0.0.1/24")
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	for round := range 2000 {
		var p plan.Plan
		for range 1 + rng.IntN(30) {
			ns, link := pick(nss), pick(links)
			var st plan.Step
			switch rng.IntN(10) {
			case 0, 1, 2:
				st = plan.AddVeth{NS: ns, Link: link, PeerNS: pick(nss), Peer: pick(links)}
			case 3:
				st = plan.SetLink{NS: ns, Link: link, Up: true}
			case 4:
				st = plan.SetTxChecksum{NS: ns, Link: link}
			case 5:
				st = plan.AddAddr{NS: ns, Link: link, Addr: addr}
			case 6:
				st = plan.SetGRO{NS: ns, Link: link}
			case 7:
				st = plan.AddPorts{Bridge: "ovs", Ports: []plan.Port{{Name: link}, {Name: pick(links)}}}
			case 8:
				st = plan.SetOFPort{Bridge: "ovs", Ports: []plan.Port{{Name: link}}}
			default:
				st = plan.AddNamespace{NS: ns} // not in throughVeths
			}
			p = append(p, act(st))
		}
		indexed := fuseVethEnds(p)
		taken := make([]bool, len(p))
		for i, a := range p {
			if taken[i] {
				continue
			}
			if _, ok := a.Step.(plan.AddVeth); !ok {
				continue
			}
			want := scanVethEnds(p, i, taken)
			got := indexed(i, taken)
			if !slices.Equal(got, want) {
				t.Fatalf("round %d, plan %v, veth %d: took %v, the scan takes %v", round, p, i, got, want)
			}
			for _, j := range got {
				taken[j] = true
			}
		}
	}
}
