package plan

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

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
	vlan            *topology.VLANInterface
	emu             *Emulated // the emulated link this TAP is an end of
}

const (
	kindOVSLocal = "ovs-local"
	kindTUN      = "tun"
	kindTAP      = "tap"
)

// sameKind compares a wanted kind with netlink's: TUN and TAP devices are
// both "tuntap" there.
func sameKind(want, got string) bool {
	if want == kindTUN || want == kindTAP || want == kindEmu {
		return got == state.KindTuntap
	}
	return want == got
}

// desired computes the interfaces of every namespace (Host included); the
// ends of an emulated link (emu, by end) are TAPs.
func desired(lab *topology.Lab, datapath string, emu map[string]*Emulated) map[string]map[string]*wantLink {
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
	for _, v := range lab.VLANInterfaces() {
		add(&wantLink{ns: v.NS, name: v.Name, alias: state.LinkAlias(lab.Name, v.NS, v.Name), kind: state.KindVLAN,
			addrs: v.Addresses, pos: v.Pos, path: v.Path, vlan: v})
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
			if em := emu[key(e.NS, e.Name)]; em != nil {
				// The emulator hands an Open vSwitch port whole frames:
				// no checksum offload to turn off.
				w.kind, w.emu, w.txOff = kindEmu, em, false
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
		if p.emulated(l.A.NS, l.A.Name) != nil {
			// Two TAPs, each made on its own; a veth where one should be
			// goes (with its peer), and the TAP is made.
			for _, pair := range []struct {
				o *state.Link
				e topology.LinkEnd
			}{{a, l.A}, {b, l.B}} {
				if pair.o != nil && pair.o.Kind != state.KindTuntap {
					p.recreated[key(pair.e.NS, pair.e.Name)] = true
				}
			}
			continue
		}
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
			if w.kind != kindTUN && w.kind != kindTAP && w.kind != kindEmu {
				continue
			}
			if o != nil && o.Tuntap != nil && !sameTuntap(w, o.Tuntap) {
				p.recreated[key(nsName, name)] = true
			}
		}
	}
	// An 802.1Q interface cannot change its VLAN or parent, and goes with a
	// parent that is made again.
	for nsName, links := range p.want {
		for name, w := range links {
			if w.kind != state.KindVLAN {
				continue
			}
			o := p.observedLink(nsName, name)
			if o != nil && (o.VLANID != w.vlan.ID || o.VLANParent != w.vlan.Parent || p.recreated[key(nsName, w.vlan.Parent)]) {
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
	switch {
	case w.emu != nil:
		tap = true
	case w.tun != nil:
		mq = w.tun.Reflector
	default:
		tap, mq, owner, group = true, w.tap.MultiQueue, w.tap.Owner, w.tap.Group
	}
	sameID := func(want, got int) bool { return want == got || (want < 0 && got <= 0) }
	return t.TAP == tap && t.MultiQueue == mq && sameID(owner, t.Owner) && sameID(group, t.Group)
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

func (p *planner) namespaces() {
	for _, ns := range p.lab.Namespaces {
		o := p.snap.Namespaces[ns.Name]
		if o == nil {
			p.emit(AddNamespace{NS: ns.Name, Alias: state.NamespaceAlias(p.lab.Name)})
		}
		for _, s := range ns.EffectiveSysctls() {
			if o == nil || o.Sysctls[s.Key] != s.Value {
				p.emit(SetSysctl{NS: ns.Name, Key: s.Key, Value: s.Value})
			}
		}
	}
}

// bareBridgePort says whether a wanted link is a port of a bridge, Linux
// or Open vSwitch, with no address of its own: it needs no IPv6 (AddVeth).
func (p *planner) bareBridgePort(ns, name string) bool {
	w := p.want[ns][name]
	return w != nil && w.kind == state.KindVeth && (w.master != "" || w.ovsPort) && len(w.addrs) == 0
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
		if p.exists(l.A.NS, l.A.Name) != nil && p.exists(l.B.NS, l.B.Name) != nil || p.emulated(l.A.NS, l.A.Name) != nil {
			continue
		}
		a, b := l.A, l.B
		if a.NS == topology.Host && b.NS != topology.Host {
			a, b = b, a
		}
		p.emit(AddVeth{
			NS: a.NS, Link: a.Name, Alias: state.LinkAlias(p.lab.Name, a.NS, a.Name),
			PeerNS: b.NS, Peer: b.Name, PeerAlias: state.LinkAlias(p.lab.Name, b.NS, b.Name),
			NoIPv6: p.bareBridgePort(a.NS, a.Name), PeerNoIPv6: p.bareBridgePort(b.NS, b.Name),
		})
	}
	// TUN and TAP devices.
	for _, nsName := range p.nsOrder() {
		for _, name := range p.linkOrder(nsName) {
			w := p.want[nsName][name]
			if (w.kind != kindTUN && w.kind != kindTAP && w.kind != kindEmu) || p.exists(nsName, name) != nil {
				continue
			}
			tt := &state.Tuntap{Owner: -1, Group: -1}
			if w.emu != nil {
				// An end of an emulated link: a TAP with virtio_net_hdr,
				// which the emulator attaches to.
				tt.TAP, tt.VnetHdr = true, true
			} else if w.tun != nil {
				tt.MultiQueue = w.tun.Reflector
				tt.VnetHdr = w.tun.Reflector && ReflectorVnetHdr
			} else {
				tt.TAP, tt.MultiQueue, tt.VnetHdr, tt.Owner, tt.Group = true, w.tap.MultiQueue, w.tap.VnetHdr, w.tap.Owner, w.tap.Group
			}
			p.emit(AddTuntap{NS: nsName, Link: name, Alias: w.alias, Tuntap: tt})
		}
	}
	// 802.1Q interfaces, on their links made above.
	for _, nsName := range p.nsOrder() {
		for _, name := range p.linkOrder(nsName) {
			w := p.want[nsName][name]
			if w.kind != state.KindVLAN || p.exists(nsName, name) != nil {
				continue
			}
			p.emit(AddVLAN{NS: nsName, Link: name, Parent: w.vlan.Parent, ID: w.vlan.ID, Alias: w.alias})
		}
	}
	p.tunnels()
	// Settings of every wanted link, in namespace order (host first).
	for _, nsName := range p.nsOrder() {
		for _, name := range p.linkOrder(nsName) {
			w := p.want[nsName][name]
			o := p.exists(nsName, name)
			a := SetLink{NS: nsName, Link: name}
			changed := false
			if w.mac != nil && (o == nil || !bytes.Equal(o.MAC, w.mac)) {
				a.MAC, changed = w.mac.String(), true
			}
			if w.mtu != 0 && (o == nil || o.MTU != w.mtu) {
				a.MTU, changed = w.mtu, true
			}
			if !w.ovsPort && (w.kind == state.KindVeth || w.kind == kindVXLAN || w.kind == kindEmu) {
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
			// A link that holds a pulled cable stays down (events.go).
			cable := p.held(nsName, name)
			if cable != "" {
				needUp = false
			}
			// An existing link that is only down comes up on its own
			// (link-up): the same command, the kind `netlab link` runs.
			upOnly := false
			if needUp && (o == nil || !o.Up) {
				if o != nil && !changed {
					upOnly = true
				} else {
					a.Up, changed = true, true
				}
			}
			if w.txOff && (o == nil || o.TxChecksum == nil || *o.TxChecksum) {
				p.emit(SetTxChecksum{NS: nsName, Link: name, On: false})
			}
			if w.groOff && (o == nil || o.GRO == nil || *o.GRO) {
				p.emit(SetGRO{NS: nsName, Link: name, On: false})
			}
			if changed {
				a.Up = needUp
				p.emit(a)
			}
			switch {
			case upOnly:
				p.emit(LinkUp{NS: nsName, Link: name})
			case cable != "" && o != nil && o.Up:
				p.emit(LinkDown{NS: nsName, Link: name, Cable: cable})
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
