package engine

import (
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// TUNUsers lists what of the lab opens /dev/net/tun: its TUN and TAP
// devices (and the reflectors on them), and its Open vSwitch bridges on the
// userspace datapath, whose internal ports are TAP devices. A user who may
// not open the device (mode 0600, in a rootless sandbox) gets none of them:
// up refuses such a lab before it makes anything.
func TUNUsers(lab *topology.Lab) []string {
	var out []string
	for _, b := range lab.Bridges {
		if b.Type == topology.BridgeOVS && datapath(b) == topology.DatapathNetdev {
			out = append(out, "bridge "+b.Name+" (Open vSwitch's userspace datapath)")
		}
	}
	for _, ns := range lab.AllNamespaces() {
		for _, t := range ns.TUNs {
			out = append(out, "tun "+ns.Name+"/"+t.Name)
		}
		for _, t := range ns.TAPs {
			out = append(out, "tap "+ns.Name+"/"+t.Name)
		}
	}
	return out
}

// datapath is the OVS datapath the bridge gets: the file's, or the one
// this machine's kernel decides (netdev without the openvswitch module).
func datapath(b *topology.Bridge) string {
	if b.Datapath != topology.DatapathAuto {
		return b.Datapath
	}
	return ovs.DefaultDatapath()
}
