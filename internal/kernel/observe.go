package kernel

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

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
//
// Links, addresses and routes are three dumps on the namespace's socket,
// each link message read once for both netlink's types and the link-layer
// text; offloads are ioctls through the same socket. Only the sysctls need
// a thread inside the namespace, and not those this run has read or
// written already (NS.sysctls): a run's own writes are read back as they
// are made.
// Equivalent to: `ip -n NS -d link; ip -n NS addr; ip -n NS route show proto 78
// (and -6); ip netns exec NS sysctl KEYS; ethtool -k VETH`.
func (n *NS) Observe(sysctlKeys []string) (*state.Namespace, error) {
	return n.observe(sysctlKeys, true)
}

// ObserveLinks is Observe without the offloads of each link: what removing
// a lab needs of the host (a link each, its owner, master and addresses,
// and the routes), an ioctl a link cheaper.
func (n *NS) ObserveLinks(sysctlKeys []string) (*state.Namespace, error) {
	return n.observe(sysctlKeys, false)
}

func (n *NS) observe(sysctlKeys []string, offloads bool) (*state.Namespace, error) {
	wrap := func(what string, err error) error {
		return fmt.Errorf("ns %s: observe %s: %w", n.name, what, err)
	}
	if err := n.pin(); err != nil {
		return nil, wrap("links", err)
	}
	defer n.unpin()
	sock, err := n.rawSock()
	if err != nil {
		return nil, wrap("links", err)
	}
	links, err := RetryDump(func() ([]rawLink, error) {
		var out []rawLink
		err := sock.dump(unix.RTM_GETLINK, func(body []byte) error {
			l, err := parseRawLink(body)
			if err != nil {
				return err
			}
			out = append(out, l)
			return nil
		})
		return out, err
	})
	if err != nil {
		return nil, wrap("links", err)
	}
	addrs, err := RetryDump(func() ([]rawAddr, error) { return dumpAddrs(sock) })
	if err != nil {
		return nil, wrap("addresses", err)
	}
	routes, err := RetryDump(func() ([]rawRoute, error) { return dumpRoutes(sock) })
	if err != nil {
		return nil, wrap("routes", err)
	}

	sysctls := map[string]string{}
	var missing []string
	n.mu.Lock()
	for _, key := range sysctlKeys {
		if v, ok := n.sysctls[key]; ok {
			sysctls[key] = v
		} else {
			missing = append(missing, key)
		}
	}
	n.mu.Unlock()
	if len(missing) > 0 {
		read := map[string]string{}
		// What only a thread inside the namespace can read.
		err = namespace.Do(n.file(), func() error {
			for _, key := range missing {
				v, err := readSysctl(n.procSys(), key)
				if isNotExist(err) {
					continue
				}
				if err != nil {
					return fmt.Errorf("sysctl %s: %w", key, err)
				}
				read[key] = v
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("ns %s: observe: %w", n.name, err)
		}
		n.remember(read)
		for k, v := range read {
			sysctls[k] = v
		}
	}
	txcsum, gro := map[string]bool{}, map[string]bool{}
	for _, l := range links {
		if !offloads || l.kind != state.KindVeth && l.kind != state.KindVXLAN {
			continue
		}
		v, err := sock.ethtool(l.Name, unix.ETHTOOL_GTXCSUM, 0)
		if errors.Is(err, ErrLinkNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, wrap("tx checksumming of "+l.Name, err)
		}
		txcsum[l.Name] = v != 0
		if l.kind == state.KindVXLAN {
			v, err := sock.ethtool(l.Name, unix.ETHTOOL_GGRO, 0)
			if err != nil && !errors.Is(err, ErrLinkNotFound) {
				return nil, wrap("generic receive offload of "+l.Name, err)
			}
			gro[l.Name] = v != 0
		}
	}

	// TUN/TAP owners are reported in this user namespace's ids; the lab's
	// are the machine's.
	var ids struct{ uids, gids idMap }
	for _, l := range links {
		if l.kind == state.KindTuntap {
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
	var filtering []int // bridges that filter VLANs
	for _, l := range links {
		sl := &state.Link{
			Name:  l.Name,
			Index: int(l.Index),
			Kind:  l.kind,
			Alias: l.alias,
			Up:    l.Flags&unix.IFF_UP != 0,
			MTU:   l.mtu,
			// NO-CARRIER as `ip link` prints it: up, no lower link.
			NoCarrier: l.Flags&unix.IFF_UP != 0 && l.Flags&unix.IFF_LOWER_UP == 0,
			OperState: netlink.LinkOperState(l.operState).String(),
			MAC:       l.hwAddr,
			LinkLayer: l.LinkLayerInfo.String(),
		}
		if v, ok := txcsum[l.Name]; ok {
			sl.TxChecksum = &v
		}
		if v, ok := gro[l.Name]; ok {
			sl.GRO = &v
		}
		switch l.kind {
		case state.KindVXLAN:
			v := &state.VXLAN{VNI: l.vxlanID, Port: l.vxlanPort, DevIndex: l.vxlanDev, RxPackets: l.rxPackets, TxPackets: l.txPackets}
			if ip, ok := netip.AddrFromSlice(l.vxlanLocal); ok {
				v.Local = ip.Unmap()
			}
			if v.Remotes, err = n.remotes(int(l.Index)); err != nil {
				return nil, err
			}
			sl.VXLAN = v
		case state.KindVLAN:
			sl.VLANID = l.vlanID
		case state.KindTuntap:
			sl.Tuntap = &state.Tuntap{
				TAP:        l.tunTAP,
				MultiQueue: l.tunMultiQueue,
				VnetHdr:    l.tunVnetHdr,
				Owner:      ids.uids.outside(int(l.TunOwner)),
				Group:      ids.gids.outside(int(l.TunGroup)),
			}
		case state.KindBridge:
			if l.vlanFiltering {
				sl.VLANFiltering = true
				filtering = append(filtering, int(l.Index))
			}
		}
		out.Links[l.Name] = sl
		byIndex[int(l.Index)] = sl
	}
	for _, l := range links {
		if l.kind == state.KindVLAN {
			if parent, ok := byIndex[l.parent]; ok {
				byIndex[int(l.Index)].VLANParent = parent.Name
			}
		}
		if l.master != 0 {
			if master, ok := byIndex[l.master]; ok {
				byIndex[int(l.Index)].Master = master.Name
			}
		}
	}
	if err := n.bridgeVLANs(filtering, byIndex); err != nil {
		return nil, fmt.Errorf("ns %s: observe: %w", n.name, err)
	}
	if lo, ok := out.Links["lo"]; ok {
		if lab, ok := state.ParseNamespaceAlias(lo.Alias); ok {
			out.Owner = lab
		}
	}
	for _, a := range addrs {
		sl, ok := byIndex[a.index]
		if !ok {
			continue
		}
		// Every address, the kernel's own IPv6 link-local ones included: a
		// file may ask for a link-local address (fe80::1 on a TUN), and the
		// plan never removes one it did not ask for.
		sl.Addrs = append(sl.Addrs, a.prefix)
	}
	for _, sl := range out.Links {
		slices.SortFunc(sl.Addrs, func(a, b netip.Prefix) int {
			return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
		})
	}
	for _, r := range routes {
		if sr, ok := r.route(byIndex); ok {
			out.Routes = append(out.Routes, sr)
		}
	}
	slices.SortFunc(out.Routes, func(a, b state.Route) int {
		return cmp.Or(
			a.To.Addr().Compare(b.To.Addr()), cmp.Compare(a.To.Bits(), b.To.Bits()),
			cmp.Compare(a.Metric, b.Metric), a.Via.Compare(b.Via), cmp.Compare(a.Dev, b.Dev))
	})
	for name, l := range out.Links {
		n.learn(name, int32(l.Index))
	}
	return out, nil
}

// rawAddr is an address from a dump: its link and prefix.
type rawAddr struct {
	index  int
	prefix netip.Prefix
}

// dumpAddrs dumps the namespace's addresses. Like netlink's Go code (and
// libnl): IPv4 sends the local address as IFA_LOCAL and IFA_ADDRESS, the
// latter the peer when they differ (then the local one is the address, a
// host prefix); IPv6 sends IFA_ADDRESS alone, or IFA_LOCAL too for a
// point-to-point one.
func dumpAddrs(s *rtnl) ([]rawAddr, error) {
	var out []rawAddr
	err := s.dump(unix.RTM_GETADDR, func(body []byte) error {
		if len(body) < unix.SizeofIfAddrmsg {
			return fmt.Errorf("ifaddrmsg: %w", ErrTruncated)
		}
		family, bits := body[0], int(body[1])
		index := int(binary.NativeEndian.Uint32(body[4:8]))
		var local, addr []byte
		err := forEachAttr(body[unix.SizeofIfAddrmsg:], func(atype uint16, val []byte) error {
			switch atype {
			case unix.IFA_ADDRESS:
				addr = val
			case unix.IFA_LOCAL:
				local = val
			}
			return nil
		})
		if err != nil {
			return err
		}
		var p netip.Prefix
		switch {
		case local != nil && !(family == unix.AF_INET && addr != nil && string(local) == string(addr)):
			a, ok := netip.AddrFromSlice(local)
			if !ok {
				return nil
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		case addr != nil:
			a, ok := netip.AddrFromSlice(addr)
			if !ok || bits > a.Unmap().BitLen() {
				return nil
			}
			p = netip.PrefixFrom(a.Unmap(), bits)
		default:
			return nil
		}
		out = append(out, rawAddr{index: index, prefix: p})
		return nil
	})
	return out, err
}

// rawRoute is one of netlab's routes from a dump.
type rawRoute struct {
	family    byte
	dst       []byte
	bits      int
	gw        []byte
	oif       int
	metric    int
	multipath bool
}

// dumpRoutes dumps the routes of protocol state.RouteProtocol in the main
// table, IPv4 and IPv6, leaving out the kernel's cloned (cache) entries.
func dumpRoutes(s *rtnl) ([]rawRoute, error) {
	var out []rawRoute
	err := s.dump(unix.RTM_GETROUTE, func(body []byte) error {
		if len(body) < unix.SizeofRtMsg {
			return fmt.Errorf("rtmsg: %w", ErrTruncated)
		}
		// struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags }
		if body[5] != state.RouteProtocol || binary.NativeEndian.Uint32(body[8:12])&unix.RTM_F_CLONED != 0 {
			return nil
		}
		r := rawRoute{family: body[0], bits: int(body[1])}
		table := uint32(body[4])
		err := forEachAttr(body[unix.SizeofRtMsg:], func(atype uint16, val []byte) error {
			switch atype {
			case unix.RTA_DST:
				r.dst = clone(val)
			case unix.RTA_GATEWAY:
				r.gw = clone(val)
			case unix.RTA_OIF:
				if len(val) == 4 {
					r.oif = int(binary.NativeEndian.Uint32(val))
				}
			case unix.RTA_PRIORITY:
				if len(val) == 4 {
					r.metric = int(binary.NativeEndian.Uint32(val))
				}
			case unix.RTA_TABLE:
				if len(val) == 4 {
					table = binary.NativeEndian.Uint32(val)
				}
			case unix.RTA_MULTIPATH:
				r.multipath = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		if table == unix.RT_TABLE_MAIN {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// route converts a dumped route; multipath routes (which netlab does not
// make) are skipped.
func (r rawRoute) route(byIndex map[int]*state.Link) (state.Route, bool) {
	var sr state.Route
	if r.multipath {
		return sr, false
	}
	if r.dst != nil {
		a, ok := netip.AddrFromSlice(r.dst)
		if !ok || r.bits > a.Unmap().BitLen() {
			return sr, false
		}
		sr.To = netip.PrefixFrom(a.Unmap(), r.bits)
	} else if r.family == unix.AF_INET6 {
		sr.To = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	} else {
		sr.To = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	if r.gw != nil {
		if via, ok := netip.AddrFromSlice(r.gw); ok {
			sr.Via = via.Unmap()
		}
	}
	if l, ok := byIndex[r.oif]; ok {
		sr.Dev = l.Name
	}
	sr.Metric = r.metric
	return sr, true
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
	names := map[int]string{}
	err := n.raw(func(s *rtnl) error {
		return RetryDumpErr(func() error {
			clear(names)
			return s.dump(unix.RTM_GETLINK, func(body []byte) error {
				name, _, err := linkNameAlias(body)
				names[int(binary.NativeEndian.Uint32(body[4:8]))] = name
				return err
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ns %s: observe links: %w", n.name, err)
	}
	var routes []netlink.Route
	err = n.nl(func(h *netlink.Handle) error {
		var err error
		routes, err = RetryDump(func() ([]netlink.Route, error) {
			return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		return err
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

// Marker reads only what says whose a namespace is: the lab in lo's alias,
// and the names of its links (down and the lab scan need no more than that,
// and a full Observe costs more).
func (n *NS) Marker() (lab string, links []string, err error) {
	err = n.raw(func(s *rtnl) error {
		return RetryDumpErr(func() error {
			lab, links = "", nil
			return s.dump(unix.RTM_GETLINK, func(body []byte) error {
				name, alias, err := linkNameAlias(body)
				if err != nil {
					return err
				}
				links = append(links, name)
				if name == "lo" {
					lab, _ = state.ParseNamespaceAlias(alias)
				}
				return nil
			})
		})
	})
	if err != nil {
		return "", nil, fmt.Errorf("ns %s: list links: %w", n.name, err)
	}
	return lab, links, nil
}

// Owner reads the lab named on lo's alias ("" when there is none): one
// request, where Marker dumps every link.
// Equivalent to: `ip -n NS link show lo`.
func (n *NS) Owner() (string, error) {
	var lab string
	err := n.raw(func(s *rtnl) error {
		return s.getLink(loIndex, "", func(body []byte) error {
			_, alias, err := linkNameAlias(body)
			lab, _ = state.ParseNamespaceAlias(alias)
			return err
		})
	})
	if err != nil {
		return "", fmt.Errorf("ns %s: read lo: %w", n.name, err)
	}
	return lab, nil
}

// loIndex is lo's index in every network namespace (LOOPBACK_IFINDEX).
const loIndex = 1

// linkNameAlias reads a link message's name and alias.
func linkNameAlias(body []byte) (name, alias string, err error) {
	if len(body) < unix.SizeofIfInfomsg {
		return "", "", fmt.Errorf("ifinfomsg: %w", ErrTruncated)
	}
	err = forEachAttr(body[unix.SizeofIfInfomsg:], func(atype uint16, val []byte) error {
		switch atype {
		case unix.IFLA_IFNAME:
			name, _, _ = strings.Cut(string(val), "\x00")
		case unix.IFLA_IFALIAS:
			alias, _, _ = strings.Cut(string(val), "\x00")
		}
		return nil
	})
	return name, alias, err
}

// RetryDumpErr is RetryDump for a dump that keeps its results itself.
func RetryDumpErr(dump func() error) error {
	_, err := RetryDump(func() (struct{}, error) { return struct{}{}, dump() })
	return err
}
