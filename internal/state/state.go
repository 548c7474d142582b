// Package state holds what netlab observed on the machine (Snapshot), the
// ownership markers that say an object belongs to a lab, and the on-disk
// journal under /run/netlab/<lab>/ that lets `down` and a repairing `up` work
// after a crash or without the topology file.
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/netlab-dev/netlab/topology"
)

// RouteProtocol is the rtnetlink protocol number netlab stamps on the routes
// it installs (`ip route ... proto 78`): it marks them as netlab's, so routes
// of the kernel, of DHCP or of the user are never touched.
const RouteProtocol = 78

// Snapshot is the part of the machine that matters to one lab: the objects
// that carry its marker, and any object whose name the lab wants but that
// belongs to someone else (a clash).
type Snapshot struct {
	Lab string
	// Namespaces by name. "host" (topology.Host) is the root namespace and is
	// always present when observed.
	Namespaces map[string]*Namespace
	// Bridges (OVS and Linux) by name.
	Bridges map[string]*Bridge
	// HostsHash is the hash of the lab's hosts file as written ("" when
	// there is none).
	HostsHash string
	// OVS tells whether an OVS database was reachable, and which one.
	OVS OVSInfo
	// HostDefaultRouteDevs are the host interfaces that carry a default
	// route (IPv4 or IPv6): attaching one to a lab bridge would cut the host
	// off its network.
	HostDefaultRouteDevs []string
	// SysctlHolders maps each host sysctl that other labs hold (from the
	// machine's ledger of them) to those labs and the value each wants.
	SysctlHolders map[string]map[string]string
	// CPUs are the machine's online CPUs, sorted, which a TUN's cpus may
	// name; nil: not observed (not checked).
	CPUs []int
	// Impair is what this kernel can apply of impairments; nil when not
	// probed (the plan then assumes everything, and apply finds out).
	Impair *ImpairSupport
	// Underlay is the host interface this machine's tunnels go over (a
	// machine's part of a multi-machine lab); nil when not observed or
	// not found.
	Underlay *Underlay
	// FlowsOneByOne names the OVS bridges of the file whose flows only
	// OpenFlow 1.0 with Nicira extensions carries (strip_vlan with no VLAN
	// match...): bundles need 1.3 or later, so up changes them one flow at a
	// time. Nil when not observed.
	FlowsOneByOne map[string]bool
	// VLAN is what this kernel offers VLANs; nil when not probed (the lab
	// asks for none that needs the kernel: OVS ports' VLANs are Open
	// vSwitch's).
	VLAN *VLANSupport
	// Timelines are the lab's timeline runners with a spec, running or
	// not, by timeline name.
	Timelines map[string]*TimelineProc
}

// VLANSupport is what the kernel offers VLANs, found by trying.
type VLANSupport struct {
	// BridgeFiltering: Linux bridges with vlan_filtering
	// (CONFIG_BRIDGE_VLAN_FILTERING).
	BridgeFiltering bool `json:"bridge_filtering"`
	// Interfaces: 802.1Q VLAN interfaces (CONFIG_VLAN_8021Q).
	Interfaces bool `json:"interfaces"`
	// Why holds each missing feature's error, by feature.
	Why map[string]string `json:"why,omitempty"`
}

// The kernel's VLAN features, as VLANSupport.Why and errors name them.
const (
	FeatureBridgeVLAN = "bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)"
	FeatureVLAN8021Q  = "802.1Q VLAN interfaces (8021q, CONFIG_VLAN_8021Q)"
)

// Underlay is the host interface with a machine's underlay address (or
// the one the file names).
type Underlay struct {
	Dev   string
	Index int
	MTU   int
}

// OVSInfo describes the Open vSwitch instance netlab talks to.
type OVSInfo struct {
	Running bool   `json:"running"` // a database answered
	Private bool   `json:"private"` // it is netlab's private instance under /run/netlab/ovs
	DB      string `json:"db"`      // e.g. unix:/run/netlab/ovs/db.sock
	// AFXDP says that AF_XDP ports work here: Open vSwitch lists
	// afxdp-nonpmd among its iface_types and the kernel opens AF_XDP
	// sockets.
	AFXDP bool `json:"afxdp"`
	// NoAFXDP says why AF_XDP ports do not work here, when the kernel or
	// the user namespace is the reason ("" otherwise).
	NoAFXDP string `json:"no_afxdp,omitempty"`
	// RunDir is the instance's run directory (OVS_RUNDIR): its database
	// socket, pidfiles, control sockets and bridges' <bridge>.mgmt sockets,
	// which the ovs-* tools find through it (`netlab ovs LAB -- ...`).
	RunDir string `json:"run_dir,omitempty"`
}

// Namespace is an observed network namespace.
type Namespace struct {
	Name  string
	Owner string // lab named by the marker on its lo (alias netlab:<lab>); "" if none
	Links map[string]*Link
	// Routes installed with RouteProtocol (netlab's), all tables main.
	Routes []Route
	// Foreign are the main table's routes of other protocols (the
	// kernel's, DHCP's, the administrator's) to the destinations the lab
	// routes here; read for the host namespace only, where a lab route to
	// the same destination would replace one or take its traffic.
	Foreign []ForeignRoute
	// Sysctls read from this namespace, for the keys netlab asked about.
	Sysctls map[string]string
	// NAT is the lab's nftables table in this namespace; nil when absent.
	NAT *NATTable
	// Loss is the lab's netdev nftables table of loss rules here (see
	// impair.go); nil when absent.
	Loss *LossTable
	// Processes are the lab's supervised processes on this namespace's
	// devices (reflectors, UDP bridges), by device name; only live ones.
	Processes map[string]*Process
	// Services are the lab's services of this namespace, running or not,
	// by name.
	Services map[string]*Service
	// ViewHash is the hash of the namespace's view of files as written (""
	// when none is).
	ViewHash string
	// Partition is what the lab's partition tables here drop (see
	// events.go); nil when there are none.
	Partition *PartitionTable
}

// OnlyLoopback says whether the namespace holds no link but lo: what a
// namespace an interrupted run made and died before marking holds.
func (n *Namespace) OnlyLoopback() bool {
	for name := range n.Links {
		if name != "lo" {
			return false
		}
	}
	return true
}

// Process is a supervised process netlab started, found by its pidfile and
// checked against /proc/<pid>/exe and cmdline.
type Process struct {
	PID int
	// Spec is the canonical description of what it was started to do; a
	// different spec in the file means restart.
	Spec string
	// Program is ProgramReflect (a reflector or UDP bridge on a TUN) or
	// ProgramEmulate (an emulated link, under its first end's name).
	Program string
	// Emulator is what an emulator says it applies; nil for other
	// programs, or when it has not said yet.
	Emulator *EmulatorState
}

// The programs netlab supervises on a lab's devices: `netlab reflect` and
// `netlab emulate`.
const (
	ProgramReflect = "reflect"
	ProgramEmulate = "emulate"
)

// EmulatorState is what a running emulator says of itself (its state
// file): the model in force for each direction (A's is what the first end
// sends), the far end it carries frames to, each end's carrier.
type EmulatorState struct {
	Generation         uint64
	A, B               topology.Impair
	PeerNS, Peer       string
	CarrierA, CarrierB bool
	// Error is why the last change of model was refused ("" when it took).
	Error string
}

// Service is a service of the lab as observed.
type Service struct {
	Name string
	// Hash is what it was started to run; another one means a restart.
	Hash string
	// Supervisor is its supervisor's pid, 0 when none runs: the service
	// is down. PID is its program's, 0 while none runs (ended, or being
	// restarted).
	Supervisor, PID int
	Restarts        int
	Exit            string // how its program last ended, if it did
}

// NATTable is the lab's observed nftables table.
type NATTable struct {
	Rules []NATRuleStats
	// Foreign is set when the table holds anything netlab did not write;
	// up replaces it.
	Foreign bool
}

// NATRule is a masquerade rule: packets from Source (IPv4 or IPv6; a /0
// matches the whole family) leaving by the interface Out. The plan's
// set-nat carries the rules, and the nftables driver takes them.
type NATRule struct {
	Source netip.Prefix `json:"source"`
	Out    string       `json:"out"`
}

// NATRuleStats is an observed rule with its counters.
type NATRuleStats struct {
	NATRule
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Link kinds as netlink reports them.
const (
	KindVeth   = "veth"
	KindBridge = "bridge"
	KindTuntap = "tuntap"
	KindVXLAN  = "vxlan"
	KindVLAN   = "vlan" // an 802.1Q interface on another
	KindOVS    = "openvswitch"
)

// CrashLeftoverKind says whether a host link of this kind may be one netlab
// made and a crash left unmarked: the kinds up creates on the host (veth
// ends, Linux bridges, TAPs, VXLAN devices), each journaled before it is
// made, then marked in a second request.
func CrashLeftoverKind(kind string) bool {
	switch kind {
	case KindVeth, KindBridge, KindTuntap, KindVXLAN:
		return true
	}
	return false
}

// Link is an observed network interface.
type Link struct {
	Name   string
	Index  int
	Kind   string // netlink type: veth, bridge, tuntap, device, ...
	Alias  string
	Up     bool // administratively up (IFF_UP)
	MTU    int
	MAC    net.HardwareAddr
	Master string // name of the Linux bridge it is enslaved to, if any
	// Addrs are the link's addresses, IPv6 link-local ones included (the
	// plan never removes a link-local address the file does not name).
	Addrs []netip.Prefix
	// TxChecksum is the tx checksum offload state (ethtool -k: tx-checksumming);
	// nil when not read.
	TxChecksum *bool
	// GRO is the generic receive offload state of a VXLAN device; nil when
	// not read.
	GRO *bool
	// Qdisc is the link's root qdisc when it is not the kernel's default:
	// netlab's (an impairment) or someone else's; nil when not read or
	// default.
	Qdisc *Qdisc
	// Tuntap holds a TUN/TAP device's fixed settings; nil for other kinds.
	Tuntap *Tuntap
	// VXLAN holds a VXLAN device's settings and counters; nil for other
	// kinds.
	VXLAN *VXLAN
	// LinkLayer is the link-layer address as `ip link` prints it, for
	// `netlab status`: "link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff",
	// "link/none" for a TUN device; "" when not read.
	LinkLayer string
	// NoCarrier says the link is administratively up but has no lower
	// link (IFF_UP without IFF_LOWER_UP: `ip link` prints NO-CARRIER), as
	// a veth whose peer is down; OperState is the kernel's RFC 2863
	// operational state ("up", "down", "lower-layer-down", "unknown": a
	// VXLAN device, which has no carrier).
	NoCarrier bool
	OperState string
	// VLANFiltering is a Linux bridge's vlan_filtering.
	VLANFiltering bool
	// BridgeVLANs are a Linux bridge port's VLANs (`bridge vlan show`),
	// sorted by VID; read for ports of a bridge with vlan_filtering.
	BridgeVLANs []BridgeVLAN
	// VLANID and VLANParent are an 802.1Q interface's VLAN and the link it
	// is on; 0 and "" for other kinds.
	VLANID     int
	VLANParent string
}

// BridgeVLAN is one VLAN of a Linux bridge port: the port carries VID,
// untagged on egress when Untagged; PVID is the VLAN of the frames it
// receives untagged.
type BridgeVLAN struct {
	VID      int  `json:"vid"`
	PVID     bool `json:"pvid,omitempty"`
	Untagged bool `json:"untagged,omitempty"`
}

// Tuntap is what the kernel reports of a TUN/TAP device.
// The plan's add-tuntap carries one, and the kernel driver takes it.
type Tuntap struct {
	TAP        bool `json:"tap,omitempty"` // ethernet frames rather than IP packets
	MultiQueue bool `json:"multi_queue,omitempty"`
	VnetHdr    bool `json:"vnet_hdr,omitempty"` // the flag of the last queue attached (or of creation)
	// Owner and Group are the machine's ids (who may attach without
	// CAP_NET_ADMIN; the kernel requires both to match); -1 when the
	// device has none.
	Owner int `json:"-"`
	Group int `json:"-"`
}

// VXLANConfig is a VXLAN device to make: the plan's add-vxlan carries one,
// and the kernel driver takes it.
type VXLANConfig struct {
	VNI   int        `json:"vni"`
	Local netip.Addr `json:"local"`         // this machine's underlay address
	Dev   string     `json:"dev,omitempty"` // underlay device; "" lets the kernel route
	Port  int        `json:"port"`          // UDP destination port
}

// VXLAN is what the kernel reports of a VXLAN device (a tunnel between
// machines).
type VXLAN struct {
	VNI      int
	Local    netip.Addr
	Port     int
	DevIndex int // the underlay device's index in the host namespace; 0: none
	// Remotes are the destinations of its all-zeros forwarding entries,
	// sorted.
	Remotes []netip.Addr
	// RxPackets and TxPackets say whether the tunnel carries traffic.
	RxPackets, TxPackets uint64
}

// Owner returns the lab named in the link's alias marker, or "".
func (l *Link) Owner() string {
	lab, _, _, ok := ParseLinkAlias(l.Alias)
	if !ok {
		return ""
	}
	return lab
}

// Route is an observed route.
type Route struct {
	To     netip.Prefix `json:"to"`
	Via    netip.Addr   `json:"via,omitzero"`
	Dev    string       `json:"dev,omitempty"`
	Metric int          `json:"metric,omitempty"`
}

// ForeignRoute is a route netlab did not install.
type ForeignRoute struct {
	Route
	// Protocol is who installed it, as `ip route` names it: kernel,
	// boot, static, dhcp, ra, ...
	Protocol string
}

// String prints the route as `ip route` does, with its protocol.
func (r ForeignRoute) String() string {
	s := topology.Route{To: r.To, Via: r.Via, Dev: r.Dev}.String() + " proto " + r.Protocol
	if r.Metric != 0 {
		s += " metric " + strconv.Itoa(r.Metric)
	}
	return s
}

// String prints the route as `ip route` does.
func (r Route) String() string {
	return topology.Route{To: r.To, Via: r.Via, Dev: r.Dev, Metric: r.Metric}.String()
}

// Bridge is an observed bridge: an OVS bridge (from the OVS database) or a
// Linux bridge device in the host namespace.
type Bridge struct {
	Name     string
	Type     string // "ovs" or "linux"
	Owner    string // OVS: external_ids:netlab-lab; Linux: from the alias marker
	Datapath string // OVS datapath_type ("" means system)
	FailMode string // OVS fail_mode ("" means standalone)
	Ports    map[string]*Port
	// FlowsInSync says whether the flows carrying the lab's static cookie
	// equal what the file wants (as Open vSwitch normalises them); read for
	// bridges whose file entry has flows. LabFlows counts those flows; read
	// for the lab's other bridges, whose flows are to be removed.
	LabFlows    int
	FlowsInSync bool
	// Controllers are an OVS bridge's OpenFlow controllers, sorted by
	// target, with whether each is connected.
	Controllers []Controller
	// VLANFiltering is a Linux bridge's vlan_filtering.
	VLANFiltering bool
}

// Controller is an OpenFlow controller of a bridge as Open vSwitch has it.
type Controller struct {
	Target    string `json:"target"`
	Connected bool   `json:"connected"`
}

// Targets lists the targets of controllers, in order.
func Targets(cs []Controller) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Target
	}
	return out
}

// Port is an observed bridge port.
type Port struct {
	Name          string
	Owner         string // OVS: external_ids:netlab-lab on the Port
	OFPortRequest int    // OVS ofport_request, 0 if unset
	OFPort        int    // OVS ofport assigned, -1 on error
	Type          string // OVS Interface type ("" means system)
	// VLAN is the OVS Port's tag, trunks and vlan_mode (nil: none of
	// them set).
	VLAN *PortVLAN
}

// PortVLAN is the VLAN setting of a bridge port: an OVS Port's vlan_mode,
// tag and trunks, or a Linux bridge port's VLANs read back into the same
// words (topology's VLAN modes). Nil when the port has none.
type PortVLAN struct {
	Mode   string `json:"mode,omitempty"`
	Tag    int    `json:"tag,omitempty"`
	Trunks []int  `json:"trunks,omitempty"`
}

// String prints the setting as status shows it: "access 20",
// "trunk 20,30", "native-untagged 10 trunk 20".
func (v *PortVLAN) String() string {
	if v == nil {
		return ""
	}
	s := v.Mode
	if v.Tag != 0 {
		s += fmt.Sprintf(" %d", v.Tag)
	}
	var ts []string
	for _, t := range v.Trunks {
		ts = append(ts, fmt.Sprint(t))
	}
	switch {
	case len(ts) > 0 && v.Mode == "trunk":
		s += " " + strings.Join(ts, ",")
	case len(ts) > 0:
		s += " trunk " + strings.Join(ts, ",")
	case v.Mode == "trunk":
		s += " all"
	}
	return strings.TrimSpace(s)
}

// Equal says whether two settings are the same.
func (v *PortVLAN) Equal(w *PortVLAN) bool {
	if v == nil || w == nil {
		return v == w
	}
	return v.Mode == w.Mode && v.Tag == w.Tag && slices.Equal(v.Trunks, w.Trunks)
}

// SortedNames returns the keys of m in order; plans iterate with it so they
// are deterministic.
func SortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// ViewFile is a file of a namespace's view (internal/view): the plan's
// set-view carries them, and the view's writer places them.
type ViewFile struct {
	Path    string      `json:"path"`
	Mode    fs.FileMode `json:"mode"`
	Content []byte      `json:"-"`
}

// ViewHash is the hash of a view's files and directories, as its manifest
// has it: the plan compares it with the one written. An empty view's is "",
// as a view never written.
func ViewHash(files []ViewFile, dirs []string) string {
	if len(files) == 0 && len(dirs) == 0 {
		return ""
	}
	h := sha256.New()
	fs := slices.Clone(files)
	slices.SortFunc(fs, func(a, b ViewFile) int { return strings.Compare(a.Path, b.Path) })
	for _, f := range fs {
		fmt.Fprintf(h, "f %s %o %d\n", f.Path, f.Mode, len(f.Content))
		h.Write(f.Content)
	}
	ds := slices.Clone(dirs)
	slices.Sort(ds)
	for _, d := range ds {
		fmt.Fprintf(h, "d %s\n", d)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ContentHash is the hash of a file's content, as the plan compares it
// (the lab's hosts file).
func ContentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}
