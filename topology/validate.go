package topology

import (
	"cmp"
	"net/netip"
	"slices"
)

// validate runs the checks that need the whole lab: names shared in the
// host namespace, duplicate addresses, and routes.
func (p *parser) validate() {
	p.checkHostNames()
	p.checkAddresses()
	for _, ni := range append([]*nsInfo{p.host}, p.nss...) {
		p.checkRoutes(ni)
	}
	p.checkExpectations()
	p.checkNAT()
	p.checkExternal()
	p.checkDevices()
	p.checkPortTypes()
	p.checkBridgeSizes()
	p.checkServices()
	p.mergeEventImpairs()
	p.checkTimelines()
}

// MaxLinuxBridgePorts is how many ports the kernel gives a Linux bridge:
// port numbers are 10 bits and 0 is reserved (BR_MAX_PORTS in
// net/bridge/br_private.h); the next port fails with "Exchange full".
const MaxLinuxBridgePorts = 1023

// checkBridgeSizes refuses a Linux bridge with more ports than the kernel
// gives one, at the first port too many, before anything is made: up would
// otherwise fail after making the ports before it.
func (p *parser) checkBridgeSizes() {
	for _, bi := range p.bridges {
		b := bi.b
		if b.Type != BridgeLinux || len(b.Ports)+len(b.External) <= MaxLinuxBridgePorts {
			continue
		}
		at := b.Pos
		if len(b.Ports) > MaxLinuxBridgePorts {
			at = b.Ports[MaxLinuxBridgePorts].Pos
		}
		p.errorf(at, "bridges."+b.Name, "%d ports: a Linux bridge has at most %d (the kernel's limit); spread them over several bridges, or use type: ovs",
			len(b.Ports)+len(b.External), MaxLinuxBridgePorts)
	}
}

// checkPortTypes: an AF_XDP port type asked for by name needs the userspace
// datapath, and caps the MTU of each port's namespace end (the kernel
// refuses a larger one while the XDP program is attached).
func (p *parser) checkPortTypes() {
	for _, bi := range p.bridges {
		b := bi.b
		if bi.portType == nil || !IsAFXDP(b.PortType) {
			continue
		}
		at, path := pos(bi.portType.v), bi.portType.path
		if b.Datapath == DatapathSystem {
			p.errorf(at, path, "%s ports need the userspace datapath; this bridge is datapath: system", b.PortType)
			continue
		}
		for _, pt := range b.Ports {
			ii := p.byKey[pt.Peer.key()]
			if ii != nil && ii.iface.MTU > AFXDPMaxMTU {
				p.errorf(at, path, "%s ports carry at most MTU %d, and %s has mtu %d (line %d); use port-type: auto or system",
					b.PortType, AFXDPMaxMTU, pt.Peer, ii.iface.MTU, ii.iface.Pos.Line)
			}
		}
	}
}

// checkDevices: TUN and TAP names are interface names of their namespace,
// so they may not repeat one; a UDP bridge's namespace must exist.
func (p *parser) checkDevices() {
	for _, n := range p.lab.Namespaces {
		seen := map[string]bool{}
		for _, i := range n.Interfaces {
			seen[i.Name] = true
		}
		dup := func(name string, at Pos, path string) {
			if seen[name] {
				p.errorf(at, path, "namespace %s already has an interface %s", n.Name, name)
			}
			seen[name] = true
		}
		for _, t := range n.TUNs {
			dup(t.Name, t.Pos, t.Path)
			if t.UDP != nil && t.UDP.Namespace != "" && p.lab.Namespace(t.UDP.Namespace) == nil {
				p.errorf(t.UDP.nsPos, join(join(t.Path, "udp"), "namespace"), "no namespace %q in this lab", t.UDP.Namespace)
			}
			if t.UDP != nil && t.UDP.Listen.IsValid() && t.UDP.Send.IsValid() && t.UDP.Listen.Addr().Is4() != t.UDP.Send.Addr().Is4() {
				p.errorf(t.UDP.Pos, join(t.Path, "udp"), "listen and send must be of one family")
			}
		}
		for _, t := range n.TAPs {
			dup(t.Name, t.Pos, t.Path)
			if (t.Owner >= 0) != (t.Group >= 0) {
				p.errorf(t.Pos, t.Path, "give both owner and group: the kernel lets a user attach a TAP only when both match (netlink would set the other to 0)")
			}
		}
	}
}

// checkNAT: in a lab namespace, out must be one of its interfaces; in the
// host it may be any interface (the host's uplink is not the lab's), which
// up checks exists.
func (p *parser) checkNAT() {
	for _, n := range p.lab.Namespaces {
		for _, r := range n.NAT {
			var out *Interface
			for _, i := range n.Interfaces {
				if i.Name == r.Out {
					out = i
				}
			}
			if out == nil {
				p.errorf(r.outPos, join(r.Path, "out"), "namespace %s has no interface %s", n.Name, r.Out)
				continue
			}
			// Masquerading takes the address of out: it needs one of the
			// source's family.
			family := false
			for _, a := range out.Addresses {
				family = family || a.Addr().Is4() == r.Source.Addr().Is4()
			}
			if !family && r.Source.IsValid() {
				fam := "IPv6"
				if r.Source.Addr().Is4() {
					fam = "IPv4"
				}
				p.errorf(r.Pos, r.Path, "%s has no %s address to masquerade %s behind", r.Out, fam, r.Source)
			}
		}
	}
}

// checkExternal: an external interface is the user's, so it may not be one
// the lab creates, nor be attached twice.
func (p *parser) checkExternal() {
	seen := map[string]string{}
	for _, b := range p.lab.Bridges {
		for _, x := range b.External {
			if other, dup := seen[x.Name]; dup {
				p.errorf(x.Pos, x.Path, "%s is already an external port of bridge %s", x.Name, other)
				continue
			}
			seen[x.Name] = b.Name
			if p.lab.Bridge(x.Name) != nil || p.hostIface(x.Name) != nil || p.isPort(x.Name) {
				p.errorf(x.Pos, x.Path, "%s is an interface this lab creates; external: attaches an existing interface the lab does not own", x.Name)
			}
		}
	}
}

func (p *parser) isPort(name string) bool {
	for _, b := range p.lab.Bridges {
		for _, port := range b.Ports {
			if port.Name == name {
				return true
			}
		}
	}
	return false
}

// checkExpectations resolves each expectation's from and to.
func (p *parser) checkExpectations() {
	for i := range p.lab.Expect {
		x := &p.lab.Expect[i]
		if p.lab.Namespace(x.From) == nil {
			p.errorf(x.fromPos, join(x.Path, "from"), "no namespace %q in this lab", x.From)
		}
		if a, err := netip.ParseAddr(x.To); err == nil {
			x.Addr = a.Unmap()
			continue
		}
		var addrs []netip.Prefix
		if n := p.lab.Namespace(x.To); n != nil {
			for _, i := range n.Interfaces {
				addrs = append(addrs, i.Addresses...)
			}
		} else if b := p.lab.Bridge(x.To); b != nil {
			addrs = b.Addresses
		} else {
			p.errorf(x.toPos, join(x.Path, "to"), "%q is neither an address nor a namespace or bridge of this lab", x.To)
			continue
		}
		x.Addr = firstAddr(addrs)
		if !x.Addr.IsValid() {
			p.errorf(x.toPos, join(x.Path, "to"), "%s has no address to probe", x.To)
		}
	}
}

// firstAddr picks the first IPv4 address, else the first IPv6 one.
func firstAddr(addrs []netip.Prefix) netip.Addr {
	for _, want6 := range []bool{false, true} {
		for _, a := range addrs {
			if a.Addr().Is6() == want6 {
				return a.Addr()
			}
		}
	}
	return netip.Addr{}
}

// addrUse is one address assigned somewhere, for duplicate detection.
type addrUse struct {
	pfx   netip.Prefix
	owner string // ns/ifname or bridge name
	path  string
	pos   Pos
}

func (p *parser) ifaceUses(ii *ifaceInfo) []addrUse {
	var out []addrUse
	for i, a := range ii.iface.Addresses {
		out = append(out, addrUse{a, endOf(ii).String(), index(join(ii.path, "addresses"), i), ii.addrPos[i]})
	}
	return out
}

func (p *parser) bridgeUses(bi *bridgeInfo) []addrUse {
	var out []addrUse
	for i, a := range bi.b.Addresses {
		out = append(out, addrUse{a, "bridge " + bi.b.Name, index(join(bi.path, "addresses"), i), bi.addrPos[i]})
	}
	return out
}

// checkAddresses rejects an address used twice in one namespace, or twice
// on one L2 segment (a bridge with its bridge addresses and its ports'
// peers, or a veth pair not on a bridge): either breaks ARP/ND in a way that
// is tedious to debug at run time.
func (p *parser) checkAddresses() {
	hostUses := []addrUse{}
	for _, bi := range p.bridges {
		hostUses = append(hostUses, p.bridgeUses(bi)...)
	}
	for _, ii := range p.host.ifaces {
		hostUses = append(hostUses, p.ifaceUses(ii)...)
	}
	p.uniqueAddrs(hostUses, "in the host namespace")
	for _, ni := range p.nss {
		var uses []addrUse
		for _, ii := range ni.ifaces {
			uses = append(uses, p.ifaceUses(ii)...)
		}
		p.uniqueAddrs(uses, "in namespace "+ni.ns.Name)
	}

	iface := p.byKey
	for _, bi := range p.bridges {
		uses := p.bridgeUses(bi)
		for _, pt := range bi.b.Ports {
			if ii := iface[pt.Peer.key()]; ii != nil {
				uses = append(uses, p.ifaceUses(ii)...)
			}
		}
		p.uniqueAddrs(uses, "on bridge "+bi.b.Name)
	}
	for _, l := range p.lab.Links {
		if l.B.Bridge != "" {
			continue
		}
		var uses []addrUse
		for _, e := range []End{l.A.End, l.B.End} {
			if ii := iface[e.key()]; ii != nil {
				uses = append(uses, p.ifaceUses(ii)...)
			}
		}
		p.uniqueAddrs(uses, "on the veth pair "+l.A.End.String()+" -- "+l.B.End.String())
	}
}

// uniqueAddrs reports every use of an address after its first, in file order.
func (p *parser) uniqueAddrs(uses []addrUse, where string) {
	slices.SortStableFunc(uses, func(a, b addrUse) int {
		return cmp.Or(cmp.Compare(a.pos.Line, b.pos.Line), cmp.Compare(a.pos.Col, b.pos.Col))
	})
	first := map[netip.Addr]addrUse{}
	for _, u := range uses {
		if f, dup := first[u.pfx.Addr()]; dup {
			p.errorf(u.pos, u.path, "address %s is already used %s, by %s (line %d)", u.pfx.Addr(), where, f.owner, f.pos.Line)
			continue
		}
		first[u.pfx.Addr()] = u
	}
}

// checkRoutes checks a namespace's routes: dev names a device there, the
// gateway is on a connected prefix (the kernel refuses "Nexthop has invalid
// gateway" otherwise), and no destination+metric repeats.
func (p *parser) checkRoutes(ni *nsInfo) {
	// connected maps each device of the namespace to its prefixes.
	connected := map[string][]netip.Prefix{}
	for _, ii := range ni.ifaces {
		connected[ii.iface.Name] = ii.iface.Addresses
	}
	complete := !ni.addrBad
	if ni.ns.IsHost() {
		for _, bi := range p.bridges {
			connected[bi.b.Name] = bi.b.Addresses
			complete = complete && !bi.addrBad
		}
		for _, l := range p.lab.Links {
			if l.B.NS == Host && l.B.Bridge == "" {
				if _, ok := connected[l.B.Name]; !ok {
					connected[l.B.Name] = nil
				}
			}
		}
	}
	type routeKey struct {
		to     netip.Prefix
		metric int
	}
	first := map[routeKey]*routeInfo{}
	all := newPrefixSet(connected)
	for _, ri := range ni.routes {
		if !ri.ok {
			continue
		}
		r := ri.r
		if r.Dev != "" {
			if _, ok := connected[r.Dev]; !ok {
				p.errorf(ri.devPos, join(ri.path, "dev"), "%s has no device %s", nsLabel(ni), r.Dev)
				continue
			}
		}
		k := routeKey{r.To, r.Metric}
		if f, dup := first[k]; dup {
			p.errorf(r.Pos, ri.path, "duplicate route to %s with metric %d (first at line %d)", r.Dest(), r.Metric, f.r.Pos.Line)
			continue
		}
		first[k] = ri
		if !r.Via.IsValid() || !complete {
			continue
		}
		p.checkGateway(ni, ri, connected, all)
	}
}

// prefixSet answers "is this address in one of these prefixes" in time
// independent of the number of prefixes: one lookup per prefix length.
type prefixSet struct {
	nets map[netip.Prefix]bool
	bits []int
	own  map[netip.Addr]bool
}

func newPrefixSet(connected map[string][]netip.Prefix) *prefixSet {
	s := &prefixSet{nets: map[netip.Prefix]bool{}, own: map[netip.Addr]bool{}}
	seenBits := map[int]bool{}
	for _, pfxs := range connected {
		for _, a := range pfxs {
			s.nets[a.Masked()] = true
			s.own[a.Addr()] = true
			if !seenBits[a.Bits()] {
				seenBits[a.Bits()] = true
				s.bits = append(s.bits, a.Bits())
			}
		}
	}
	return s
}

func (s *prefixSet) contains(a netip.Addr) bool {
	for _, b := range s.bits {
		if pfx, err := a.Prefix(b); err == nil && s.nets[pfx] {
			return true
		}
	}
	return false
}

func (p *parser) checkGateway(ni *nsInfo, ri *routeInfo, connected map[string][]netip.Prefix, all *prefixSet) {
	r := ri.r
	path := join(ri.path, "via")
	if r.Via.Is6() && r.Via.IsLinkLocalUnicast() {
		if r.Dev == "" {
			p.errorf(ri.viaPos, path, "link-local gateway %s needs dev: it is reachable on every interface", r.Via)
		}
		return
	}
	if all.own[r.Via] {
		p.errorf(ri.viaPos, path, "gateway %s is an address of %s itself", r.Via, nsLabel(ni))
		return
	}
	where := nsLabel(ni)
	if r.Dev == "" {
		if all.contains(r.Via) {
			return
		}
	} else {
		for _, a := range connected[r.Dev] {
			if a.Masked().Contains(r.Via) {
				return
			}
		}
		where = "device " + r.Dev + " of " + where
	}
	p.errorf(ri.viaPos, path, "gateway %s is not on a connected prefix of %s: give one of its interfaces an address in that subnet", r.Via, where)
}

func nsLabel(ni *nsInfo) string {
	if ni.ns.IsHost() {
		return "the host namespace"
	}
	return "namespace " + ni.ns.Name
}
