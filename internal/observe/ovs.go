package observe

import (
	"github.com/netlab-dev/netlab/internal/openflow"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// observeFlows fills FlowsInSync of the lab's OVS bridges whose file entry
// has flows, and LabFlows of the others. The
// comparison is Open vSwitch's own (diff-flows normalises both sides), so a
// flow written differently but meaning the same is in sync.
func (s *Reader) observeFlows(lab *topology.Lab, snap *state.Snapshot) error {
	cookie := state.FlowCookie(lab.Name)
	for name, ob := range snap.Bridges {
		if ob.Type != topology.BridgeOVS || ob.Owner != lab.Name {
			continue
		}
		// The plan needs the comparison where the file has flows, and the
		// count of the lab's flows only where it has none (to remove them):
		// one ovs-ofctl round per bridge, not two.
		if b := lab.Bridge(name); b != nil && b.HasFlows() {
			differ, err := s.OVS.StaticFlowsDiffer(name, cookie, openflow.BridgeFlows(b, state.LearnCookie(lab.Name)))
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
