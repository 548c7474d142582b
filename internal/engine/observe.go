package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/openflow"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// sysctlKeys lists the keys of a namespace's effective sysctls.
func sysctlKeys(ns *topology.Namespace) []string {
	var keys []string
	for _, s := range ns.EffectiveSysctls() {
		keys = append(keys, s.Key)
	}
	return keys
}

// hostNames are the host-namespace interface names the lab wants: bridges,
// bridge ports and host veth ends.
func hostNames(lab *topology.Lab) map[string]bool {
	names := map[string]bool{}
	for _, b := range lab.Bridges {
		names[b.Name] = true
	}
	for _, l := range lab.Links {
		for _, e := range []topology.LinkEnd{l.A, l.B} {
			if e.NS == topology.Host {
				names[e.Name] = true
			}
		}
	}
	return names
}

// observeNS reads one namespace; a namespace that vanished meanwhile is nil.
func (s *session) observeNS(name string, keys []string) (*state.Namespace, error) {
	h, err := s.ns(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("observe namespace %s: %w", name, err)
	}
	o, err := h.Observe(keys)
	if err != nil {
		return nil, fmt.Errorf("observe namespace %s: %w", name, err)
	}
	return o, nil
}

// observe builds the lab's snapshot: its namespaces (wanted, journaled or
// marked), the host objects it owns or whose names it wants, and the bridges.
func (s *session) observe(lab *topology.Lab, j *state.Journal) (*state.Snapshot, error) {
	snap := &state.Snapshot{Lab: lab.Name, Namespaces: map[string]*state.Namespace{}, Bridges: map[string]*state.Bridge{}}
	onMachine, err := namespace.List()
	if err != nil {
		return nil, err
	}
	for _, name := range onMachine {
		var keys []string
		wanted := lab.Namespace(name) != nil && name != topology.Host
		if wanted {
			keys = sysctlKeys(lab.Namespace(name))
		}
		o, err := s.observeNS(name, keys)
		if err != nil {
			return nil, err
		}
		if o == nil {
			continue
		}
		if wanted || o.Owner == lab.Name || slices.Contains(j.Namespaces, name) {
			snap.Namespaces[name] = o
		} else {
			s.forget(name)
		}
	}

	keys := sysctlKeys(lab.Host)
	for k := range j.HostSysctls {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	host, err := s.observeNS(topology.Host, keys)
	if err != nil {
		return nil, err
	}
	wantHost := hostNames(lab)
	if s.ovs != nil {
		snap.OVS = s.ovs.Info()
		bridges, err := s.ovs.Observe()
		if err != nil {
			return nil, err
		}
		for name, b := range bridges {
			if b.Owner == lab.Name || wantHost[name] || hasOwnedPort(b, lab.Name) {
				snap.Bridges[name] = b
			}
		}
		if err := s.observeFlows(lab, snap); err != nil {
			return nil, err
		}
	}
	for name, l := range host.Links {
		if b := snap.Bridges[name]; b != nil && b.Owner == lab.Name {
			continue // the own interface of the lab's OVS bridge
		}
		if l.Owner() != lab.Name && !wantHost[name] {
			delete(host.Links, name)
			continue
		}
		if l.Kind == state.KindBridge {
			snap.Bridges[name] = &state.Bridge{Name: name, Type: topology.BridgeLinux, Owner: l.Owner()}
		}
	}
	snap.Namespaces[topology.Host] = host
	return snap, nil
}

func hasOwnedPort(b *state.Bridge, lab string) bool {
	for _, p := range b.Ports {
		if p.Owner == lab {
			return true
		}
	}
	return false
}

// observeFlows fills LabFlows and FlowsInSync of the lab's OVS bridges. The
// comparison is Open vSwitch's own (diff-flows normalises both sides), so a
// flow written differently but meaning the same is in sync.
func (s *session) observeFlows(lab *topology.Lab, snap *state.Snapshot) error {
	cookie := state.FlowCookie(lab.Name)
	for name, ob := range snap.Bridges {
		if ob.Type != topology.BridgeOVS || ob.Owner != lab.Name {
			continue
		}
		flows, err := s.ovs.DumpFlows(name)
		if err != nil {
			return err
		}
		for _, f := range flows {
			if f.Cookie == cookie {
				ob.LabFlows++
			}
		}
		if b := lab.Bridge(name); b != nil && b.HasFlows() {
			differ, err := s.ovs.StaticFlowsDiffer(name, cookie, openflow.BridgeFlows(b, state.LearnCookie(lab.Name)))
			if err != nil {
				return err
			}
			ob.FlowsInSync = !differ
		}
	}
	return nil
}
