package engine

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/ovs"

	"github.com/netlab-dev/netlab/internal/openflow"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// FlowRow is one OpenFlow flow, with whose it is.
type FlowRow struct {
	Table    int    `json:"table"`
	Priority int    `json:"priority"`
	Cookie   string `json:"cookie"`
	Owner    string `json:"owner"` // "lab" (static), "learned" (made by the lab's learn()), or "foreign" (not the lab's)
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	IdleAge  int    `json:"idle_age"`
	Match    string `json:"match"`
	Actions  string `json:"actions"`
}

// MACRow is one learned MAC: where the learning switch sends frames for it.
type MACRow struct {
	MAC       string `json:"mac"`
	Port      int    `json:"port"`      // OpenFlow port; 65535 = the bridge's own (LOCAL) port
	PortName  string `json:"port_name"` // e.g. veth0, or the bridge name for LOCAL
	Namespace string `json:"namespace,omitempty"`
	Interface string `json:"interface,omitempty"`
	IdleAge   int    `json:"idle_age"`
	Packets   uint64 `json:"packets"`
	Table     int    `json:"table"`          // the table the entry is in
	VLAN      int    `json:"vlan,omitempty"` // the VLAN it is scoped to
}

// BridgeFlows is what `netlab flows` shows of one bridge.
type BridgeFlows struct {
	Bridge string    `json:"bridge"`
	Flows  []FlowRow `json:"flows"`
	MACs   []MACRow  `json:"learned_macs"`
}

// Flows reads the flow tables of the lab's OVS bridges (or one of them) and
// its learned MAC table, mapped to namespaces and interfaces when the lab's
// file is at hand.
func (e *Engine) Flows(lab, bridge string) ([]BridgeFlows, error) {
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	oc, err := e.connectOVS(false)
	if err != nil {
		return nil, err
	}
	if oc == nil {
		return nil, fmt.Errorf("lab %s: no Open vSwitch is running", lab)
	}
	defer oc.Close()
	bridges, err := oc.Observe()
	if err != nil {
		return nil, err
	}
	// Port number -> the namespace end of its veth, from the file.
	var file *topology.Lab
	if j.File != "" {
		if l, err := topology.Load(j.File); err == nil && topology.ApplyPrefix(l, j.Prefix) == nil && l.Name == lab {
			file = l
		}
	}
	static := state.FlowCookie(lab)
	var out []BridgeFlows
	for _, name := range state.SortedNames(bridges) {
		b := bridges[name]
		if b.Owner != lab || (bridge != "" && name != bridge) {
			continue
		}
		flows, err := oc.DumpFlows(name)
		if err != nil {
			return nil, err
		}
		// The entries the lab's own learn() actions made (the preset's and
		// the file's flows') carry those actions' table, cookie, priority
		// and timeouts; without the file, the preset's learn cookie.
		specs := []openflow.LearnSpec{{Table: openflow.LearnTable, Cookie: state.LearnCookie(lab), Priority: openflow.DefaultPriority, IdleTimeout: -1}}
		var fb *topology.Bridge
		if file != nil {
			fb = file.Bridge(name)
		}
		if fb != nil {
			specs = openflow.LearnSpecs(openflow.BridgeFlows(fb, state.LearnCookie(lab)))
		}
		learnedBy := func(f ovs.Flow) bool {
			for _, s := range specs {
				if f.Table == s.Table && f.Cookie == s.Cookie && f.Priority == s.Priority &&
					(s.IdleTimeout < 0 || f.IdleTimeout == s.IdleTimeout) && (s.IdleTimeout < 0 || f.HardTimeout == s.HardTimeout) {
					return true
				}
			}
			return false
		}
		bf := BridgeFlows{Bridge: name, Flows: []FlowRow{}, MACs: []MACRow{}}
		for _, f := range flows {
			owner := "foreign"
			switch {
			case f.Cookie == static:
				owner = "lab"
			case learnedBy(f):
				owner = "learned"
			}
			bf.Flows = append(bf.Flows, FlowRow{Table: f.Table, Priority: f.Priority, Cookie: fmt.Sprintf("%#x", f.Cookie),
				Owner: owner, Packets: f.Packets, Bytes: f.Bytes, IdleAge: f.IdleAge, Match: f.Match, Actions: f.Actions})
			if owner != "learned" {
				continue
			}
			m, ok := ovs.MACEntryOf(f)
			if !ok {
				continue
			}
			row := MACRow{MAC: m.MAC, Port: m.Port, IdleAge: m.IdleAge, Packets: m.Packets, Table: f.Table, VLAN: m.VLAN}
			if m.Port == openflow.LearnedLocal {
				row.PortName, row.Namespace = name, topology.Host
			}
			for pn, p := range b.Ports {
				if p.OFPort == m.Port {
					row.PortName = pn
				}
			}
			if fb != nil {
				for _, p := range fb.Ports {
					if p.Name == row.PortName {
						row.Namespace, row.Interface = p.Peer.NS, p.Peer.Name
					}
				}
			}
			bf.MACs = append(bf.MACs, row)
		}
		slices.SortFunc(bf.MACs, func(a, b MACRow) int {
			return cmp.Or(cmp.Compare(a.VLAN, b.VLAN), strings.Compare(a.MAC, b.MAC))
		})
		out = append(out, bf)
	}
	if bridge != "" && len(out) == 0 {
		return nil, fmt.Errorf("lab %s has no Open vSwitch bridge %s", lab, bridge)
	}
	return out, nil
}

// OVSEnv returns the environment that points Open vSwitch's tools at the
// instance the lab's bridges live in (`netlab ovs`): the system's or
// netlab's private one.
func (e *Engine) OVSEnv(lab string) ([]string, error) {
	if !e.store.Exists(lab) {
		return nil, notRunning(lab)
	}
	oc, err := e.connectOVS(false)
	if err != nil {
		return nil, err
	}
	if oc == nil {
		return nil, fmt.Errorf("lab %s: no Open vSwitch is running", lab)
	}
	defer oc.Close()
	return oc.Env(), nil
}
