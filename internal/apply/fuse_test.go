package apply

import (
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
