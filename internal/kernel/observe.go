package kernel

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// dumpAttempts is how often a netlink dump is tried when the kernel reports
// that the objects changed while it was being dumped (NLM_F_DUMP_INTR).
const dumpAttempts = 5

// RetryDump calls dump until it does not fail with
// netlink.ErrDumpInterrupted, at most dumpAttempts times. Such a failure comes
// with partial data, which is never returned.
func RetryDump[T any](dump func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range dumpAttempts {
		v, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	var zero T
	return zero, fmt.Errorf("%d attempts: %w", dumpAttempts, err)
}

// Observe reads the namespace: every link (with its addresses, except the
// IPv6 link-local ones, and its link-layer text), netlab's routes (protocol
// state.RouteProtocol, main table, IPv4 and IPv6), the sysctls named by
// sysctlKeys (a key the kernel does not have is left out of the map), the tx
// checksum state of veths, and the owner named on lo's alias.
// Equivalent to: `ip -n NS -d link; ip -n NS addr; ip -n NS route show proto 78
// (and -6); ip netns exec NS sysctl KEYS; ethtool -k VETH`.
func (n *NS) Observe(sysctlKeys []string) (*state.Namespace, error) {
	wrap := func(what string, err error) error {
		return fmt.Errorf("ns %s: observe %s: %w", n.name, what, err)
	}
	links, err := RetryDump(n.h.LinkList)
	if err != nil {
		return nil, wrap("links", err)
	}
	addrs, err := RetryDump(func() ([]netlink.Addr, error) { return n.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, wrap("addresses", err)
	}
	routes, err := RetryDump(func() ([]netlink.Route, error) {
		return n.h.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{Protocol: state.RouteProtocol, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, wrap("routes", err)
	}

	// What only a thread inside the namespace can read.
	var (
		linkLayer map[int32]LinkLayerInfo
		sysctls   = map[string]string{}
		txcsum    = map[string]bool{}
		gro       = map[string]bool{}
	)
	err = namespace.Do(n.ns, func() error {
		var err error
		if linkLayer, err = RetryDump(dumpLinkLayer); err != nil {
			return fmt.Errorf("link-layer addresses: %w", err)
		}
		for _, key := range sysctlKeys {
			v, err := readSysctl(key)
			if isNotExist(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("sysctl %s: %w", key, err)
			}
			sysctls[key] = v
		}
		for _, l := range links {
			if l.Type() != state.KindVeth && l.Type() != state.KindVXLAN {
				continue
			}
			v, err := ethtool(l.Attrs().Name, unix.ETHTOOL_GTXCSUM, 0)
			if errors.Is(err, ErrLinkNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("tx checksumming of %s: %w", l.Attrs().Name, err)
			}
			txcsum[l.Attrs().Name] = v != 0
			if l.Type() == state.KindVXLAN {
				v, err := ethtool(l.Attrs().Name, unix.ETHTOOL_GGRO, 0)
				if err != nil && !errors.Is(err, ErrLinkNotFound) {
					return fmt.Errorf("generic receive offload of %s: %w", l.Attrs().Name, err)
				}
				gro[l.Attrs().Name] = v != 0
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ns %s: observe: %w", n.name, err)
	}

	// TUN/TAP owners are reported in this user namespace's ids; the lab's
	// are the machine's.
	var ids struct{ uids, gids idMap }
	for _, l := range links {
		if _, ok := l.(*netlink.Tuntap); ok {
			if ids.uids, err = readIDMap("uid"); err == nil {
				ids.gids, err = readIDMap("gid")
			}
			if err != nil {
				return nil, fmt.Errorf("ns %s: observe: %w", n.name, err)
			}
			break
		}
	}
	out := &state.Namespace{
		Name:    n.name,
		Links:   make(map[string]*state.Link, len(links)),
		Sysctls: sysctls,
	}
	byIndex := make(map[int]*state.Link, len(links))
	for _, l := range links {
		a := l.Attrs()
		sl := &state.Link{
			Name:  a.Name,
			Index: a.Index,
			Kind:  l.Type(),
			Alias: a.Alias,
			Up:    a.Flags&net.FlagUp != 0,
			MTU:   a.MTU,
			// NO-CARRIER as `ip link` prints it: up, no lower link.
			NoCarrier: a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP == 0,
			OperState: a.OperState.String(),
		}
		if len(a.HardwareAddr) > 0 {
			sl.MAC = slices.Clone(a.HardwareAddr)
		}
		if v, ok := txcsum[a.Name]; ok {
			sl.TxChecksum = &v
		}
		if v, ok := gro[a.Name]; ok {
			sl.GRO = &v
		}
		if vx, ok := l.(*netlink.Vxlan); ok {
			v := &state.VXLAN{VNI: vx.VxlanId, Port: vx.Port, DevIndex: vx.VtepDevIndex}
			if ip, ok := netip.AddrFromSlice(vx.SrcAddr); ok {
				v.Local = ip.Unmap()
			}
			if st := a.Statistics; st != nil {
				v.RxPackets, v.TxPackets = st.RxPackets, st.TxPackets
			}
			if v.Remotes, err = n.remotes(a.Index); err != nil {
				return nil, err
			}
			sl.VXLAN = v
		}
		if vl, ok := l.(*netlink.Vlan); ok {
			sl.VLANID = vl.VlanId
		}
		if tt, ok := l.(*netlink.Tuntap); ok {
			sl.Tuntap = &state.Tuntap{
				TAP:        tt.Mode == netlink.TUNTAP_MODE_TAP,
				MultiQueue: tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0,
				VnetHdr:    tt.Flags&netlink.TUNTAP_VNET_HDR != 0,
				Owner:      -1,
				Group:      -1,
			}
		}
		if ll, ok := linkLayer[int32(a.Index)]; ok {
			sl.LinkLayer = ll.String()
			if sl.Tuntap != nil {
				sl.Tuntap.Owner = ids.uids.outside(int(ll.TunOwner))
				sl.Tuntap.Group = ids.gids.outside(int(ll.TunGroup))
			}
		}
		out.Links[a.Name] = sl
		byIndex[a.Index] = sl
	}
	for _, l := range links {
		if _, ok := l.(*netlink.Vlan); ok {
			if parent, ok := byIndex[l.Attrs().ParentIndex]; ok {
				byIndex[l.Attrs().Index].VLANParent = parent.Name
			}
		}
		if m := l.Attrs().MasterIndex; m != 0 {
			if master, ok := byIndex[m]; ok {
				byIndex[l.Attrs().Index].Master = master.Name
			}
		}
	}
	if err := n.bridgeVLANs(links, byIndex); err != nil {
		return nil, fmt.Errorf("ns %s: observe: %w", n.name, err)
	}
	if lo, ok := out.Links["lo"]; ok {
		if lab, ok := state.ParseNamespaceAlias(lo.Alias); ok {
			out.Owner = lab
		}
	}
	for _, a := range addrs {
		sl, ok := byIndex[a.LinkIndex]
		if !ok || a.IPNet == nil {
			continue
		}
		p, ok := prefixOf(a.IPNet)
		// Every address, the kernel's own IPv6 link-local ones included: a
		// file may ask for a link-local address (fe80::1 on a TUN), and the
		// plan never removes one it did not ask for.
		if !ok {
			continue
		}
		sl.Addrs = append(sl.Addrs, p)
	}
	for _, sl := range out.Links {
		slices.SortFunc(sl.Addrs, func(a, b netip.Prefix) int {
			return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
		})
	}
	for _, r := range routes {
		sr, ok := routeOf(r, byIndex)
		if ok {
			out.Routes = append(out.Routes, sr)
		}
	}
	slices.SortFunc(out.Routes, func(a, b state.Route) int {
		return cmp.Or(
			a.To.Addr().Compare(b.To.Addr()), cmp.Compare(a.To.Bits(), b.To.Bits()),
			cmp.Compare(a.Metric, b.Metric), a.Via.Compare(b.Via), cmp.Compare(a.Dev, b.Dev))
	})
	return out, nil
}

// prefixOf converts an address as netlink reports it (host bits kept).
func prefixOf(ipn *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ipn.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := ipn.Mask.Size()
	if bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// ForeignRoutes returns the main table's routes to any of dsts that netlab
// did not install (a protocol other than state.RouteProtocol): the routes a
// lab route to the same destination would replace, or take traffic from.
// Multipath routes count too, by their first hop.
// Equivalent to: `ip route show table main exact DST` (and -6) for each DST,
// leaving out proto 78.
func (n *NS) ForeignRoutes(dsts []netip.Prefix) ([]state.ForeignRoute, error) {
	if len(dsts) == 0 {
		return nil, nil
	}
	want := map[netip.Prefix]bool{}
	for _, d := range dsts {
		want[d] = true
	}
	links, err := RetryDump(n.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("ns %s: observe links: %w", n.name, err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	routes, err := RetryDump(func() ([]netlink.Route, error) {
		return n.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("ns %s: observe routes: %w", n.name, err)
	}
	var out []state.ForeignRoute
	for _, r := range routes {
		if r.Protocol == state.RouteProtocol {
			continue
		}
		to := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Family == netlink.FAMILY_V6 {
			to = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if r.Dst != nil {
			p, ok := prefixOf(r.Dst)
			if !ok {
				continue
			}
			to = p
		}
		if !want[to] {
			continue
		}
		fr := state.ForeignRoute{Route: state.Route{To: to, Metric: r.Priority, Dev: names[r.LinkIndex]}, Protocol: r.Protocol.String()}
		gw := r.Gw
		if len(r.MultiPath) > 0 {
			gw, fr.Dev = r.MultiPath[0].Gw, names[r.MultiPath[0].LinkIndex]
		}
		if via, ok := netip.AddrFromSlice(gw); ok {
			fr.Via = via.Unmap()
		}
		out = append(out, fr)
	}
	return out, nil
}

// routeOf converts a netlink route; multipath routes (which netlab does not
// make) are skipped.
func routeOf(r netlink.Route, byIndex map[int]*state.Link) (state.Route, bool) {
	var sr state.Route
	if len(r.MultiPath) > 0 {
		return sr, false
	}
	if r.Dst != nil {
		p, ok := prefixOf(r.Dst)
		if !ok {
			return sr, false
		}
		sr.To = p
	} else if r.Family == netlink.FAMILY_V6 {
		sr.To = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	} else {
		sr.To = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	if r.Gw != nil {
		if via, ok := netip.AddrFromSlice(r.Gw); ok {
			sr.Via = via.Unmap()
		}
	}
	if l, ok := byIndex[r.LinkIndex]; ok {
		sr.Dev = l.Name
	}
	sr.Metric = r.Priority
	return sr, true
}

// dumpLinkLayer dumps the links of the calling thread's namespace with a raw
// RTM_GETLINK request and parses their link-layer addresses; the caller is
// inside namespace.Do. Returns netlink.ErrDumpInterrupted if the kernel
// flagged the dump as inconsistent.
// Equivalent to: `ip link show` (the link/... lines).
func dumpLinkLayer() (map[int32]LinkLayerInfo, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(socketTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	const seq = 1
	req := make([]byte, unix.SizeofNlMsghdr+unix.SizeofIfInfomsg)
	// struct nlmsghdr { u32 len; u16 type, flags; u32 seq, pid }
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:6], unix.RTM_GETLINK)
	binary.NativeEndian.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:12], seq)
	req[unix.SizeofNlMsghdr] = unix.AF_UNSPEC
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	out := map[int32]LinkLayerInfo{}
	interrupted := false
	buf := make([]byte, 64<<10)
	for {
		nr, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:nr])
		if err != nil {
			return nil, fmt.Errorf("netlink parse: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if interrupted {
					return out, netlink.ErrDumpInterrupted
				}
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
						return nil, fmt.Errorf("netlink dump: %w", unix.Errno(-errno))
					}
				}
				return nil, errors.New("netlink dump: error message")
			case unix.RTM_NEWLINK:
				info, err := ParseLinkMessage(m.Data)
				if err != nil {
					return nil, fmt.Errorf("link message: %w", err)
				}
				out[info.Index] = info
			}
		}
	}
}

// Marker reads only what says whose a namespace is: the lab in lo's alias,
// and the names of its links (down and the lab scan need no more than that,
// and a full Observe costs four dumps).
func (n *NS) Marker() (lab string, links []string, err error) {
	ls, err := RetryDump(n.h.LinkList)
	if err != nil {
		return "", nil, fmt.Errorf("ns %s: list links: %w", n.name, err)
	}
	for _, l := range ls {
		a := l.Attrs()
		links = append(links, a.Name)
		if a.Name == "lo" {
			lab, _ = state.ParseNamespaceAlias(a.Alias)
		}
	}
	return lab, links, nil
}
