package apply

import (
	"fmt"
	"net"
	"slices"

	"github.com/netlab-dev/netlab/internal/kernel"
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
	}).fusing(fuseSysctls, addNamespaceWith).staged(addNamespaces),
	plan.OpDelNamespace: on(delNamespace).staged(delNamespaces),
	plan.OpAddVeth: on(addVeth).journaling(func(j *state.Journal, a plan.Action) {
		v := a.Step.(plan.AddVeth)
		if v.NS == topology.Host {
			j.AddHostLink(v.Link)
		}
		if v.PeerNS == topology.Host {
			j.AddHostLink(v.Peer)
		}
	}).fusing(fuseVethEnds, addVethWith),
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
	return addNamespaceWith(s, plan.Action{Step: a}, nil)
}

// fuseSysctls takes the sysctls of the namespace that the plan sets right
// after making it: they are written by the thread that made it, before it
// leaves (one switch into the namespace for all).
func fuseSysctls(p plan.Plan) fuser {
	return func(i int, taken []bool) []int {
		ns := p[i].Step.(plan.AddNamespace).NS
		var out []int
		for j := i + 1; j < len(p) && !taken[j]; j++ {
			sc, ok := p[j].Step.(plan.SetSysctl)
			if !ok || sc.NS != ns {
				break
			}
			out = append(out, j)
		}
		return out
	}
}

// addNamespaces makes the namespaces of a stretch of units, each marked
// with its sysctls, parallel threads going from one to the next.
func addNamespaces(s *Session, us []unit, done func(u unit, err error)) {
	specs := make([]kernel.NamespaceSpec, len(us))
	for i, u := range us {
		specs[i].Name = u[0].Step.(plan.AddNamespace).NS
		for _, m := range u[1:] {
			sc := m.Step.(plan.SetSysctl)
			specs[i].Sysctls = append(specs[i].Sysctls, kernel.Sysctl{Key: sc.Key, Value: sc.Value})
		}
	}
	s.handles.CreateNamespaces(specs, s.lab, s.parallel, func(i int, err error) { done(us[i], err) })
}

// addNamespaceWith makes the namespace, marked, with the sysctls of more.
func addNamespaceWith(s *Session, a plan.Action, more []plan.Action) error {
	var list []kernel.Sysctl
	for _, m := range more {
		sc := m.Step.(plan.SetSysctl)
		list = append(list, kernel.Sysctl{Key: sc.Key, Value: sc.Value})
	}
	_, err := s.handles.CreateNamespace(a.Step.(plan.AddNamespace).NS, s.lab, list)
	return err
}

// delNamespaces deletes a stretch of namespaces one after the other, on
// one thread: each unmount waits for an expedited RCU grace period
// (namespace_unlock), and unmounts from several threads queue behind each
// other's there (measured, 1,000 bare namespaces: 100 ms from two threads,
// 30 ms from one).
func delNamespaces(s *Session, us []unit, done func(u unit, err error)) {
	for _, u := range us {
		done(u, delNamespace(s, u[0].Step.(plan.DelNamespace)))
	}
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
	s.forgetNamespace(d.NS)
	return nil
}

func addVeth(s *Session, a plan.AddVeth) error {
	return addVethWith(s, plan.Action{Step: a}, nil)
}

// throughVeths are the kinds of action a plan puts between a veth's
// creation and its ends' settings and addresses (link settings, Open
// vSwitch ports and flows, addresses): fuseVethEnds looks past them, and
// stops at any other kind, or at one of them naming an end.
var throughVeths = map[plan.Op]bool{
	plan.OpAddVeth: true, plan.OpSetLink: true, plan.OpSetTxChecksum: true, plan.OpSetGRO: true, plan.OpAddAddr: true,
	plan.OpAddPorts: true, plan.OpSetOFPort: true, plan.OpSetPortType: true, plan.OpSetFlows: true, plan.OpSetFailMode: true,
}

// fuseVethEnds takes the later settings of the new veth's two ends (MAC,
// MTU, master, up; tx checksum; addresses): a new link starts in a state
// the kernel knows (down, no master, no address, offloads on), so what the
// plan sets right after can be given at creation, or in the one request
// that marks the end, instead of a request (and a lookup) each.
//
// A veth's look goes from it to the first action of a kind not in
// throughVeths, and only the actions naming one of its ends count: the
// fuser indexes them by end once, so the look costs what the veth's own
// actions do. Scanning the plan from each veth instead made the grouping
// quadratic: 4.5 s of CPU, before any action ran, for a star of 10,000
// namespaces (a plan of 50,000 actions), 17 % of its up.
func fuseVethEnds(p plan.Plan) fuser {
	stop := make([]int, len(p)) // stop[i]: the first j > i not in throughVeths, or len(p)
	next := len(p)
	for j := len(p) - 1; j >= 0; j-- {
		stop[j] = next
		if !throughVeths[p[j].Op()] {
			next = j
		}
	}
	naming := map[linkEnd][]int{} // the actions naming an end, in plan order
	name := func(j int, ends ...linkEnd) {
		for _, e := range ends {
			// Once per action, even one naming an end twice.
			if l := naming[e]; len(l) == 0 || l[len(l)-1] != j {
				naming[e] = append(l, j)
			}
		}
	}
	for j, a := range p {
		switch st := a.Step.(type) {
		case plan.SetLink:
			name(j, linkEnd{st.NS, st.Link})
		case plan.SetTxChecksum:
			name(j, linkEnd{st.NS, st.Link})
		case plan.AddAddr:
			name(j, linkEnd{st.NS, st.Link})
		case plan.SetGRO:
			name(j, linkEnd{st.NS, st.Link})
		case plan.AddVeth:
			name(j, linkEnd{st.NS, st.Link}, linkEnd{st.PeerNS, st.Peer})
		case plan.AddPorts:
			name(j, hostEnds(st.Ports)...)
		case plan.SetOFPort:
			name(j, hostEnds(st.Ports)...)
		case plan.SetPortType:
			name(j, hostEnds(st.Ports)...)
		}
	}
	return func(i int, taken []bool) []int {
		v := p[i].Step.(plan.AddVeth)
		a, b := linkEnd{v.NS, v.Link}, linkEnd{v.PeerNS, v.Peer}
		// The actions after i and before its stop that name an end, in
		// plan order, each once.
		var later []int
		for _, e := range []linkEnd{a, b} {
			js := naming[e]
			first, _ := slices.BinarySearch(js, i+1)
			for _, j := range js[first:] {
				if j >= stop[i] {
					break
				}
				later = append(later, j)
			}
		}
		slices.Sort(later)
		later = slices.Compact(later)
		var out []int
		for _, j := range later {
			if taken[j] {
				continue
			}
			switch p[j].Step.(type) {
			case plan.SetLink, plan.SetTxChecksum, plan.AddAddr:
				out = append(out, j)
			default: // the end's own creation, GRO or port: what follows waits for it
				return out
			}
		}
		return out
	}
}

// linkEnd is a link by its namespace and name.
type linkEnd struct{ ns, link string }

// hostEnds are the ports' links, in the host's namespace.
func hostEnds(ports []plan.Port) []linkEnd {
	out := make([]linkEnd, len(ports))
	for i, p := range ports {
		out[i] = linkEnd{topology.Host, p.Name}
	}
	return out
}

// addVethWith makes the veth with what more sets of its ends.
func addVethWith(s *Session, a plan.Action, more []plan.Action) error {
	v := a.Step.(plan.AddVeth)
	h, err := s.ns(v.NS)
	if err != nil {
		return err
	}
	peer, err := s.ns(v.PeerNS)
	if err != nil {
		return err
	}
	spec := kernel.Veth{Name: v.Link, Alias: v.Alias, Peer: peer, PeerName: v.Peer, PeerAlias: v.PeerAlias}
	spec.End.NoIPv6, spec.PeerEnd.NoIPv6 = v.NoIPv6, v.PeerNoIPv6
	// The lab's host links in its group: down deletes them in one request.
	if v.NS == topology.Host {
		spec.End.Group = kernel.LabGroup(s.lab)
	}
	if v.PeerNS == topology.Host {
		spec.PeerEnd.Group = kernel.LabGroup(s.lab)
	}
	endOf := func(ns, link string) *kernel.VethEnd {
		if ns == v.NS && link == v.Link {
			return &spec.End
		}
		return &spec.PeerEnd
	}
	for _, m := range more {
		switch st := m.Step.(type) {
		case plan.SetLink:
			e := endOf(st.NS, st.Link)
			ls, err := linkState(st)
			if err != nil {
				return err
			}
			e.MAC, e.MTU, e.Up = ls.MAC, ls.MTU, ls.Up
			if ls.Master != nil {
				e.Master = ls.Master
			}
		case plan.SetTxChecksum:
			on := st.On
			endOf(st.NS, st.Link).TxChecksum = &on
		case plan.AddAddr:
			e := endOf(st.NS, st.Link)
			e.Addrs = append(e.Addrs, st.Addr)
		}
	}
	return h.MakeVeth(spec)
}

func addLinuxBridge(s *Session, a plan.AddLinuxBridge) error {
	h, err := s.ns(a.NS)
	if err != nil {
		return err
	}
	// On the host, in the lab's group, as its other host links (see
	// addVethWith): given at creation, so that a bridge a kill leaves
	// unmarked is in it too.
	var group uint32
	if a.NS == topology.Host {
		group = kernel.LabGroup(s.lab)
	}
	return h.AddBridge(a.Link, a.Alias, group)
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
	ls, err := linkState(a)
	if err != nil {
		return err
	}
	if err := h.SetLink(a.Link, ls); err != nil {
		return fmt.Errorf("ns %s: set %s: %w", a.NS, a.Link, err)
	}
	return nil
}

// linkState is what a SetLink changes, for the kernel driver.
func linkState(a plan.SetLink) (kernel.LinkState, error) {
	ls := kernel.LinkState{MTU: a.MTU, Master: a.Master, Up: a.Up}
	if a.MAC != "" {
		mac, err := net.ParseMAC(a.MAC)
		if err != nil {
			return ls, err
		}
		ls.MAC = mac
	}
	return ls, nil
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
	if ns == topology.Host {
		s.forgetHostLinks(names)
	}
	return nil
}

func delRoute(s *Session, d plan.DelRoute) error {
	h, err := s.ns(d.NS)
	if err != nil {
		return err
	}
	if err := h.RouteDel(*d.Route); err != nil {
		return err
	}
	if d.NS == topology.Host {
		s.forget(func(j *state.Journal) {
			j.HostRoutes = slices.DeleteFunc(j.HostRoutes, func(r state.Route) bool { return plan.SameRoute(r, *d.Route) })
		})
	}
	return nil
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
	s.forget(func(j *state.Journal) { delete(j.HostSysctls, a.Key) })
	return nil
}
