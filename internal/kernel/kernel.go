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
	"path"
	"strings"
	"sync"
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

// NS is one network namespace and the files netlab reads and changes it
// through: the namespace's own file, a netlink socket made inside it (rtnl:
// the requests netlab makes most, built by hand) and, for the rest, a
// netlink.Handle. They are opened when first needed, and an NS of a
// Handles cache may be closed between two operations to bound the files a
// run holds (Handles): a later operation opens them again. Safe for
// concurrent use.
type NS struct {
	name  string
	cache *Handles // nil: opened alone (Open), closed by Close only

	mu     sync.Mutex
	users  int            // operations in progress: never closed under them
	fd     netns.NsHandle // netns.None() while closed
	sock   *rtnl
	h      *netlink.Handle
	closed bool // Close was called: nothing opens again
	queued bool // in the cache's list of open namespaces
	// indices are link indices this run learned (the kernel's echo of a
	// link it made, a lookup), so that a later request on the link needs
	// no lookup of its own; deleting a link forgets its index, and a
	// request that finds the index stale (ENODEV) looks it up again. The
	// kernel gives indices out in a cycle, so a stale one names no other
	// link.
	indices map[string]int32
	// sysctls are the values this run read from the namespace, or wrote
	// and read back: what observing it again needs not read again.
	sysctls map[string]string
	// needsID: this run made the namespace, and the host has not been
	// asked to give it an id yet (hostIDs).
	needsID bool
}

// Open opens the named namespace; "host" is the root namespace. It fails
// with an error wrapping fs.ErrNotExist if there is no such namespace.
func Open(name string) (*NS, error) {
	n := makeNS(name, nil)
	if err := n.pin(); err != nil {
		return nil, err
	}
	defer n.unpin()
	if _, err := n.rawSock(); err != nil {
		n.Close()
		return nil, fmt.Errorf("ns %s: open netlink: %w", name, err)
	}
	return n, nil
}

func makeNS(name string, cache *Handles) *NS {
	return &NS{name: name, cache: cache, fd: netns.None(), indices: map[string]int32{}, sysctls: map[string]string{}}
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

// pin marks an operation in progress, opening the namespace's file if it
// is closed: until unpin, nothing closes it.
func (n *NS) pin() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return fmt.Errorf("ns %s: closed", n.name)
	}
	if !n.fd.IsOpen() {
		fd, err := namespace.Open(n.name)
		if err != nil {
			n.mu.Unlock()
			return fmt.Errorf("ns %s: %w", n.name, err)
		}
		n.fd = fd
	}
	n.users++
	queue := n.cache != nil && !n.queued
	n.queued = n.queued || queue
	n.mu.Unlock()
	if queue {
		n.cache.opened(n)
	}
	return nil
}

func (n *NS) unpin() {
	n.mu.Lock()
	n.users--
	n.mu.Unlock()
}

// rawSock returns the namespace's rtnl socket, made inside it if need be;
// the caller has pinned n.
func (n *NS) rawSock() (*rtnl, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sock != nil && !n.sock.broken {
		return n.sock, nil
	}
	if n.sock != nil {
		n.sock.close()
		n.sock = nil
	}
	var s *rtnl
	var err error
	if n.name == namespace.Host {
		// The caller's thread is in the process's own namespace (only
		// namespace's locked threads ever leave it): no switch.
		s, err = openRTNL()
	} else {
		err = namespace.Do(n.fd, func() error {
			var err error
			s, err = openRTNL()
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	n.sock = s
	return s, nil
}

// handle returns the namespace's netlink.Handle, made inside it if need
// be; the caller has pinned n.
func (n *NS) handle() (*netlink.Handle, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.h != nil {
		return n.h, nil
	}
	h, err := NewHandle(n.fd)
	if err != nil {
		return nil, err
	}
	n.h = h
	return h, nil
}

// file returns the namespace's file; the caller has pinned n.
func (n *NS) file() netns.NsHandle {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fd
}

// raw runs fn with the namespace's rtnl socket.
func (n *NS) raw(fn func(s *rtnl) error) error {
	if err := n.pin(); err != nil {
		return err
	}
	defer n.unpin()
	s, err := n.rawSock()
	if err != nil {
		return err
	}
	return fn(s)
}

// nl runs fn with the namespace's netlink.Handle.
func (n *NS) nl(fn func(h *netlink.Handle) error) error {
	if err := n.pin(); err != nil {
		return err
	}
	defer n.unpin()
	h, err := n.handle()
	if err != nil {
		return err
	}
	return fn(h)
}

// inside runs fn with a thread inside the namespace (namespace.Do).
func (n *NS) inside(fn func() error) error {
	if err := n.pin(); err != nil {
		return err
	}
	defer n.unpin()
	return namespace.Do(n.file(), fn)
}

// release closes the namespace's files if no operation uses them; ok says
// it did (or they were closed). The NS opens them again when next used.
func (n *NS) release() (ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.users > 0 {
		return false
	}
	n.closeFiles()
	n.queued = false
	return true
}

func (n *NS) closeFiles() {
	if n.h != nil {
		n.h.Close()
		n.h = nil
	}
	if n.sock != nil {
		n.sock.close()
		n.sock = nil
	}
	if n.fd.IsOpen() {
		n.fd.Close()
		n.fd = netns.None()
	}
}

// Close releases the netlink sockets and the namespace's file for good.
// Open files keep a deleted namespace (and its links) alive, so close
// before expecting it to be gone.
func (n *NS) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	n.closeFiles()
	return nil
}

// Name returns the namespace's name as given to Open.
func (n *NS) Name() string { return n.name }

// index returns a link's index: learned earlier in this run, or asked for.
// ErrLinkNotFound if there is no such link.
func (n *NS) index(s *rtnl, name string) (int32, error) {
	n.mu.Lock()
	i, ok := n.indices[name]
	n.mu.Unlock()
	if ok {
		return i, nil
	}
	i, err := s.linkIndex(name)
	if err != nil {
		return 0, err
	}
	n.learn(name, i)
	return i, nil
}

// learn records a link's index; 0 forgets it.
func (n *NS) learn(name string, index int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if index == 0 {
		delete(n.indices, name)
		return
	}
	n.indices[name] = index
}

// byIndex runs a request on a link by its index, looking the index up
// again once if the kernel says it is stale.
func (n *NS) byIndex(s *rtnl, name string, req func(index int32) error) error {
	i, err := n.index(s, name)
	if err != nil {
		return err
	}
	err = req(i)
	if errors.Is(err, unix.ENODEV) {
		n.learn(name, 0)
		if i, err = n.index(s, name); err != nil {
			return err
		}
		err = req(i)
	}
	return err
}

// setLink changes a link by name in one request; ErrLinkNotFound if there
// is none.
func (n *NS) setLink(name string, c linkChange) error {
	return n.raw(func(s *rtnl) error {
		err := s.setLink(0, name, c)
		if errors.Is(err, unix.ENODEV) {
			return ErrLinkNotFound
		}
		return err
	})
}

// link looks up a link by name, classifying "not found" as ErrLinkNotFound.
func (n *NS) link(name string) (netlink.Link, error) {
	var l netlink.Link
	err := n.raw(func(s *rtnl) error {
		return s.getLink(0, name, func(body []byte) error {
			var err error
			l, err = netlink.LinkDeserialize(nil, clone(body))
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	n.learn(name, int32(l.Attrs().Index))
	return l, nil
}

// MarkNamespace marks the namespace as the lab's with an alias on lo, and
// brings lo up (a new namespace has lo down), in one request.
// Equivalent to: `ip -n NS link set lo alias netlab:LAB up`.
func (n *NS) MarkNamespace(lab string) error {
	err := n.setLink("lo", linkChange{alias: state.NamespaceAlias(lab), setAlias: true, up: true})
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
	return n.MakeVeth(Veth{Name: name, Alias: alias, Peer: peer, PeerName: peerName, PeerAlias: peerAlias})
}

// AddBridge creates a Linux bridge in interface group group (0: the
// default) and sets its alias (deleting the bridge again if that fails).
// The group is given in the creating request, so a bridge a crash leaves
// before its alias is set is already in it. EEXIST (fs.ErrExist) if the
// name is taken.
// Equivalent to: `ip -n NS link add NAME group GROUP type bridge` + `ip link set NAME alias ALIAS`.
func (n *NS) AddBridge(name, alias string, group uint32) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.Group = group
	err := n.nl(func(h *netlink.Handle) error { return h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}) })
	if err != nil {
		return fmt.Errorf("ns %s: add bridge %s: %w", n.name, name, err)
	}
	n.learn(name, 0)
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
	err := n.raw(func(s *rtnl) error {
		m := newNLMsg(unix.RTM_DELLINK, unix.NLM_F_ACK, ifinfomsg(0, 0, 0))
		m.str(unix.IFLA_IFNAME, name)
		return s.exchange(m, nil)
	})
	n.learn(name, 0)
	if errors.Is(err, unix.ENODEV) { // absent, or gone in between (its peer was deleted)
		return nil
	}
	if err != nil {
		return fmt.Errorf("ns %s: delete link %s: %w", n.name, name, err)
	}
	return nil
}

// SetAlias sets a link's alias ("" clears it).
// Equivalent to: `ip -n NS link set NAME alias ALIAS`.
func (n *NS) SetAlias(name, alias string) error {
	if err := n.setLink(name, linkChange{alias: alias, setAlias: true}); err != nil {
		return fmt.Errorf("ns %s: set alias of %s: %w", n.name, name, err)
	}
	return nil
}

// SetUp brings a link administratively up or down.
// Equivalent to: `ip -n NS link set NAME up|down`.
func (n *NS) SetUp(name string, up bool) error {
	if err := n.setLink(name, linkChange{up: up, down: !up}); err != nil {
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
	if err := n.setLink(name, linkChange{mac: mac}); err != nil {
		return fmt.Errorf("ns %s: set address of %s to %s: %w", n.name, name, mac, err)
	}
	return nil
}

// SetMTU sets a link's MTU.
// Equivalent to: `ip -n NS link set NAME mtu MTU`.
func (n *NS) SetMTU(name string, mtu int) error {
	if err := n.setLink(name, linkChange{mtu: mtu}); err != nil {
		return fmt.Errorf("ns %s: set mtu of %s to %d: %w", n.name, name, mtu, err)
	}
	return nil
}

// SetMaster enslaves a link to a Linux bridge; bridge "" releases it.
// Equivalent to: `ip -n NS link set NAME master BRIDGE` (`nomaster`).
func (n *NS) SetMaster(name, bridge string) error {
	err := n.SetLink(name, LinkState{Master: &bridge})
	if err != nil {
		if bridge == "" {
			return fmt.Errorf("ns %s: set %s nomaster: %w", n.name, name, err)
		}
		return fmt.Errorf("ns %s: set master of %s to %s: %w", n.name, name, bridge, err)
	}
	return nil
}

// LinkState is what SetLink changes of a link; zero fields stay as they
// are.
type LinkState struct {
	MAC    net.HardwareAddr
	MTU    int
	Master *string // "": none
	Up     bool
	// Alias, with SetAlias, sets the link's alias.
	Alias    string
	SetAlias bool
	// Group, when not 0, puts the link in that interface group.
	Group uint32
}

// change is the request's part of a link state; the master's index is
// looked up (once per run).
func (n *NS) change(s *rtnl, st LinkState) (linkChange, error) {
	c := linkChange{mac: st.MAC, mtu: st.MTU, up: st.Up, alias: st.Alias, setAlias: st.SetAlias, group: st.Group, setGroup: st.Group != 0}
	if st.Master != nil {
		if *st.Master == "" {
			c.noMaster = true
		} else {
			i, err := n.index(s, *st.Master)
			if errors.Is(err, ErrLinkNotFound) {
				err = fmt.Errorf("bridge %s: %w", *st.Master, err)
			}
			if err != nil {
				return c, err
			}
			c.master = i
		}
	}
	return c, nil
}

// SetLink changes what st says of a link in one request.
// Equivalent to: `ip -n NS link set NAME [address MAC] [mtu MTU] [master BR|nomaster] [up]`.
func (n *NS) SetLink(name string, st LinkState) error {
	return n.raw(func(s *rtnl) error {
		c, err := n.change(s, st)
		if err != nil {
			return err
		}
		err = s.setLink(0, name, c)
		if errors.Is(err, unix.ENODEV) && c.master != 0 {
			// Perhaps the bridge's index is stale: ask again, once.
			n.learn(*st.Master, 0)
			if c, err = n.change(s, st); err != nil {
				return err
			}
			err = s.setLink(0, name, c)
		}
		if errors.Is(err, unix.ENODEV) {
			return ErrLinkNotFound
		}
		return err
	})
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

// ethtoolOn runs the SIOCETHTOOL command through the socket fd: the kernel
// finds the device in the socket's namespace, whichever thread asks.
func ethtoolOn(fd int, ifname string, cmd, data uint32) (uint32, error) {
	if len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q too long", ifname)
	}
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
	err := n.raw(func(s *rtnl) error {
		_, err := s.ethtool(name, cmd, data)
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
	err := n.raw(func(s *rtnl) error {
		v, err := s.ethtool(name, unix.ETHTOOL_GTXCSUM, 0)
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
	err := n.raw(func(s *rtnl) error {
		if !p.IsValid() {
			return fmt.Errorf("invalid prefix %v", p)
		}
		return n.byIndex(s, name, func(index int32) error { return s.addPrefix(index, p) })
	})
	if err != nil {
		return fmt.Errorf("ns %s: replace address %s on %s: %w", n.name, p, name, err)
	}
	return nil
}

// addPrefix adds (replaces) an address; IPv6 without duplicate address
// detection.
func (s *rtnl) addPrefix(index int32, p netip.Prefix) error {
	a := p.Addr().Unmap()
	family := unix.AF_INET
	if a.Is6() {
		family = unix.AF_INET6
	}
	return s.addAddr(index, family, p.Bits(), a.AsSlice(), a.Is6())
}

// AddrDel removes an address; nil if it or the link is absent.
// Equivalent to: `ip -n NS addr del P dev NAME`.
func (n *NS) AddrDel(name string, p netip.Prefix) error {
	a, err := netlinkAddr(p)
	if err == nil {
		err = n.raw(func(s *rtnl) error {
			return n.byIndex(s, name, func(index int32) error {
				return n.nl(func(h *netlink.Handle) error {
					return h.AddrDel(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: int(index), Name: name}}, a)
				})
			})
		})
	}
	if errors.Is(err, ErrLinkNotFound) || errors.Is(err, unix.EADDRNOTAVAIL) {
		return nil
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
		err := n.raw(func(s *rtnl) error {
			i, err := n.index(s, r.Dev)
			nr.LinkIndex = int(i)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dev %s: %w", r.Dev, err)
		}
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
		err = n.nl(func(h *netlink.Handle) error { return h.RouteReplace(nr) })
		if errors.Is(err, unix.ENODEV) && r.Dev != "" {
			// A stale index of the device: look it up again, once.
			n.learn(r.Dev, 0)
			if nr, err = n.netlinkRoute(r); err == nil {
				err = n.nl(func(h *netlink.Handle) error { return h.RouteReplace(nr) })
			}
		}
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
	if r.Dev != "" {
		n.learn(r.Dev, 0) // the device may have been made again: ask
	}
	nr, err := n.netlinkRoute(r)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err == nil {
		// In a delete, scope NOWHERE matches any scope (what `ip route del` sends).
		nr.Scope = netlink.SCOPE_NOWHERE
		err = n.nl(func(h *netlink.Handle) error { return h.RouteDel(nr) })
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

// readSysctl reads a sysctl on the calling thread's namespace, opened
// through sys (nil: /proc).
func readSysctl(sys *procSys, key string) (string, error) {
	fd, p, err := sys.openSysctl(key, unix.O_RDONLY)
	if err != nil {
		if p == "" {
			return "", err
		}
		return "", &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	return preadValue(fd, make([]byte, 128))
}

// procSys is where the namespace's sysctls are opened: its cache's proc
// of the run's own, or /proc for a namespace opened alone.
func (n *NS) procSys() *procSys {
	if n.cache == nil {
		return nil
	}
	return &n.cache.sys
}

// Sysctl reads a sysctl of this namespace, trimmed; an error wrapping
// fs.ErrNotExist if there is no such key.
// Equivalent to: `ip netns exec NS sysctl -n KEY`.
func (n *NS) Sysctl(key string) (string, error) {
	var v string
	err := n.inside(func() error {
		var err error
		v, err = readSysctl(n.procSys(), key)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("ns %s: read sysctl %s: %w", n.name, key, err)
	}
	n.remember(map[string]string{key: v})
	return v, nil
}

// SetSysctl writes a sysctl of this namespace (/proc/sys resolves to the
// namespace of the writing thread, hence a thread inside it), unless it
// already has the value; either way the value is read back, for observing
// the namespace again.
// Equivalent to: `ip netns exec NS sysctl -w KEY=VALUE`.
func (n *NS) SetSysctl(key, value string) error {
	return n.SetSysctls([]Sysctl{{Key: key, Value: value}})
}

// Sysctl is one sysctl to write.
type Sysctl struct{ Key, Value string }

// SetSysctls writes sysctls of this namespace in order, with one thread
// switch for all; see SetSysctl.
func (n *NS) SetSysctls(list []Sysctl) error {
	if len(list) == 0 {
		return nil
	}
	var got map[string]string
	err := n.inside(func() error {
		var err error
		got, err = writeSysctls(n.procSys(), list, nil)
		return err
	})
	n.remember(got)
	if err != nil {
		return fmt.Errorf("ns %s: %w", n.name, err)
	}
	return nil
}

// writeSysctls writes each sysctl on the calling thread's namespace where
// its value differs (a write has side effects even when it changes
// nothing: forwarding walks every device), and returns what each one reads
// after. The caller is inside the namespace. fresh, for a namespace just
// made, holds the values a namespace made in this run had before netlab
// wrote (nil: none): a key already at its value there is not opened.
func writeSysctls(sys *procSys, list []Sysctl, fresh *freshSysctls) (map[string]string, error) {
	got := make(map[string]string, len(list))
	buf := make([]byte, 128)
	for _, sc := range list {
		if fresh.has(sc.Key, sc.Value) {
			got[sc.Key] = sc.Value
			continue
		}
		fd, p, err := sys.openSysctl(sc.Key, unix.O_RDWR)
		if p == "" {
			return got, err // not a sysctl key
		}
		if errors.Is(err, unix.EACCES) {
			// Write-only (a trigger like net.ipv4.route.flush): write,
			// with nothing to read back.
			if err = writeOnly(sys, sc.Key, sc.Value); err != nil {
				return got, fmt.Errorf("set sysctl %s=%s: %w", sc.Key, sc.Value, err)
			}
			continue
		}
		if err != nil {
			return got, fmt.Errorf("set sysctl %s=%s: %w", sc.Key, sc.Value, &fs.PathError{Op: "open", Path: p, Err: err})
		}
		v, err := preadValue(fd, buf)
		if err == nil {
			fresh.learn(sc.Key, v)
		}
		if err == nil && v != sc.Value {
			if _, err = unix.Pwrite(fd, []byte(sc.Value), 0); err == nil {
				v, err = preadValue(fd, buf)
			}
		}
		unix.Close(fd)
		if err != nil {
			return got, fmt.Errorf("set sysctl %s=%s: %w", sc.Key, sc.Value, err)
		}
		got[sc.Key] = v
	}
	return got, nil
}

// freshSysctls are the values sysctls have in a namespace just made, as
// read in the first ones a run made. Every new namespace starts with the
// same values: internal/namespace makes each from the process's own
// namespace, whose IPv4 settings (or all, per
// net.core.devconf_inherit_init_net) a new one copies, the rest being the
// kernel's defaults. So a key already at the wanted value there need not
// be opened in the next: each sysctl lookup walks an entry per namespace
// that looked the key up in the same proc (procSys keeps that short;
// docs/design.md, "Up at scale"), and with thousands of namespaces the
// lookups were most of up. A later up reads the keys again,
// so a value that was not the run's after all shows as drift and is
// written.
type freshSysctls struct {
	mu sync.Mutex
	m  map[string]string
}

// has says whether key is known to be value in a new namespace.
func (f *freshSysctls) has(key, value string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[key]
	return ok && v == value
}

// learn records what key read in a new namespace before netlab wrote it;
// the first reading stands.
func (f *freshSysctls) learn(key, value string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]string{}
	}
	if _, ok := f.m[key]; !ok {
		f.m[key] = value
	}
}

// writeOnly writes a sysctl that cannot be read (a trigger), opened
// through sys.
func writeOnly(sys *procSys, key, value string) error {
	fd, p, err := sys.openSysctl(key, unix.O_WRONLY|unix.O_TRUNC)
	if err != nil {
		return &fs.PathError{Op: "open", Path: p, Err: err}
	}
	_, werr := unix.Write(fd, []byte(value))
	if cerr := unix.Close(fd); werr == nil {
		werr = cerr
	}
	return werr
}

// preadValue reads a sysctl file from its start, trimmed.
func preadValue(fd int, buf []byte) (string, error) {
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// remember records sysctl values read in this run.
func (n *NS) remember(values map[string]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, v := range values {
		n.sysctls[k] = v
	}
}

// WaitLink waits until a link exists (OVS creates a bridge's tap device
// asynchronously), polling; an error wrapping ErrLinkNotFound on timeout.
// Equivalent to: `until ip -n NS link show NAME; do sleep 0.02; done`.
func (n *NS) WaitLink(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		err := n.raw(func(s *rtnl) error {
			_, err := s.linkIndex(name)
			return err
		})
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
