package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AddVXLAN creates a VXLAN device from this namespace (the host's: the
// underlay is here, and the device's UDP socket stays in the namespace it
// is created from) directly inside target (nil: here), and marks it with
// alias. The remote ends are forwarding entries (SetRemotes): one for a
// link between two machines, several for a stretched bridge. The device
// learns the MACs behind each remote.
//
// Equivalent to: `ip link add NAME netns NS type vxlan id VNI local ADDR
// dstport PORT [dev DEV]` + `ip -n NS link set NAME alias ALIAS`.
func (n *NS) AddVXLAN(name, alias string, spec state.VXLANConfig, target *NS) error {
	if target == nil {
		target = n
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if target != n {
		if err := target.pin(); err != nil {
			return fmt.Errorf("ns %s: add vxlan %s: %w", target.name, name, err)
		}
		defer target.unpin()
		attrs.Namespace = netlink.NsFd(int(target.file()))
	}
	vx := &netlink.Vxlan{LinkAttrs: attrs, VxlanId: spec.VNI, SrcAddr: net.IP(spec.Local.AsSlice()), Port: spec.Port, Learning: true}
	if spec.Dev != "" {
		dev, err := n.link(spec.Dev)
		if err != nil {
			return fmt.Errorf("ns %s: add vxlan %s: underlay: %w", target.name, name, err)
		}
		vx.VtepDevIndex = dev.Attrs().Index
	}
	if err := n.nl(func(h *netlink.Handle) error { return h.LinkAdd(vx) }); err != nil {
		return fmt.Errorf("ns %s: add vxlan %s (vni %d): %w", target.name, name, spec.VNI, err)
	}
	if err := target.SetAlias(name, alias); err != nil {
		if derr := target.DeleteLink(name); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("ns %s: add vxlan %s: %w", target.name, name, err)
	}
	return nil
}

// zeroMAC is the forwarding entry of a VXLAN device that sends unknown,
// broadcast and multicast frames: one per remote (head-end replication).
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// Remotes lists a VXLAN device's remote ends: the destinations of its
// all-zeros forwarding entries (not the ones it learned for a MAC).
// Equivalent to: `bridge -n NS fdb show dev NAME | grep ^00:00:00:00:00:00`.
func (n *NS) Remotes(name string) ([]netip.Addr, error) {
	l, err := n.link(name)
	if err != nil {
		return nil, err
	}
	return n.remotes(l.Attrs().Index)
}

func (n *NS) remotes(index int) ([]netip.Addr, error) {
	var entries []netlink.Neigh
	err := n.nl(func(h *netlink.Handle) error {
		var err error
		entries, err = RetryDump(func() ([]netlink.Neigh, error) { return h.NeighList(index, unix.AF_BRIDGE) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ns %s: fdb of %d: %w", n.name, index, err)
	}
	var out []netip.Addr
	for _, e := range entries {
		if e.LinkIndex != index || !slices.Equal(e.HardwareAddr, zeroMAC) || e.IP == nil {
			continue
		}
		if a, ok := netip.AddrFromSlice(e.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// SetRemotes makes a VXLAN device's remote ends exactly remotes.
// Equivalent to: `bridge -n NS fdb append 00:00:00:00:00:00 dev NAME dst R`
// for each missing R, `bridge -n NS fdb del 00:00:00:00:00:00 dev NAME dst R`
// for each extra one.
func (n *NS) SetRemotes(name string, remotes []netip.Addr) error {
	l, err := n.link(name)
	if err != nil {
		return fmt.Errorf("ns %s: remotes of %s: %w", n.name, name, err)
	}
	have, err := n.remotes(l.Attrs().Index)
	if err != nil {
		return err
	}
	entry := func(r netip.Addr) *netlink.Neigh {
		return &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT | netlink.NUD_NOARP, HardwareAddr: zeroMAC, IP: net.IP(r.AsSlice())}
	}
	for _, r := range have {
		if !slices.Contains(remotes, r) {
			if err := n.nl(func(h *netlink.Handle) error { return h.NeighDel(entry(r)) }); err != nil {
				return fmt.Errorf("ns %s: %s: del remote %s: %w", n.name, name, r, err)
			}
		}
	}
	for _, r := range remotes {
		if !slices.Contains(have, r) {
			if err := n.nl(func(h *netlink.Handle) error { return h.NeighAppend(entry(r)) }); err != nil {
				return fmt.Errorf("ns %s: %s: add remote %s: %w", n.name, name, r, err)
			}
		}
	}
	return nil
}
