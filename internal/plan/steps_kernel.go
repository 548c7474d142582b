package plan

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// The kernel's kinds: namespaces, links, addresses, routes, sysctls,
// TUN/TAP and VXLAN devices. Each step type's fields keep the JSON names
// and order of `netlab plan --json`.
const (
	OpAddNamespace   Op = "add-namespace"
	OpDelNamespace   Op = "del-namespace"
	OpAddVeth        Op = "add-veth"
	OpAddLinuxBridge Op = "add-linux-bridge"
	OpAddTuntap      Op = "add-tuntap"
	OpAddVXLAN       Op = "add-vxlan"
	OpSetRemotes     Op = "set-remotes"
	OpSetLink        Op = "set-link"
	OpSetTxChecksum  Op = "set-tx-checksum"
	OpSetGRO         Op = "set-gro"
	OpDelLink        Op = "del-link"
	OpDelLinks       Op = "del-links" // several links of a namespace in one deletion (down)
	OpAddAddr        Op = "add-addr"
	OpDelAddr        Op = "del-addr"
	OpReplaceRoute   Op = "replace-route"
	OpDelRoute       Op = "del-route"
	OpSetSysctl      Op = "set-sysctl"
	OpRestoreSysctl  Op = "restore-sysctl"
)

// kernelKinds are the kernel's rows of the table of kinds (see kind):
// where each sorts in a down plan.
var kernelKinds = map[Op]kind{
	OpAddNamespace:   {},
	OpDelNamespace:   {down: 8},
	OpAddVeth:        {},
	OpAddLinuxBridge: {},
	OpAddTuntap:      {},
	OpAddVXLAN:       {},
	OpSetRemotes:     {},
	OpSetLink:        {},
	OpSetTxChecksum:  {},
	OpSetGRO:         {},
	OpDelLink:        {down: 7},
	OpDelLinks:       {down: 7},
	OpAddAddr:        {},
	OpDelAddr:        {},
	OpReplaceRoute:   {},
	OpDelRoute:       {down: 6},
	OpSetSysctl:      {},
	OpRestoreSysctl:  {down: 11},
}

// AddNamespace makes a named network namespace, marked with Alias on lo.
type AddNamespace struct {
	NS    string `json:"ns,omitempty"`
	Alias string `json:"alias,omitempty"`
}

func (AddNamespace) Op() Op          { return OpAddNamespace }
func (s AddNamespace) Scope() string { return inScope(s.NS) }
func (AddNamespace) sealed()         {}
func (s AddNamespace) Command(string) string {
	return fmt.Sprintf("ip netns add %s && ip -n %s link set lo alias %s up", s.NS, s.NS, s.Alias)
}

// DelNamespace deletes a namespace of the lab, with the processes in it.
type DelNamespace struct {
	NS string `json:"ns,omitempty"`
}

func (DelNamespace) Op() Op                  { return OpDelNamespace }
func (s DelNamespace) Scope() string         { return inScope(s.NS) }
func (DelNamespace) sealed()                 {}
func (s DelNamespace) Command(string) string { return "ip netns del " + s.NS }
func (s DelNamespace) Removed(string) string { return "namespace " + s.NS }

// AddVeth makes a veth pair, each end marked, the peer made in its
// namespace at once.
type AddVeth struct {
	NS        string `json:"ns,omitempty"`
	Link      string `json:"link,omitempty"`
	Alias     string `json:"alias,omitempty"`
	PeerNS    string `json:"peer_ns,omitempty"`
	Peer      string `json:"peer,omitempty"`
	PeerAlias string `json:"peer_alias,omitempty"`
	// NoIPv6 and PeerNoIPv6 say an end has IPv6 disabled before it first
	// goes up: a bridge port with no address of its own (the bridge
	// forwards its frames whatever its IPv6 state). Every device that goes
	// up with IPv6 makes the kernel walk its namespace's whole IPv6
	// routing table (rt6_sync_up), where each port up before it has routes:
	// thousands of ports came up in time quadratic in their number.
	NoIPv6     bool `json:"no_ipv6,omitempty"`
	PeerNoIPv6 bool `json:"peer_no_ipv6,omitempty"`
}

func (AddVeth) Op() Op          { return OpAddVeth }
func (s AddVeth) Scope() string { return inScope(s.NS) }
func (AddVeth) sealed()         {}
func (s AddVeth) Command(string) string {
	peerNS := s.PeerNS
	if peerNS == topology.Host {
		peerNS = "1" // the host namespace, as seen by a process in it: PID 1's
	}
	cmd := fmt.Sprintf("%s link add %s alias %s type veth peer name %s netns %s alias %s",
		ipn(s.NS), s.Link, s.Alias, s.Peer, peerNS, s.PeerAlias)
	if s.NoIPv6 {
		cmd += "; " + noIPv6Command(s.NS, s.Link)
	}
	if s.PeerNoIPv6 {
		cmd += "; " + noIPv6Command(s.PeerNS, s.Peer)
	}
	return cmd
}

// noIPv6Command disables IPv6 on a link (the key with slashes: a link's
// name may hold dots).
func noIPv6Command(ns, link string) string {
	sysctl := "sysctl -qw net/ipv6/conf/" + link + "/disable_ipv6=1"
	if ns == topology.Host {
		return sysctl
	}
	return "ip netns exec " + ns + " " + sysctl
}

// AddLinuxBridge makes a Linux bridge device.
type AddLinuxBridge struct {
	NS    string `json:"ns,omitempty"`
	Link  string `json:"link,omitempty"`
	Alias string `json:"alias,omitempty"`
}

func (AddLinuxBridge) Op() Op          { return OpAddLinuxBridge }
func (s AddLinuxBridge) Scope() string { return inScope(s.NS) }
func (AddLinuxBridge) sealed()         {}
func (s AddLinuxBridge) Command(string) string {
	return fmt.Sprintf("%s link add %s alias %s type bridge", ipn(s.NS), s.Link, s.Alias)
}

// AddTuntap makes a persistent TUN or TAP device.
type AddTuntap struct {
	NS     string        `json:"ns,omitempty"`
	Link   string        `json:"link,omitempty"`
	Alias  string        `json:"alias,omitempty"`
	Tuntap *state.Tuntap `json:"tuntap,omitempty"`
}

func (AddTuntap) Op() Op          { return OpAddTuntap }
func (s AddTuntap) Scope() string { return inScope(s.NS) }
func (AddTuntap) sealed()         {}
func (s AddTuntap) Command(string) string {
	t := s.Tuntap
	mode := "tun"
	if t.TAP {
		mode = "tap"
	}
	c := fmt.Sprintf("%s tuntap add dev %s mode %s", ipn(s.NS), s.Link, mode)
	if t.Owner >= 0 {
		c += fmt.Sprintf(" user %d", t.Owner)
	}
	if t.Group >= 0 {
		c += fmt.Sprintf(" group %d", t.Group)
	}
	if t.MultiQueue {
		c += " multi_queue"
	}
	if t.VnetHdr {
		c += " vnet_hdr"
	}
	return c + fmt.Sprintf(" && %s link set %s alias %s", ipn(s.NS), s.Link, s.Alias)
}

// AddVXLAN makes a VXLAN device of a link that crosses machines.
type AddVXLAN struct {
	NS    string             `json:"ns,omitempty"`
	Link  string             `json:"link,omitempty"`
	Alias string             `json:"alias,omitempty"`
	VXLAN *state.VXLANConfig `json:"vxlan,omitempty"`
}

func (AddVXLAN) Op() Op          { return OpAddVXLAN }
func (s AddVXLAN) Scope() string { return inScope(s.NS) }
func (AddVXLAN) sealed()         {}
func (s AddVXLAN) Command(string) string {
	v := s.VXLAN
	c := fmt.Sprintf("ip link add %s", s.Link)
	if s.NS != topology.Host {
		c += " netns " + s.NS
	}
	c += fmt.Sprintf(" type vxlan id %d local %s dstport %d", v.VNI, v.Local, v.Port)
	if v.Dev != "" {
		c += " dev " + v.Dev
	}
	return c + fmt.Sprintf(" && %s link set %s alias %s", ipn(s.NS), s.Link, s.Alias)
}

// SetRemotes sets a VXLAN device's remote ends: Remotes all of them, Added
// and Removed what changes.
type SetRemotes struct {
	NS      string       `json:"ns,omitempty"`
	Link    string       `json:"link,omitempty"`
	Remotes []netip.Addr `json:"remotes,omitempty"`
	Added   []netip.Addr `json:"added,omitempty"`
	Removed []netip.Addr `json:"removed,omitempty"`
}

func (SetRemotes) Op() Op          { return OpSetRemotes }
func (s SetRemotes) Scope() string { return inScope(s.NS) }
func (SetRemotes) sealed()         {}
func (s SetRemotes) Command(string) string {
	var cmds []string
	for _, r := range s.Removed {
		cmds = append(cmds, fmt.Sprintf("bridge%s fdb del 00:00:00:00:00:00 dev %s dst %s", nsFlag(s.NS), s.Link, r))
	}
	for _, r := range s.Added {
		cmds = append(cmds, fmt.Sprintf("bridge%s fdb append 00:00:00:00:00:00 dev %s dst %s", nsFlag(s.NS), s.Link, r))
	}
	return strings.Join(cmds, " && ")
}

// SetLink changes a link: empty fields stay as they are.
type SetLink struct {
	NS     string  `json:"ns,omitempty"`
	Link   string  `json:"link,omitempty"`
	MAC    string  `json:"mac,omitempty"`
	MTU    int     `json:"mtu,omitempty"`
	Master *string `json:"master,omitempty"` // "" = no master
	Up     bool    `json:"up,omitempty"`
}

func (SetLink) Op() Op          { return OpSetLink }
func (s SetLink) Scope() string { return inScope(s.NS) }
func (SetLink) sealed()         {}
func (s SetLink) Command(string) string {
	var parts []string
	if s.MAC != "" {
		parts = append(parts, "address "+s.MAC)
	}
	if s.MTU != 0 {
		parts = append(parts, fmt.Sprintf("mtu %d", s.MTU))
	}
	if s.Master != nil {
		if *s.Master == "" {
			parts = append(parts, "nomaster")
		} else {
			parts = append(parts, "master "+*s.Master)
		}
	}
	if s.Up {
		parts = append(parts, "up")
	}
	return fmt.Sprintf("%s link set %s %s", ipn(s.NS), s.Link, strings.Join(parts, " "))
}

// SetTxChecksum turns a link's transmit checksum offload on or off.
type SetTxChecksum struct {
	NS   string `json:"ns,omitempty"`
	Link string `json:"link,omitempty"`
	On   bool   `json:"on,omitempty"`
}

func (SetTxChecksum) Op() Op          { return OpSetTxChecksum }
func (s SetTxChecksum) Scope() string { return inScope(s.NS) }
func (SetTxChecksum) sealed()         {}
func (s SetTxChecksum) Command(string) string {
	return inNS(s.NS, fmt.Sprintf("ethtool -K %s tx %s", s.Link, onOff(s.On)))
}

// SetGRO turns a link's generic receive offload on or off.
type SetGRO struct {
	NS   string `json:"ns,omitempty"`
	Link string `json:"link,omitempty"`
	On   bool   `json:"on,omitempty"`
}

func (SetGRO) Op() Op          { return OpSetGRO }
func (s SetGRO) Scope() string { return inScope(s.NS) }
func (SetGRO) sealed()         {}
func (s SetGRO) Command(string) string {
	return inNS(s.NS, fmt.Sprintf("ethtool -K %s gro %s", s.Link, onOff(s.On)))
}

// DelLink deletes a link of the lab.
type DelLink struct {
	NS   string `json:"ns,omitempty"`
	Link string `json:"link,omitempty"`
}

func (DelLink) Op() Op                  { return OpDelLink }
func (s DelLink) Scope() string         { return inScope(s.NS) }
func (DelLink) sealed()                 {}
func (s DelLink) Command(string) string { return fmt.Sprintf("%s link del %s", ipn(s.NS), s.Link) }
func (s DelLink) Removed(string) string { return "interface " + s.Link }

// DelLinks deletes several links of a namespace in one kernel operation.
type DelLinks struct {
	NS    string   `json:"ns,omitempty"`
	Links []string `json:"links,omitempty"`
}

func (DelLinks) Op() Op          { return OpDelLinks }
func (s DelLinks) Scope() string { return inScope(s.NS) }
func (DelLinks) sealed()         {}
func (s DelLinks) Command(string) string {
	return fmt.Sprintf("for l in %s; do %s link set $l group $G; done; %s link del group $G   # $G: a group no other interface has; one deletion for all",
		strings.Join(s.Links, " "), ipn(s.NS), ipn(s.NS))
}
func (s DelLinks) Removed(string) string { return "interfaces " + strings.Join(s.Links, ", ") }

// AddAddr adds (or replaces) an address.
type AddAddr struct {
	NS   string       `json:"ns,omitempty"`
	Link string       `json:"link,omitempty"`
	Addr netip.Prefix `json:"addr,omitzero"`
}

func (AddAddr) Op() Op          { return OpAddAddr }
func (s AddAddr) Scope() string { return inScope(s.NS) }
func (AddAddr) sealed()         {}
func (s AddAddr) Command(string) string {
	c := fmt.Sprintf("%s addr replace %s dev %s", ipn(s.NS), s.Addr, s.Link)
	if s.Addr.Addr().Is6() {
		c += " nodad"
	}
	return c
}

// DelAddr removes an address.
type DelAddr struct {
	NS   string       `json:"ns,omitempty"`
	Link string       `json:"link,omitempty"`
	Addr netip.Prefix `json:"addr,omitzero"`
}

func (DelAddr) Op() Op          { return OpDelAddr }
func (s DelAddr) Scope() string { return inScope(s.NS) }
func (DelAddr) sealed()         {}
func (s DelAddr) Command(string) string {
	return fmt.Sprintf("%s addr del %s dev %s", ipn(s.NS), s.Addr, s.Link)
}

// ReplaceRoute installs a route with netlab's protocol.
type ReplaceRoute struct {
	NS    string       `json:"ns,omitempty"`
	Route *state.Route `json:"route,omitempty"`
}

func (ReplaceRoute) Op() Op          { return OpReplaceRoute }
func (s ReplaceRoute) Scope() string { return inScope(s.NS) }
func (ReplaceRoute) sealed()         {}
func (s ReplaceRoute) Command(string) string {
	return fmt.Sprintf("%s route replace %s proto %d", ipn(s.NS), routeArgs(s.Route), state.RouteProtocol)
}

// DelRoute deletes a route netlab installed.
type DelRoute struct {
	NS    string       `json:"ns,omitempty"`
	Route *state.Route `json:"route,omitempty"`
}

func (DelRoute) Op() Op          { return OpDelRoute }
func (s DelRoute) Scope() string { return inScope(s.NS) }
func (DelRoute) sealed()         {}
func (s DelRoute) Command(string) string {
	return fmt.Sprintf("%s route del %s proto %d", ipn(s.NS), routeArgs(s.Route), state.RouteProtocol)
}
func (s DelRoute) Removed(string) string { return "host route " + s.Route.String() }

// SetSysctl writes a sysctl; in the host the lab then holds it (the
// machine's ledger of host sysctls).
type SetSysctl struct {
	NS    string `json:"ns,omitempty"`
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

func (SetSysctl) Op() Op          { return OpSetSysctl }
func (s SetSysctl) Scope() string { return inScope(s.NS) }
func (SetSysctl) sealed()         {}
func (s SetSysctl) Command(string) string {
	return inNS(s.NS, fmt.Sprintf("sysctl -w %s=%s", s.Key, s.Value))
}

// RestoreSysctl lets go of a host sysctl the lab holds: Value (the value
// before the first lab) goes back when no other lab holds it. HeldBy are
// the other labs holding it when planned; while one does, the value stays.
type RestoreSysctl struct {
	NS     string   `json:"ns,omitempty"`
	Key    string   `json:"key,omitempty"`
	Value  string   `json:"value,omitempty"`
	HeldBy []string `json:"held_by,omitempty"`
}

func (RestoreSysctl) Op() Op          { return OpRestoreSysctl }
func (s RestoreSysctl) Scope() string { return inScope(s.NS) }
func (RestoreSysctl) sealed()         {}
func (s RestoreSysctl) Command(string) string {
	if len(s.HeldBy) > 0 {
		return fmt.Sprintf("# %s stays: lab %s holds it too (restored to %s by the last to go)", s.Key, strings.Join(s.HeldBy, ", "), s.Value)
	}
	return inNS(s.NS, fmt.Sprintf("sysctl -w %s=%s", s.Key, s.Value)) + "   # value before the lab"
}
func (s RestoreSysctl) Removed(string) string {
	if len(s.HeldBy) > 0 {
		return fmt.Sprintf("hold on host sysctl %s (kept: lab %s holds it too)", s.Key, strings.Join(s.HeldBy, ", "))
	}
	return fmt.Sprintf("host sysctl %s (restored to %s)", s.Key, s.Value)
}
