// Package topology is netlab's file format: the types of a lab, a strict YAML
// parser that remembers the file, line and column of every field, validation
// that reports every error at once, and defaults. It never touches the
// machine: a dependency test keeps netlink, netns, go-openvswitch, os/exec and
// x/sys/unix out of it.
package topology

import (
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Host is the name a topology uses for the root network namespace, in peers
// (host/veth9) and as the namespace of host-side objects. No lab namespace
// may take this name.
const Host = "host"

// Bridge types.
const (
	BridgeOVS   = "ovs"
	BridgeLinux = "linux"
)

// OVS fail modes.
const (
	FailStandalone = "standalone"
	FailSecure     = "secure"
)

// OpenFlow presets.
const (
	PresetLearningSwitch = "learning-switch"
	// DefaultLearnIdleTimeout is how long a learned MAC entry lives unused.
	DefaultLearnIdleTimeout = 300
)

// OVS datapath types. DatapathAuto lets netlab pick netdev when the kernel has
// no openvswitch datapath and system otherwise.
const (
	DatapathAuto   = ""
	DatapathNetdev = "netdev"
	DatapathSystem = "system"
)

// OVS port types for the veth ports of a bridge (Interface type). With
// PortTypeAuto netlab uses AF_XDP without polling (afxdp-nonpmd) on a
// userspace (netdev) bridge when Open vSwitch lists it and the kernel has
// AF_XDP sockets, and plain system (AF_PACKET) ports otherwise.
const (
	PortTypeAuto        = "auto"
	PortTypeSystem      = "system"
	PortTypeAFXDPNonPMD = "afxdp-nonpmd"
	PortTypeAFXDP       = "afxdp" // a poll thread busy on a whole core, even idle
)

// AFXDPMaxMTU is the largest MTU of the namespace end of a veth whose host
// end is an AF_XDP port: with an XDP program on one end, the kernel caps the
// other end's MTU at one 4 KiB page minus the XDP headroom (measured: veth
// maxmtu 3506 on Linux 6.x).
const AFXDPMaxMTU = 3506

// AutoAFXDPMaxPorts is the most veth ports a bridge may have for port-type
// auto to make them AF_XDP ports. Each AF_XDP port costs ovs-vswitchd a
// 64 MiB UMEM that it clears when the port opens (measured with OVS 3.1:
// +73 MB resident and ~70 ms, one port after the other, per port), so a
// 16-port bridge takes ~1.2 GB and ~1 s more to come up; a bigger one gets
// system ports unless the file names an AF_XDP type.
const AutoAFXDPMaxPorts = 16

// AFXDPPortMemory is the resident memory one AF_XDP port adds to
// ovs-vswitchd (measured, OVS 3.1: 64 MiB UMEM plus rings).
const AFXDPPortMemory = 73 << 20

// PortInternal is both the type: of a bridge port that is an OVS internal
// port and Open vSwitch's Interface type of it.
const PortInternal = "internal"

// IsAFXDP says whether an OVS port type is one of the AF_XDP ones.
func IsAFXDP(t string) bool { return t == PortTypeAFXDP || t == PortTypeAFXDPNonPMD }

// Limits of the format.
const (
	MaxLabName = 12 // lab names end up inside nft table names and markers
	MaxIfName  = 15 // IFNAMSIZ - 1
)

// Pos is where a value stands in its file; Line and Col start at 1.
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// Lab is a parsed, validated and defaulted topology. Slices keep the order of
// the file, so plans and port numbers are deterministic.
type Lab struct {
	File string // path as given to Load; used in error messages
	Name string
	Pos  Pos // of the name field
	// Prefix is the prefix ApplyPrefix put before every machine-wide name,
	// Name's included; "" without one.
	Prefix string

	// Host holds the root namespace's part of the lab: sysctls (saved and
	// restored on down), routes and addresses on host-side veth ends.
	Host *Namespace

	Bridges    []*Bridge
	Namespaces []*Namespace // lab namespaces, without Host

	// Expect are the connectivity expectations `netlab check` runs.
	Expect []Expect

	// Impairments are the interfaces' impair: blocks, in file order.
	Impairments []*Impairment
	// Traces are the Mahimahi traces the impairments name, by hash (read by
	// Load, or ReadSideFiles).
	Traces map[string]*Trace

	// Links are the veth pairs, derived from the interfaces' peers: one entry
	// per pair, however many sides described it.
	Links []*Link

	// Machines are the machines a lab spans (machines:), in file order; none
	// for a lab of one machine. See machine.go.
	Machines []*Machine
	// Machine is the machine this lab is the part of (ForMachine), "" for a
	// whole lab. A part's Namespaces, Bridges and Links are that machine's,
	// its Tunnels the ends of the links that cross to other machines,
	// Remote what the other machines have, and Expect the expectations
	// whose source is here (Elsewhere: the others').
	Machine   string
	Tunnels   []*Tunnel
	Remote    []RemotePart
	Elsewhere []Expect

	// Timelines are the lab's schedules of events (timelines:), in file
	// order: see timeline.go.
	Timelines []*Timeline

	// nsIndex finds namespaces by name for Namespace (see lab.go).
	nsIndex *nsIndex
}

// Bridge is a switch in the host namespace: an Open vSwitch bridge or a Linux
// bridge. Its own interface (the OVS LOCAL port, or the Linux bridge device)
// carries Addresses.
type Bridge struct {
	Name     string
	Type     string // BridgeOVS or BridgeLinux
	FailMode string // OVS only: FailStandalone or FailSecure
	Datapath string // OVS only: DatapathAuto, DatapathNetdev or DatapathSystem
	// PortType is the OVS Interface type of the bridge's veth ports: one of
	// the PortType constants (OVS only; PortTypeAuto when not written).
	PortType  string
	Addresses []netip.Prefix
	MTU       int // 0: kernel default
	Ports     []*Port
	Pos       Pos

	// OpenFlow is the preset that owns the bridge's flow tables ("" none,
	// or PresetLearningSwitch); LearnIdleTimeout applies to its learned MACs.
	OpenFlow         string
	LearnIdleTimeout int
	// Flows are extra static flows in ovs-ofctl syntax, installed with the
	// preset's (if any) in one atomic bundle.
	Flows []Flow
	// External are existing host interfaces the lab attaches to the bridge
	// (a spare NIC, a VM's tap); down detaches them and restores their state.
	External []ExternalPort
	// Machines are the machines the bridge is on (multi-machine labs): one,
	// or several for a bridge stretched over them (one L2 segment, a bridge
	// on each, joined by a VXLAN mesh). VNI is a stretched bridge's, 0:
	// derived.
	Machines []string
	VNI      int

	// Controllers are the OpenFlow controllers of an OVS bridge, as
	// ovs-vsctl set-controller takes them: tcp:IP:PORT (the bridge connects
	// to a controller), ptcp:PORT[:IP] (the bridge listens for one),
	// unix:PATH, punix:PATH. Without any, the bridge's fail-mode decides.
	Controllers []Controller
	// VLANFiltering is a Linux bridge's vlan_filtering: its ports forward
	// by their VLANs (bridge vlan); VLANFilteringPos is where the file says
	// so.
	VLANFiltering    bool
	VLANFilteringPos Pos
}

// Controller is one OpenFlow controller target of a bridge.
type Controller struct {
	Target string
	Pos    Pos
	Path   string
}

// VLAN modes of a bridge port, as Open vSwitch's Port vlan_mode names them.
const (
	VLANAccess         = "access"          // untagged frames, in VLAN Tag
	VLANTrunk          = "trunk"           // tagged frames of Trunks (OVS: all VLANs when none)
	VLANNativeTagged   = "native-tagged"   // Trunks tagged, and Tag as the native VLAN, sent tagged
	VLANNativeUntagged = "native-untagged" // Trunks tagged, and Tag as the native VLAN, sent untagged
)

// Limits of a VLAN ID: 0 and 4095 are reserved by 802.1Q.
const (
	MinVLAN = 1
	MaxVLAN = 4094
)

// VLAN is the VLAN setting of a bridge port: OVS's Port tag, trunks and
// vlan_mode, or a Linux bridge port's `bridge vlan` entries.
type VLAN struct {
	Mode   string // one of the VLAN mode constants
	Tag    int    // the access or native VLAN; 0 in trunk mode
	Trunks []int  // sorted; trunk and native modes (OVS trunk: none = all)
	Pos    Pos
	Path   string
}

// String is the setting as status shows it: "access 20", "trunk 20,30",
// "native-untagged 10 trunk 20".
func (v *VLAN) String() string {
	if v == nil {
		return ""
	}
	s := v.Mode
	if v.Tag != 0 {
		s += fmt.Sprintf(" %d", v.Tag)
	}
	if len(v.Trunks) > 0 {
		var ts []string
		for _, t := range v.Trunks {
			ts = append(ts, fmt.Sprint(t))
		}
		if v.Mode == VLANTrunk {
			s += " " + strings.Join(ts, ",")
		} else {
			s += " trunk " + strings.Join(ts, ",")
		}
	} else if v.Mode == VLANTrunk {
		s += " all"
	}
	return s
}

// ExternalPort is a host interface netlab attaches but does not own.
type ExternalPort struct {
	Name   string
	OFPort int // OVS only: numbered after the lab's own ports
	Pos    Pos
	Path   string
}

// NATRule masquerades packets from Source that leave through Out.
type NATRule struct {
	Source netip.Prefix
	Out    string
	Pos    Pos
	Path   string

	outPos Pos
}

// Flow is one raw flow from the file.
type Flow struct {
	Text string
	Pos  Pos
	Path string // bridges.<name>.flows[i], for errors found by OVS
}

// HasFlows says whether netlab owns OpenFlow flows on the bridge.
func (b *Bridge) HasFlows() bool { return b.OpenFlow != "" || len(b.Flows) > 0 }

// Port is a bridge port: the host-side end of a veth pair whose other end is
// in a namespace.
type Port struct {
	Name   string // interface name in the host namespace
	OFPort int    // OVS only: requested OpenFlow port number (ofport_request), from 1
	Peer   End    // the namespace end of the veth (of a tunnel port: the far end, on another machine)
	Pos    Pos
	// Tunnel says the port is a VXLAN tunnel to other machines, not a veth
	// (a machine's part of a multi-machine lab only).
	Tunnel bool
	// Internal says the port is an OVS internal port: a device Open vSwitch
	// makes in the host namespace, with no namespace behind it (Peer is
	// zero). Declared under the bridge's ports: with type: internal.
	Internal bool
	// VLAN is the port's VLAN setting; nil: none (every frame, as is).
	VLAN *VLAN
}

// Namespace is a lab network namespace (or the host, for Lab.Host).
type Namespace struct {
	Name       string
	Interfaces []*Interface
	Routes     []Route
	Sysctls    []Sysctl // as written in the file (EffectiveSysctls adds the defaults)
	// TUNs and TAPs are persistent TUN/TAP devices in the namespace.
	TUNs []*TUN
	TAPs []*TAP
	// NAT masquerades traffic from a source prefix leaving through an
	// interface (IPv4 and IPv6), in one nftables table of the lab.
	NAT []NATRule
	Pos Pos
	// Machine is the machine holding the namespace in a multi-machine lab.
	Machine string
	// Loopback are the addresses of its lo (router ids, anycast /32s).
	Loopback []netip.Prefix
	// Files are placed over the machine's paths for the namespace's programs
	// (its services, `netlab exec`), and Dirs are private writable
	// directories: what they see of the file system, and nobody else.
	Files []File
	Dirs  []Dir
	// Services are the programs netlab runs in the namespace once the
	// network is up, and stops on down.
	Services []*Service
}

// File is a file a namespace's programs see at Path, in place of the
// machine's (which is never written).
type File struct {
	Path    string
	Content []byte      // the text; read from From by Load or ReadSideFiles
	Mode    fs.FileMode // 0644 unless the file says
	From    string      // a file beside the lab file it is read from; "" inline
	FromPos Pos
	Pos     Pos
	Key     string // its place in the file, for messages
}

// Dir is a private writable directory of a namespace's programs, empty
// when the lab comes up.
type Dir struct {
	Path string
	Pos  Pos
}

// Service is a program netlab runs, supervised, in a namespace.
type Service struct {
	Name    string
	NS      string
	Command []string
	Env     []string // KEY=VALUE, sorted
	Dir     string   // working directory; "" is /
	User    string   // a name or a uid; "" is root
	// After are the services (NS/NAME once parsed) that must be ready
	// before it starts.
	After []Ref
	Ready *Ready // nil: ready once started
	// Timeout bounds the wait for readiness.
	Timeout time.Duration
	// Restart is RestartNo, RestartOnFailure or RestartAlways.
	Restart string
	Pos     Pos
	Path    string
}

// Ref is a name written in the file, with its place.
type Ref struct {
	Name string
	Pos  Pos
	Path string
}

// Ready is a readiness probe: one of a TCP or UDP port bound in the
// namespace, a command that succeeds in its view, a line of the log.
type Ready struct {
	TCP, UDP int
	Command  []string
	Log      string // a regular expression
	Pos      Pos
}

// IsHost says whether n is the root namespace.
func (n *Namespace) IsHost() bool { return n.Name == Host }

// Addresses are the addresses the file gives the namespace: those of its
// interfaces, TUNs and TAPs, in file order.
func (n *Namespace) Addresses() []netip.Prefix {
	var out []netip.Prefix
	for _, i := range n.Interfaces {
		out = append(out, i.Addresses...)
	}
	for _, t := range n.TUNs {
		out = append(out, t.Addresses...)
	}
	for _, t := range n.TAPs {
		out = append(out, t.Addresses...)
	}
	return out
}

// Interface is one end of a veth pair as the file describes it.
type Interface struct {
	Name      string
	NS        string // the namespace holding it (Host for host interfaces)
	Peer      End    // the other end; Peer.Bridge is set for bridge ports
	Addresses []netip.Prefix
	MAC       net.HardwareAddr // nil: kernel's random MAC
	MTU       int              // 0: kernel default
	Pos       Pos
	VNI       int // of a link that crosses machines; 0: derived
	// VLANs are 802.1Q interfaces on this one (vlans:), as a host on a
	// trunk has them.
	VLANs []*VLANInterface
}

// VLANInterface is an 802.1Q VLAN interface on an interface of a
// namespace: `ip link add link PARENT name NAME type vlan id ID`.
type VLANInterface struct {
	Name      string // PARENT.ID unless the file names it
	Parent    string
	NS        string
	ID        int
	Addresses []netip.Prefix
	Pos       Pos
	Path      string
}

// VLANInterfaces lists every VLAN interface of the lab's namespaces.
func (l *Lab) VLANInterfaces() []*VLANInterface {
	var out []*VLANInterface
	for _, ns := range l.AllNamespaces() {
		for _, i := range ns.Interfaces {
			out = append(out, i.VLANs...)
		}
	}
	return out
}

// End names one end of a veth pair. For a bridge port, NS is Host, Name is the
// port name and Bridge the bridge it is attached to.
type End struct {
	NS     string
	Name   string
	Bridge string
}

func (e End) String() string {
	if e.Bridge != "" {
		return e.Bridge + "/" + e.Name
	}
	return e.NS + "/" + e.Name
}

// Link is a veth pair. A is the end described first in the file; B is its
// peer. Either end may carry addresses, MAC and MTU from its interface entry.
type Link struct {
	A, B LinkEnd
	// VNI is the link's VXLAN network identifier when it crosses machines,
	// as the file gives it on either end (0: derived).
	VNI    int
	VNIPos Pos
}

// LinkEnd is one end of a veth pair with its configuration.
type LinkEnd struct {
	End
	Addresses []netip.Prefix
	MAC       net.HardwareAddr
	MTU       int
	Pos       Pos // of the interface entry, or of the peer reference
}

// Route is a static route. To is 0.0.0.0/0 or ::/0 for "default".
type Route struct {
	To     netip.Prefix
	Via    netip.Addr // invalid (zero) when the route only names a device
	Dev    string     // optional; required without Via
	Metric int
	Pos    Pos
}

// Dest names the route's destination in messages: "default (0.0.0.0/0)"
// or the prefix.
func (r Route) Dest() string {
	if r.To.Bits() == 0 {
		return "default (" + r.To.String() + ")"
	}
	return r.To.String()
}

// String prints the route as `ip route` does: "default via 10.0.0.254",
// "10.9.0.0/16 dev veth1 metric 10".
func (r Route) String() string {
	s := r.To.String()
	if r.To.Bits() == 0 {
		s = "default"
	}
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	return s
}

// Sysctl is one kernel setting, named as sysctl(8) does (net.ipv4.ip_forward).
type Sysctl struct {
	Key   string
	Value string
	Pos   Pos
}

// Expect is one connectivity expectation: from a namespace, to a namespace,
// a bridge or an address, by ping, TCP connect or UDP, reachable or not.
type Expect struct {
	From string // namespace on the machine (Host allowed)
	To   string // as written: a namespace, a bridge or an address
	// Addr is To resolved: the address itself, or the first address (IPv4
	// first) of the namespace's first addressed interface or of the bridge.
	Addr      netip.Addr
	Ping      bool
	TCP, UDP  int
	Reachable bool
	Pos       Pos
	Path      string

	fromPos, toPos Pos
}

// Kind names the probe: "ping", "tcp" or "udp".
func (x Expect) Kind() string {
	switch {
	case x.TCP != 0:
		return "tcp"
	case x.UDP != 0:
		return "udp"
	}
	return "ping"
}

// MaxQueues bounds a reflector's queues (one reader goroutine each).
const MaxQueues = 8

// MaxCPU is the highest CPU number a TUN's cpus may name: the kernel's
// default CPU_SETSIZE (1024 CPUs) less one, what sched_setaffinity takes
// in a glibc cpu_set_t and in x/sys/unix.CPUSet.
const MaxCPU = 1023

// TUN is a persistent TUN device. With Reflector, netlab runs `netlab
// reflect` on it: every packet comes back with source and destination
// swapped, so every address routed to the device answers. With UDP, every
// packet read is sent as a UDP datagram and every datagram received is
// written back (a TUN<->UDP bridge). With neither, it is a plain device for
// the user's own program.
type TUN struct {
	Name      string
	NS        string
	Reflector bool
	UDP       *UDPBridge
	Queues    int // reflector queues; 0: len(CPUs) if set, else the number of CPUs, at most MaxQueues
	// CPUs the reflector or UDP bridge process runs on (sched_setaffinity
	// of all its threads), sorted; nil: wherever the scheduler puts it.
	CPUs      []int
	CPUsPos   Pos // where cpus is written, for errors about the machine
	MTU       int
	Addresses []netip.Prefix
	Routes    []netip.Prefix // routed to the device
	Log       bool           // reflector: one line per packet in its log
	Pos       Pos
	Path      string
}

// Supervised says whether netlab runs a process on the TUN.
func (t *TUN) Supervised() bool { return t.Reflector || t.UDP != nil }

// UDPBridge is the UDP side of a TUN<->UDP bridge.
type UDPBridge struct {
	Listen, Send netip.AddrPort
	// Namespace holds the UDP socket: the host by default, so a program
	// outside the lab reaches it on loopback.
	Namespace string
	Pos       Pos

	nsPos Pos
}

// TAP is a persistent TAP device a user's program (a VM, an emulator)
// attaches to. Owner and Group are -1 when not set; the kernel lets a user
// attach only if both match, so give both.
type TAP struct {
	Name         string
	NS           string
	Owner, Group int
	MAC          net.HardwareAddr
	MultiQueue   bool
	VnetHdr      bool
	MTU          int
	Addresses    []netip.Prefix
	Pos          Pos
	Path         string
}
