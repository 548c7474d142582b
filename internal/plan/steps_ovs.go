package plan

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Open vSwitch's kinds: bridges, ports, flows, and the user's interfaces
// attached to a lab bridge (OVS or Linux).
const (
	OpAddBridge      Op = "add-bridge"
	OpSetFailMode    Op = "set-fail-mode"
	OpDelBridge      Op = "del-bridge"
	OpAddPorts       Op = "add-ports"
	OpDelPorts       Op = "del-ports"
	OpSetOFPort      Op = "set-ofport"
	OpSetPortType    Op = "set-port-type"
	OpSetFlows       Op = "set-flows"
	OpDelFlows       Op = "del-flows"
	OpAttachExternal Op = "attach-external"
	OpDetachExternal Op = "detach-external"
	OpSetPortVLAN    Op = "set-port-vlan"
	OpSetControllers Op = "set-controllers"
)

// ovsKinds are Open vSwitch's rows of the table of kinds.
var ovsKinds = map[Op]kind{
	OpAddBridge:      {},
	OpSetFailMode:    {},
	OpDelBridge:      {down: 4},
	OpAddPorts:       {},
	OpDelPorts:       {down: 3},
	OpSetOFPort:      {},
	OpSetPortType:    {},
	OpSetFlows:       {},
	OpDelFlows:       {},
	OpAttachExternal: {},
	OpDetachExternal: {down: 2},
	OpSetPortVLAN:    {},
	OpSetControllers: {},
}

// Port is an OVS port of a ports step.
type Port struct {
	Name   string `json:"name"`
	OFPort int    `json:"ofport"`
	// Type is the Interface type (add-ports, set-port-type): "system"
	// (AF_PACKET, OVS's default; omitted) or an AF_XDP type.
	Type string `json:"type,omitempty"`
	// Auto says port-type auto chose the AF_XDP type: if Open vSwitch
	// cannot open the port that way, up falls back to a system port.
	Auto bool `json:"auto,omitempty"`
	// VLAN is the Port's vlan_mode, tag and trunks (add-ports,
	// set-port-vlan); nil: none.
	VLAN *state.PortVLAN `json:"vlan,omitempty"`
}

// vlanCommand renders the ovs-vsctl words that give a port its VLAN
// setting (nil: none).
func vlanCommand(name string, v *state.PortVLAN) string {
	if v == nil {
		return "clear Port " + name + " tag trunks vlan_mode"
	}
	var trunks []string
	for _, t := range v.Trunks {
		trunks = append(trunks, strconv.Itoa(t))
	}
	c := fmt.Sprintf("set Port %s vlan_mode=%s trunks=[%s]", name, v.Mode, strings.Join(trunks, ","))
	if v.Tag != 0 {
		return c + " tag=" + strconv.Itoa(v.Tag)
	}
	return c + " -- clear Port " + name + " tag"
}

// portNames lists the names of ports.
func portNames(ports []Port) []string {
	names := make([]string, len(ports))
	for i, p := range ports {
		names[i] = p.Name
	}
	return names
}

// AddBridge makes an OVS bridge, marked, with its datapath and fail mode,
// in one transaction.
type AddBridge struct {
	Bridge   string `json:"bridge,omitempty"`
	Datapath string `json:"datapath,omitempty"`
	FailMode string `json:"fail_mode,omitempty"`
}

func (AddBridge) Op() Op          { return OpAddBridge }
func (s AddBridge) Scope() string { return bridgeScope(s.Bridge) }
func (AddBridge) sealed()         {}
func (s AddBridge) Command(lab string) string {
	return fmt.Sprintf("ovs-vsctl --may-exist add-br %s -- set Bridge %s datapath_type=%s fail_mode=%s external_ids:%s=%s",
		s.Bridge, s.Bridge, s.Datapath, s.FailMode, state.OVSLabKey, lab)
}

// SetFailMode changes an OVS bridge's fail mode.
type SetFailMode struct {
	Bridge   string `json:"bridge,omitempty"`
	FailMode string `json:"fail_mode,omitempty"`
}

func (SetFailMode) Op() Op          { return OpSetFailMode }
func (s SetFailMode) Scope() string { return bridgeScope(s.Bridge) }
func (SetFailMode) sealed()         {}
func (s SetFailMode) Command(string) string {
	return fmt.Sprintf("ovs-vsctl set-fail-mode %s %s", s.Bridge, s.FailMode)
}

// DelBridge deletes an OVS bridge of the lab (its ports go with it).
type DelBridge struct {
	Bridge string `json:"bridge,omitempty"`
}

func (DelBridge) Op() Op                  { return OpDelBridge }
func (s DelBridge) Scope() string         { return bridgeScope(s.Bridge) }
func (DelBridge) sealed()                 {}
func (s DelBridge) Command(string) string { return "ovs-vsctl --if-exists del-br " + s.Bridge }
func (s DelBridge) Removed(string) string { return "ovs bridge " + s.Bridge }

// AddPorts adds ports to an OVS bridge in one transaction, each with its
// OpenFlow port number and marker.
type AddPorts struct {
	Bridge string `json:"bridge,omitempty"`
	Ports  []Port `json:"ports,omitempty"`
}

func (AddPorts) Op() Op          { return OpAddPorts }
func (s AddPorts) Scope() string { return bridgeScope(s.Bridge) }
func (AddPorts) sealed()         {}
func (s AddPorts) Command(lab string) string {
	return vsctl(s.Ports, func(p Port) string {
		typ := ""
		if topology.IsAFXDP(p.Type) {
			typ = " type=" + p.Type + " options:xdp-mode=native"
		} else if p.Type == topology.PortInternal {
			typ = " type=internal"
		}
		c := fmt.Sprintf("--may-exist add-port %s %s -- set Interface %s ofport_request=%d%s -- set Port %s external_ids:%s=%s",
			s.Bridge, p.Name, p.Name, p.OFPort, typ, p.Name, state.OVSLabKey, lab)
		if p.VLAN != nil {
			c += " -- " + vlanCommand(p.Name, p.VLAN)
		}
		return c
	})
}

// SetPortVLAN gives OVS ports the VLAN settings the file wants (Port.VLAN;
// nil clears them).
type SetPortVLAN struct {
	Bridge string `json:"bridge,omitempty"`
	Ports  []Port `json:"ports,omitempty"`
}

func (SetPortVLAN) Op() Op          { return OpSetPortVLAN }
func (s SetPortVLAN) Scope() string { return bridgeScope(s.Bridge) }
func (SetPortVLAN) sealed()         {}
func (s SetPortVLAN) Command(string) string {
	return vsctl(s.Ports, func(p Port) string { return vlanCommand(p.Name, p.VLAN) })
}

// SetControllers makes an OVS bridge's OpenFlow controllers the file's
// (none: no controller).
type SetControllers struct {
	Bridge  string   `json:"bridge,omitempty"`
	Targets []string `json:"targets,omitempty"`
}

func (SetControllers) Op() Op          { return OpSetControllers }
func (s SetControllers) Scope() string { return bridgeScope(s.Bridge) }
func (SetControllers) sealed()         {}
func (s SetControllers) Command(string) string {
	if len(s.Targets) == 0 {
		return "ovs-vsctl del-controller " + s.Bridge
	}
	return "ovs-vsctl set-controller " + s.Bridge + " " + strings.Join(s.Targets, " ")
}

// DelPorts removes ports of the lab from an OVS bridge.
type DelPorts struct {
	Bridge string `json:"bridge,omitempty"`
	Ports  []Port `json:"ports,omitempty"`
}

func (DelPorts) Op() Op          { return OpDelPorts }
func (s DelPorts) Scope() string { return bridgeScope(s.Bridge) }
func (DelPorts) sealed()         {}
func (s DelPorts) Command(string) string {
	return vsctl(s.Ports, func(p Port) string { return fmt.Sprintf("--if-exists del-port %s %s", s.Bridge, p.Name) })
}
func (s DelPorts) Removed(string) string {
	return fmt.Sprintf("ovs ports %s from bridge %s", strings.Join(portNames(s.Ports), ", "), s.Bridge)
}

// SetOFPort gives ports the OpenFlow port numbers the file wants.
type SetOFPort struct {
	Bridge string `json:"bridge,omitempty"`
	Ports  []Port `json:"ports,omitempty"`
}

func (SetOFPort) Op() Op          { return OpSetOFPort }
func (s SetOFPort) Scope() string { return bridgeScope(s.Bridge) }
func (SetOFPort) sealed()         {}
func (s SetOFPort) Command(string) string {
	return vsctl(s.Ports, func(p Port) string { return fmt.Sprintf("set Interface %s ofport_request=%d", p.Name, p.OFPort) })
}

// SetPortType changes ports' Interface type (system or AF_XDP).
type SetPortType struct {
	Bridge string `json:"bridge,omitempty"`
	Ports  []Port `json:"ports,omitempty"`
}

func (SetPortType) Op() Op          { return OpSetPortType }
func (s SetPortType) Scope() string { return bridgeScope(s.Bridge) }
func (SetPortType) sealed()         {}
func (s SetPortType) Command(string) string {
	return vsctl(s.Ports, func(p Port) string {
		c := fmt.Sprintf("set Interface %s type=%s", p.Name, p.Type)
		if topology.IsAFXDP(p.Type) {
			c += " options:xdp-mode=native"
		}
		return c
	})
}

func (s SetPortType) has(port string) bool {
	return slices.ContainsFunc(s.Ports, func(p Port) bool { return p.Name == port })
}

// vsctl renders one ovs-vsctl transaction of a command per port.
func vsctl(ports []Port, command func(Port) string) string {
	var b strings.Builder
	b.WriteString("ovs-vsctl")
	for i, p := range ports {
		if i > 0 {
			b.WriteString(" --")
		}
		b.WriteString(" " + command(p))
	}
	return b.String()
}

// SetFlows replaces the lab's static flows on a bridge (those with its
// cookie): Flows without cookie, Cookie the lab's. Flows that fit OpenFlow
// 1.4 go in one atomic bundle; with OneByOne (a flow only OpenFlow 1.0
// carries) only what differs is sent, one flow_mod at a time.
type SetFlows struct {
	Bridge   string   `json:"bridge,omitempty"`
	Flows    []string `json:"flows,omitempty"`
	Cookie   uint64   `json:"cookie,omitempty"`
	OneByOne bool     `json:"one_by_one,omitempty"`
}

func (SetFlows) Op() Op          { return OpSetFlows }
func (s SetFlows) Scope() string { return bridgeScope(s.Bridge) }
func (SetFlows) sealed()         {}
func (s SetFlows) Command(string) string {
	var b strings.Builder
	if s.OneByOne {
		fmt.Fprintf(&b, "ovs-ofctl add-flows %s - <<'EOF'   # no bundle (a flow only OpenFlow 1.0 carries): of these, only those the switch lacks, then strict deletes of the lab's others\n", s.Bridge)
		for _, f := range s.Flows {
			fmt.Fprintf(&b, "add cookie=%#x,%s\n", s.Cookie, f)
		}
		fmt.Fprintf(&b, "delete_strict cookie=%#x/-1,table=T,MATCH   # each flow of the lab's the file no longer has\n", s.Cookie)
		b.WriteString("EOF")
		return b.String()
	}
	fmt.Fprintf(&b, "ovs-ofctl -O OpenFlow14 --bundle add-flows %s - <<'EOF'\n", s.Bridge)
	fmt.Fprintf(&b, "delete cookie=%#x/-1\n", s.Cookie)
	for _, f := range s.Flows {
		fmt.Fprintf(&b, "add cookie=%#x,%s\n", s.Cookie, f)
	}
	b.WriteString("EOF")
	return b.String()
}

// DelFlows removes the flows with the lab's cookie from a bridge.
type DelFlows struct {
	Bridge string `json:"bridge,omitempty"`
	Cookie uint64 `json:"cookie,omitempty"`
}

func (DelFlows) Op() Op          { return OpDelFlows }
func (s DelFlows) Scope() string { return bridgeScope(s.Bridge) }
func (DelFlows) sealed()         {}
func (s DelFlows) Command(string) string {
	return fmt.Sprintf("ovs-ofctl del-flows %s cookie=%#x/-1", s.Bridge, s.Cookie)
}

// AttachExternal attaches a user's interface to a lab bridge, its state
// saved first (down restores it). Ports holds its one OVS port.
type AttachExternal struct {
	Link       string `json:"link,omitempty"`
	Bridge     string `json:"bridge,omitempty"`
	Ports      []Port `json:"ports,omitempty"`
	BridgeType string `json:"bridge_type,omitempty"`
}

func (AttachExternal) Op() Op          { return OpAttachExternal }
func (s AttachExternal) Scope() string { return bridgeScope(s.Bridge) }
func (AttachExternal) sealed()         {}
func (s AttachExternal) Command(lab string) string {
	if s.BridgeType == topology.BridgeLinux {
		return fmt.Sprintf("ip link set %s master %s up   # external: state saved, restored on down", s.Link, s.Bridge)
	}
	return fmt.Sprintf("ip link set %s up && ovs-vsctl --may-exist add-port %s %s -- set Interface %s ofport_request=%d -- set Port %s external_ids:%s=%s   # external: state saved, restored on down",
		s.Link, s.Bridge, s.Link, s.Link, s.Ports[0].OFPort, s.Link, state.OVSLabKey, lab)
}

// DetachExternal gives a user's interface back as it was before the lab.
type DetachExternal struct {
	Link       string `json:"link,omitempty"`
	Bridge     string `json:"bridge,omitempty"`
	BridgeType string `json:"bridge_type,omitempty"`
}

func (DetachExternal) Op() Op          { return OpDetachExternal }
func (s DetachExternal) Scope() string { return bridgeScope(s.Bridge) }
func (DetachExternal) sealed()         {}
func (s DetachExternal) Command(string) string {
	if s.BridgeType == topology.BridgeLinux {
		return fmt.Sprintf("ip link set %s nomaster   # and back to its saved state", s.Link)
	}
	return fmt.Sprintf("ovs-vsctl --if-exists del-port %s %s   # and %s back to its saved state", s.Bridge, s.Link, s.Link)
}
func (s DetachExternal) Removed(string) string {
	return fmt.Sprintf("external interface %s from bridge %s (restored, not deleted)", s.Link, s.Bridge)
}
