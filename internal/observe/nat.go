package observe

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/nat"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// observeNAT reads the lab's nftables table in the namespaces that want NAT
// and in those where the journal says netlab installed it.
func observeNAT(lab *topology.Lab, j *state.Journal, snap *state.Snapshot) error {
	names := map[string]bool{}
	for _, ns := range lab.AllNamespaces() {
		if len(ns.NAT) > 0 {
			names[ns.Name] = true
		}
	}
	for _, ns := range j.NAT {
		names[ns] = true
	}
	for _, name := range state.SortedNames(names) {
		o := snap.Namespaces[name]
		if o == nil {
			continue // the namespace is absent; so is its table
		}
		t, exists, err := nat.Observe(name, lab.Name)
		if err != nil {
			return fmt.Errorf("observe nat in %s: %w", name, err)
		}
		if !exists {
			continue
		}
		o.NAT = &state.NATTable{Foreign: len(t.Foreign) > 0}
		for _, r := range t.Rules {
			o.NAT.Rules = append(o.NAT.Rules, state.NATRule{Source: r.Source, Out: r.Out, Packets: r.Packets, Bytes: r.Bytes})
		}
	}
	return nil
}
