package observe

import (
	"fmt"
	"net/netip"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// Warnings says what on the machine would stop the lab from working as
// written without netlab changing it: a firewall whose forward policy drops
// the traffic the lab forwards (in a namespace that masquerades, or in the
// host when the lab turns on its forwarding). netlab never adds such rules
// itself; the warning says which to add.
func Warnings(lab *topology.Lab) []string {
	var out []string
	// A big bridge of AF_XDP ports asked for by name: say what it costs.
	for _, b := range lab.Bridges {
		if topology.IsAFXDP(b.PortType) && len(b.Ports) > topology.AutoAFXDPMaxPorts {
			out = append(out, fmt.Sprintf("bridge %s: %d %s ports make ovs-vswitchd hold about %d MB more and take about %.0f s more to come up (port-type auto uses system ports above %d)",
				b.Name, len(b.Ports), b.PortType, len(b.Ports)*topology.AFXDPPortMemory>>20, float64(len(b.Ports))*0.07, topology.AutoAFXDPMaxPorts))
		}
	}
	// In a user namespace (a rootless sandbox) auto cannot choose AF_XDP:
	// say so, as the fallback after a failed AF_XDP port does.
	if why := kernel.NoAFXDP(); kernel.InUserNamespace() {
		for _, b := range lab.Bridges {
			if b.Type == topology.BridgeOVS && b.PortType == topology.PortTypeAuto && datapath(b) == topology.DatapathNetdev && len(b.Ports) > 0 {
				out = append(out, fmt.Sprintf("bridge %s: its ports are system (AF_PACKET) ports, about half the TCP throughput of AF_XDP ones: %s", b.Name, why))
			}
		}
	}
	for _, ns := range lab.AllNamespaces() {
		var sources []netip.Prefix
		for _, r := range ns.NAT {
			sources = append(sources, r.Source)
		}
		if ns.IsHost() && forwards(ns) {
			for _, b := range lab.Bridges {
				for _, a := range b.Addresses {
					sources = append(sources, a.Masked())
				}
			}
			for _, i := range ns.Interfaces {
				for _, a := range i.Addresses {
					sources = append(sources, a.Masked())
				}
			}
		}
		if len(sources) == 0 {
			continue
		}
		if ns.Name != topology.Host && !exists(ns.Name) {
			continue // a namespace netlab will create has no firewall of its own
		}
		w, err := nft.ObserveForwardDrops(ns.Name, dedup(sources))
		if err != nil {
			out = append(out, "could not read the firewall of "+ns.Name+": "+err.Error())
			continue
		}
		out = append(out, w...)
	}
	return out
}

func forwards(ns *topology.Namespace) bool {
	for _, s := range ns.Sysctls {
		if (s.Key == "net.ipv4.ip_forward" || s.Key == "net.ipv6.conf.all.forwarding") && s.Value == "1" {
			return true
		}
	}
	return false
}

func dedup(in []netip.Prefix) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, p := range in {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func exists(ns string) bool { return namespace.Exists(ns) }

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
	// Links the userspace emulator carries whatever the kernel can do (a
	// delay is the emulator's only on a kernel without netem: found when
	// up probes, and its TAP then fails to open with the same reason).
	for _, e := range plan.EmulatedLinks(lab, plan.WantImpair(lab, nil), nil) {
		out = append(out, "emulated link "+e.A.End.String()+" <-> "+e.B.End.String()+" (two TAPs)")
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
