package plan

import (
	"fmt"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// The Linux bridge's VLANs, through the kernel driver: a bridge's
// vlan_filtering and its ports' VLANs (OVS ports' VLANs are Open vSwitch's
// kinds, in steps_ovs.go).
const (
	OpSetVLANFiltering Op = "set-vlan-filtering"
	OpSetBridgeVLANs   Op = "set-bridge-vlans"
	OpAddVLAN          Op = "add-vlan"
)

// vlanKinds are the Linux bridge VLANs' rows of the table of kinds.
var vlanKinds = map[Op]kind{
	OpSetVLANFiltering: {},
	OpSetBridgeVLANs:   {},
	OpAddVLAN:          {},
}

// AddVLAN makes an 802.1Q interface on a link of a lab namespace, marked.
type AddVLAN struct {
	NS     string `json:"ns,omitempty"`
	Link   string `json:"link,omitempty"`
	Parent string `json:"parent,omitempty"`
	ID     int    `json:"id,omitempty"`
	Alias  string `json:"alias,omitempty"`
}

func (AddVLAN) Op() Op          { return OpAddVLAN }
func (s AddVLAN) Scope() string { return inScope(s.NS) }
func (AddVLAN) sealed()         {}
func (s AddVLAN) Command(string) string {
	return fmt.Sprintf("ip -n %s link add link %s name %s alias %s type vlan id %d", s.NS, s.Parent, s.Link, s.Alias, s.ID)
}

// SetVLANFiltering turns a Linux bridge's VLAN filtering on or off.
type SetVLANFiltering struct {
	Bridge string `json:"bridge,omitempty"`
	On     bool   `json:"on,omitempty"`
}

func (SetVLANFiltering) Op() Op          { return OpSetVLANFiltering }
func (s SetVLANFiltering) Scope() string { return inScope(topology.Host) }
func (SetVLANFiltering) sealed()         {}
func (s SetVLANFiltering) Command(string) string {
	on := 0
	if s.On {
		on = 1
	}
	return fmt.Sprintf("ip link set %s type bridge vlan_filtering %d", s.Bridge, on)
}

// SetBridgeVLANs makes a Linux bridge port's VLANs exactly VLANs: the
// wanted ones added (or changed), every other one of the port deleted.
type SetBridgeVLANs struct {
	Link  string             `json:"link,omitempty"`
	VLANs []state.BridgeVLAN `json:"vlans,omitempty"`
}

func (SetBridgeVLANs) Op() Op          { return OpSetBridgeVLANs }
func (s SetBridgeVLANs) Scope() string { return inScope(topology.Host) }
func (SetBridgeVLANs) sealed()         {}
func (s SetBridgeVLANs) Command(string) string {
	var cmds []string
	for _, v := range s.VLANs {
		c := fmt.Sprintf("bridge vlan add dev %s vid %d", s.Link, v.VID)
		if v.PVID {
			c += " pvid"
		}
		if v.Untagged {
			c += " untagged"
		}
		cmds = append(cmds, c)
	}
	return strings.Join(cmds, " && ") + "   # and bridge vlan del of the port's other VLANs"
}
