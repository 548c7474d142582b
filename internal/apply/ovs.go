package apply

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// Open vSwitch's kinds, through the ovs driver, and the user's interfaces
// attached to a lab bridge (OVS or Linux).
var ovsHandlers = map[plan.Op]handler{
	plan.OpAddBridge: on(func(s *Session, a plan.AddBridge) error {
		return s.ovs.EnsureBridge(ovs.BridgeSpec{Name: a.Bridge, Lab: s.lab, Datapath: a.Datapath, FailMode: a.FailMode})
	}).journaling(func(j *state.Journal, a plan.Action) {
		j.AddBridge(a.Step.(plan.AddBridge).Bridge)
	}),
	plan.OpSetFailMode: on(func(s *Session, a plan.SetFailMode) error {
		return s.ovs.SetFailMode(a.Bridge, a.FailMode)
	}),
	plan.OpDelBridge: on(delBridge),
	plan.OpAddPorts: on(func(s *Session, a plan.AddPorts) error {
		if settlesLater(a.Ports) {
			return s.startPorts(a)
		}
		return s.afxdpFallback(a.Bridge, a.Ports, s.ovs.EnsurePorts)
	}),
	plan.OpSetPortType: on(func(s *Session, a plan.SetPortType) error {
		return s.afxdpFallback(a.Bridge, a.Ports, s.ovs.SetPortTypes)
	}),
	plan.OpDelPorts: on(func(s *Session, a plan.DelPorts) error {
		names := make([]string, len(a.Ports))
		for i, p := range a.Ports {
			names[i] = p.Name
		}
		return s.ovs.DeletePorts(a.Bridge, names)
	}),
	plan.OpSetOFPort: on(func(s *Session, a plan.SetOFPort) error {
		for _, p := range a.Ports {
			if err := s.ovs.SetOFPort(p.Name, p.OFPort); err != nil {
				return err
			}
		}
		return nil
	}),
	plan.OpSetFlows: on(func(s *Session, a plan.SetFlows) error {
		_, err := s.ovs.EnsureFlows(a.Bridge, a.Cookie, a.Flows)
		return err
	}),
	plan.OpDelFlows: on(func(s *Session, a plan.DelFlows) error {
		return s.ovs.DeleteFlows(a.Bridge, a.Cookie)
	}),
	plan.OpSetPortVLAN: on(func(s *Session, a plan.SetPortVLAN) error {
		specs := make([]ovs.PortSpec, len(a.Ports))
		for i, p := range a.Ports {
			specs[i] = ovs.PortSpec{Name: p.Name, Lab: s.lab, VLAN: p.VLAN}
		}
		return s.ovs.SetPortVLANs(a.Bridge, specs)
	}),
	plan.OpSetControllers: on(func(s *Session, a plan.SetControllers) error {
		return s.ovs.SetControllers(a.Bridge, a.Targets)
	}),
	plan.OpAttachExternal: on(attachExternal),
	plan.OpDetachExternal: on(func(s *Session, a plan.DetachExternal) error {
		var derr error
		if err := s.journal(func(j *state.Journal) { derr = s.detachExternal(a.Link, j) }); err != nil {
			return err
		}
		return derr
	}),
}

// delBridge commits a bridge's deletion. ovs-vswitchd applies it in its own
// time: down goes on with the next actions and Run waits at its end, so
// namespaces and links go while ovs-vswitchd closes the ports; up waits at
// once, as a later action may make a device of that name.
func delBridge(s *Session, a plan.DelBridge) error {
	wait, err := s.ovs.StartDeleteBridge(a.Bridge, s.lab)
	if err != nil {
		return err
	}
	if !s.removing && wait != nil {
		if err := wait(); err != nil {
			return err
		}
		wait = nil
	}
	s.forget(func(j *state.Journal) {
		j.RemoveBridge(a.Bridge)
		if wait != nil {
			s.pending = append(s.pending, wait)
		}
	})
	return nil
}

// settlesLater says whether the ports can be added without waiting for
// ovs-vswitchd to open them: system ports only. An internal port's device
// is made by ovs-vswitchd (an address may go on it next), and a port that
// may fall back from AF_XDP needs ovs-vswitchd's answer to go on.
func settlesLater(ports []plan.Port) bool {
	for _, p := range ports {
		if p.Type != "" && p.Type != ovs.PortTypeSystem {
			return false
		}
	}
	return true
}

// startPorts adds the ports and leaves the wait for ovs-vswitchd to open
// them, with their check, to Settle: the next actions that do not need
// them (beforePorts) go on meanwhile. An error found then is the action's.
func (s *Session) startPorts(a plan.AddPorts) error {
	finish, err := s.ovs.StartEnsurePorts(a.Bridge, portSpecs(s.lab, a.Ports))
	if err != nil || finish == nil {
		return err
	}
	act := plan.Action{Lab: s.lab, Step: a}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settling = append(s.settling, func(observe bool) error {
		if err := finish(observe); err != nil {
			return fmt.Errorf("%s: %w", act, err)
		}
		return nil
	})
	return nil
}

// portSpecs are the lab's ports as Open vSwitch is given them.
func portSpecs(lab string, ports []plan.Port) []ovs.PortSpec {
	specs := make([]ovs.PortSpec, 0, len(ports))
	for _, p := range ports {
		specs = append(specs, ovs.PortSpec{Name: p.Name, OFPort: p.OFPort, Lab: lab, Type: p.Type, VLAN: p.VLAN})
	}
	return specs
}

// afxdpFallback runs do (EnsurePorts or SetPortTypes) for the ports. If it
// fails and port-type auto chose AF_XDP for some of them, it runs do again
// with those as system ports; when that works, the failure is recorded in
// the journal (AFXDPFailed, which keeps auto on system for them) and
// reported, and up goes on.
func (s *Session) afxdpFallback(bridge string, ports []plan.Port, do func(bridge string, ports []ovs.PortSpec) error) error {
	specs := portSpecs(s.lab, ports)
	var auto []string
	for _, p := range ports {
		if p.Auto && topology.IsAFXDP(p.Type) {
			auto = append(auto, p.Name)
		}
	}
	err := do(bridge, specs)
	if err == nil || len(auto) == 0 {
		return err
	}
	// The ports Open vSwitch could not open, if it says which; otherwise
	// the whole transaction failed and all fall back.
	var named []string
	for _, name := range ovs.FailedPorts(err) {
		if slices.Contains(auto, name) {
			named = append(named, name)
		}
	}
	if len(named) > 0 {
		auto = named
	}
	for i := range specs {
		if slices.Contains(auto, specs[i].Name) {
			specs[i].Type = ovs.PortTypeSystem
		}
	}
	if err2 := do(bridge, specs); err2 != nil {
		return errors.Join(err, err2)
	}
	return s.journal(func(j *state.Journal) {
		if j.AFXDPFailed == nil {
			j.AFXDPFailed = map[string]string{}
		}
		for _, name := range auto {
			j.AFXDPFailed[name] = err.Error()
		}
		s.warnings = append(s.warnings, fmt.Sprintf("Open vSwitch could not open %s of bridge %s as AF_XDP ports, so they are system (AF_PACKET) ports: %v",
			strings.Join(auto, ", "), bridge, err))
	})
}

// attachExternal saves the user's interface's state in the journal (once:
// the first state is the one down restores), then attaches it and brings it
// up.
func attachExternal(s *Session, a plan.AttachExternal) error {
	h, err := s.ns(topology.Host)
	if err != nil {
		return err
	}
	s.mu.Lock()
	_, saved := s.j.External[a.Link]
	s.mu.Unlock()
	if !saved {
		o, err := h.Observe(nil)
		if err != nil {
			return err
		}
		l := o.Links[a.Link]
		if l == nil {
			return fmt.Errorf("external interface %s does not exist", a.Link)
		}
		prev := state.ExternalState{Bridge: a.Bridge, Master: l.Master, Up: l.Up}
		for _, p := range l.Addrs {
			prev.Addrs = append(prev.Addrs, p.String())
		}
		if err := s.journal(func(j *state.Journal) {
			if j.External == nil {
				j.External = map[string]state.ExternalState{}
			}
			j.External[a.Link] = prev
		}); err != nil {
			return err
		}
	}
	if a.BridgeType == topology.BridgeLinux {
		if err := h.SetMaster(a.Link, a.Bridge); err != nil {
			return err
		}
		return h.SetUp(a.Link, true)
	}
	if err := h.SetUp(a.Link, true); err != nil {
		return err
	}
	return s.ovs.EnsurePorts(a.Bridge, []ovs.PortSpec{{Name: a.Link, OFPort: a.Ports[0].OFPort, Lab: s.lab}})
}

// detachExternal gives a user's interface back as the journal saved it:
// detached (or back on its former master), up or down as before, with its
// addresses. It never deletes the interface.
func (s *Session) detachExternal(name string, j *state.Journal) error {
	prev, ok := j.External[name]
	if !ok {
		return nil
	}
	h, err := s.ns(topology.Host)
	if err != nil {
		return err
	}
	o, err := h.Observe(nil)
	if err != nil {
		return err
	}
	l := o.Links[name]
	if l == nil {
		delete(j.External, name) // gone: nothing to give back
		return nil
	}
	if s.ovs != nil {
		if err := s.ovs.DeletePorts(prev.Bridge, []string{name}); err != nil {
			return err
		}
	}
	if l.Master != prev.Master {
		if err := h.SetMaster(name, prev.Master); err != nil {
			return err
		}
	}
	for _, a := range prev.Addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		if !slices.Contains(l.Addrs, p) {
			if err := h.AddrReplace(name, p); err != nil {
				return err
			}
		}
	}
	if err := h.SetUp(name, prev.Up); err != nil {
		return err
	}
	delete(j.External, name)
	return nil
}
