package observe

import (
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// observePartitions reads the lab's partition tables in the namespaces
// that the journal's partitions want them in and in those where the
// journal says netlab made them (a healed partition's are to go). A pulled
// cable needs nothing more than the links' state, which every observe
// reads.
func observePartitions(lab *topology.Lab, j *state.Journal, snap *state.Snapshot) error {
	names := map[string]bool{}
	for ns := range plan.PartitionDrops(lab, j.Partitions) {
		names[ns] = true
	}
	for _, ns := range j.PartitionNS {
		names[ns] = true
	}
	for _, name := range state.SortedNames(names) {
		o := snap.Namespaces[name]
		if o == nil || name == topology.Host {
			continue // absent: so are its tables; the host never has any
		}
		t, err := nft.ObservePartition(name, lab.Name)
		if err != nil {
			return err
		}
		o.Partition = t
	}
	return nil
}
