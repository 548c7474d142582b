package observe

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/openflow"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// observeFlows fills FlowsInSync of the lab's OVS bridges whose file entry
// has flows, and LabFlows of the others. The comparison is by meaning (see
// ovs.StaticFlowsDiffer), so a flow Open vSwitch stores in other words
// (vlan_tci=0 as vlan_tci=0x0000, actions=1 as output:1) is in sync. For a
// bridge whose flows up will install (a new bridge, or flows that differ)
// it records in FlowsOneByOne whether Open vSwitch says they fit a bundle,
// so the plan prints how up will install them. With no OVS running (c nil),
// only that. known holds the flow state of bridges whose flows are known
// without asking Open vSwitch (KnownFlows): those are not read again.
func observeFlows(c *ovs.Client, lab *topology.Lab, snap *state.Snapshot, known map[string]*state.Bridge) error {
	cookie := state.FlowCookie(lab.Name)
	oneByOne := func(name string, set ovs.FlowSet) {
		if set.Bundle {
			return
		}
		if snap.FlowsOneByOne == nil {
			snap.FlowsOneByOne = map[string]bool{}
		}
		snap.FlowsOneByOne[name] = true
	}
	for _, b := range lab.Bridges {
		if b.Type != topology.BridgeOVS || !b.HasFlows() {
			continue
		}
		flows := openflow.BridgeFlows(b, state.LearnCookie(lab.Name))
		ob := snap.Bridges[b.Name]
		if c == nil || ob == nil || ob.Type != topology.BridgeOVS || ob.Owner != lab.Name {
			set, err := ovs.NormalizeFlows(cookie, flows)
			if err != nil {
				return fmt.Errorf("bridge %s: %w", b.Name, err)
			}
			oneByOne(b.Name, set)
			continue
		}
		if k, ok := known[b.Name]; ok && k.FlowsInSync {
			ob.FlowsInSync = true
			continue
		}
		differ, set, err := c.StaticFlowsDiffer(b.Name, cookie, flows)
		if err != nil {
			return err
		}
		ob.FlowsInSync = !differ
		if set != nil {
			oneByOne(b.Name, *set)
		}
	}
	if c == nil {
		return nil
	}
	// The lab's bridges whose file entry has no flows: count the lab's
	// flows there, which up removes.
	for name, ob := range snap.Bridges {
		if ob.Type != topology.BridgeOVS || ob.Owner != lab.Name {
			continue
		}
		if k, ok := known[name]; ok {
			ob.LabFlows = k.LabFlows
			continue
		}
		if b := lab.Bridge(name); b != nil && b.HasFlows() {
			continue
		}
		flows, err := c.DumpFlows(name)
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
