package plan

import (
	"fmt"
	"slices"

	"github.com/netlab-dev/netlab/internal/openflow"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// portBridge returns the OVS bridge a host interface should be a port of
// (a lookup in a map made once per plan: a walk of every port for each
// made planning quadratic in the lab's size).
func (p *planner) portBridge(name string) string {
	if p.portBridges == nil {
		p.portBridges = map[string]string{}
		for _, b := range p.lab.Bridges {
			for _, port := range b.Ports {
				if _, dup := p.portBridges[port.Name]; !dup {
					p.portBridges[port.Name] = b.Name
				}
			}
		}
	}
	return p.portBridges[name]
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
				p.emit(AddBridge{Bridge: b.Name, Datapath: dp, FailMode: fm})
				if len(b.Controllers) > 0 {
					p.emit(SetControllers{Bridge: b.Name, Targets: controllerTargets(b)})
				}
				continue
			}
			if normFailMode(o.FailMode) != fm {
				p.emit(SetFailMode{Bridge: b.Name, FailMode: fm})
			}
			if want, have := controllerTargets(b), state.Targets(o.Controllers); !slices.Equal(want, have) {
				p.emit(SetControllers{Bridge: b.Name, Targets: want})
			}
		case topology.BridgeLinux:
			if l := p.observedLink(topology.Host, b.Name); l == nil || l.Kind != state.KindBridge {
				p.emit(AddLinuxBridge{NS: topology.Host, Link: b.Name, Alias: state.LinkAlias(p.lab.Name, topology.Host, b.Name)})
				if b.VLANFiltering {
					p.emit(SetVLANFiltering{Bridge: b.Name, On: true})
				}
			} else if l.VLANFiltering != b.VLANFiltering {
				p.emit(SetVLANFiltering{Bridge: b.Name, On: b.VLANFiltering})
			}
		}
	}
}

// controllerTargets lists a bridge's controller targets, sorted (Open
// vSwitch keeps them as a set).
func controllerTargets(b *topology.Bridge) []string {
	var out []string
	for _, c := range b.Controllers {
		out = append(out, c.Target)
	}
	slices.Sort(out)
	return out
}

// internalPort says whether name is an internal port of the bridge in the
// file.
func (p *planner) internalPort(bridge, name string) bool {
	if b := p.lab.Bridge(bridge); b != nil {
		for _, port := range b.Ports {
			if port.Name == name {
				return port.Internal
			}
		}
	}
	return false
}

// portVLAN is the VLAN setting of a file's port in the snapshot's words.
func portVLAN(v *topology.VLAN) *state.PortVLAN {
	if v == nil {
		return nil
	}
	return &state.PortVLAN{Mode: v.Mode, Tag: v.Tag, Trunks: slices.Clone(v.Trunks)}
}

func normFailMode(m string) string {
	if m == "" {
		return topology.FailStandalone
	}
	return m
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
			if port.Internal {
				p.portType[key(b.Name, port.Name)] = topology.PortInternal
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
			if port.Internal || op == nil || op.Owner != p.lab.Name || p.exists(topology.Host, port.Name) == nil {
				continue
			}
			t := p.portType[key(b.Name, port.Name)]
			if observedPortType(op) != t && sel(t) {
				set = append(set, Port{Name: port.Name, OFPort: port.OFPort, Type: t, Auto: autoAFXDP(b, t)})
			}
		}
		if len(set) > 0 {
			p.emit(SetPortType{Bridge: b.Name, Ports: set})
		}
	}
}

func (p *planner) ports() {
	for _, b := range p.lab.Bridges {
		if b.Type != topology.BridgeOVS {
			continue
		}
		o := p.snap.Bridges[b.Name]
		var add, fix, vlans []Port
		for _, port := range b.Ports {
			var op *state.Port
			// An internal port's device is Open vSwitch's to make.
			if o != nil && (port.Internal || p.exists(topology.Host, port.Name) != nil) {
				op = o.Ports[port.Name]
			}
			if port.Internal && op != nil && op.Type != topology.PortInternal {
				op = nil // deleted by deletions, added again
			}
			want := portVLAN(port.VLAN)
			switch {
			case op == nil || op.Owner != p.lab.Name:
				t := p.portType[key(b.Name, port.Name)]
				if t == topology.PortTypeSystem {
					t = "" // OVS's default; the plan does not spell it
				}
				add = append(add, Port{Name: port.Name, OFPort: port.OFPort, Type: t, Auto: autoAFXDP(b, t), VLAN: want})
				continue
			case op.OFPortRequest != port.OFPort || op.OFPort != port.OFPort:
				fix = append(fix, Port{Name: port.Name, OFPort: port.OFPort})
			}
			if !want.Equal(op.VLAN) {
				vlans = append(vlans, Port{Name: port.Name, OFPort: port.OFPort, VLAN: want})
			}
		}
		if len(add) > 0 {
			p.emit(AddPorts{Bridge: b.Name, Ports: add})
		}
		if len(fix) > 0 {
			p.emit(SetOFPort{Bridge: b.Name, Ports: fix})
		}
		if len(vlans) > 0 {
			p.emit(SetPortVLAN{Bridge: b.Name, Ports: vlans})
		}
	}
	p.setPortTypes(func(t string) bool { return t != topology.PortTypeSystem })
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
				p.emit(DelFlows{Bridge: b.Name, Cookie: cookie})
			}
			continue
		}
		if o == nil || !o.FlowsInSync || failModeChanged {
			p.emit(SetFlows{Bridge: b.Name, Cookie: cookie,
				Flows: openflow.BridgeFlows(b, state.LearnCookie(p.lab.Name)), OneByOne: p.snap.FlowsOneByOne[b.Name]})
		}
	}
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
		p.emit(DetachExternal{Bridge: prev.Bridge, Link: name, BridgeType: typ})
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
				p.emit(AttachExternal{Bridge: b.Name, Link: x.Name, BridgeType: b.Type,
					Ports: []Port{{Name: x.Name, OFPort: x.OFPort}}})
			}
		}
	}
}
