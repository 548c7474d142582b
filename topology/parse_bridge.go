package topology

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

func (p *parser) parseBridge(e entry) *bridgeInfo {
	b := &Bridge{Name: e.key, Type: BridgeOVS, Pos: pos(e.k)}
	bi := &bridgeInfo{b: b, path: e.path}
	if msg := checkIfName(e.key, "bridge"); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
	} else if e.key == Host {
		p.errorf(pos(e.k), e.path, "host names the root namespace in peers (host/<ifname>); pick another bridge name")
	}
	f := p.fields(e.v, e.path, "bridge")
	if te, ok := f["type"]; ok {
		if t, ok := p.oneOf(te, BridgeOVS, BridgeLinux); ok {
			b.Type = t
		}
	}
	if fe, ok := f["fail-mode"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, fe)
		if m, ok := p.oneOf(fe, FailStandalone, FailSecure); ok {
			b.FailMode = m
		}
	}
	if de, ok := f["datapath"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, de)
		if d, ok := p.oneOf(de, DatapathNetdev, DatapathSystem); ok {
			b.Datapath = d
		}
	}
	if pe, ok := f["port-type"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, pe)
		bi.portType = &pe
		if t, ok := p.oneOf(pe, PortTypeAuto, PortTypeSystem, PortTypeAFXDPNonPMD, PortTypeAFXDP); ok {
			b.PortType = t
		}
	}
	if ae, ok := f["addresses"]; ok {
		b.Addresses, bi.addrPos, bi.addrBad = p.addresses(ae)
	}
	if me, ok := f["mtu"]; ok {
		b.MTU, _ = p.integer(me, minMTU, maxMTU)
		p.checkIPv6MTU(me, b.MTU, b.Addresses)
	}
	if pe, ok := f["ports"]; ok {
		for _, se := range p.entries(pe.v, pe.path) {
			ps := &portSetting{name: se.key, path: se.path, pos: pos(se.k)}
			pf := p.fields(se.v, se.path, "port")
			if oe, ok := pf["ofport"]; ok {
				ps.ofportKey = &oe
				ps.ofport, _ = p.integer(oe, minOFPort, maxOFPort)
			}
			if ie, ok := pf["impair"]; ok {
				// The bridge side of the veth: the port in the host namespace.
				p.addImpair(p.parseImpair(ie, Host, se.key))
			}
			if te, ok := pf["type"]; ok {
				ps.typeKey = &te
				if _, ok := p.oneOf(te, PortInternal); ok {
					ps.internal = true
				}
			}
			if ve, ok := pf["vlan"]; ok {
				ps.vlanKey = &ve
				ps.vlan = p.parseVLAN(ve)
			}
			bi.settings = append(bi.settings, ps)
		}
	}
	if oe, ok := f["openflow"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, oe)
		p.parseOpenFlow(oe, b)
	}
	if me, ok := f["machine"]; ok {
		bi.machines = p.machineRefs(me, false)
	}
	if me, ok := f["machines"]; ok {
		if bi.machines != nil {
			p.errorf(pos(me.k), me.path, "give machine: or machines:, not both")
		}
		bi.machines = p.machineRefs(me, true)
	}
	if ve, ok := f["vni"]; ok {
		b.VNI, _ = p.integer(ve, minVNI, maxVNI)
		bi.vni = &ve
	}
	if fe, ok := f["flows"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, fe)
		for _, it := range p.stringList(fe, "a flow in ovs-ofctl syntax as a string") {
			if msg := checkFlowText(it.value); msg != "" {
				p.errorf(it.pos, it.path, "%s", msg)
				continue
			}
			b.Flows = append(b.Flows, Flow{Text: it.value, Pos: it.pos, Path: it.path})
		}
	}
	if ce, ok := f["controller"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, ce)
		p.parseControllers(ce, b)
	}
	if ve, ok := f["vlan-filtering"]; ok {
		bi.linuxOnly = append(bi.linuxOnly, ve)
		b.VLANFiltering, _ = p.boolean(ve)
		b.VLANFilteringPos = pos(ve.k)
	}
	if xe, ok := f["external"]; ok {
		for _, it := range p.stringList(xe, "an interface name") {
			if msg := checkIfName(it.value, "interface"); msg != "" {
				p.errorf(it.pos, it.path, "%s", msg)
				continue
			}
			b.External = append(b.External, ExternalPort{Name: it.value, Pos: it.pos, Path: it.path})
		}
	}
	if b.Type == BridgeOVS {
		if b.FailMode == "" {
			b.FailMode = FailStandalone
		}
		if b.PortType == "" {
			b.PortType = PortTypeAuto
		}
		for _, le := range bi.linuxOnly {
			p.errorf(pos(le.k), le.path, "only Linux bridges have %s; on Open vSwitch give ports a vlan: (tag, trunks)", le.key)
		}
		b.VLANFiltering = false
		for _, ps := range bi.settings {
			if ps.vlan != nil && b.OpenFlow != "" {
				p.errorf(pos(ps.vlanKey.k), ps.vlanKey.path, "a port's vlan: acts through Open vSwitch's normal switching, which openflow: %s replaces with its own tables; write the VLANs in flows: instead, or drop openflow:", b.OpenFlow)
			}
		}
		return bi
	}
	b.FailMode, b.PortType = "", ""
	for _, oe := range bi.ovsOnly {
		p.errorf(pos(oe.k), oe.path, "only Open vSwitch bridges have %s; this bridge is type: linux", oe.key)
	}
	for _, ps := range bi.settings {
		if ps.ofportKey != nil {
			p.errorf(pos(ps.ofportKey.k), ps.ofportKey.path, "only Open vSwitch bridges have OpenFlow port numbers; this bridge is type: linux")
		}
		if ps.typeKey != nil {
			p.errorf(pos(ps.typeKey.k), ps.typeKey.path, "only Open vSwitch bridges have internal ports; this bridge is type: linux")
			ps.internal = false
		}
		v := ps.vlan
		switch {
		case v == nil:
		case !b.VLANFiltering:
			p.errorf(v.Pos, v.Path, "a Linux bridge forwards by VLAN only with vlan-filtering: true on the bridge (line %d)", b.Pos.Line)
		case v.Mode == VLANTrunk && len(v.Trunks) == 0:
			p.errorf(v.Pos, v.Path, "a Linux bridge port carries the VLANs it lists: give trunks: [20, 30]")
		}
	}
	return bi
}

// parseControllers reads `controller: tcp:127.0.0.1:6653` or a list of
// targets, as ovs-vsctl set-controller takes them.
func (p *parser) parseControllers(e entry, b *Bridge) {
	var items []listItem
	if e.v.Kind == yaml.ScalarNode {
		if s, ok := p.str(e); ok {
			items = []listItem{{value: s, pos: pos(e.v), path: e.path}}
		}
	} else {
		items = p.stringList(e, "a controller target such as tcp:127.0.0.1:6653")
	}
	seen := map[string]Pos{}
	for _, it := range items {
		if msg := checkController(it.value); msg != "" {
			p.errorf(it.pos, it.path, "controller %q: %s", it.value, msg)
			continue
		}
		if at, dup := seen[it.value]; dup {
			p.errorf(it.pos, it.path, "controller %q is already given (line %d)", it.value, at.Line)
			continue
		}
		seen[it.value] = it.pos
		b.Controllers = append(b.Controllers, Controller{Target: it.value, Pos: it.pos, Path: it.path})
	}
}

// checkController checks a controller target the way ovs-vsctl's
// set-controller would take it (ovs-vsctl(8), "Controller Connection
// Methods"): tcp:IP[:PORT], ptcp:[PORT][:IP], unix:FILE, punix:FILE. IPv6
// addresses go in brackets (tcp:[::1]:6653).
func checkController(t string) string {
	method, rest, ok := strings.Cut(t, ":")
	if !ok {
		return "want tcp:IP:PORT, ptcp:PORT[:IP], unix:FILE or punix:FILE"
	}
	port := func(s string) bool {
		n, err := strconv.Atoi(s)
		return err == nil && n >= 1 && n <= 65535
	}
	ip := func(s string) bool {
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			a, err := netip.ParseAddr(s[1 : len(s)-1])
			return err == nil && a.Is6()
		}
		a, err := netip.ParseAddr(s)
		return err == nil && a.Is4()
	}
	// splitLast splits "IP:PORT" at the port's colon (IPv6 in brackets).
	splitLast := func(s string) (string, string, bool) {
		i := strings.LastIndex(s, ":")
		if i < 0 || strings.HasSuffix(s, "]") {
			return s, "", false
		}
		return s[:i], s[i+1:], true
	}
	switch method {
	case "tcp":
		host, p, hasPort := splitLast(rest)
		if !ip(host) || hasPort && !port(p) {
			return "want tcp:IP[:PORT], such as tcp:127.0.0.1:6653"
		}
	case "ptcp":
		if rest == "" {
			return ""
		}
		p, host, hasHost := strings.Cut(rest, ":")
		if p != "" && !port(p) || hasHost && !ip(host) {
			return "want ptcp:[PORT][:IP], such as ptcp:6653 or ptcp:6653:127.0.0.1"
		}
	case "unix", "punix":
		if rest == "" || !strings.HasPrefix(rest, "/") {
			return "want " + method + ":/absolute/path"
		}
	case "ssl", "pssl":
		return "SSL controllers need certificates netlab does not manage; use tcp: or ptcp:"
	default:
		return "want tcp:IP:PORT, ptcp:PORT[:IP], unix:FILE or punix:FILE"
	}
	return ""
}

// parseVLAN reads a port's `vlan: {mode: access, tag: 20}`,
// `{mode: trunk, trunks: [20, 30]}` or a native mode with both. Without
// mode, a tag alone is access and trunks alone a trunk.
func (p *parser) parseVLAN(e entry) *VLAN {
	v := &VLAN{Pos: pos(e.v), Path: e.path}
	f := p.fields(e.v, e.path, "vlan")
	ok := true
	var modeSet bool
	if me, has := f["mode"]; has {
		m, good := p.oneOf(me, VLANAccess, VLANTrunk, VLANNativeTagged, VLANNativeUntagged)
		v.Mode, modeSet, ok = m, good, ok && good
	}
	te, hasTag := f["tag"]
	if hasTag {
		t, good := p.integer(te, MinVLAN, MaxVLAN)
		v.Tag, ok = t, ok && good
	}
	tre, hasTrunks := f["trunks"]
	if hasTrunks {
		seen := map[int]bool{}
		for i, item := range p.list(tre) {
			ie := entry{key: tre.key, k: tre.k, v: item, path: index(tre.path, i)}
			n, good := p.integer(ie, MinVLAN, MaxVLAN)
			switch {
			case !good:
				ok = false
			case seen[n]:
				p.errorf(pos(item), ie.path, "VLAN %d is already listed", n)
				ok = false
			default:
				seen[n] = true
				v.Trunks = append(v.Trunks, n)
			}
		}
		slices.Sort(v.Trunks)
	}
	if !ok {
		return nil
	}
	if !modeSet {
		switch {
		case hasTag && hasTrunks:
			p.errorf(v.Pos, e.path+".mode", "a tag and trunks: say mode: native-untagged (the tag's VLAN untagged) or native-tagged")
			return nil
		case hasTag:
			v.Mode = VLANAccess
		case hasTrunks:
			v.Mode = VLANTrunk
		default:
			p.errorf(v.Pos, e.path, "say which VLANs: tag: 20 (an access port) or trunks: [20, 30]")
			return nil
		}
	}
	switch v.Mode {
	case VLANAccess:
		if !hasTag {
			p.errorf(v.Pos, e.path+".tag", "required: an access port's VLAN, such as tag: 20")
			return nil
		}
		if hasTrunks {
			p.errorf(pos(tre.k), tre.path, "an access port carries one VLAN (its tag); trunks: go with mode: trunk or a native mode")
			return nil
		}
	case VLANTrunk:
		if hasTag {
			p.errorf(pos(te.k), te.path, "a trunk port has no tag; for a VLAN carried untagged on a trunk say mode: native-untagged")
			return nil
		}
	default:
		if !hasTag {
			p.errorf(v.Pos, e.path+".tag", "required: the native VLAN of mode %s, such as tag: 10", v.Mode)
			return nil
		}
		if slices.Contains(v.Trunks, v.Tag) {
			p.errorf(pos(tre.k), tre.path, "the native VLAN %d is carried anyway; leave it out of trunks:", v.Tag)
			return nil
		}
	}
	return v
}

// parseOpenFlow reads `openflow: learning-switch` or the long form
// `openflow: {preset: learning-switch, idle-timeout: 300}`.
func (p *parser) parseOpenFlow(e entry, b *Bridge) {
	b.LearnIdleTimeout = DefaultLearnIdleTimeout
	if e.v.Kind == yaml.ScalarNode {
		if s, ok := p.oneOf(e, PresetLearningSwitch); ok {
			b.OpenFlow = s
		}
		return
	}
	f := p.fields(e.v, e.path, "openflow")
	if pe, ok := f["preset"]; ok {
		if s, ok := p.oneOf(pe, PresetLearningSwitch); ok {
			b.OpenFlow = s
		}
	} else {
		p.errorf(pos(e.v), e.path+".preset", "required: the preset, such as preset: learning-switch")
	}
	if te, ok := f["idle-timeout"]; ok {
		if n, ok := p.integer(te, 1, 65535); ok {
			b.LearnIdleTimeout = n
		}
	}
}

// checkFlowText catches what the file must not say in a flow; the flow's
// syntax itself is checked by Open vSwitch (ovs-ofctl) before up.
func checkFlowText(s string) string {
	t := strings.TrimSpace(s)
	if t == "" {
		return "empty flow"
	}
	if strings.ContainsAny(t, "\n\r") {
		return "a flow is one line"
	}
	low := strings.ToLower(t)
	for _, field := range strings.FieldsFunc(low, func(r rune) bool { return r == ',' || r == ' ' }) {
		if strings.HasPrefix(field, "cookie=") {
			return "flows must not set cookie=: netlab marks the lab's flows with its own cookie"
		}
	}
	if !strings.Contains(low, "actions=") {
		return "a flow needs actions= (such as actions=drop)"
	}
	return ""
}

// parseVLANInterfaces reads an interface's `vlans: [{id: 20, addresses:
// [...]}]`: 802.1Q interfaces on it (ip link add link eth0 name eth0.20
// type vlan id 20), named PARENT.ID unless name: says otherwise.
func (p *parser) parseVLANInterfaces(e entry, ii *ifaceInfo) {
	seen := map[int]Pos{}
	for i, item := range p.list(e) {
		path := index(e.path, i)
		v := &VLANInterface{Parent: ii.iface.Name, NS: ii.iface.NS, Pos: pos(item), Path: path}
		f := p.fields(item, path, "vlan-interface")
		ie, ok := f["id"]
		if !ok {
			p.errorf(pos(item), path+".id", "required: the VLAN, such as id: 20")
			continue
		}
		id, good := p.integer(ie, MinVLAN, MaxVLAN)
		if !good {
			continue
		}
		if at, dup := seen[id]; dup {
			p.errorf(pos(ie.v), ie.path, "VLAN %d is already on %s (line %d)", id, ii.iface.Name, at.Line)
			continue
		}
		seen[id] = pos(ie.v)
		v.ID = id
		v.Name = fmt.Sprintf("%s.%d", ii.iface.Name, id)
		if ne, ok := f["name"]; ok {
			if s, ok := p.str(ne); ok {
				v.Name = s
			}
		}
		if msg := checkIfName(v.Name, "VLAN interface"); msg != "" {
			p.errorf(v.Pos, path, "%s (give a shorter name:)", msg)
			continue
		}
		if ae, ok := f["addresses"]; ok {
			var bad bool
			v.Addresses, _, bad = p.addresses(ae)
			ii.ns.addrBad = ii.ns.addrBad || bad
		}
		ii.iface.VLANs = append(ii.iface.VLANs, v)
	}
}
