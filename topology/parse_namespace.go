package topology

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// parseNamespaceBody fills a namespace (section "namespace") or the host
// (section "host"); both hold interfaces, routes and sysctls.
func (p *parser) parseNamespaceBody(ni *nsInfo, n *yaml.Node, sec string) {
	f := p.fields(n, ni.path, sec)
	if e, ok := f["machine"]; ok {
		ni.machine = p.machineRefs(e, false)
	}
	if e, ok := f["interfaces"]; ok {
		for _, ie := range p.entries(e.v, e.path) {
			if ie.key == "lo" && !ni.ns.IsHost() {
				p.parseLoopback(ie, ni)
				continue
			}
			ii := p.parseInterface(ie, ni)
			ni.ifaces = append(ni.ifaces, ii)
			ni.ns.Interfaces = append(ni.ns.Interfaces, ii.iface)
		}
	}
	if e, ok := f["routes"]; ok {
		for i, item := range p.list(e) {
			ri := p.parseRoute(item, index(e.path, i))
			ni.routes = append(ni.routes, ri)
			if ri.ok {
				ni.ns.Routes = append(ni.ns.Routes, ri.r)
			}
		}
	}
	if e, ok := f["sysctls"]; ok {
		for _, se := range p.entries(e.v, e.path) {
			if s, ok := p.parseSysctl(se); ok {
				ni.ns.Sysctls = append(ni.ns.Sysctls, s)
			}
		}
	}
	if e, ok := f["nat"]; ok {
		for i, item := range p.list(e) {
			if r, ok := p.parseNAT(item, index(e.path, i)); ok {
				ni.ns.NAT = append(ni.ns.NAT, r)
			}
		}
	}
	if e, ok := f["tuns"]; ok {
		for _, te := range p.entries(e.v, e.path) {
			ni.ns.TUNs = append(ni.ns.TUNs, p.parseTUN(te, ni.ns.Name))
		}
	}
	if e, ok := f["taps"]; ok {
		for _, te := range p.entries(e.v, e.path) {
			ni.ns.TAPs = append(ni.ns.TAPs, p.parseTAP(te, ni.ns.Name))
		}
	}
	if e, ok := f["files"]; ok {
		p.parseFiles(e, ni.ns)
	}
	if e, ok := f["dirs"]; ok {
		p.parseDirs(e, ni.ns)
	}
	if e, ok := f["services"]; ok {
		for _, se := range p.entries(e.v, e.path) {
			if s := p.parseService(se, ni.ns); s != nil {
				ni.ns.Services = append(ni.ns.Services, s)
			}
		}
	}
}

// parseLoopback reads a namespace's lo: only its addresses, which may be
// any unicast address (a router id, an anycast /32).
func (p *parser) parseLoopback(e entry, ni *nsInfo) {
	var ae entry
	found := false
	for _, fe := range p.entries(e.v, e.path) {
		if fe.key != "addresses" {
			p.errorf(pos(fe.k), fe.path, "lo takes only addresses: it is the loopback device every namespace already has")
			continue
		}
		ae, found = fe, true
	}
	if !found {
		return
	}
	for i, item := range p.list(ae) {
		path := index(ae.path, i)
		if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
			p.errorf(pos(item), path, "want an address such as 10.255.0.1/32, got %s", describe(item))
			continue
		}
		// A loopback address belongs here (lo has 127.0.0.1/8 and ::1
		// already; others of 127/8 are fine).
		pfx, err := netip.ParsePrefix(item.Value)
		if err != nil || !pfx.Addr().IsLoopback() {
			var msg string
			if pfx, msg = parseAddress(item.Value); msg != "" {
				p.errorf(pos(item), path, "%s", msg)
				continue
			}
		}
		ni.ns.Loopback = append(ni.ns.Loopback, pfx)
	}
}

func (p *parser) parseInterface(e entry, ni *nsInfo) *ifaceInfo {
	ii := &ifaceInfo{
		iface: &Interface{Name: e.key, NS: ni.ns.Name, Pos: pos(e.k)},
		ns:    ni,
		path:  e.path,
	}
	if msg := checkIfName(e.key, "interface"); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
	} else if e.key == "lo" {
		p.errorf(pos(e.k), e.path, "lo is the loopback device every namespace already has")
	}
	f := p.fields(e.v, e.path, "interface")
	if pe, ok := f["peer"]; ok {
		if s, ok := p.str(pe); ok {
			ii.peer, ii.peerPos, ii.peerSet = s, pos(pe.v), true
		} else {
			ii.peerBad = true
		}
	}
	if ae, ok := f["addresses"]; ok {
		var bad bool
		ii.iface.Addresses, ii.addrPos, bad = p.addresses(ae)
		ni.addrBad = ni.addrBad || bad
	}
	if me, ok := f["mac"]; ok {
		if s, ok := p.str(me); ok {
			mac, msg := parseMAC(s)
			if msg != "" {
				p.errorf(pos(me.v), me.path, "%s", msg)
			}
			ii.iface.MAC = mac
		}
	}
	if me, ok := f["mtu"]; ok {
		ii.iface.MTU, _ = p.integer(me, minMTU, maxMTU)
		p.checkIPv6MTU(me, ii.iface.MTU, ii.iface.Addresses)
	}
	if ve, ok := f["vni"]; ok {
		ii.iface.VNI, _ = p.integer(ve, minVNI, maxVNI)
		ii.vni = &ve
	}
	if ie, ok := f["impair"]; ok {
		p.addImpair(p.parseImpair(ie, ni.ns.Name, e.key))
	}
	if ve, ok := f["vlans"]; ok {
		if ni.ns.IsHost() {
			p.errorf(pos(ve.k), ve.path, "VLAN interfaces go on an interface inside a lab namespace, not the host's")
		} else {
			p.parseVLANInterfaces(ve, ii)
		}
	}
	return ii
}

// addImpair keeps a parsed impair: block (nil: empty or invalid).
func (p *parser) addImpair(im *Impairment) {
	if im != nil {
		p.impairs = append(p.impairs, im)
	}
}

// checkIPv6MTU catches an MTU too small for IPv6 on a device that has IPv6
// addresses: the kernel would silently disable IPv6 there.
func (p *parser) checkIPv6MTU(e entry, mtu int, addrs []netip.Prefix) {
	if mtu == 0 || mtu >= minIPv6MTU {
		return
	}
	for _, a := range addrs {
		if a.Addr().Is6() {
			p.errorf(pos(e.v), e.path, "%d is below %d, the IPv6 minimum, and %s is an IPv6 address", mtu, minIPv6MTU, a)
			return
		}
	}
}

// addresses parses a list of interface addresses. They are written with the
// host part (10.0.0.1/24) and kept that way: the prefix length gives the
// connected route, the address is what the interface answers to.
func (p *parser) addresses(e entry) (out []netip.Prefix, at []Pos, bad bool) {
	for i, item := range p.list(e) {
		path := index(e.path, i)
		s, ok := p.str(entry{k: item, v: item, path: path})
		if !ok {
			bad = true
			continue
		}
		pfx, msg := parseAddress(s)
		if msg != "" {
			p.errorf(pos(item), path, "%s", msg)
			bad = true
			continue
		}
		out = append(out, pfx)
		at = append(at, pos(item))
	}
	if e.v.Kind != yaml.SequenceNode && !isNull(e.v) {
		bad = true
	}
	return out, at, bad
}

func parseAddress(s string) (netip.Prefix, string) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Zone() != "" {
			// netip takes everything after % for the zone, "/64" included.
			plain, _, _ := strings.Cut(s, "%")
			_, bits, _ := strings.Cut(a.Zone(), "/")
			if bits == "" {
				bits = "64"
			}
			return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q: an interface address has no zone (the interface is its zone): write %s/%s", s, plain, bits)
		} else if aerr == nil {
			return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q: missing /prefix-length, such as %s/24", s, s)
		}
		return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q", s)
	}
	a := pfx.Addr()
	switch {
	case a.IsLoopback():
		return netip.Prefix{}, fmt.Sprintf("%s is a loopback address: it belongs on lo, not on a link", s)
	case a.Is4In6():
		return netip.Prefix{}, fmt.Sprintf("%s is an IPv4-mapped IPv6 address: write the IPv4 address", s)
	case a.IsUnspecified() || a.IsMulticast():
		return netip.Prefix{}, fmt.Sprintf("%s is not a unicast address", s)
	}
	return pfx, ""
}

func parseMAC(s string) (net.HardwareAddr, string) {
	mac, err := net.ParseMAC(s)
	switch {
	case err != nil || len(mac) != 6:
		return nil, fmt.Sprintf("invalid MAC address %q: want 6 bytes, such as 02:00:00:00:00:01", s)
	case mac[0]&1 == 1:
		return nil, fmt.Sprintf("%s is a multicast MAC address: the first byte must be even", mac)
	case bytes.Equal(mac, make([]byte, 6)):
		return nil, "00:00:00:00:00:00 is not a usable MAC address"
	}
	return mac, ""
}

// parseSysctl reads one "key: value" sysctl. Booleans become 1 and 0, the
// way the kernel spells them.
func (p *parser) parseSysctl(e entry) (Sysctl, bool) {
	ok := true
	if msg := checkSysctlKey(e.key); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
		ok = false
	}
	s := Sysctl{Key: e.key, Pos: pos(e.k)}
	v := e.v
	switch {
	case v.Kind != yaml.ScalarNode:
		p.errorf(pos(v), e.path, "want an integer, string or boolean, got %s", describe(v))
		return s, false
	case v.ShortTag() == "!!int":
		var i int64
		if err := v.Decode(&i); err != nil {
			p.errorf(pos(v), e.path, "%s is out of range for a 64-bit integer", v.Value)
			return s, false
		}
		s.Value = strconv.FormatInt(i, 10)
	case v.ShortTag() == "!!bool":
		var b bool
		if err := v.Decode(&b); err != nil {
			p.errorf(pos(v), e.path, "invalid boolean %q", v.Value)
			return s, false
		}
		s.Value = "0"
		if b {
			s.Value = "1"
		}
	case v.ShortTag() == "!!str":
		if strings.TrimSpace(v.Value) == "" || strings.ContainsAny(v.Value, "\n\r\x00") {
			p.errorf(pos(v), e.path, "want a value on one line, got %q", v.Value)
			return s, false
		}
		s.Value = v.Value
	default:
		p.errorf(pos(v), e.path, "want an integer, string or boolean, got %s", describe(v))
		return s, false
	}
	return s, ok
}
