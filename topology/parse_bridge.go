package topology

import (
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
	}
	return bi
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
