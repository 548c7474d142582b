package topology

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// ifKey names an interface within its namespace. Bridge ports, host
// interfaces and bridges all share the host namespace's key space.
type ifKey struct{ ns, name string }

func (e End) key() ifKey { return ifKey{e.NS, e.Name} }

// claim records which interface entry took an end as its peer.
type claim struct {
	end End        // the end as claimed: Bridge set for a bridge port
	by  *ifaceInfo // the interface whose peer it is
	pos Pos        // where by stands
	at  Pos        // where the claimed object is defined (its entry, or the peer reference)
}

// derive resolves peers into Interface.Peer, Links and Bridge.Ports, and
// assigns OpenFlow port numbers.
func (p *parser) derive() {
	nsByName := map[string]*nsInfo{}
	for _, ni := range p.nss {
		if _, dup := nsByName[ni.ns.Name]; !dup {
			nsByName[ni.ns.Name] = ni
		}
	}
	brByName := map[string]*bridgeInfo{}
	for _, bi := range p.bridges {
		if ni, clash := nsByName[bi.b.Name]; clash {
			p.errorf(bi.b.Pos, bi.path, "namespace %s (line %d) has the same name, so peer %s/<name> would be ambiguous", ni.ns.Name, ni.ns.Pos.Line, bi.b.Name)
		}
		brByName[bi.b.Name] = bi
	}

	all := p.allIfaces()
	p.byKey = map[ifKey]*ifaceInfo{}
	for _, ii := range all {
		if _, dup := p.byKey[endOf(ii).key()]; !dup {
			p.byKey[endOf(ii).key()] = ii
		}
	}
	byKey := p.byKey
	for _, ii := range all {
		if ii.peerSet {
			p.resolvePeer(ii, nsByName, brByName)
		}
	}

	claimed := map[ifKey]claim{}
	for _, ii := range all {
		if !ii.targetOK || ii.linked {
			continue
		}
		self := End{NS: ii.iface.NS, Name: ii.iface.Name}
		t := ii.target
		if t.key() == self.key() && t.Bridge == "" {
			p.errorf(ii.peerPos, join(ii.path, "peer"), "peer is this interface itself; a veth has two different ends")
			continue
		}
		if c, taken := claimed[t.key()]; taken {
			if c.end.Bridge != t.Bridge {
				p.errorf(ii.peerPos, join(ii.path, "peer"), "peer %s: name %s is already taken in the host namespace by %s (line %d)", t, t.Name, c.end, c.at.Line)
			} else {
				p.errorf(ii.peerPos, join(ii.path, "peer"), "%s is already the peer of %s (line %d)", t, endOf(c.by), c.pos.Line)
			}
			continue
		}
		if t.Bridge != "" {
			p.linkPort(ii, brByName[t.Bridge])
			claimed[t.key()] = claim{t, ii, ii.peerPos, ii.peerPos}
			continue
		}
		other := byKey[t.key()]
		if other == nil {
			if t.NS != Host {
				p.errorf(ii.peerPos, join(ii.path, "peer"), "namespace %s has no interface %s", t.NS, t.Name)
				continue
			}
			// An undescribed host end: netlab creates it, nothing configures it.
			ii.iface.Peer = t
			ii.linked = true
			// The port end takes the namespace end's MTU: a veth drops frames
			// larger than the receiving end's MTU, so jumbo frames need both.
			p.lab.Links = append(p.lab.Links, &Link{A: linkEnd(ii), B: LinkEnd{End: t, Pos: ii.peerPos, MTU: ii.iface.MTU}})
			claimed[t.key()] = claim{t, ii, ii.peerPos, ii.peerPos}
			continue
		}
		if other.peerSet && other.targetOK && other.target != self {
			p.errorf(ii.peerPos, join(ii.path, "peer"), "%s names %s as its peer, but %s names %s", self, t, t, other.target)
			p.errorf(other.peerPos, join(other.path, "peer"), "%s names %s as its peer, but %s names %s", t, other.target, self, t)
			other.linked = true // reported; do not report its own target again
			continue
		}
		if other.peerBad || (other.peerSet && !other.targetOK) {
			continue // its own error is already reported
		}
		ii.iface.Peer = t
		other.iface.Peer = self
		ii.linked, other.linked = true, true
		p.lab.Links = append(p.lab.Links, &Link{A: linkEnd(ii), B: linkEnd(other)})
		claimed[t.key()] = claim{t, ii, ii.peerPos, other.iface.Pos}
		claimed[self.key()] = claim{self, other, other.iface.Pos, ii.iface.Pos}
	}
	for _, ii := range all {
		if !ii.linked && !ii.peerSet && !ii.peerBad {
			p.errorf(ii.iface.Pos, ii.path, "no peer: set peer, or name %s as another interface's peer", endOf(ii))
		}
	}
	for _, bi := range p.bridges {
		p.assignOFPorts(bi)
	}
}

// allIfaces returns every interface entry, host and namespaces, in file
// order, which decides which end of a pair is Link.A.
func (p *parser) allIfaces() []*ifaceInfo {
	var all []*ifaceInfo
	for _, ni := range append([]*nsInfo{p.host}, p.nss...) {
		all = append(all, ni.ifaces...)
	}
	slices.SortStableFunc(all, func(a, b *ifaceInfo) int {
		return cmp.Or(cmp.Compare(a.iface.Pos.Line, b.iface.Pos.Line), cmp.Compare(a.iface.Pos.Col, b.iface.Pos.Col))
	})
	return all
}

func endOf(ii *ifaceInfo) End { return End{NS: ii.iface.NS, Name: ii.iface.Name} }

func linkEnd(ii *ifaceInfo) LinkEnd {
	return LinkEnd{
		End:       endOf(ii),
		Addresses: ii.iface.Addresses,
		MAC:       ii.iface.MAC,
		MTU:       ii.iface.MTU,
		Pos:       ii.iface.Pos,
	}
}

// resolvePeer turns "first/name" into an End. The first segment is a bridge
// if one has that name, else host, else a lab namespace.
func (p *parser) resolvePeer(ii *ifaceInfo, nsByName map[string]*nsInfo, brByName map[string]*bridgeInfo) {
	path := join(ii.path, "peer")
	first, name, found := strings.Cut(ii.peer, "/")
	if !found || first == "" || name == "" || strings.Contains(name, "/") {
		p.errorf(ii.peerPos, path, "peer %q: want <bridge>/<port>, <namespace>/<interface> or host/<interface>", ii.peer)
		return
	}
	var t End
	what := "interface"
	switch {
	case brByName[first] != nil:
		t = End{NS: Host, Name: name, Bridge: first}
		what = "port"
	case first == Host:
		t = End{NS: Host, Name: name}
	case nsByName[first] != nil:
		t = End{NS: first, Name: name}
	default:
		p.errorf(ii.peerPos, path, "peer %q: no bridge or namespace named %q", ii.peer, first)
		return
	}
	if msg := checkIfName(name, what); msg != "" {
		p.errorf(ii.peerPos, path, "peer %q: %s", ii.peer, msg)
		return
	}
	if name == "lo" {
		p.errorf(ii.peerPos, path, "peer %q: lo is the loopback device, not a veth end", ii.peer)
		return
	}
	ii.target, ii.targetOK = t, true
}

// linkPort makes the peer of ii a port of bridge bi.
func (p *parser) linkPort(ii *ifaceInfo, bi *bridgeInfo) {
	t := ii.target
	ii.iface.Peer = t
	ii.linked = true
	bi.b.Ports = append(bi.b.Ports, &Port{Name: t.Name, Peer: endOf(ii), Pos: ii.peerPos})
	// The port end takes the namespace end's MTU: a veth drops frames
	// larger than the receiving end's MTU, so jumbo frames need both.
	p.lab.Links = append(p.lab.Links, &Link{A: linkEnd(ii), B: LinkEnd{End: t, Pos: ii.peerPos, MTU: ii.iface.MTU}})
}

// assignOFPorts applies a bridge's ports: settings and numbers the other
// ports: explicit numbers first, then the lowest free number from 1 for each
// remaining port in file order, so adding a port never renumbers others
// that were asked for.
func (p *parser) assignOFPorts(bi *bridgeInfo) {
	byName := map[string]*Port{}
	for _, pt := range bi.b.Ports {
		byName[pt.Name] = pt
	}
	explicit := map[string]bool{}
	taken := map[int]string{}
	for _, ps := range bi.settings {
		pt := byName[ps.name]
		switch {
		case pt == nil && ps.internal:
			if msg := checkIfName(ps.name, "port"); msg != "" {
				p.errorf(ps.pos, ps.path, "%s", msg)
				continue
			}
			// A port of its own: Open vSwitch makes its device.
			pt = &Port{Name: ps.name, Pos: ps.pos, Internal: true}
			bi.b.Ports = append(bi.b.Ports, pt)
			byName[ps.name] = pt
		case pt == nil:
			p.errorf(ps.pos, ps.path, "no interface names %s/%s as its peer; a port with no namespace behind it is an OVS internal port: type: internal", bi.b.Name, ps.name)
			continue
		case ps.internal:
			p.errorf(pos(ps.typeKey.v), ps.typeKey.path, "%s/%s is the end of a veth (%s names it as its peer); type: internal is for a port no interface names", bi.b.Name, ps.name, pt.Peer)
			continue
		}
		pt.VLAN = ps.vlan
		if ps.ofportKey == nil || ps.ofport == 0 || bi.b.Type != BridgeOVS {
			continue
		}
		if other, dup := taken[ps.ofport]; dup {
			p.errorf(pos(ps.ofportKey.v), ps.ofportKey.path, "ofport %d is already requested for port %s", ps.ofport, other)
			continue
		}
		taken[ps.ofport] = pt.Name
		pt.OFPort = ps.ofport
		explicit[pt.Name] = true
	}
	if bi.b.Type != BridgeOVS {
		return
	}
	next := minOFPort
	for _, pt := range bi.b.Ports {
		if explicit[pt.Name] {
			continue
		}
		for taken[next] != "" {
			next++
		}
		if next > maxOFPort {
			p.errorf(pt.Pos, bi.path, "bridge %s has more ports than OpenFlow port numbers", bi.b.Name)
			return
		}
		pt.OFPort = next
		taken[next] = pt.Name
	}
	// External ports number after the lab's own, so adding one never
	// renumbers a lab port.
	for i := range bi.b.External {
		x := &bi.b.External[i]
		for taken[next] != "" {
			next++
		}
		if next > maxOFPort {
			p.errorf(x.Pos, x.Path, "bridge %s has more ports than OpenFlow port numbers", bi.b.Name)
			return
		}
		x.OFPort = next
		taken[next] = x.Name
	}
}

// hostName is one name that lives in the host namespace.
type hostName struct {
	name, what, path string
	pos              Pos
}

// checkHostNames rejects two host-namespace objects with one name: bridges,
// bridge ports, host interfaces and undescribed host veth ends all become
// devices there.
func (p *parser) checkHostNames() {
	var names []hostName
	for _, bi := range p.bridges {
		names = append(names, hostName{bi.b.Name, "bridge " + bi.b.Name, bi.path, bi.b.Pos})
		for _, pt := range bi.b.Ports {
			path := join(p.pathOf(pt.Peer), "peer")
			if pt.Internal {
				path = bi.path + ".ports." + pt.Name
			}
			names = append(names, hostName{pt.Name, fmt.Sprintf("port %s/%s", bi.b.Name, pt.Name), path, pt.Pos})
		}
	}
	for _, ii := range p.host.ifaces {
		names = append(names, hostName{ii.iface.Name, "host interface " + ii.iface.Name, ii.path, ii.iface.Pos})
	}
	for _, l := range p.lab.Links {
		if l.B.NS == Host && l.B.Bridge == "" && p.hostIface(l.B.Name) == nil {
			names = append(names, hostName{l.B.Name, "host veth end " + l.B.Name, join(p.pathOf(l.A.End), "peer"), l.B.Pos})
		}
	}
	slices.SortStableFunc(names, func(a, b hostName) int {
		return cmp.Or(cmp.Compare(a.pos.Line, b.pos.Line), cmp.Compare(a.pos.Col, b.pos.Col))
	})
	first := map[string]hostName{}
	for _, n := range names {
		if f, dup := first[n.name]; dup {
			p.errorf(n.pos, n.path, "name %s is already taken by %s (line %d): bridges, ports and host interfaces share the host namespace", n.name, f.what, f.pos.Line)
			continue
		}
		first[n.name] = n
	}
}

func (p *parser) hostIface(name string) *ifaceInfo {
	return p.byKey[ifKey{Host, name}]
}

// pathOf returns the key path of a described interface.
func (p *parser) pathOf(e End) string {
	if ii := p.byKey[e.key()]; ii != nil {
		return ii.path
	}
	return ""
}
