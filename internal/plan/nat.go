package plan

import (
	"github.com/netlab-dev/netlab/internal/state"
)

// nat replaces a namespace's NAT table when its rules differ from the file
// (or it holds anything netlab did not write), and drops it when the file
// has no rules left for that namespace.
func (p *planner) nat() {
	for _, nsName := range p.nsOrder() {
		ns := p.lab.Namespace(nsName)
		o := p.snap.Namespaces[nsName]
		var have *state.NATTable
		if o != nil {
			have = o.NAT
		}
		var want []state.NATRule
		for _, r := range ns.NAT {
			want = append(want, state.NATRule{Source: r.Source, Out: r.Out})
		}
		switch {
		case len(want) == 0 && have != nil:
			p.emit(DelNAT{NS: nsName})
		case len(want) > 0 && (have == nil || have.Foreign || !sameNAT(want, have.Rules)):
			p.emit(SetNAT{NS: nsName, NAT: want})
		}
	}
}

func sameNAT(want []state.NATRule, have []state.NATRuleStats) bool {
	if len(want) != len(have) {
		return false
	}
	for i := range want {
		if want[i] != have[i].NATRule {
			return false
		}
	}
	return true
}
