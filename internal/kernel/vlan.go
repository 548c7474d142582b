package kernel

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"

	"github.com/netlab-dev/netlab/internal/state"
)

// AddVLAN makes an 802.1Q interface name on parent with VLAN id, and marks
// it with alias (the kernel takes no alias in a create request). Equivalent
// to: `ip -n NS link add link PARENT name NAME type vlan id ID; ip -n NS link
// set NAME alias ALIAS`.
func (n *NS) AddVLAN(name, parent string, id int, alias string) error {
	p, err := n.link(parent)
	if err == nil {
		vl := &netlink.Vlan{LinkAttrs: netlink.NewLinkAttrs(), VlanId: id}
		vl.Name, vl.ParentIndex = name, p.Attrs().Index
		err = n.nl(func(h *netlink.Handle) error { return h.LinkAdd(vl) })
	}
	if err != nil {
		return fmt.Errorf("ns %s: add VLAN interface %s (vlan %d on %s): %w", n.name, name, id, parent, err)
	}
	if err := n.SetAlias(name, alias); err != nil {
		if derr := n.DeleteLink(name); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("ns %s: add VLAN interface %s: %w", n.name, name, err)
	}
	return nil
}

// SetVLANFiltering turns a Linux bridge's VLAN filtering on or off.
// Equivalent to: `ip link set BR type bridge vlan_filtering 1|0`.
func (n *NS) SetVLANFiltering(bridge string, on bool) error {
	l, err := n.link(bridge)
	if err == nil {
		if _, ok := l.(*netlink.Bridge); !ok {
			err = fmt.Errorf("%s is a %s, not a bridge", bridge, l.Type())
		}
	}
	if err == nil {
		err = n.nl(func(h *netlink.Handle) error { return h.BridgeSetVlanFiltering(l, on) })
	}
	if err != nil {
		return fmt.Errorf("ns %s: set vlan_filtering of %s to %v: %w", n.name, bridge, on, err)
	}
	return nil
}

// SetBridgeVLANs makes a Linux bridge port's VLANs exactly vlans: each
// added (a VLAN added again takes the new pvid and untagged flags), then
// every other VLAN of the port deleted, the kernel's default VLAN 1
// included. Equivalent to: `bridge vlan add dev PORT vid V [pvid]
// [untagged]` for each, then `bridge vlan del dev PORT vid X` for the rest.
func (n *NS) SetBridgeVLANs(port string, vlans []state.BridgeVLAN) error {
	wrap := func(err error) error { return fmt.Errorf("ns %s: set VLANs of bridge port %s: %w", n.name, port, err) }
	l, err := n.link(port)
	if err != nil {
		return wrap(err)
	}
	return n.nl(func(h *netlink.Handle) error {
		for _, v := range vlans {
			if err := h.BridgeVlanAdd(l, uint16(v.VID), v.PVID, v.Untagged, false, true); err != nil {
				return wrap(fmt.Errorf("add vid %d: %w", v.VID, err))
			}
		}
		all, err := RetryDump(h.BridgeVlanList)
		if err != nil {
			return wrap(err)
		}
		for _, have := range all[int32(l.Attrs().Index)] {
			if slices.ContainsFunc(vlans, func(v state.BridgeVLAN) bool { return v.VID == int(have.Vid) }) {
				continue
			}
			if err := h.BridgeVlanDel(l, have.Vid, false, false, false, true); err != nil {
				return wrap(fmt.Errorf("del vid %d: %w", have.Vid, err))
			}
		}
		return nil
	})
}

// bridgeVLANs reads the VLANs of the ports of bridges, when any bridge
// filters VLANs (filtering: their indexes), into their links (links by
// ifindex; their Master already set). Equivalent
// to: `bridge vlan show`.
func (n *NS) bridgeVLANs(filtering []int, byIndex map[int]*state.Link) error {
	if len(filtering) == 0 {
		return nil
	}
	var all map[int32][]*nl.BridgeVlanInfo
	err := n.nl(func(h *netlink.Handle) (err error) {
		all, err = RetryDump(h.BridgeVlanList)
		return err
	})
	if err != nil {
		return fmt.Errorf("bridge vlans: %w", err)
	}
	for idx, infos := range all {
		sl := byIndex[int(idx)]
		if sl == nil || sl.Master == "" {
			continue
		}
		for _, info := range infos {
			sl.BridgeVLANs = append(sl.BridgeVLANs, state.BridgeVLAN{VID: int(info.Vid),
				PVID: info.Flags&nl.BRIDGE_VLAN_INFO_PVID != 0, Untagged: info.Flags&nl.BRIDGE_VLAN_INFO_UNTAGGED != 0})
		}
		slices.SortFunc(sl.BridgeVLANs, func(a, b state.BridgeVLAN) int { return a.VID - b.VID })
	}
	return nil
}

// ProbeVLAN finds out what the kernel offers VLANs by making each in the
// namespace nsh (a scratch namespace that vanishes afterwards): a bridge with
// VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING) and an 802.1Q interface on a
// veth (CONFIG_VLAN_8021Q). The error is for the probe itself failing, not
// for a missing feature. Equivalent to: `unshare -n sh -c 'ip link add b type
// bridge vlan_filtering 1; ip link add v type veth; ip link add link v
// name v.5 type vlan id 5'`.
func ProbeVLAN(nsh netns.NsHandle, sup *state.VLANSupport) error {
	h, err := NewHandle(nsh)
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	if sup.Why == nil {
		sup.Why = map[string]string{}
	}
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = "probebr"
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	l, err := h.LinkByName("probebr")
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	// A kernel without it refuses the attribute: "operation not supported".
	if err := h.BridgeSetVlanFiltering(l, true); err == nil {
		sup.BridgeFiltering = true
	} else {
		sup.Why[state.FeatureBridgeVLAN] = err.Error()
	}
	veth := &netlink.Veth{LinkAttrs: netlink.NewLinkAttrs(), PeerName: "probev1"}
	veth.Name = "probev0"
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	parent, err := h.LinkByName("probev0")
	if err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	vl := &netlink.Vlan{LinkAttrs: netlink.NewLinkAttrs(), VlanId: 5}
	vl.Name, vl.ParentIndex = "probev0.5", parent.Attrs().Index
	if err := h.LinkAdd(vl); err == nil {
		sup.Interfaces = true
	} else {
		sup.Why[state.FeatureVLAN8021Q] = err.Error()
	}
	return nil
}
