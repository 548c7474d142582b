package observe

import (
	"github.com/netlab-dev/netlab/internal/openflow"
	"github.com/netlab-dev/netlab/internal/plan"
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
		if known, ok := s.Flows[name]; ok {
			ob.LabFlows, ob.FlowsInSync = known.LabFlows, known.FlowsInSync
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

// KnownFlows says which of the lab's OVS bridges keep, after the plan p,
// the flow state they had in before: those the plan did nothing to that
// touches flows (made or deleted, fail mode, flows). A bridge the plan
// made without flows has none of the lab's (its flows carry the lab's
// cookie only when netlab adds them). The others are read again.
func KnownFlows(p plan.Plan, before *state.Snapshot) map[string]*state.Bridge {
	touched := map[string]bool{}
	made := map[string]bool{}
	for _, a := range p {
		switch st := a.Step.(type) {
		case plan.AddBridge:
			if before.Bridges[st.Bridge] == nil {
				made[st.Bridge] = true
			} else {
				touched[st.Bridge] = true // a datapath change drops flows
			}
		case plan.DelBridge:
			touched[st.Bridge] = true
		case plan.SetFailMode:
			touched[st.Bridge] = true
		case plan.SetFlows:
			touched[st.Bridge] = true
		case plan.DelFlows:
			touched[st.Bridge] = true
		}
	}
	out := map[string]*state.Bridge{}
	for name := range made {
		if !touched[name] {
			out[name] = &state.Bridge{Name: name}
		}
	}
	for name, b := range before.Bridges {
		if b.Type == topology.BridgeOVS && !touched[name] && !made[name] {
			out[name] = &state.Bridge{Name: name, LabFlows: b.LabFlows, FlowsInSync: b.FlowsInSync}
		}
	}
	return out
}
