package observe

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/nft"
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
		t, err := nft.ObserveNAT(name, lab.Name)
		if err != nil {
			return fmt.Errorf("observe nat in %s: %w", name, err)
		}
		o.NAT = t
	}
	return nil
}
