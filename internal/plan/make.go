package plan

import (
	"fmt"
	"slices"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Input is what Make needs.
type Input struct {
	Lab      *topology.Lab
	Snapshot *state.Snapshot
	// Journal may be nil; it supplies the previous values of host sysctls
	// that the file no longer sets.
	Journal *state.Journal
	// Datapath is used for OVS bridges whose datapath is auto.
	Datapath string
	// Force allows attaching an external interface that carries the host's
	// default route.
	Force bool
	// CPUs is the default number of reflector queues (at most
	// topology.MaxQueues); 0 means 1.
	CPUs int
	// Traces are Mahimahi traces the lab's file does not hold (those
	// `netlab impair` set), by hash.
	Traces map[string]*topology.Trace
}

// Make computes the plan. It fails, naming each object, when the lab would
// have to touch something that is not its own (a clash); nothing is planned
// then.
func Make(in Input) (Plan, error) {
	lab, snap := in.Lab, in.Snapshot
	emuList := wantEmulators(lab, in.Journal, snap.Impair)
	emu := emulatedByEnd(emuList)
	want := desired(lab, in.Datapath, emu)
	p := &planner{lab: lab, snap: snap, j: in.Journal, want: want, datapath: in.Datapath, dirty: map[string]bool{},
		heldBy: heldDevices(lab, in.Journal), emu: emu, emuList: emuList, traces: in.Traces}
	if err := p.tunnelMTUs(); err != nil {
		return nil, err
	}
	if err := p.wantImpair(in.Journal); err != nil {
		return nil, err
	}
	if err := VLANFeatureError(lab, snap.VLAN); err != nil {
		return nil, err
	}
	if err := TimelineFeatureError(lab, UpTimelines(lab, in.Journal), snap.Impair); err != nil {
		return nil, err
	}
	var clashes topology.ErrorList
	clash := func(pos topology.Pos, path, format string, args ...any) {
		clashes = append(clashes, &topology.Error{File: lab.File, Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)})
	}

	// Namespaces: ours, someone else's, or absent.
	for _, ns := range lab.Namespaces {
		if o := snap.Namespaces[ns.Name]; o != nil && o.Owner != lab.Name {
			clash(ns.Pos, "namespaces."+ns.Name, "namespace %s already exists and %s; netlab leaves it alone", ns.Name, ownerText(o.Owner))
		}
	}
	// Links with the names the lab wants, in namespaces that exist. In a
	// namespace of the lab, a veth, TUN/TAP or VXLAN device with no alias at
	// all is the lab's own, interrupted between creation and marking (a
	// crash: the kernel takes no alias in a create request): made again.
	unmarked := map[string]bool{}
	for _, nsName := range state.SortedNames(want) {
		o := snap.Namespaces[nsName]
		if o == nil {
			continue
		}
		for _, name := range state.SortedNames(want[nsName]) {
			w := want[nsName][name]
			l := o.Links[name]
			if l == nil {
				continue
			}
			if w.kind == kindOVSLocal {
				if !snap.OVS.Running && l.Kind == state.KindTuntap {
					// Open vSwitch is not running: this may be the tap of our
					// bridge, left by a daemon that died. Up starts OVS and
					// observes again before it decides.
					continue
				}
				if b := snap.Bridges[name]; b == nil || b.Type != topology.BridgeOVS {
					clash(w.pos, w.path, "interface %s already exists in the host namespace and is not an Open vSwitch bridge of this lab", name)
				}
				continue
			}
			if nsName != topology.Host && o.Owner == lab.Name && l.Alias == "" && (l.Kind == state.KindVeth || l.Kind == state.KindVXLAN || l.Kind == state.KindTuntap) {
				unmarked[key(nsName, name)] = true
				continue
			}
			if owner := l.Owner(); owner != lab.Name {
				clash(w.pos, w.path, "interface %s already exists in namespace %s and %s; netlab leaves it alone", name, nsName, ownerText(owner))
			}
		}
	}
	for _, b := range lab.Bridges {
		if o := snap.Bridges[b.Name]; o != nil && o.Owner != lab.Name && !(b.Type == topology.BridgeLinux && o.Type == topology.BridgeLinux) {
			clash(b.Pos, "bridges."+b.Name, "bridge %s already exists and %s; netlab leaves it alone", b.Name, ownerText(o.Owner))
		}
	}
	// An nftables table with the lab's name that netlab did not make (the
	// journal does not name its namespace) is someone else's.
	for _, ns := range lab.AllNamespaces() {
		o := snap.Namespaces[ns.Name]
		if o == nil || o.NAT == nil || len(ns.NAT) == 0 {
			continue
		}
		if in.Journal == nil || !slices.Contains(in.Journal.NAT, ns.Name) {
			clash(ns.Pos, "namespaces."+ns.Name+".nat", "nftables table inet %s already exists in namespace %s and netlab did not make it; netlab leaves it alone", state.NFTTable(lab.Name), ns.Name)
		}
	}

	// External interfaces: the user's own, so they must exist and be free.
	host := snap.Namespaces[topology.Host]
	for _, b := range lab.Bridges {
		for _, x := range b.External {
			var l *state.Link
			if host != nil {
				l = host.Links[x.Name]
			}
			switch {
			case l == nil:
				clash(x.Pos, x.Path, "external interface %s does not exist on this machine", x.Name)
			case l.Owner() != "":
				clash(x.Pos, x.Path, "%s belongs to lab %s; external: attaches interfaces no lab owns", x.Name, l.Owner())
			case l.Master != "" && l.Master != b.Name:
				clash(x.Pos, x.Path, "external interface %s is already attached to %s", x.Name, l.Master)
			case slices.Contains(snap.HostDefaultRouteDevs, x.Name) && !in.Force:
				clash(x.Pos, x.Path, "external interface %s carries the host's default route: attaching it to the lab would cut the host off its network (--force attaches it anyway)", x.Name)
			}
			for _, ob := range snap.Bridges {
				if ob.Name != b.Name && ob.Ports[x.Name] != nil {
					clash(x.Pos, x.Path, "external interface %s is already a port of Open vSwitch bridge %s", x.Name, ob.Name)
				}
			}
		}
	}
	p.impairClashes(in.Journal, clash)
	p.partitionClashes(clash)
	p.routeClashes(clash)
	p.sysctlClashes(clash)
	if len(clashes) > 0 {
		return nil, clashes
	}

	p.unmarked = unmarked
	// A namespace to create takes about 20 actions; sizing the plan once
	// saves copying large Actions over and over as it grows.
	missing := 1
	for _, ns := range lab.Namespaces {
		if snap.Namespaces[ns.Name] == nil {
			missing++
		}
	}
	p.out = make(Plan, 0, 20*missing)
	if err := p.portTypes(in.Journal); err != nil {
		return nil, err
	}
	if err := checkCPUs(lab, snap.CPUs); err != nil {
		return nil, err
	}
	p.recreations()
	p.detachExternal(in.Journal)
	p.stopProcesses(in.CPUs)
	p.timelineStops()
	p.serviceStops()
	p.deletions()
	p.hostSysctls(in.Journal)
	p.bridges()
	p.namespaces()
	p.portTypesToSystem()
	p.links()
	p.ports()
	p.linuxVLANs()
	p.attachExternal()
	p.flows()
	p.addresses()
	p.loopback()
	p.routes()
	p.nat()
	p.partitions()
	p.impairments()
	p.processes(in.CPUs)
	if err := p.emulators(); err != nil {
		return nil, err
	}
	p.hostsAndViews()
	p.services()
	p.timelines()
	return p.out, nil
}

// ownerText says whose an object that is not this lab's is, in clashes and
// in what down leaves alone.
func ownerText(owner string) string {
	if owner == "" {
		return "is not netlab's (no marker)"
	}
	return "belongs to lab " + owner
}

type planner struct {
	lab      *topology.Lab
	snap     *state.Snapshot
	j        *state.Journal // may be nil
	want     map[string]map[string]*wantLink
	datapath string
	out      Plan
	// recreated names links that this plan deletes and creates again.
	recreated map[string]bool
	// unmarked names veths in the lab's namespaces that lack their alias.
	unmarked map[string]bool
	// dirty names namespaces where this plan removes addresses or links.
	dirty map[string]bool
	// impair is each wanted link's impairment, by namespace and link.
	impair map[string]map[string]topology.Impair
	// portType is the Interface type each OVS veth port gets, by bridge
	// and port name (see portTypes).
	portType map[string]string
	// heldBy names, by "ns/link", the links that pulled cables hold down,
	// with the cables (events.go).
	heldBy map[string][]string
	// emu indexes the links the userspace emulator carries by each end
	// ("ns/link"); emuList has them in the file's order (emulated.go).
	emu     map[string]*Emulated
	emuList []*Emulated
	// traces are the traces netlab impair set, by hash.
	traces map[string]*topology.Trace
	// portBridges is each OVS port's bridge in the file (portBridge).
	portBridges map[string]string
}

func (p *planner) emit(s Step) {
	p.out = append(p.out, Action{Step: s, Lab: p.lab.Name})
}

// emitRemoval emits the removal of an address or a link in ns. The kernel
// drops routes whose gateway loses its connected prefix: the namespace's
// routes are all replaced afterwards.
func (p *planner) emitRemoval(ns string, s Step) {
	p.dirty[ns] = true
	p.emit(s)
}

func key(ns, name string) string { return ns + "/" + name }

// observedLink returns the observed link if it is this lab's.
func (p *planner) observedLink(ns, name string) *state.Link {
	o := p.snap.Namespaces[ns]
	if o == nil {
		return nil
	}
	return o.Links[name]
}

// wantNS says whether the lab wants the namespace.
func (p *planner) wantNS(name string) bool {
	return name == topology.Host || p.lab.Namespace(name) != nil
}

// deletions removes, in dependency order, what the lab owns but no longer
// wants, and the broken halves of veth pairs so they can be made again.
func (p *planner) deletions() {

	// Routes and addresses first: they depend on links.
	for _, nsName := range state.SortedNames(p.snap.Namespaces) {
		o := p.snap.Namespaces[nsName]
		if !p.wantNS(nsName) || (nsName != topology.Host && o.Owner != p.lab.Name) {
			continue
		}
		ns := p.lab.Namespace(nsName)
		for _, r := range o.Routes {
			if !slices.ContainsFunc(ns.EffectiveRoutes(), func(w topology.Route) bool { return sameRoute(toState(w), r) }) &&
				p.linkSurvives(nsName, r.Dev) && p.ownRoute(nsName, r) {
				r := r
				p.emit(DelRoute{NS: nsName, Route: &r})
			}
		}
		for _, name := range state.SortedNames(o.Links) {
			l := o.Links[name]
			w := p.want[nsName][name]
			if w == nil || p.recreated[key(nsName, name)] {
				continue
			}
			for _, a := range l.Addrs {
				if !slices.Contains(w.addrs, a) && !a.Addr().IsLinkLocalUnicast() {
					p.emitRemoval(nsName, DelAddr{NS: nsName, Link: name, Addr: a})
				}
			}
		}
	}

	// OVS ports of this lab that are not wanted on their bridge.
	for _, bName := range state.SortedNames(p.snap.Bridges) {
		b := p.snap.Bridges[bName]
		if b.Type != topology.BridgeOVS {
			continue
		}
		var del []Port
		for _, pName := range state.SortedNames(b.Ports) {
			port := b.Ports[pName]
			if port.Owner != p.lab.Name {
				continue
			}
			if p.externalOf(bName, pName) {
				continue
			}
			if p.internalPort(bName, pName) {
				if port.Type != topology.PortInternal {
					del = append(del, Port{Name: pName}) // a device of another kind: added again
				}
				continue
			}
			w := p.want[topology.Host][pName]
			// A port whose device is made again must be re-added too: OVS
			// does not reopen a new device under an old port's name.
			if w == nil || !w.ovsPort || w.peer.Bridge != "" || p.portBridge(pName) != bName || p.exists(topology.Host, pName) == nil {
				del = append(del, Port{Name: pName})
			}
		}
		if len(del) > 0 {
			p.emit(DelPorts{Bridge: bName, Ports: del})
		}
	}

	// Links of this lab that are not wanted, or are to be made again. Deleting
	// one end of a veth deletes its peer: gone avoids a second delete.
	gone := map[string]bool{}
	for _, nsName := range state.SortedNames(p.snap.Namespaces) {
		o := p.snap.Namespaces[nsName]
		if nsName != topology.Host && (!p.wantNS(nsName) || o.Owner != p.lab.Name) {
			continue // whole namespace goes, or is not ours
		}
		for _, name := range state.SortedNames(o.Links) {
			l := o.Links[name]
			if l.Owner() != p.lab.Name && !p.unmarked[key(nsName, name)] {
				continue
			}
			w := p.want[nsName][name]
			if gone[key(nsName, name)] {
				continue
			}
			if w == nil || p.recreated[key(nsName, name)] || !sameKind(w.kind, l.Kind) {
				p.emitRemoval(nsName, DelLink{NS: nsName, Link: name})
				if w != nil && w.peer.Name != "" && l.Kind == state.KindVeth {
					// Its peer goes with it (a veth made again, or
					// becoming a TAP of an emulated link).
					gone[key(w.peer.NS, w.peer.Name)] = true
				}
			}
		}
	}

	// Namespaces of this lab that the file no longer has.
	for _, nsName := range state.SortedNames(p.snap.Namespaces) {
		o := p.snap.Namespaces[nsName]
		if nsName != topology.Host && o.Owner == p.lab.Name && !p.wantNS(nsName) {
			p.emit(DelNamespace{NS: nsName})
		}
	}

	// OVS bridges of this lab that the file no longer has.
	for _, bName := range state.SortedNames(p.snap.Bridges) {
		b := p.snap.Bridges[bName]
		if b.Type != topology.BridgeOVS || b.Owner != p.lab.Name {
			continue
		}
		if w := p.lab.Bridge(bName); w == nil || w.Type != topology.BridgeOVS {
			p.emit(DelBridge{Bridge: bName})
		}
	}
}

// hostSysctls restores host settings the file dropped and sets the ones it
// has. A host sysctl is shared with the machine and with other labs, so the
// lab holds each it sets (the machine's ledger of host sysctls): a set is
// planned when the value differs or the lab does not hold the key yet, and
// a restore lets go of it (the value goes back when no other lab holds it).
func (p *planner) hostSysctls(j *state.Journal) {
	host := p.snap.Namespaces[topology.Host]
	wantKeys := map[string]bool{}
	for _, s := range p.lab.Host.EffectiveSysctls() {
		wantKeys[s.Key] = true
	}
	if j != nil {
		for _, k := range state.SortedNames(j.HostSysctls) {
			if !wantKeys[k] {
				p.emit(RestoreSysctl{NS: topology.Host, Key: k, Value: j.HostSysctls[k], HeldBy: state.SortedNames(p.snap.SysctlHolders[k])})
			}
		}
	}
	for _, s := range p.lab.Host.EffectiveSysctls() {
		held := false
		if j != nil {
			_, held = j.HostSysctls[s.Key]
		}
		if host == nil || host.Sysctls[s.Key] != s.Value || !held {
			p.emit(SetSysctl{NS: topology.Host, Key: s.Key, Value: s.Value})
		}
	}
}

// sysctlClashes are the lab's host sysctls that another running lab holds at
// another value: one of the two would be left broken.
func (p *planner) sysctlClashes(clash func(topology.Pos, string, string, ...any)) {
	for _, s := range p.lab.Host.EffectiveSysctls() {
		others := p.snap.SysctlHolders[s.Key]
		for _, lab := range state.SortedNames(others) {
			if others[lab] != s.Value {
				clash(s.Pos, "host.sysctls."+s.Key, "host sysctl %s is held at %s by lab %s, which is up; this lab wants %s", s.Key, others[lab], lab, s.Value)
			}
		}
	}
}
