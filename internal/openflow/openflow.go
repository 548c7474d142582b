// Package openflow renders the OpenFlow flow sets netlab installs: the
// presets (the learning switch) and the lab's full static set for a bridge.
// It is pure, so the planner can compute and print the flows without
// touching Open vSwitch.
package openflow

import (
	"github.com/netlab-dev/netlab/topology"
)

// BridgeFlows returns the static flows netlab installs on a bridge, without
// cookies (the driver adds the lab's): the preset's flows, then the file's.
func BridgeFlows(b *topology.Bridge, learnCookie uint64) []string {
	var out []string
	if b.OpenFlow == topology.PresetLearningSwitch {
		var ports []int
		for _, p := range b.Ports {
			ports = append(ports, p.OFPort)
		}
		out = append(out, LearningSwitch(LearningSwitchConfig{Ports: ports, IdleTimeout: b.LearnIdleTimeout, LearnCookie: learnCookie})...)
	}
	for _, f := range b.Flows {
		out = append(out, f.Text)
	}
	return out
}

// LearningSwitchConfig describes a bridge for the learning-switch preset.
type LearningSwitchConfig struct {
	Ports       []int // OpenFlow port numbers of the bridge's ports
	IdleTimeout int   // seconds a learned entry lives unused
	LearnCookie uint64
}

// LearningSwitch renders the preset. Placeholder until the renderer lands.
func LearningSwitch(cfg LearningSwitchConfig) []string { return nil }
