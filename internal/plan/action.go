// Package plan turns a desired lab and an observed snapshot into the ordered
// list of actions that makes the machine match the file. It is pure: it never
// touches the machine, so every plan can be printed (`netlab plan`), golden
// tested and checked for emptiness after an apply.
package plan

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Op is the kind of an action.
type Op string

// The actions, in the order phases run them (see Make).
const (
	OpDelRoute       Op = "del-route"
	OpDelAddr        Op = "del-addr"
	OpDelPorts       Op = "del-ports"
	OpDelLink        Op = "del-link"
	OpDelLinks       Op = "del-links" // several links of a namespace in one deletion (down)
	OpDelNamespace   Op = "del-namespace"
	OpDelBridge      Op = "del-bridge"
	OpRestoreSysctl  Op = "restore-sysctl"
	OpSetSysctl      Op = "set-sysctl"
	OpAddBridge      Op = "add-bridge"
	OpSetFailMode    Op = "set-fail-mode"
	OpAddLinuxBridge Op = "add-linux-bridge"
	OpAddNamespace   Op = "add-namespace"
	OpAddVeth        Op = "add-veth"
	OpSetLink        Op = "set-link"
	OpSetTxChecksum  Op = "set-tx-checksum"
	OpSetGRO         Op = "set-gro"
	OpAddPorts       Op = "add-ports"
	OpSetOFPort      Op = "set-ofport"
	OpSetPortType    Op = "set-port-type"
	OpAddTuntap      Op = "add-tuntap"
	OpAddVXLAN       Op = "add-vxlan"
	OpSetRemotes     Op = "set-remotes"
	OpStartProcess   Op = "start-process"
	OpStopProcess    Op = "stop-process"
	// OpStopNSProcesses ends every process in the namespaces (down).
	OpStopNSProcesses Op = "stop-ns-processes"
	OpAttachExternal  Op = "attach-external"
	OpDetachExternal  Op = "detach-external"
	OpSetFlows        Op = "set-flows"
	OpDelFlows        Op = "del-flows"
	OpAddAddr         Op = "add-addr"
	OpSetNAT          Op = "set-nat"
	OpDelNAT          Op = "del-nat"
	OpReplaceRoute    Op = "replace-route"
)

// NATRule is a masquerade rule of a set-nat action.
type NATRule struct {
	Source netip.Prefix `json:"source"`
	Out    string       `json:"out"`
}

// Tuntap is a persistent TUN/TAP device to create.
type Tuntap struct {
	TAP          bool `json:"tap,omitempty"`
	MultiQueue   bool `json:"multi_queue,omitempty"`
	VnetHdr      bool `json:"vnet_hdr,omitempty"`
	Owner, Group int  `json:"-"`
}

// VXLAN is a tunnel device to create (add-vxlan): made from the host,
// where its UDP socket stays, in NS.
type VXLAN struct {
	VNI   int        `json:"vni"`
	Local netip.Addr `json:"local"`
	Dev   string     `json:"dev,omitempty"`
	Port  int        `json:"port"`
}

// Port is an OVS port to attach.
type Port struct {
	Name   string `json:"name"`
	OFPort int    `json:"ofport"`
	// Type is the Interface type (add-ports, set-port-type): "system"
	// (AF_PACKET, OVS's default; omitted) or an AF_XDP type.
	Type string `json:"type,omitempty"`
	// Auto says port-type auto chose the AF_XDP type: if Open vSwitch
	// cannot open the port that way, up falls back to a system port.
	Auto bool `json:"auto,omitempty"`
}

// Action is one step of a plan. Only the fields its Op needs are set. NS is
// the namespace it acts in, topology.Host for the root namespace.
type Action struct {
	Op     Op     `json:"op"`
	NS     string `json:"ns,omitempty"`
	Link   string `json:"link,omitempty"`
	Alias  string `json:"alias,omitempty"`
	Bridge string `json:"bridge,omitempty"`

	// add-veth: the peer end.
	PeerNS    string `json:"peer_ns,omitempty"`
	Peer      string `json:"peer,omitempty"`
	PeerAlias string `json:"peer_alias,omitempty"`

	// add-bridge, set-fail-mode.
	Datapath string `json:"datapath,omitempty"`
	FailMode string `json:"fail_mode,omitempty"`

	// add-ports, del-ports, set-ofport, set-port-type.
	Ports []Port `json:"ports,omitempty"`

	// add-tuntap.
	Tuntap *Tuntap `json:"tuntap,omitempty"`
	// add-vxlan.
	VXLAN *VXLAN `json:"vxlan,omitempty"`
	// set-remotes: a VXLAN device's remote ends, all of them; Added and
	// Removed say what changes.
	Remotes []netip.Addr `json:"remotes,omitempty"`
	Added   []netip.Addr `json:"added,omitempty"`
	Removed []netip.Addr `json:"removed,omitempty"`
	// start-process, stop-process: what the process does, canonically.
	Spec string `json:"spec,omitempty"`
	// stop-ns-processes.
	Namespaces []string `json:"namespaces,omitempty"`
	// del-links.
	Links []string `json:"links,omitempty"`

	// attach-external, detach-external: the bridge's type.
	BridgeType string `json:"bridge_type,omitempty"`

	// set-flows, del-flows: the static flows (without cookie) and the lab's
	// cookie they carry.
	Flows  []string `json:"flows,omitempty"`
	Cookie uint64   `json:"cookie,omitempty"`

	// set-nat: the namespace's masquerade rules, replacing its table.
	NAT []NATRule `json:"nat,omitempty"`

	// set-qdisc: the qdisc part of the impairment (all but loss); del-qdisc:
	// the root handle of netlab's qdisc. set-loss: the namespace's loss
	// rules, replacing its netdev table. See impair.go.
	Impair *topology.Impair `json:"impair,omitempty"`
	Handle uint16           `json:"handle,omitempty"`
	Loss   []LossRule       `json:"loss,omitempty"`

	// add-addr, del-addr.
	Addr netip.Prefix `json:"addr,omitzero"`

	// replace-route, del-route.
	Route *state.Route `json:"route,omitempty"`

	// set-sysctl, restore-sysctl.
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
	// restore-sysctl: the other labs holding the key when planned; while
	// one does, the value stays.
	HeldBy []string `json:"held_by,omitempty"`

	// set-link: what to change; empty fields stay as they are.
	MAC    string  `json:"mac,omitempty"`
	MTU    int     `json:"mtu,omitempty"`
	Master *string `json:"master,omitempty"` // "" = no master
	Up     bool    `json:"up,omitempty"`

	// set-tx-checksum, set-gro.
	On bool `json:"on,omitempty"`

	// Lab is the lab the objects belong to (markers, external ids).
	Lab string `json:"-"`
}

// ipn renders "ip" or "ip -n NS".
func ipn(ns string) string {
	if ns == topology.Host || ns == "" {
		return "ip"
	}
	return "ip -n " + ns
}

// nsFlag renders "" or " -n NS", for commands with iproute2's -n.
func nsFlag(ns string) string {
	if ns == topology.Host || ns == "" {
		return ""
	}
	return " -n " + ns
}

// inNS prefixes a command that has no namespace flag with ip netns exec.
func inNS(ns, cmd string) string {
	if ns == topology.Host || ns == "" {
		return cmd
	}
	return "ip netns exec " + ns + " " + cmd
}

// routeArgs is the route as `ip route` takes it; a default route of IPv6
// says -6, which keeps the text a valid command (ip route del default -6).
func routeArgs(r *state.Route) string {
	s := r.String()
	if r.To.Bits() == 0 && r.To.Addr().Is6() {
		s = strings.Replace(s, "default", "default -6", 1)
	}
	return s
}

// String renders the action as the command line it stands for, so a plan
// reads like the shell script a user would otherwise write.
func (a Action) String() string {
	switch a.Op {
	case OpDelRoute:
		return fmt.Sprintf("%s route del %s proto %d", ipn(a.NS), routeArgs(a.Route), state.RouteProtocol)
	case OpReplaceRoute:
		return fmt.Sprintf("%s route replace %s proto %d", ipn(a.NS), routeArgs(a.Route), state.RouteProtocol)
	case OpDelAddr:
		return fmt.Sprintf("%s addr del %s dev %s", ipn(a.NS), a.Addr, a.Link)
	case OpAddAddr:
		s := fmt.Sprintf("%s addr replace %s dev %s", ipn(a.NS), a.Addr, a.Link)
		if a.Addr.Addr().Is6() {
			s += " nodad"
		}
		return s
	case OpDelPorts, OpAddPorts, OpSetOFPort, OpSetPortType:
		return a.ovsPortsString()
	case OpDelLink:
		return fmt.Sprintf("%s link del %s", ipn(a.NS), a.Link)
	case OpDelLinks:
		return fmt.Sprintf("for l in %s; do %s link set $l group $G; done; %s link del group $G   # $G: a group no other interface has; one deletion for all",
			strings.Join(a.Links, " "), ipn(a.NS), ipn(a.NS))
	case OpDelNamespace:
		return "ip netns del " + a.NS
	case OpDelBridge:
		return "ovs-vsctl --if-exists del-br " + a.Bridge
	case OpRestoreSysctl:
		if len(a.HeldBy) > 0 {
			return fmt.Sprintf("# %s stays: lab %s holds it too (restored to %s by the last to go)", a.Key, strings.Join(a.HeldBy, ", "), a.Value)
		}
		return inNS(a.NS, fmt.Sprintf("sysctl -w %s=%s", a.Key, a.Value)) + "   # value before the lab"
	case OpSetSysctl:
		return inNS(a.NS, fmt.Sprintf("sysctl -w %s=%s", a.Key, a.Value))
	case OpAddBridge:
		return fmt.Sprintf("ovs-vsctl --may-exist add-br %s -- set Bridge %s datapath_type=%s fail_mode=%s external_ids:%s=%s",
			a.Bridge, a.Bridge, a.Datapath, a.FailMode, state.OVSLabKey, a.Lab)
	case OpSetFailMode:
		return fmt.Sprintf("ovs-vsctl set-fail-mode %s %s", a.Bridge, a.FailMode)
	case OpAddLinuxBridge:
		return fmt.Sprintf("%s link add %s alias %s type bridge", ipn(a.NS), a.Link, a.Alias)
	case OpAddNamespace:
		return fmt.Sprintf("ip netns add %s && ip -n %s link set lo alias %s up", a.NS, a.NS, a.Alias)
	case OpAddVeth:
		peerNS := a.PeerNS
		if peerNS == topology.Host {
			peerNS = "1" // the host namespace, as seen by a process in it: PID 1's
		}
		return fmt.Sprintf("%s link add %s alias %s type veth peer name %s netns %s alias %s",
			ipn(a.NS), a.Link, a.Alias, a.Peer, peerNS, a.PeerAlias)
	case OpSetLink:
		var parts []string
		if a.MAC != "" {
			parts = append(parts, "address "+a.MAC)
		}
		if a.MTU != 0 {
			parts = append(parts, fmt.Sprintf("mtu %d", a.MTU))
		}
		if a.Master != nil {
			if *a.Master == "" {
				parts = append(parts, "nomaster")
			} else {
				parts = append(parts, "master "+*a.Master)
			}
		}
		if a.Up {
			parts = append(parts, "up")
		}
		return fmt.Sprintf("%s link set %s %s", ipn(a.NS), a.Link, strings.Join(parts, " "))
	case OpAddTuntap:
		t := a.Tuntap
		mode := "tun"
		if t.TAP {
			mode = "tap"
		}
		s := fmt.Sprintf("%s tuntap add dev %s mode %s", ipn(a.NS), a.Link, mode)
		if t.Owner >= 0 {
			s += fmt.Sprintf(" user %d", t.Owner)
		}
		if t.Group >= 0 {
			s += fmt.Sprintf(" group %d", t.Group)
		}
		if t.MultiQueue {
			s += " multi_queue"
		}
		if t.VnetHdr {
			s += " vnet_hdr"
		}
		return s + fmt.Sprintf(" && %s link set %s alias %s", ipn(a.NS), a.Link, a.Alias)
	case OpAddVXLAN:
		v := a.VXLAN
		s := fmt.Sprintf("ip link add %s", a.Link)
		if a.NS != topology.Host {
			s += " netns " + a.NS
		}
		s += fmt.Sprintf(" type vxlan id %d local %s dstport %d", v.VNI, v.Local, v.Port)
		if v.Dev != "" {
			s += " dev " + v.Dev
		}
		return s + fmt.Sprintf(" && %s link set %s alias %s", ipn(a.NS), a.Link, a.Alias)
	case OpSetRemotes:
		var cmds []string
		for _, r := range a.Removed {
			cmds = append(cmds, fmt.Sprintf("bridge%s fdb del 00:00:00:00:00:00 dev %s dst %s", nsFlag(a.NS), a.Link, r))
		}
		for _, r := range a.Added {
			cmds = append(cmds, fmt.Sprintf("bridge%s fdb append 00:00:00:00:00:00 dev %s dst %s", nsFlag(a.NS), a.Link, r))
		}
		return strings.Join(cmds, " && ")
	case OpStartProcess:
		return fmt.Sprintf("netlab reflect --ns %s --dev %s %s &   # supervised: pidfile and log under /run/netlab/labs/%s", a.NS, a.Link, a.Spec, a.Lab)
	case OpStopProcess:
		return fmt.Sprintf("kill $(cat /run/netlab/labs/%s/proc/%s-%s.pid)   # after checking /proc/PID/exe and cmdline", a.Lab, a.NS, a.Link)
	case OpStopNSProcesses:
		return fmt.Sprintf("for ns in %s; do kill $(ip netns pids $ns); done   # SIGKILL after 2 s", strings.Join(a.Namespaces, " "))
	case OpAttachExternal:
		if a.BridgeType == topology.BridgeLinux {
			return fmt.Sprintf("ip link set %s master %s up   # external: state saved, restored on down", a.Link, a.Bridge)
		}
		return fmt.Sprintf("ip link set %s up && ovs-vsctl --may-exist add-port %s %s -- set Interface %s ofport_request=%d -- set Port %s external_ids:%s=%s   # external: state saved, restored on down",
			a.Link, a.Bridge, a.Link, a.Link, a.Ports[0].OFPort, a.Link, state.OVSLabKey, a.Lab)
	case OpDetachExternal:
		if a.BridgeType == topology.BridgeLinux {
			return fmt.Sprintf("ip link set %s nomaster   # and back to its saved state", a.Link)
		}
		return fmt.Sprintf("ovs-vsctl --if-exists del-port %s %s   # and %s back to its saved state", a.Bridge, a.Link, a.Link)
	case OpSetFlows:
		var b strings.Builder
		fmt.Fprintf(&b, "ovs-ofctl -O OpenFlow14 --bundle add-flows %s - <<'EOF'\n", a.Bridge)
		fmt.Fprintf(&b, "delete cookie=%#x/-1\n", a.Cookie)
		for _, f := range a.Flows {
			fmt.Fprintf(&b, "add cookie=%#x,%s\n", a.Cookie, f)
		}
		b.WriteString("EOF")
		return b.String()
	case OpDelFlows:
		return fmt.Sprintf("ovs-ofctl del-flows %s cookie=%#x/-1", a.Bridge, a.Cookie)
	case OpSetNAT:
		t := state.NFTTable(a.Lab)
		var b strings.Builder
		// One nft batch: the table is replaced atomically.
		fmt.Fprintf(&b, "%s <<'EOF'\n", inNS(a.NS, "nft -f -"))
		fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\nadd table inet %s\n", t, t, t)
		fmt.Fprintf(&b, "add chain inet %s postrouting { type nat hook postrouting priority srcnat; }\n", t)
		for _, r := range a.NAT {
			fam, ip := "ipv4", "ip"
			if r.Source.Addr().Is6() {
				fam, ip = "ipv6", "ip6"
			}
			fmt.Fprintf(&b, "add rule inet %s postrouting meta nfproto %s %s saddr %s oifname %q counter masquerade\n", t, fam, ip, r.Source, r.Out)
		}
		b.WriteString("EOF")
		return b.String()
	case OpDelNAT:
		return inNS(a.NS, "nft delete table inet "+state.NFTTable(a.Lab))
	case OpSetQdisc, OpDelQdisc, OpSetLoss, OpDelLoss:
		return a.impairString()
	case OpSetTxChecksum:
		v := "off"
		if a.On {
			v = "on"
		}
		return inNS(a.NS, fmt.Sprintf("ethtool -K %s tx %s", a.Link, v))
	case OpSetGRO:
		v := "off"
		if a.On {
			v = "on"
		}
		return inNS(a.NS, fmt.Sprintf("ethtool -K %s gro %s", a.Link, v))
	}
	return fmt.Sprintf("<unknown action %q>", a.Op)
}

func (a Action) ovsPortsString() string {
	var b strings.Builder
	b.WriteString("ovs-vsctl")
	for i, p := range a.Ports {
		if i > 0 {
			b.WriteString(" --")
		}
		switch a.Op {
		case OpDelPorts:
			fmt.Fprintf(&b, " --if-exists del-port %s %s", a.Bridge, p.Name)
		case OpAddPorts:
			typ := ""
			if topology.IsAFXDP(p.Type) {
				typ = " type=" + p.Type + " options:xdp-mode=native"
			}
			fmt.Fprintf(&b, " --may-exist add-port %s %s -- set Interface %s ofport_request=%d%s -- set Port %s external_ids:%s=%s",
				a.Bridge, p.Name, p.Name, p.OFPort, typ, p.Name, state.OVSLabKey, a.Lab)
		case OpSetOFPort:
			fmt.Fprintf(&b, " set Interface %s ofport_request=%d", p.Name, p.OFPort)
		case OpSetPortType:
			fmt.Fprintf(&b, " set Interface %s type=%s", p.Name, p.Type)
			if topology.IsAFXDP(p.Type) {
				b.WriteString(" options:xdp-mode=native")
			}
		}
	}
	return b.String()
}

// Plan is an ordered list of actions. An empty plan means the lab is up to date.
type Plan []Action

// String renders one command per line.
func (p Plan) String() string {
	var b strings.Builder
	for _, a := range p {
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	return b.String()
}
