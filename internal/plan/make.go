package plan

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/netlab-dev/netlab/internal/openflow"
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
}

// ReflectorVnetHdr says whether reflector TUNs use IFF_VNET_HDR with TUN
// offloads: the kernel then hands the reflector 64 KiB GSO super-packets,
// which it swaps and writes back with the same virtio header.
const ReflectorVnetHdr = true

// ProcessSpec is the canonical argument list of the process netlab runs on a
// TUN (after `netlab reflect --ns NS --dev DEV`); the plan compares it with
// the running process's to decide on a restart.
func ProcessSpec(t *topology.TUN, cpus int) string {
	if t.UDP != nil {
		ns := t.UDP.Namespace
		if ns == "" {
			ns = topology.Host
		}
		return fmt.Sprintf("--udp-listen %s --udp-send %s --udp-ns %s", t.UDP.Listen, t.UDP.Send, ns) + cpusArg(t.CPUs)
	}
	q := t.Queues
	if q == 0 {
		n := cpus
		if len(t.CPUs) > 0 {
			n = len(t.CPUs) // one reader per CPU the reflector may use
		}
		q = min(max(n, 1), topology.MaxQueues)
	}
	s := fmt.Sprintf("--queues %d", q)
	if ReflectorVnetHdr {
		s += " --vnet-hdr"
	}
	if t.Log {
		s += " --log"
	}
	return s + cpusArg(t.CPUs)
}

// cpusArg is the --cpus argument for a TUN's cpus, "" for none, in the
// kernel's list format the reflector parses back (topology.ParseCPUList).
func cpusArg(cpus []int) string {
	if len(cpus) == 0 {
		return ""
	}
	return " --cpus " + topology.FormatCPUList(cpus)
}

// checkCPUs fails, naming the field, for a TUN whose cpus name a CPU that
// is not online here (sched_setaffinity would refuse the set, or silently
// use fewer CPUs than the file says). Unchecked when the snapshot does not
// know the machine's CPUs.
func checkCPUs(lab *topology.Lab, online []int) error {
	if online == nil {
		return nil
	}
	var errs topology.ErrorList
	for _, ns := range lab.Namespaces {
		for _, t := range ns.TUNs {
			for _, c := range t.CPUs {
				if !slices.Contains(online, c) {
					errs = append(errs, &topology.Error{File: lab.File, Pos: t.CPUsPos, Path: t.Path + ".cpus",
						Msg: fmt.Sprintf("CPU %d is not online on this machine (online: %s)", c, topology.FormatCPUList(online))})
				}
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// wantLink is one interface the lab wants, with everything the plan checks.
type wantLink struct {
	ns, name, alias string
	kind            string // veth, bridge (Linux), ovs-local (the OVS bridge's own port)
	peer            topology.End
	mac             net.HardwareAddr
	mtu             int
	addrs           []netip.Prefix
	master          string // Linux bridge this end is enslaved to
	ovsPort         bool   // attached to an OVS bridge
	txOff           bool   // tx checksum offload must be off (OVS userspace datapath)
	groOff          bool   // generic receive offload must be off (a VXLAN port of OVS)
	pos             topology.Pos
	path            string
	tun             *topology.TUN
	tap             *topology.TAP
	vx              *topology.Tunnel
}

const (
	kindOVSLocal = "ovs-local"
	kindTUN      = "tun"
	kindTAP      = "tap"
)

// sameKind compares a wanted kind with netlink's: TUN and TAP devices are
// both "tuntap" there.
func sameKind(want, got string) bool {
	if want == kindTUN || want == kindTAP {
		return got == state.KindTuntap
	}
	return want == got
}

// desired computes the interfaces of every namespace (Host included).
func desired(lab *topology.Lab, datapath string) map[string]map[string]*wantLink {
	want := map[string]map[string]*wantLink{topology.Host: {}}
	for _, ns := range lab.Namespaces {
		want[ns.Name] = map[string]*wantLink{}
	}
	add := func(w *wantLink) {
		if want[w.ns] == nil {
			want[w.ns] = map[string]*wantLink{}
		}
		want[w.ns][w.name] = w
	}
	for _, b := range lab.Bridges {
		w := &wantLink{ns: topology.Host, name: b.Name, mtu: b.MTU, addrs: b.Addresses, pos: b.Pos, path: "bridges." + b.Name}
		if b.Type == topology.BridgeLinux {
			w.kind = state.KindBridge
			w.alias = state.LinkAlias(lab.Name, topology.Host, b.Name)
		} else {
			w.kind = kindOVSLocal
		}
		add(w)
	}
	for _, ns := range lab.Namespaces {
		for _, t := range ns.TUNs {
			add(&wantLink{ns: ns.Name, name: t.Name, alias: state.LinkAlias(lab.Name, ns.Name, t.Name), kind: kindTUN,
				mtu: t.MTU, addrs: t.Addresses, pos: t.Pos, path: t.Path, tun: t})
		}
		for _, t := range ns.TAPs {
			add(&wantLink{ns: ns.Name, name: t.Name, alias: state.LinkAlias(lab.Name, ns.Name, t.Name), kind: kindTAP,
				mac: t.MAC, mtu: t.MTU, addrs: t.Addresses, pos: t.Pos, path: t.Path, tap: t})
		}
	}
	addTunnels(want, lab, add)
	for _, l := range lab.Links {
		ovs := false
		for _, e := range []topology.LinkEnd{l.A, l.B} {
			if b := lab.Bridge(e.Bridge); b != nil && b.Type == topology.BridgeOVS {
				ovs = true
			}
		}
		for _, pair := range [][2]topology.LinkEnd{{l.A, l.B}, {l.B, l.A}} {
			e, peer := pair[0], pair[1]
			w := &wantLink{
				ns: e.NS, name: e.Name, alias: state.LinkAlias(lab.Name, e.NS, e.Name),
				kind: state.KindVeth, peer: peer.End, mac: e.MAC, mtu: e.MTU, addrs: e.Addresses,
				txOff: ovs, pos: e.Pos, path: e.String(),
			}
			if b := lab.Bridge(e.Bridge); b != nil {
				if b.Type == topology.BridgeLinux {
					w.master = b.Name
				} else {
					w.ovsPort = true
				}
			}
			add(w)
		}
	}
	return want
}

// Make computes the plan. It fails, naming each object, when the lab would
// have to touch something that is not its own (a clash); nothing is planned
// then.
func Make(in Input) (Plan, error) {
	lab, snap := in.Lab, in.Snapshot
	want := desired(lab, in.Datapath)
	p := &planner{lab: lab, snap: snap, want: want, datapath: in.Datapath, dirty: map[string]bool{}}
	if err := p.tunnelMTUs(); err != nil {
		return nil, err
	}
	if err := p.wantImpair(in.Journal); err != nil {
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
			clash(ns.Pos, "namespaces."+ns.Name+".nat", "nftables table inet %s already exists in namespace %s and netlab did not make it; netlab leaves it alone", NATTable(lab.Name), ns.Name)
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
	p.deletions()
	p.hostSysctls(in.Journal)
	p.bridges()
	p.namespaces()
	p.portTypesToSystem()
	p.links()
	p.ports()
	p.attachExternal()
	p.flows()
	p.addresses()
	p.routes()
	p.nat()
	p.impairments()
	p.processes(in.CPUs)
	return p.out, nil
}

func ownerText(owner string) string {
	if owner == "" {
		return "is not netlab's (no marker)"
	}
	return "belongs to lab " + owner
}

type planner struct {
	lab      *topology.Lab
	snap     *state.Snapshot
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
}

func (p *planner) emit(a Action) {
	a.Lab = p.lab.Name
	if a.Op == OpDelAddr || a.Op == OpDelLink {
		// The kernel drops routes whose gateway loses its connected
		// prefix: the namespace's routes are all replaced afterwards.
		p.dirty[a.NS] = true
	}
	p.out = append(p.out, a)
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

// recreations decides which links are deleted and made again: veths without
// their marker, broken veth pairs, and TUN/TAP devices whose fixed settings
// differ from the file's.
func (p *planner) recreations() {
	p.recreated = map[string]bool{}
	for k := range p.unmarked {
		p.recreated[k] = true
	}
	// A veth pair with only one end left (the other was deleted by hand, or
	// its namespace vanished) is deleted and made again.
	for _, l := range p.lab.Links {
		a := p.observedLink(l.A.NS, l.A.Name)
		b := p.observedLink(l.B.NS, l.B.Name)
		if (a == nil) != (b == nil) {
			p.recreated[key(l.A.NS, l.A.Name)] = true
			p.recreated[key(l.B.NS, l.B.Name)] = true
		}
		for _, pair := range []struct {
			o *state.Link
			e topology.LinkEnd
		}{{a, l.A}, {b, l.B}} {
			if pair.o != nil && pair.o.Kind != state.KindVeth {
				p.recreated[key(pair.e.NS, pair.e.Name)] = true
			}
		}
		// A veth pair is made in one piece: if one end is remade, so is the other.
		if p.recreated[key(l.A.NS, l.A.Name)] || p.recreated[key(l.B.NS, l.B.Name)] {
			p.recreated[key(l.A.NS, l.A.Name)] = true
			p.recreated[key(l.B.NS, l.B.Name)] = true
		}
	}
	// The kernel cannot change a TUN/TAP device's mode or multi-queue flag,
	// and netlab sets owner and group only at creation.
	for nsName, links := range p.want {
		for name, w := range links {
			o := p.observedLink(nsName, name)
			if w.kind == kindVXLAN && o != nil && o.Kind == kindVXLAN && !p.sameVXLAN(w, o.VXLAN) {
				p.recreated[key(nsName, name)] = true
			}
			if w.kind != kindTUN && w.kind != kindTAP {
				continue
			}
			if o != nil && o.Tuntap != nil && !sameTuntap(w, o.Tuntap) {
				p.recreated[key(nsName, name)] = true
			}
		}
	}
}

// sameTuntap compares a wanted TUN/TAP with the device's settings. The
// kernel reports an owner or group only when one is set, so an observed 0
// may be root or nobody: it matches a file that sets none.
func sameTuntap(w *wantLink, t *state.Tuntap) bool {
	tap, mq, owner, group := false, false, -1, -1
	if w.tun != nil {
		mq = w.tun.Reflector
	} else {
		tap, mq, owner, group = true, w.tap.MultiQueue, w.tap.Owner, w.tap.Group
	}
	sameID := func(want, got int) bool { return want == got || (want < 0 && got <= 0) }
	return t.TAP == tap && t.MultiQueue == mq && sameID(owner, t.Owner) && sameID(group, t.Group)
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
			if !slices.ContainsFunc(nsRoutes(ns), func(w topology.Route) bool { return sameRoute(toState(w), r) }) &&
				p.linkSurvives(nsName, r.Dev) {
				r := r
				p.emit(Action{Op: OpDelRoute, NS: nsName, Route: &r})
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
					p.emit(Action{Op: OpDelAddr, NS: nsName, Link: name, Addr: a})
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
			w := p.want[topology.Host][pName]
			// A port whose device is made again must be re-added too: OVS
			// does not reopen a new device under an old port's name.
			if w == nil || !w.ovsPort || w.peer.Bridge != "" || p.portBridge(pName) != bName || p.exists(topology.Host, pName) == nil {
				del = append(del, Port{Name: pName})
			}
		}
		if len(del) > 0 {
			p.emit(Action{Op: OpDelPorts, Bridge: bName, Ports: del})
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
				p.emit(Action{Op: OpDelLink, NS: nsName, Link: name})
				if w != nil && w.kind == state.KindVeth && l.Kind == state.KindVeth {
					gone[key(w.peer.NS, w.peer.Name)] = true
				}
			}
		}
	}

	// Namespaces of this lab that the file no longer has.
	for _, nsName := range state.SortedNames(p.snap.Namespaces) {
		o := p.snap.Namespaces[nsName]
		if nsName != topology.Host && o.Owner == p.lab.Name && !p.wantNS(nsName) {
			p.emit(Action{Op: OpDelNamespace, NS: nsName})
		}
	}

	// OVS bridges of this lab that the file no longer has.
	for _, bName := range state.SortedNames(p.snap.Bridges) {
		b := p.snap.Bridges[bName]
		if b.Type != topology.BridgeOVS || b.Owner != p.lab.Name {
			continue
		}
		if w := p.lab.Bridge(bName); w == nil || w.Type != topology.BridgeOVS {
			p.emit(Action{Op: OpDelBridge, Bridge: bName})
		}
	}
}

// linkSurvives says whether a route's device stays, so deleting the route
// separately is needed (routes die with their device).
func (p *planner) linkSurvives(ns, dev string) bool {
	if dev == "" {
		return true
	}
	w := p.want[ns][dev]
	return w != nil && !p.recreated[key(ns, dev)]
}

// portBridge returns the OVS bridge a host interface should be a port of.
func (p *planner) portBridge(name string) string {
	for _, b := range p.lab.Bridges {
		for _, port := range b.Ports {
			if port.Name == name {
				return b.Name
			}
		}
	}
	return ""
}

// hostSysctls restores host settings the file dropped and sets the ones it has.
func (p *planner) hostSysctls(j *state.Journal) {
	host := p.snap.Namespaces[topology.Host]
	wantKeys := map[string]bool{}
	for _, s := range p.lab.Host.EffectiveSysctls() {
		wantKeys[s.Key] = true
	}
	if j != nil {
		for _, k := range state.SortedNames(j.HostSysctls) {
			if !wantKeys[k] {
				p.emit(Action{Op: OpRestoreSysctl, NS: topology.Host, Key: k, Value: j.HostSysctls[k]})
			}
		}
	}
	for _, s := range p.lab.Host.EffectiveSysctls() {
		if host == nil || host.Sysctls[s.Key] != s.Value {
			p.emit(Action{Op: OpSetSysctl, NS: topology.Host, Key: s.Key, Value: s.Value})
		}
	}
}

func (p *planner) bridges() {
	for _, b := range p.lab.Bridges {
		o := p.snap.Bridges[b.Name]
		switch b.Type {
		case topology.BridgeOVS:
			dp := b.Datapath
			if dp == topology.DatapathAuto {
				dp = p.datapath
			}
			fm := b.FailMode
			if fm == "" {
				fm = topology.FailStandalone
			}
			if o == nil {
				p.emit(Action{Op: OpAddBridge, Bridge: b.Name, Datapath: dp, FailMode: fm})
				continue
			}
			if normFailMode(o.FailMode) != fm {
				p.emit(Action{Op: OpSetFailMode, Bridge: b.Name, FailMode: fm})
			}
		case topology.BridgeLinux:
			if l := p.observedLink(topology.Host, b.Name); l == nil || l.Kind != state.KindBridge {
				p.emit(Action{Op: OpAddLinuxBridge, NS: topology.Host, Link: b.Name, Alias: state.LinkAlias(p.lab.Name, topology.Host, b.Name)})
			}
		}
	}
}

func normFailMode(m string) string {
	if m == "" {
		return topology.FailStandalone
	}
	return m
}

func (p *planner) namespaces() {
	for _, ns := range p.lab.Namespaces {
		o := p.snap.Namespaces[ns.Name]
		if o == nil {
			p.emit(Action{Op: OpAddNamespace, NS: ns.Name, Alias: state.NamespaceAlias(p.lab.Name)})
		}
		for _, s := range ns.EffectiveSysctls() {
			if o == nil || o.Sysctls[s.Key] != s.Value {
				p.emit(Action{Op: OpSetSysctl, NS: ns.Name, Key: s.Key, Value: s.Value})
			}
		}
	}
}

// exists says whether a wanted link is there and stays after the deletions.
func (p *planner) exists(ns, name string) *state.Link {
	if p.recreated[key(ns, name)] {
		return nil
	}
	l := p.observedLink(ns, name)
	if l == nil {
		return nil
	}
	if w := p.want[ns][name]; w != nil && w.kind != kindOVSLocal && !sameKind(w.kind, l.Kind) {
		return nil
	}
	return l
}

func (p *planner) links() {
	// Create veth pairs. The end in a lab namespace is created there and
	// its peer directly in the peer's namespace: no link ever passes through
	// the host namespace under a name that could clash.
	for _, l := range p.lab.Links {
		if p.exists(l.A.NS, l.A.Name) != nil && p.exists(l.B.NS, l.B.Name) != nil {
			continue
		}
		a, b := l.A, l.B
		if a.NS == topology.Host && b.NS != topology.Host {
			a, b = b, a
		}
		p.emit(Action{
			Op: OpAddVeth, NS: a.NS, Link: a.Name, Alias: state.LinkAlias(p.lab.Name, a.NS, a.Name),
			PeerNS: b.NS, Peer: b.Name, PeerAlias: state.LinkAlias(p.lab.Name, b.NS, b.Name),
		})
	}
	// TUN and TAP devices.
	for _, nsName := range p.nsOrder() {
		for _, name := range p.linkOrder(nsName) {
			w := p.want[nsName][name]
			if (w.kind != kindTUN && w.kind != kindTAP) || p.exists(nsName, name) != nil {
				continue
			}
			tt := &Tuntap{Owner: -1, Group: -1}
			if w.tun != nil {
				tt.MultiQueue = w.tun.Reflector
				tt.VnetHdr = w.tun.Reflector && ReflectorVnetHdr
			} else {
				tt.TAP, tt.MultiQueue, tt.VnetHdr, tt.Owner, tt.Group = true, w.tap.MultiQueue, w.tap.VnetHdr, w.tap.Owner, w.tap.Group
			}
			p.emit(Action{Op: OpAddTuntap, NS: nsName, Link: name, Alias: w.alias, Tuntap: tt})
		}
	}
	p.tunnels()
	// Settings of every wanted link, in namespace order (host first).
	for _, nsName := range p.nsOrder() {
		for _, name := range p.linkOrder(nsName) {
			w := p.want[nsName][name]
			o := p.exists(nsName, name)
			a := Action{Op: OpSetLink, NS: nsName, Link: name}
			changed := false
			if w.mac != nil && (o == nil || !bytes.Equal(o.MAC, w.mac)) {
				a.MAC, changed = w.mac.String(), true
			}
			if w.mtu != 0 && (o == nil || o.MTU != w.mtu) {
				a.MTU, changed = w.mtu, true
			}
			if !w.ovsPort && (w.kind == state.KindVeth || w.kind == kindVXLAN) {
				observedMaster := ""
				if o != nil {
					observedMaster = o.Master
				}
				if observedMaster != w.master {
					m := w.master
					a.Master, changed = &m, true
				}
			}
			// The OVS bridge's own port matters only when it carries
			// addresses; down, the host sends nothing into the lab through
			// it (with IPv6, an up link announces itself at once).
			needUp := w.kind != kindOVSLocal || len(w.addrs) > 0
			if needUp && (o == nil || !o.Up) {
				a.Up, changed = true, true
			}
			if w.txOff && (o == nil || o.TxChecksum == nil || *o.TxChecksum) {
				p.emit(Action{Op: OpSetTxChecksum, NS: nsName, Link: name, On: false})
			}
			if w.groOff && (o == nil || o.GRO == nil || *o.GRO) {
				p.emit(Action{Op: OpSetGRO, NS: nsName, Link: name, On: false})
			}
			if changed {
				a.Up = needUp
				p.emit(a)
			}
		}
	}
}

// nsOrder is host first, then the lab namespaces in file order.
func (p *planner) nsOrder() []string {
	out := []string{topology.Host}
	for _, ns := range p.lab.Namespaces {
		out = append(out, ns.Name)
	}
	return out
}

// linkOrder: bridges' own interfaces first, then the rest by name.
func (p *planner) linkOrder(ns string) []string {
	var first, rest []string
	for _, name := range state.SortedNames(p.want[ns]) {
		if k := p.want[ns][name].kind; k == kindOVSLocal || k == state.KindBridge {
			first = append(first, name)
		} else {
			rest = append(rest, name)
		}
	}
	return append(first, rest...)
}

// portTypes decides the Interface type of every OVS veth port. A port-type
// written in the file is used as is; auto means afxdp-nonpmd on a userspace
// bridge of at most topology.AutoAFXDPMaxPorts ports when AF_XDP works here
// (snapshot) and the namespace end's MTU fits (topology.AFXDPMaxMTU), unless
// AF_XDP already failed on that port (the journal's AFXDPFailed: up fell back
// to system), and system otherwise. An AF_XDP type the file asks for by name
// where it cannot work is an error.
func (p *planner) portTypes(j *state.Journal) error {
	p.portType = map[string]string{}
	var errs topology.ErrorList
	for _, b := range p.lab.Bridges {
		if b.Type != topology.BridgeOVS {
			continue
		}
		dp := b.Datapath
		if dp == topology.DatapathAuto {
			dp = p.datapath
		}
		if o := p.snap.Bridges[b.Name]; o != nil && o.Owner == p.lab.Name {
			dp = o.Datapath
		}
		for _, port := range b.Ports {
			if port.Tunnel {
				// A VXLAN device has no XDP of its own: AF_PACKET.
				p.portType[key(b.Name, port.Name)] = topology.PortTypeSystem
				continue
			}
			t := b.PortType
			if t == topology.PortTypeAuto || t == "" {
				t = topology.PortTypeSystem
				// The MTU the namespace end will have: the file's, else the
				// one it has now (a lab edited from mtu: 9000 to nothing
				// keeps 9000, which an XDP program refuses).
				mtu := 0
				if w := p.want[port.Peer.NS][port.Peer.Name]; w != nil {
					mtu = w.mtu
				}
				if o := p.observedLink(port.Peer.NS, port.Peer.Name); mtu == 0 && o != nil {
					mtu = o.MTU
				}
				failed := j != nil && j.AFXDPFailed[port.Name] != ""
				small := len(b.Ports) <= topology.AutoAFXDPMaxPorts
				if dp == topology.DatapathNetdev && p.snap.OVS.AFXDP && small && mtu <= topology.AFXDPMaxMTU && !failed && !p.impairedPort(port.Name) {
					t = topology.PortTypeAFXDPNonPMD
				}
			}
			p.portType[key(b.Name, port.Name)] = t
			if topology.IsAFXDP(t) && p.impairedPort(port.Name) {
				errs = append(errs, afxdpImpairError(p.lab, b, port.Name))
			}
		}
		if !topology.IsAFXDP(b.PortType) {
			continue
		}
		switch {
		case dp == topology.DatapathSystem:
			errs = append(errs, &topology.Error{File: p.lab.File, Pos: b.Pos, Path: "bridges." + b.Name + ".port-type",
				Msg: fmt.Sprintf("%s ports need the userspace datapath, and this bridge uses the kernel's (set datapath: netdev)", b.PortType)})
		case p.snap.OVS.Running && p.snap.OVS.NoAFXDP != "":
			errs = append(errs, &topology.Error{File: p.lab.File, Pos: b.Pos, Path: "bridges." + b.Name + ".port-type",
				Msg: fmt.Sprintf("%s ports do not work here: %s (port-type: auto makes system ports)", b.PortType, p.snap.OVS.NoAFXDP)})
		case p.snap.OVS.Running && !p.snap.OVS.AFXDP:
			errs = append(errs, &topology.Error{File: p.lab.File, Pos: b.Pos, Path: "bridges." + b.Name + ".port-type",
				Msg: fmt.Sprintf("%s ports do not work here: Open vSwitch does not list them or the kernel has no AF_XDP sockets (see netlab doctor; port-type: auto falls back to system)", b.PortType)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// autoAFXDP says whether port-type auto chose the AF_XDP type t, so up may
// fall back to system if Open vSwitch cannot open it.
func autoAFXDP(b *topology.Bridge, t string) bool {
	return b.PortType == topology.PortTypeAuto && topology.IsAFXDP(t)
}

// observedPortType is the Interface type of an observed port, "" made
// "system".
func observedPortType(op *state.Port) string {
	if op.Type == "" {
		return topology.PortTypeSystem
	}
	return op.Type
}

// portTypesToSystem turns AF_XDP ports that are to be system ports back
// before links are changed: while the XDP program is attached the kernel
// refuses a namespace-end MTU above topology.AFXDPMaxMTU, which may be the
// very change that makes auto choose system.
func (p *planner) portTypesToSystem() {
	p.setPortTypes(func(t string) bool { return t == topology.PortTypeSystem })
}

// setPortTypes emits set-port-type for the lab's existing ports whose type
// differs from the wanted one, when sel accepts the wanted type.
func (p *planner) setPortTypes(sel func(string) bool) {
	for _, b := range p.lab.Bridges {
		o := p.snap.Bridges[b.Name]
		if b.Type != topology.BridgeOVS || o == nil {
			continue
		}
		var set []Port
		for _, port := range b.Ports {
			op := o.Ports[port.Name]
			if op == nil || op.Owner != p.lab.Name || p.exists(topology.Host, port.Name) == nil {
				continue
			}
			t := p.portType[key(b.Name, port.Name)]
			if observedPortType(op) != t && sel(t) {
				set = append(set, Port{Name: port.Name, OFPort: port.OFPort, Type: t, Auto: autoAFXDP(b, t)})
			}
		}
		if len(set) > 0 {
			p.emit(Action{Op: OpSetPortType, Bridge: b.Name, Ports: set})
		}
	}
}

func (p *planner) ports() {
	for _, b := range p.lab.Bridges {
		if b.Type != topology.BridgeOVS {
			continue
		}
		o := p.snap.Bridges[b.Name]
		var add, fix []Port
		for _, port := range b.Ports {
			var op *state.Port
			if o != nil && p.exists(topology.Host, port.Name) != nil {
				op = o.Ports[port.Name]
			}
			switch {
			case op == nil || op.Owner != p.lab.Name:
				t := p.portType[key(b.Name, port.Name)]
				if t == topology.PortTypeSystem {
					t = "" // OVS's default; the plan does not spell it
				}
				add = append(add, Port{Name: port.Name, OFPort: port.OFPort, Type: t, Auto: autoAFXDP(b, t)})
			case op.OFPortRequest != port.OFPort || op.OFPort != port.OFPort:
				fix = append(fix, Port{Name: port.Name, OFPort: port.OFPort})
			}
		}
		if len(add) > 0 {
			p.emit(Action{Op: OpAddPorts, Bridge: b.Name, Ports: add})
		}
		if len(fix) > 0 {
			p.emit(Action{Op: OpSetOFPort, Bridge: b.Name, Ports: fix})
		}
	}
	p.setPortTypes(func(t string) bool { return t != topology.PortTypeSystem })
}

func (p *planner) addresses() {
	for _, nsName := range p.nsOrder() {
		for _, name := range p.linkOrder(nsName) {
			w := p.want[nsName][name]
			o := p.exists(nsName, name)
			for _, a := range w.addrs {
				if o == nil || !slices.Contains(o.Addrs, a) {
					p.emit(Action{Op: OpAddAddr, NS: nsName, Link: name, Addr: a})
				}
			}
		}
	}
}

// nsRoutes are a namespace's routes: the file's, and the prefixes routed to
// its TUN devices.
func nsRoutes(ns *topology.Namespace) []topology.Route {
	out := append([]topology.Route(nil), ns.Routes...)
	for _, t := range ns.TUNs {
		for _, r := range t.Routes {
			out = append(out, topology.Route{To: r, Dev: t.Name, Pos: t.Pos})
		}
	}
	return out
}

func (p *planner) routes() {
	for _, nsName := range p.nsOrder() {
		ns := p.lab.Namespace(nsName)
		o := p.snap.Namespaces[nsName]
		for _, r := range nsRoutes(ns) {
			want := toState(r)
			found := false
			if o != nil && !p.dirty[nsName] {
				for _, or := range o.Routes {
					if sameRoute(want, or) && p.linkSurvives(nsName, or.Dev) {
						found = true
					}
				}
			}
			if !found {
				p.emit(Action{Op: OpReplaceRoute, NS: nsName, Route: &want})
			}
		}
	}
}

func toState(r topology.Route) state.Route {
	return state.Route{To: r.To, Via: r.Via, Dev: r.Dev, Metric: r.Metric}
}

// metric is the metric the kernel reports: IPv6 routes added with metric 0
// get 1024 (IP6_RT_PRIO_USER).
func metric(r state.Route) int {
	if r.Metric == 0 && r.To.Addr().Is6() {
		return 1024
	}
	return r.Metric
}

// sameRoute compares a wanted route with an observed one. The observed route
// always names its device; the wanted one may leave it to the kernel.
func sameRoute(want, got state.Route) bool {
	return want.To == got.To && want.Via == got.Via && metric(want) == metric(got) &&
		(want.Dev == "" || want.Dev == got.Dev)
}

// flows installs each OVS bridge's static flow set when it is new, differs
// from the file, or was wiped (a fail-mode change wipes the tables); and
// removes the lab's flows from a bridge whose file entry no longer has any.
func (p *planner) flows() {
	cookie := state.FlowCookie(p.lab.Name)
	for _, b := range p.lab.Bridges {
		if b.Type != topology.BridgeOVS {
			continue
		}
		o := p.snap.Bridges[b.Name]
		failModeChanged := o != nil && normFailMode(o.FailMode) != b.FailMode
		if !b.HasFlows() {
			if o != nil && o.LabFlows > 0 && !failModeChanged {
				p.emit(Action{Op: OpDelFlows, Bridge: b.Name, Cookie: cookie})
			}
			continue
		}
		if o == nil || !o.FlowsInSync || failModeChanged {
			p.emit(Action{Op: OpSetFlows, Bridge: b.Name, Cookie: cookie,
				Flows: openflow.BridgeFlows(b, state.LearnCookie(p.lab.Name))})
		}
	}
}

// nat replaces a namespace's NAT table when its rules differ from the file
// (or it holds anything netlab did not write), and drops it when the file
// has no rules left for that namespace.
func (p *planner) nat() {
	for _, nsName := range p.nsOrder() {
		ns := p.lab.Namespace(nsName)
		o := p.snap.Namespaces[nsName]
		var have *state.NATTable
		if o != nil {
			have = o.NAT
		}
		var want []NATRule
		for _, r := range ns.NAT {
			want = append(want, NATRule{Source: r.Source, Out: r.Out})
		}
		switch {
		case len(want) == 0 && have != nil:
			p.emit(Action{Op: OpDelNAT, NS: nsName})
		case len(want) > 0 && (have == nil || have.Foreign || !sameNAT(want, have.Rules)):
			p.emit(Action{Op: OpSetNAT, NS: nsName, NAT: want})
		}
	}
}

func sameNAT(want []NATRule, have []state.NATRule) bool {
	if len(want) != len(have) {
		return false
	}
	for i := range want {
		if want[i].Source != have[i].Source || want[i].Out != have[i].Out {
			return false
		}
	}
	return true
}

// externalOf says whether name is an external port of the bridge in the file.
func (p *planner) externalOf(bridge, name string) bool {
	if b := p.lab.Bridge(bridge); b != nil {
		for _, x := range b.External {
			if x.Name == name {
				return true
			}
		}
	}
	return false
}

// detachExternal gives back the interfaces the journal says the lab attached
// and the file no longer attaches (to that bridge).
func (p *planner) detachExternal(j *state.Journal) {
	if j == nil {
		return
	}
	for _, name := range state.SortedNames(j.External) {
		prev := j.External[name]
		if p.externalOf(prev.Bridge, name) {
			continue
		}
		typ := topology.BridgeOVS
		if b := p.snap.Bridges[prev.Bridge]; b != nil && b.Type == topology.BridgeLinux {
			typ = topology.BridgeLinux
		} else if l := p.observedLink(topology.Host, name); l != nil && l.Master == prev.Bridge {
			typ = topology.BridgeLinux
		}
		p.emit(Action{Op: OpDetachExternal, Bridge: prev.Bridge, Link: name, BridgeType: typ})
	}
}

// attachExternal attaches the file's external interfaces that are not (or
// not fully: down, wrong port number) attached.
func (p *planner) attachExternal() {
	for _, b := range p.lab.Bridges {
		for _, x := range b.External {
			l := p.observedLink(topology.Host, x.Name)
			attached := l != nil && l.Up
			if b.Type == topology.BridgeLinux {
				attached = attached && l.Master == b.Name
			} else {
				ob := p.snap.Bridges[b.Name]
				port := (*state.Port)(nil)
				if ob != nil {
					port = ob.Ports[x.Name]
				}
				attached = attached && port != nil && port.Owner == p.lab.Name && port.OFPort == x.OFPort
			}
			if !attached {
				p.emit(Action{Op: OpAttachExternal, Bridge: b.Name, Link: x.Name, BridgeType: b.Type,
					Ports: []Port{{Name: x.Name, OFPort: x.OFPort}}})
			}
		}
	}
}

// stopProcesses stops supervised processes the file no longer wants, or
// wants with another spec (they are started again later in the plan), and
// those whose device is made again.
func (p *planner) stopProcesses(cpus int) {
	for _, nsName := range state.SortedNames(p.snap.Namespaces) {
		o := p.snap.Namespaces[nsName]
		for _, dev := range state.SortedNames(o.Processes) {
			pr := o.Processes[dev]
			w := p.want[nsName][dev]
			if w == nil || w.tun == nil || !w.tun.Supervised() || ProcessSpec(w.tun, cpus) != pr.Spec || p.exists(nsName, dev) == nil {
				p.emit(Action{Op: OpStopProcess, NS: nsName, Link: dev, Spec: pr.Spec})
			}
		}
	}
}

// processes starts the supervised processes that are not running (never
// started, died, or stopped above for a new spec).
func (p *planner) processes(cpus int) {
	for _, ns := range p.lab.Namespaces {
		o := p.snap.Namespaces[ns.Name]
		for _, t := range ns.TUNs {
			if !t.Supervised() {
				continue
			}
			spec := ProcessSpec(t, cpus)
			if o != nil && o.Processes[t.Name] != nil && o.Processes[t.Name].Spec == spec && p.exists(ns.Name, t.Name) != nil {
				continue
			}
			p.emit(Action{Op: OpStartProcess, NS: ns.Name, Link: t.Name, Spec: spec})
		}
	}
}
