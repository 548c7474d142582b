package capture

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/topology"
)

// ForLab says where to capture interface i of the lab. Mostly on i itself;
// but when an XDP program is attached to i (an Open vSwitch AF_XDP port:
// the host end of a veth on a netdev bridge), the kernel hands the packets
// it receives to that program before any packet socket sees them, and OVS
// sends through the XDP socket past them too: tcpdump on it sees only the
// kernel's own packets. Its veth peer carries the very same packets, so
// the capture reads there, with directions reversed to read as i's, and
// says so in note. i.Label stays what the user asked for.
func ForLab(lab *topology.Lab, i Interface) (Interface, string, error) {
	xdp, err := xdpAttached(i.NS, i.Name)
	if err != nil || !xdp {
		return i, "", err
	}
	peer, ok := vethPeer(lab, i.NS, i.Name)
	if !ok {
		return i, fmt.Sprintf("%s has an XDP program (AF_XDP port) and no veth peer in the lab: only the packets the kernel itself sends on it are seen", i.Label), nil
	}
	note := fmt.Sprintf("%s is an AF_XDP port (its packets bypass packet sockets): captured on its veth peer %s/%s, directions as seen from %s", i.Label, peer.NS, peer.Name, i.Label)
	i.Description = note
	i.NS, i.Name, i.Reversed = peer.NS, peer.Name, true
	return i, note, nil
}

// xdpAttached says whether an XDP program is attached to the interface.
//
// Equivalent to: `ip -n NS link show IFACE` showing "xdp".
func xdpAttached(ns, name string) (bool, error) {
	hn, err := namespace.Open(ns)
	if err != nil {
		return false, fmt.Errorf("capture on %s/%s: %w", ns, name, err)
	}
	defer hn.Close()
	h, err := netlink.NewHandleAt(hn, unix.NETLINK_ROUTE)
	if err != nil {
		return false, fmt.Errorf("capture on %s/%s: netlink: %w", ns, name, err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return false, fmt.Errorf("capture on %s/%s: %w", ns, name, err)
	}
	x := l.Attrs().Xdp
	return x != nil && x.Attached, nil
}

// vethPeer finds the other end of the lab's veth whose one end is ns/name.
func vethPeer(lab *topology.Lab, ns, name string) (topology.End, bool) {
	if lab == nil {
		return topology.End{}, false
	}
	for _, l := range lab.Links {
		switch {
		case l.A.NS == ns && l.A.Name == name:
			return l.B.End, true
		case l.B.NS == ns && l.B.Name == name:
			return l.A.End, true
		}
	}
	return topology.End{}, false
}
