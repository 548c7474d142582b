package engine

import (
	"fmt"
	"net"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// journaled runs fn after recording an intent in the journal, so that a crash
// during fn still leaves the object known to down.
func (s *session) journaled(j *state.Journal, store *state.Store, record func(*state.Journal), fn func() error) error {
	record(j)
	if err := store.Save(j); err != nil {
		return err
	}
	return fn()
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
		return h.RouteDel(*a.Route)
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
		var specs []ovs.PortSpec
		for _, p := range a.Ports {
			specs = append(specs, ovs.PortSpec{Name: p.Name, OFPort: p.OFPort, Lab: s.lab})
		}
		return s.ovs.EnsurePorts(a.Bridge, specs)
	case plan.OpSetOFPort:
		for _, p := range a.Ports {
			if err := s.ovs.SetOFPort(p.Name, p.OFPort); err != nil {
				return err
			}
		}
		return nil
	case plan.OpDelLink:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		if err := h.DeleteLink(a.Link); err != nil {
			return err
		}
		if a.NS == topology.Host {
			j.RemoveHostLink(a.Link)
			return e.store.Save(j)
		}
		return nil
	case plan.OpDelNamespace:
		if _, err := stopProcesses(a.NS, e.log); err != nil {
			return err
		}
		s.forget(a.NS)
		if err := namespace.Delete(a.NS); err != nil {
			return err
		}
		j.RemoveNamespace(a.NS)
		return e.store.Save(j)
	case plan.OpDelBridge:
		if err := s.ovs.DeleteBridge(a.Bridge, s.lab); err != nil {
			return err
		}
		j.RemoveBridge(a.Bridge)
		return e.store.Save(j)
	case plan.OpRestoreSysctl:
		h, err := s.ns(topology.Host)
		if err != nil {
			return err
		}
		if err := h.SetSysctl(a.Key, a.Value); err != nil {
			return err
		}
		delete(j.HostSysctls, a.Key)
		return e.store.Save(j)
	case plan.OpSetSysctl:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		if a.NS == topology.Host {
			prev, err := h.Sysctl(a.Key)
			if err != nil {
				return err
			}
			j.SaveHostSysctl(a.Key, prev)
			if err := e.store.Save(j); err != nil {
				return err
			}
		}
		return h.SetSysctl(a.Key, a.Value)
	case plan.OpAddBridge:
		return s.journaled(j, e.store, func(j *state.Journal) { j.AddBridge(a.Bridge) }, func() error {
			return s.ovs.EnsureBridge(ovs.BridgeSpec{Name: a.Bridge, Lab: s.lab, Datapath: a.Datapath, FailMode: a.FailMode})
		})
	case plan.OpSetFailMode:
		return s.ovs.SetFailMode(a.Bridge, a.FailMode)
	case plan.OpAddLinuxBridge:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return s.journaled(j, e.store, func(j *state.Journal) { j.AddHostLink(a.Link) }, func() error {
			return h.AddBridge(a.Link, a.Alias)
		})
	case plan.OpAddNamespace:
		return s.journaled(j, e.store, func(j *state.Journal) { j.AddNamespace(a.NS) }, func() error {
			if err := namespace.Create(a.NS); err != nil {
				return err
			}
			h, err := s.ns(a.NS)
			if err != nil {
				return err
			}
			return h.MarkNamespace(s.lab)
		})
	case plan.OpAddVeth:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		peer, err := s.ns(a.PeerNS)
		if err != nil {
			return err
		}
		return s.journaled(j, e.store, func(j *state.Journal) {
			if a.NS == topology.Host {
				j.AddHostLink(a.Link)
			}
			if a.PeerNS == topology.Host {
				j.AddHostLink(a.Peer)
			}
		}, func() error {
			return h.AddVeth(a.Link, a.Alias, peer, a.Peer, a.PeerAlias)
		})
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
	case plan.OpSetFlows:
		_, err := s.ovs.EnsureFlows(a.Bridge, a.Cookie, a.Flows)
		return err
	case plan.OpDelFlows:
		return s.ovs.DeleteFlows(a.Bridge, a.Cookie)
	case plan.OpSetTxChecksum:
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.SetTxChecksum(a.Link, a.On)
	}
	return fmt.Errorf("unknown action %q", a.Op)
}
