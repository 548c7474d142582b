package observe

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/openflow"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// flowSets has Open vSwitch read the static flows of the file's OVS bridges
// (ovs-ofctl parse-flows, no switch needed): their normal form, compared by
// observeFlows, and whether they fit a bundle, which the snapshot keeps in
// FlowsOneByOne so the plan prints how up will install them.
func flowSets(lab *topology.Lab, snap *state.Snapshot) (map[string]ovs.FlowSet, error) {
	cookie := state.FlowCookie(lab.Name)
	sets := map[string]ovs.FlowSet{}
	for _, b := range lab.Bridges {
		if b.Type != topology.BridgeOVS || !b.HasFlows() {
			continue
		}
		set, err := ovs.NormalizeFlows(cookie, openflow.BridgeFlows(b, state.LearnCookie(lab.Name)))
		if err != nil {
			return nil, fmt.Errorf("bridge %s: %w", b.Name, err)
		}
		sets[b.Name] = set
		if !set.Bundle {
			if snap.FlowsOneByOne == nil {
				snap.FlowsOneByOne = map[string]bool{}
			}
			snap.FlowsOneByOne[b.Name] = true
		}
	}
	return sets, nil
}

// observeFlows fills FlowsInSync of the lab's OVS bridges whose file entry
// has flows (sets, from flowSets), and LabFlows of the others. The
// comparison is by meaning: the file's flows in Open vSwitch's normal form
// against the switch's dump, compared by Open vSwitch (diff-flows), so a
// flow the switch stores in other words (vlan_tci=0 as vlan_tci=0x0000,
// actions=1 as output:1) is in sync.
func (s *Reader) observeFlows(lab *topology.Lab, snap *state.Snapshot, sets map[string]ovs.FlowSet) error {
	cookie := state.FlowCookie(lab.Name)
	for name, ob := range snap.Bridges {
		if ob.Type != topology.BridgeOVS || ob.Owner != lab.Name {
			continue
		}
		// The plan needs the comparison where the file has flows, and the
		// count of the lab's flows only where it has none (to remove them):
		// one ovs-ofctl round per bridge, not two.
		if set, ok := sets[name]; ok {
			differ, err := s.OVS.FlowSetDiffers(name, cookie, set)
			if err != nil {
				return err
			}
			ob.FlowsInSync = !differ
			continue
		}
		flows, err := s.OVS.DumpFlows(name)
		if err != nil {
			return err
		}
		for _, f := range flows {
			if f.Cookie == cookie {
				ob.LabFlows++
			}
		}
	}
	return nil
}
