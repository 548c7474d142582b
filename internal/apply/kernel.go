package apply

import (
	"net"
	"slices"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// The kernel's kinds: namespaces, links, addresses, routes, sysctls,
// TUN/TAP and VXLAN devices, through the netlink driver.
var kernelHandlers = map[plan.Op]handler{
	plan.OpAddNamespace: on(addNamespace).journaling(func(j *state.Journal, a plan.Action) {
		j.AddNamespace(a.Step.(plan.AddNamespace).NS)
	}),
	plan.OpDelNamespace: on(delNamespace),
	plan.OpAddVeth: on(addVeth).journaling(func(j *state.Journal, a plan.Action) {
		v := a.Step.(plan.AddVeth)
		if v.NS == topology.Host {
			j.AddHostLink(v.Link)
		}
		if v.PeerNS == topology.Host {
			j.AddHostLink(v.Peer)
		}
	}),
	plan.OpAddLinuxBridge: on(addLinuxBridge).journaling(func(j *state.Journal, a plan.Action) {
		j.AddHostLink(a.Step.(plan.AddLinuxBridge).Link)
	}),
	plan.OpAddTuntap: on(addTuntap).journaling(func(j *state.Journal, a plan.Action) {
		// A TAP of an emulated link may be a bridge port or a host end.
		if v := a.Step.(plan.AddTuntap); v.NS == topology.Host {
			j.AddHostLink(v.Link)
		}
	}),
	plan.OpAddVXLAN: on(addVXLAN).journaling(func(j *state.Journal, a plan.Action) {
		if v := a.Step.(plan.AddVXLAN); v.NS == topology.Host {
			j.AddHostLink(v.Link)
		}
	}),
	plan.OpSetRemotes:    on(setRemotes),
	plan.OpSetLink:       on(setLink),
	plan.OpSetTxChecksum: on(setTxChecksum),
	plan.OpSetGRO:        on(setGRO),
	plan.OpDelLink: on(func(s *Session, d plan.DelLink) error {
		return s.deleteLinks(d.NS, []string{d.Link})
	}),
	plan.OpDelLinks: on(func(s *Session, d plan.DelLinks) error {
		return s.deleteLinks(d.NS, d.Links)
	}),
	plan.OpAddAddr: on(func(s *Session, a plan.AddAddr) error {
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.AddrReplace(a.Link, a.Addr)
	}),
	plan.OpDelAddr: on(func(s *Session, a plan.DelAddr) error {
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.AddrDel(a.Link, a.Addr)
	}),
	plan.OpReplaceRoute: on(func(s *Session, r plan.ReplaceRoute) error {
		h, err := s.ns(r.NS)
		if err != nil {
			return err
		}
		return h.RouteReplace(*r.Route)
	}).journaling(func(j *state.Journal, a plan.Action) {
		if r := a.Step.(plan.ReplaceRoute); r.NS == topology.Host {
			j.AddHostRoute(*r.Route)
		}
	}),
	plan.OpDelRoute:      on(delRoute),
	plan.OpSetSysctl:     on(setSysctl),
	plan.OpRestoreSysctl: on(restoreSysctl),
}

func addNamespace(s *Session, a plan.AddNamespace) error {
	if err := namespace.Create(a.NS); err != nil {
		return err
	}
	h, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	return h.MarkNamespace(s.lab)
}

// delNamespace deletes a namespace, ending the processes in it first unless
// an earlier action did: one keeps a namespace, and its devices, alive.
func delNamespace(s *Session, d plan.DelNamespace) error {
	s.mu.Lock()
	stopped := s.nsStopped[d.NS]
	s.mu.Unlock()
	if !stopped {
		if err := s.procs.StopInNamespaces([]string{d.NS}); err != nil {
			return err
		}
	}
	s.handles.Forget(d.NS)
	if err := namespace.Delete(d.NS); err != nil {
		return err
	}
	return s.journal(func(j *state.Journal) { j.RemoveNamespace(d.NS) })
}

func addVeth(s *Session, a plan.AddVeth) error {
	h, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	peer, err := s.ns(a.PeerNS)
	if err != nil {
		return err
	}
	return h.AddVeth(a.Link, a.Alias, peer, a.Peer, a.PeerAlias)
}

func addLinuxBridge(s *Session, a plan.AddLinuxBridge) error {
	h, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	return h.AddBridge(a.Link, a.Alias)
}

func addTuntap(s *Session, a plan.AddTuntap) error {
	h, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	return h.AddTuntap(a.Link, a.Alias, *a.Tuntap)
}

// addVXLAN makes the device from the host, where its UDP socket stays, and
// moves it into its namespace.
func addVXLAN(s *Session, a plan.AddVXLAN) error {
	host, err := s.ns(topology.Host)
	if err != nil {
		return err
	}
	target, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	return host.AddVXLAN(a.Link, a.Alias, *a.VXLAN, target)
}

func setRemotes(s *Session, a plan.SetRemotes) error {
	h, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	return h.SetRemotes(a.Link, a.Remotes)
}

func setLink(s *Session, a plan.SetLink) error {
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
}

func setTxChecksum(s *Session, a plan.SetTxChecksum) error {
	h, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	return h.SetTxChecksum(a.Link, a.On)
}

func setGRO(s *Session, a plan.SetGRO) error {
	h, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	return h.SetGRO(a.Link, a.On)
}

// deleteLinks deletes links of a namespace: one alone, or several in one
// kernel operation.
func (s *Session) deleteLinks(ns string, names []string) error {
	h, err := s.ns(ns)
	if err != nil {
		return err
	}
	if len(names) == 1 {
		err = h.DeleteLink(names[0])
	} else {
		err = h.DeleteLinks(names)
	}
	if err != nil {
		return err
	}
	if ns != topology.Host {
		return nil
	}
	return s.journal(func(j *state.Journal) {
		for _, name := range names {
			j.RemoveHostLink(name)
		}
	})
}

func delRoute(s *Session, d plan.DelRoute) error {
	h, err := s.ns(d.NS)
	if err != nil {
		return err
	}
	if err := h.RouteDel(*d.Route); err != nil {
		return err
	}
	if d.NS != topology.Host {
		return nil
	}
	return s.journal(func(j *state.Journal) {
		j.HostRoutes = slices.DeleteFunc(j.HostRoutes, func(r state.Route) bool { return plan.SameRoute(r, *d.Route) })
	})
}

// setSysctl writes a sysctl. A host sysctl is shared with the machine and
// other labs: the hold, the journal's record of the value to restore and
// the write happen under the ledger's lock, so no other lab's down can
// restore the value between them.
func setSysctl(s *Session, a plan.SetSysctl) error {
	h, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	if a.NS != topology.Host {
		return h.SetSysctl(a.Key, a.Value)
	}
	return s.store.Sysctls(func(l *state.SysctlLedger) error {
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
}

// restoreSysctl lets go of a host sysctl; the last lab to hold it writes
// back the value from before the first.
func restoreSysctl(s *Session, a plan.RestoreSysctl) error {
	h, err := s.ns(topology.Host)
	if err != nil {
		return err
	}
	err = s.store.Sysctls(func(l *state.SysctlLedger) error {
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
}
