// Package kernel is netlab's netlink driver: it reads and changes the links,
// addresses, routes, root qdiscs and sysctls of one network namespace at a
// time. It knows nothing of topologies or plans; every method is one
// `ip`/`tc`/`sysctl`/`ethtool` command's worth of work, idempotent where the
// command has an idempotent form (replace, delete-if-present).
//
// Netlink goes through one netlink.Handle per namespace whose socket was
// opened inside it, so no thread is switched for it; the few operations bound
// to the calling thread's namespace (/proc/sys, ethtool ioctls, creating a
// TUN/TAP through tundev) go through namespace.Do.
package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"strings"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// ErrLinkNotFound is wrapped by errors about a link that does not exist.
var ErrLinkNotFound = errors.New("link not found")

// socketTimeout bounds every netlink request, so a wedged kernel answer
// cannot hang netlab forever.
const socketTimeout = 10 * time.Second

// NS is one network namespace: a handle on it and a netlink socket opened
// inside it. Safe for concurrent use.
type NS struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

// Open opens the named namespace; "host" is the root namespace.
func Open(name string) (*NS, error) {
	nsh, err := namespace.Open(name)
	if err != nil {
		return nil, fmt.Errorf("ns %s: %w", name, err)
	}
	h, err := NewHandle(nsh)
	if err != nil {
		nsh.Close()
		return nil, fmt.Errorf("ns %s: open netlink: %w", name, err)
	}
	return &NS{name: name, ns: nsh, h: h}, nil
}

// NewHandle opens a netlink route socket inside the namespace, its requests
// bounded by a timeout. The socket is created by namespace.Do rather than by
// netlink.NewHandleAt, whose own thread switch ignores a failed switch back
// and unlocks the thread anyway.
func NewHandle(nsh netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := namespace.Do(nsh, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := h.SetSocketTimeout(socketTimeout); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// Close releases the netlink socket and the namespace handle. Open handles
// keep a deleted namespace (and its links) alive, so close before expecting
// it to be gone.
func (n *NS) Close() error {
	n.h.Close()
	return n.ns.Close()
}

// Name returns the namespace's name as given to Open.
func (n *NS) Name() string { return n.name }

// link looks up a link by name, classifying "not found" as ErrLinkNotFound.
func (n *NS) link(name string) (netlink.Link, error) {
	l, err := n.h.LinkByName(name)
	if err != nil {
		var lnf netlink.LinkNotFoundError
		if errors.As(err, &lnf) {
			return nil, ErrLinkNotFound
		}
		return nil, err
	}
	return l, nil
}

// MarkNamespace marks the namespace as the lab's with an alias on lo, and
// brings lo up (a new namespace has lo down).
// Equivalent to: `ip -n NS link set lo alias netlab:LAB up`.
func (n *NS) MarkNamespace(lab string) error {
	lo, err := n.link("lo")
	if err == nil {
		err = n.h.LinkSetAlias(lo, state.NamespaceAlias(lab))
	}
	if err == nil {
		err = n.h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("ns %s: mark lo for lab %s: %w", n.name, lab, err)
	}
	return nil
}

// AddVeth creates a veth pair in one RTM_NEWLINK: name here, peerName in
// peer's namespace (nil peer: this one), then sets both aliases. It fails
// with an error wrapping fs.ErrExist (EEXIST) if either name is taken. If an
// alias cannot be set the pair is deleted again, so no unmarked link stays.
// Equivalent to: `ip -n NS link add NAME type veth peer name PEERNAME netns PEERNS`
// + `ip link set ... alias ...` on both ends.
func (n *NS) AddVeth(name, alias string, peer *NS, peerName, peerAlias string) error {
	if peer == nil {
		peer = n
	}
	attrs := netlink.NewLinkAttrs() // TxQLen -1: keep the kernel default txqueuelen
	attrs.Name = name
	veth := &netlink.Veth{
		LinkAttrs:  attrs,
		PeerName:   peerName,
		PeerTxQLen: -1,
	}
	if peer != n {
		// Must be netlink.NsFd: a netns.NsHandle is silently ignored and
		// the peer lands here.
		veth.PeerNamespace = netlink.NsFd(int(peer.ns))
	}
	if err := n.h.LinkAdd(veth); err != nil {
		return fmt.Errorf("ns %s: add veth %s (peer %s/%s): %w", n.name, name, peer.name, peerName, err)
	}
	// The kernel ignores IFLA_IFALIAS in a create request, so set the
	// aliases afterwards, each through its own namespace's socket.
	err := n.SetAlias(name, alias)
	if err == nil {
		err = peer.SetAlias(peerName, peerAlias)
	}
	if err != nil {
		if derr := n.DeleteLink(name); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("ns %s: add veth %s: %w", n.name, name, err)
	}
	return nil
}

// AddBridge creates a Linux bridge and sets its alias (deleting the bridge
// again if that fails). EEXIST (fs.ErrExist) if the name is taken.
// Equivalent to: `ip -n NS link add NAME type bridge` + `ip link set NAME alias ALIAS`.
func (n *NS) AddBridge(name, alias string) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := n.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		return fmt.Errorf("ns %s: add bridge %s: %w", n.name, name, err)
	}
	if err := n.SetAlias(name, alias); err != nil {
		if derr := n.DeleteLink(name); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("ns %s: add bridge %s: %w", n.name, name, err)
	}
	return nil
}

// DeleteLink deletes a link (both ends, for a veth); nil if it does not exist.
// Equivalent to: `ip -n NS link del NAME`.
func (n *NS) DeleteLink(name string) error {
	l, err := n.link(name)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err == nil {
		err = n.h.LinkDel(l)
		if errors.Is(err, unix.ENODEV) { // gone in between (e.g. its peer was deleted)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("ns %s: delete link %s: %w", n.name, name, err)
	}
	return nil
}

// SetAlias sets a link's alias ("" clears it).
// Equivalent to: `ip -n NS link set NAME alias ALIAS`.
func (n *NS) SetAlias(name, alias string) error {
	l, err := n.link(name)
	if err == nil {
		err = n.h.LinkSetAlias(l, alias)
	}
	if err != nil {
		return fmt.Errorf("ns %s: set alias of %s: %w", n.name, name, err)
	}
	return nil
}

// SetUp brings a link administratively up or down.
// Equivalent to: `ip -n NS link set NAME up|down`.
func (n *NS) SetUp(name string, up bool) error {
	l, err := n.link(name)
	if err == nil {
		if up {
			err = n.h.LinkSetUp(l)
		} else {
			err = n.h.LinkSetDown(l)
		}
	}
	if err != nil {
		verb := "down"
		if up {
			verb = "up"
		}
		return fmt.Errorf("ns %s: set %s %s: %w", n.name, name, verb, err)
	}
	return nil
}

// SetMAC sets a link's MAC address (veths allow it while up).
// Equivalent to: `ip -n NS link set NAME address MAC`.
func (n *NS) SetMAC(name string, mac net.HardwareAddr) error {
	l, err := n.link(name)
	if err == nil {
		err = n.h.LinkSetHardwareAddr(l, mac)
	}
	if err != nil {
		return fmt.Errorf("ns %s: set address of %s to %s: %w", n.name, name, mac, err)
	}
	return nil
}

// SetMTU sets a link's MTU.
// Equivalent to: `ip -n NS link set NAME mtu MTU`.
func (n *NS) SetMTU(name string, mtu int) error {
	l, err := n.link(name)
	if err == nil {
		err = n.h.LinkSetMTU(l, mtu)
	}
	if err != nil {
		return fmt.Errorf("ns %s: set mtu of %s to %d: %w", n.name, name, mtu, err)
	}
	return nil
}

// SetMaster enslaves a link to a Linux bridge; bridge "" releases it.
// Equivalent to: `ip -n NS link set NAME master BRIDGE` (`nomaster`).
func (n *NS) SetMaster(name, bridge string) error {
	l, err := n.link(name)
	if err == nil {
		if bridge == "" {
			err = n.h.LinkSetNoMaster(l)
		} else {
			var br netlink.Link
			br, err = n.link(bridge)
			if errors.Is(err, ErrLinkNotFound) {
				err = fmt.Errorf("bridge %s: %w", bridge, err)
			}
			if err == nil {
				err = n.h.LinkSetMaster(l, br)
			}
		}
	}
	if err != nil {
		if bridge == "" {
			return fmt.Errorf("ns %s: set %s nomaster: %w", n.name, name, err)
		}
		return fmt.Errorf("ns %s: set master of %s to %s: %w", n.name, name, bridge, err)
	}
	return nil
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member of the union.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// ethtool runs one SIOCETHTOOL command with a struct ethtool_value on the
// link, on the calling thread's namespace; the caller is inside namespace.Do.
func ethtool(ifname string, cmd, data uint32) (uint32, error) {
	if len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&v)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		if errno == unix.ENODEV {
			return 0, ErrLinkNotFound
		}
		return 0, errno
	}
	return v.data, nil
}

// SetTxChecksum turns tx checksum offload of a link on or off (turning it
// off also turns off the offloads that need it, TSO among them). Needed
// because OVS's userspace datapath forwards CHECKSUM_PARTIAL packets from
// veths without completing their checksums.
// Equivalent to: `ip netns exec NS ethtool -K NAME tx on|off`.
func (n *NS) SetTxChecksum(name string, on bool) error {
	return n.setOffload(name, unix.ETHTOOL_STXCSUM, on, "tx checksumming")
}

// SetGRO turns generic receive offload of a link on or off. Needed on a
// VXLAN port of an OVS userspace bridge: the device merges what it
// decapsulates into frames up to 64 KiB, which the switch reads through
// AF_PACKET with a buffer of one MTU and drops.
// Equivalent to: `ip netns exec NS ethtool -K NAME gro on|off`.
func (n *NS) SetGRO(name string, on bool) error {
	return n.setOffload(name, unix.ETHTOOL_SGRO, on, "generic receive offload")
}

func (n *NS) setOffload(name string, cmd uint32, on bool, what string) error {
	var data uint32
	if on {
		data = 1
	}
	err := namespace.Do(n.ns, func() error {
		_, err := ethtool(name, cmd, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("ns %s: set %s of %s to %v: %w", n.name, what, name, on, err)
	}
	return nil
}

// TxChecksum reads the tx checksum offload state of a link.
// Equivalent to: `ip netns exec NS ethtool -k NAME | grep tx-checksumming`.
func (n *NS) TxChecksum(name string) (bool, error) {
	var on bool
	err := namespace.Do(n.ns, func() error {
		v, err := ethtool(name, unix.ETHTOOL_GTXCSUM, 0)
		on = v != 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("ns %s: read tx checksumming of %s: %w", n.name, name, err)
	}
	return on, nil
}

// netlinkAddr converts p into a fresh netlink.Addr (netlink mutates it).
func netlinkAddr(p netip.Prefix) (*netlink.Addr, error) {
	if !p.IsValid() {
		return nil, fmt.Errorf("invalid prefix %v", p)
	}
	a := p.Addr().Unmap()
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}}, nil
}

// AddrReplace adds an address or updates it in place. IPv6 addresses skip
// duplicate address detection (IFA_F_NODAD), so they are usable at once.
// Note: the same address with another prefix length is a second address;
// remove the old one with AddrDel.
// Equivalent to: `ip -n NS addr replace P dev NAME [nodad]`.
func (n *NS) AddrReplace(name string, p netip.Prefix) error {
	l, err := n.link(name)
	if err == nil {
		var a *netlink.Addr
		a, err = netlinkAddr(p)
		if err == nil {
			if p.Addr().Unmap().Is6() {
				a.Flags = unix.IFA_F_NODAD
			}
			err = n.h.AddrReplace(l, a)
		}
	}
	if err != nil {
		return fmt.Errorf("ns %s: replace address %s on %s: %w", n.name, p, name, err)
	}
	return nil
}

// AddrDel removes an address; nil if it or the link is absent.
// Equivalent to: `ip -n NS addr del P dev NAME`.
func (n *NS) AddrDel(name string, p netip.Prefix) error {
	l, err := n.link(name)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err == nil {
		var a *netlink.Addr
		a, err = netlinkAddr(p)
		if err == nil {
			err = n.h.AddrDel(l, a)
			if errors.Is(err, unix.EADDRNOTAVAIL) {
				return nil
			}
		}
	}
	if err != nil {
		return fmt.Errorf("ns %s: delete address %s from %s: %w", n.name, p, name, err)
	}
	return nil
}

// netlinkRoute converts r into a netlink.Route with netlab's protocol in the
// main table.
func (n *NS) netlinkRoute(r state.Route) (*netlink.Route, error) {
	if !r.To.IsValid() {
		return nil, fmt.Errorf("invalid destination %v", r.To)
	}
	to := r.To.Masked()
	dst := to.Addr().Unmap()
	nr := &netlink.Route{
		Dst:      &net.IPNet{IP: dst.AsSlice(), Mask: net.CIDRMask(to.Bits(), dst.BitLen())},
		Protocol: state.RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
		Priority: r.Metric,
		Family:   netlink.FAMILY_V4,
	}
	if dst.Is6() {
		nr.Family = netlink.FAMILY_V6
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.Unmap().AsSlice()
	} else if nr.Family == netlink.FAMILY_V4 {
		nr.Scope = netlink.SCOPE_LINK // as `ip route` does for a route without a gateway
	}
	if r.Dev != "" {
		l, err := n.link(r.Dev)
		if err != nil {
			return nil, fmt.Errorf("dev %s: %w", r.Dev, err)
		}
		nr.LinkIndex = l.Attrs().Index
	}
	return nr, nil
}

// RouteReplace installs or updates a route in the main table, stamped with
// protocol state.RouteProtocol. The kernel keys routes on (destination,
// metric): another metric is another route. IPv6 routes with metric 0 get the
// kernel's 1024.
// Equivalent to: `ip -n NS route replace TO [via VIA] [dev DEV] [metric M] proto 78`.
func (n *NS) RouteReplace(r state.Route) error {
	nr, err := n.netlinkRoute(r)
	if err == nil {
		err = n.h.RouteReplace(nr)
	}
	if err != nil {
		return fmt.Errorf("ns %s: replace route %s: %w", n.name, r.String(), err)
	}
	return nil
}

// RouteDel removes one of netlab's routes (protocol state.RouteProtocol only);
// nil if it, or its device, is absent.
// Equivalent to: `ip -n NS route del TO [via VIA] [dev DEV] [metric M] proto 78`.
func (n *NS) RouteDel(r state.Route) error {
	nr, err := n.netlinkRoute(r)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err == nil {
		// In a delete, scope NOWHERE matches any scope (what `ip route del` sends).
		nr.Scope = netlink.SCOPE_NOWHERE
		err = n.h.RouteDel(nr)
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("ns %s: delete route %s: %w", n.name, r.String(), err)
	}
	return nil
}

// sysctlPath maps a sysctl key to its /proc/sys file. Like sysctl(8), dots
// separate components unless the key uses slashes (needed when an interface
// name holds a dot: net/ipv4/conf/eth0.10/forwarding).
func sysctlPath(key string) (string, error) {
	k := key
	if !strings.Contains(k, "/") {
		k = strings.ReplaceAll(k, ".", "/")
	}
	k = strings.TrimPrefix(k, "/")
	if k == "" || path.Clean("/"+k) != "/"+k || strings.Contains(k, "..") {
		return "", fmt.Errorf("invalid sysctl key %q", key)
	}
	return "/proc/sys/" + k, nil
}

// readSysctl reads a sysctl on the calling thread's namespace.
func readSysctl(key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Sysctl reads a sysctl of this namespace, trimmed; an error wrapping
// fs.ErrNotExist if there is no such key.
// Equivalent to: `ip netns exec NS sysctl -n KEY`.
func (n *NS) Sysctl(key string) (string, error) {
	var v string
	err := namespace.Do(n.ns, func() error {
		var err error
		v, err = readSysctl(key)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("ns %s: read sysctl %s: %w", n.name, key, err)
	}
	return v, nil
}

// SetSysctl writes a sysctl of this namespace (/proc/sys resolves to the
// namespace of the writing thread, hence namespace.Do).
// Equivalent to: `ip netns exec NS sysctl -w KEY=VALUE`.
func (n *NS) SetSysctl(key, value string) error {
	err := namespace.Do(n.ns, func() error {
		p, err := sysctlPath(key)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		_, werr := f.WriteString(value)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		return werr
	})
	if err != nil {
		return fmt.Errorf("ns %s: set sysctl %s=%s: %w", n.name, key, value, err)
	}
	return nil
}

// WaitLink waits until a link exists (OVS creates a bridge's tap device
// asynchronously), polling; an error wrapping ErrLinkNotFound on timeout.
// Equivalent to: `until ip -n NS link show NAME; do sleep 0.02; done`.
func (n *NS) WaitLink(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		_, err := n.link(name)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrLinkNotFound) {
			return fmt.Errorf("ns %s: wait for link %s: %w", n.name, name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ns %s: wait for link %s: still absent after %s: %w", n.name, name, timeout, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// isNotExist reports a missing /proc/sys file.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
