package plan

import (
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// linuxVLANs gives the ports of each Linux bridge with vlan-filtering the
// VLANs the file wants (`bridge vlan`): an access port carries its tag as
// PVID, untagged; a trunk carries its VLANs tagged; a native mode adds the
// tag as PVID, untagged (native-untagged) or tagged. A port without vlan:
// keeps the kernel's default (VLAN 1 as PVID, untagged), which the plan
// leaves alone. It runs after the links are attached to their bridge.
func (p *planner) linuxVLANs() {
	for _, b := range p.lab.Bridges {
		if b.Type != topology.BridgeLinux || !b.VLANFiltering {
			continue
		}
		for _, port := range b.Ports {
			if port.VLAN == nil {
				continue
			}
			want := BridgeVLANsOf(port.VLAN)
			if o := p.observedLink(topology.Host, port.Name); o != nil && !p.recreated[key(topology.Host, port.Name)] &&
				o.Master == b.Name && slices.Equal(o.BridgeVLANs, want) {
				continue
			}
			p.emit(SetBridgeVLANs{Link: port.Name, VLANs: want})
		}
	}
}

// BridgeVLANsOf turns a port's VLAN setting into a Linux bridge port's
// VLANs, sorted by VID.
func BridgeVLANsOf(v *topology.VLAN) []state.BridgeVLAN {
	var out []state.BridgeVLAN
	for _, t := range v.Trunks {
		out = append(out, state.BridgeVLAN{VID: t})
	}
	if v.Tag != 0 {
		out = append(out, state.BridgeVLAN{VID: v.Tag, PVID: true, Untagged: v.Mode != topology.VLANNativeTagged})
	}
	slices.SortFunc(out, func(a, b state.BridgeVLAN) int { return a.VID - b.VID })
	return out
}

// VLANFeatureError names each place of the file that needs a VLAN feature
// this kernel lacks (support probed: snap.VLAN); nil when all can be made or
// support was not probed.
func VLANFeatureError(lab *topology.Lab, sup *state.VLANSupport) error {
	if sup == nil {
		return nil
	}
	var errs topology.ErrorList
	var feats []string
	if !sup.BridgeFiltering {
		for _, b := range lab.Bridges {
			if b.VLANFiltering {
				errs = append(errs, &topology.Error{File: lab.File, Pos: b.VLANFilteringPos, Path: "bridges." + strings.TrimPrefix(b.Name, lab.Prefix) + ".vlan-filtering",
					Msg: "VLANs on a Linux bridge need the kernel's " + state.FeatureBridgeVLAN + ", which this kernel does not have; an Open vSwitch bridge's ports take the same vlan: settings"})
				if !slices.Contains(feats, state.FeatureBridgeVLAN) {
					feats = append(feats, state.FeatureBridgeVLAN)
				}
			}
		}
	}
	if !sup.Interfaces {
		for _, v := range lab.VLANInterfaces() {
			errs = append(errs, &topology.Error{File: lab.File, Pos: v.Pos, Path: v.Path,
				Msg: "VLAN interface " + v.Name + " needs the kernel's " + state.FeatureVLAN8021Q + ", which this kernel does not have; a host on a trunk can tag its own frames on a packet socket"})
			if !slices.Contains(feats, state.FeatureVLAN8021Q) {
				feats = append(feats, state.FeatureVLAN8021Q)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &topology.FeatureError{Feature: strings.Join(feats, ", "), Errs: errs}
}
