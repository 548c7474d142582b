package engine

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// recordIntents writes, in one journal save before anything is applied,
// every object the plan will create: a crash at any later point leaves a
// journal that names all that may exist (down tolerates what does not).
// Saving once instead of before each object keeps up linear in the lab's
// size.
func recordIntents(p plan.Plan, j *state.Journal) {
	for _, a := range p {
		switch a.Op {
		case plan.OpAddNamespace:
			j.AddNamespace(a.NS)
		case plan.OpAddBridge:
			j.AddBridge(a.Bridge)
		case plan.OpAddLinuxBridge:
			j.AddHostLink(a.Link)
		case plan.OpAddVeth:
			if a.NS == topology.Host {
				j.AddHostLink(a.Link)
			}
			if a.PeerNS == topology.Host {
				j.AddHostLink(a.Peer)
			}
		case plan.OpSetNAT:
			j.AddNAT(a.NS)
		case plan.OpSetQdisc, plan.OpSetLoss:
			recordImpairIntent(a, j)
		case plan.OpAddVXLAN:
			if a.NS == topology.Host {
				j.AddHostLink(a.Link)
			}
		case plan.OpReplaceRoute:
			if a.NS == topology.Host {
				j.AddHostRoute(*a.Route)
			}
		}
	}
}

// journal changes the journal and saves it, serialised: actions run
// concurrently.
func (s *session) journal(change func(j *state.Journal)) error {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	change(s.j)
	if s.downing {
		return nil
	}
	return s.e.store.Save(s.j)
}

// apply maps one action to its driver call. Creations are recorded in the
// journal before they happen; removals after.
func (s *session) apply(e *Engine, a plan.Action, j *state.Journal) error {
	switch a.Op {
	case plan.OpDelRoute:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		if err := h.RouteDel(*a.Route); err != nil {
			return err
		}
		if a.NS == topology.Host {
			return s.journal(func(j *state.Journal) {
				j.HostRoutes = slices.DeleteFunc(j.HostRoutes, func(r state.Route) bool { return plan.SameRoute(r, *a.Route) })
			})
		}
		return nil
	case plan.OpReplaceRoute:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.RouteReplace(*a.Route)
	case plan.OpDelAddr:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.AddrDel(a.Link, a.Addr)
	case plan.OpAddAddr:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.AddrReplace(a.Link, a.Addr)
	case plan.OpDelPorts:
		var names []string
		for _, p := range a.Ports {
			names = append(names, p.Name)
		}
		return s.ovs.DeletePorts(a.Bridge, names)
	case plan.OpAddPorts:
		return s.afxdpFallback(a, s.ovs.EnsurePorts)
	case plan.OpSetPortType:
		return s.afxdpFallback(a, s.ovs.SetPortTypes)
	case plan.OpSetOFPort:
		for _, p := range a.Ports {
			if err := s.ovs.SetOFPort(p.Name, p.OFPort); err != nil {
				return err
			}
		}
		return nil
	case plan.OpDelLink, plan.OpDelLinks:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		names := a.Links
		if a.Op == plan.OpDelLink {
			names = []string{a.Link}
			err = h.DeleteLink(a.Link)
		} else {
			err = h.DeleteLinks(a.Links) // one kernel operation for all
		}
		if err != nil {
			return err
		}
		if a.NS == topology.Host {
			return s.journal(func(j *state.Journal) {
				for _, name := range names {
					j.RemoveHostLink(name)
				}
			})
		}
		return nil
	case plan.OpStopNSProcesses:
		// One walk of /proc for all the namespaces about to go.
		pids, err := namespace.PidsIn(a.Namespaces)
		if err != nil {
			return err
		}
		var errs []error
		for _, ns := range a.Namespaces {
			if len(pids[ns]) > 0 {
				if _, err := stopPids(ns, pids[ns], e.log); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			s.jmu.Lock()
			s.nsStopped[ns] = true
			s.jmu.Unlock()
		}
		return errors.Join(errs...)
	case plan.OpDelNamespace:
		s.jmu.Lock()
		stopped := s.nsStopped[a.NS]
		s.jmu.Unlock()
		if !stopped {
			if _, err := stopProcesses(a.NS, e.log); err != nil {
				return err
			}
		}
		s.forget(a.NS)
		if err := namespace.Delete(a.NS); err != nil {
			return err
		}
		return s.journal(func(j *state.Journal) { j.RemoveNamespace(a.NS) })
	case plan.OpDelBridge:
		// Committed now and applied by ovs-vswitchd in its own time. Down
		// goes on with the next actions and applyPlan waits at its end, so
		// namespaces and links go while ovs-vswitchd closes the ports; up
		// waits at once, as a later action may make a device of that name.
		wait, err := s.ovs.StartDeleteBridge(a.Bridge, s.lab)
		if err != nil {
			return err
		}
		if !s.downing && wait != nil {
			if err := wait(); err != nil {
				return err
			}
			wait = nil
		}
		return s.journal(func(j *state.Journal) {
			j.RemoveBridge(a.Bridge)
			if wait != nil {
				s.pending = append(s.pending, wait)
			}
		})
	case plan.OpRestoreSysctl:
		h, err := s.ns(topology.Host)
		if err != nil {
			return err
		}
		err = s.e.store.Sysctls(func(l *state.SysctlLedger) error {
			value, last := l.Release(a.Key, s.lab, a.Value)
			if !last {
				return nil // another lab holds it: the value stays
			}
			now, err := h.Sysctl(a.Key)
			if err != nil || now == value {
				return err
			}
			return h.SetSysctl(a.Key, value)
		})
		if err != nil {
			return err
		}
		return s.journal(func(j *state.Journal) { delete(j.HostSysctls, a.Key) })
	case plan.OpSetSysctl:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		if a.NS != topology.Host {
			return h.SetSysctl(a.Key, a.Value)
		}
		// The hold, the journal's record of the value to restore, and the
		// write happen under the ledger's lock, so no other lab's down can
		// restore the value between them.
		return s.e.store.Sysctls(func(l *state.SysctlLedger) error {
			now, err := h.Sysctl(a.Key)
			if err != nil {
				return err
			}
			original := l.Hold(a.Key, s.lab, a.Value, now)
			if err := s.journal(func(j *state.Journal) { j.SaveHostSysctl(a.Key, original) }); err != nil {
				return err
			}
			if now == a.Value {
				return nil
			}
			return h.SetSysctl(a.Key, a.Value)
		})
	case plan.OpAddBridge:
		return s.ovs.EnsureBridge(ovs.BridgeSpec{Name: a.Bridge, Lab: s.lab, Datapath: a.Datapath, FailMode: a.FailMode})
	case plan.OpSetFailMode:
		return s.ovs.SetFailMode(a.Bridge, a.FailMode)
	case plan.OpAddLinuxBridge:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.AddBridge(a.Link, a.Alias)
	case plan.OpAddNamespace:
		if err := namespace.Create(a.NS); err != nil {
			return err
		}
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.MarkNamespace(s.lab)
	case plan.OpAddVeth:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		peer, err := s.ns(a.PeerNS)
		if err != nil {
			return err
		}
		return h.AddVeth(a.Link, a.Alias, peer, a.Peer, a.PeerAlias)
	case plan.OpSetLink:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		if a.MAC != "" {
			mac, err := net.ParseMAC(a.MAC)
			if err != nil {
				return err
			}
			if err := h.SetMAC(a.Link, mac); err != nil {
				return err
			}
		}
		if a.MTU != 0 {
			if err := h.SetMTU(a.Link, a.MTU); err != nil {
				return err
			}
		}
		if a.Master != nil {
			if err := h.SetMaster(a.Link, *a.Master); err != nil {
				return err
			}
		}
		if a.Up {
			return h.SetUp(a.Link, true)
		}
		return nil
	case plan.OpAttachExternal:
		return s.attachExternal(e, a, j)
	case plan.OpDetachExternal:
		var derr error
		if err := s.journal(func(j *state.Journal) { derr = s.detachExternal(a.Link, j) }); err != nil {
			return err
		}
		return derr
	case plan.OpAddTuntap:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		t := a.Tuntap
		return h.AddTuntap(a.Link, a.Alias, kernel.Tuntap{TAP: t.TAP, MultiQueue: t.MultiQueue, VnetHdr: t.VnetHdr, Owner: t.Owner, Group: t.Group})
	case plan.OpAddVXLAN:
		host, err := s.ns(topology.Host)
		if err != nil {
			return err
		}
		target, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		v := a.VXLAN
		return host.AddVXLAN(a.Link, a.Alias, kernel.VXLAN{VNI: v.VNI, Local: v.Local, Dev: v.Dev, Port: v.Port}, target)
	case plan.OpSetGRO:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.SetGRO(a.Link, a.On)
	case plan.OpSetRemotes:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.SetRemotes(a.Link, a.Remotes)
	case plan.OpStartProcess:
		return e.startProcess(s.lab, a.NS, a.Link, a.Spec)
	case plan.OpStopProcess:
		return e.stopProcess(s.lab, a.NS, a.Link, e.log)
	case plan.OpSetFlows:
		_, err := s.ovs.EnsureFlows(a.Bridge, a.Cookie, a.Flows)
		return err
	case plan.OpDelFlows:
		return s.ovs.DeleteFlows(a.Bridge, a.Cookie)
	case plan.OpSetNAT:
		var rules []nft.NATRule
		for _, r := range a.NAT {
			rules = append(rules, nft.NATRule{Source: r.Source, Out: r.Out})
		}
		_, err := nft.EnsureNAT(a.NS, s.lab, rules)
		return err
	case plan.OpSetQdisc, plan.OpDelQdisc, plan.OpSetLoss, plan.OpDelLoss:
		return s.applyImpair(a)
	case plan.OpDelNAT:
		if err := nft.DeleteNAT(a.NS, s.lab); err != nil {
			return err
		}
		return s.journal(func(j *state.Journal) { j.RemoveNAT(a.NS) })
	case plan.OpSetTxChecksum:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.SetTxChecksum(a.Link, a.On)
	}
	return fmt.Errorf("unknown action %q", a.Op)
}

// afxdpFallback runs do (EnsurePorts or SetPortTypes) for the action's ports.
// If it fails and port-type auto chose AF_XDP for some of them, it runs do
// again with those as system ports; when that works, the failure is recorded
// in the journal (AFXDPFailed, which keeps auto on system for them) and
// reported, and up goes on.
func (s *session) afxdpFallback(a plan.Action, do func(bridge string, ports []ovs.PortSpec) error) error {
	specs := make([]ovs.PortSpec, 0, len(a.Ports))
	var auto []string
	for _, p := range a.Ports {
		specs = append(specs, ovs.PortSpec{Name: p.Name, OFPort: p.OFPort, Lab: s.lab, Type: p.Type})
		if p.Auto && topology.IsAFXDP(p.Type) {
			auto = append(auto, p.Name)
		}
	}
	err := do(a.Bridge, specs)
	if err == nil || len(auto) == 0 {
		return err
	}
	// The ports the error names ("add port P to BR: ..."), if it names
	// any; otherwise the whole transaction failed and all fall back.
	var named []string
	for _, name := range auto {
		if strings.Contains(err.Error(), "port "+name+" ") {
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
	if err2 := do(a.Bridge, specs); err2 != nil {
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
			strings.Join(auto, ", "), a.Bridge, err))
	})
}

// attachExternal saves the user's interface's state in the journal (once:
// the first state is the one down restores), then attaches it and brings it
// up.
func (s *session) attachExternal(e *Engine, a plan.Action, j *state.Journal) error {
	h, err := s.ns(topology.Host)
	if err != nil {
		return err
	}
	if _, saved := j.External[a.Link]; !saved {
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
func (s *session) detachExternal(name string, j *state.Journal) error {
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
