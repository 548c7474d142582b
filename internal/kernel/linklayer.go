package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LinkLayerInfo is what an RTM_NEWLINK message says about a link's
// link-layer addresses, and what netlink's Go types lose of it: they drop
// IFLA_BROADCAST and every all-zero address (loopback, a tunnel bound to
// 0.0.0.0), do not know ARPHRD_IP6GRE, and read a TUN/TAP without an owner
// as owned by uid 0.
type LinkLayerInfo struct {
	Index       int32
	Name        string // IFLA_IFNAME
	Type        uint16 // ifi_type: ARPHRD_*
	Flags       uint32 // ifi_flags: IFF_*
	Address     []byte // IFLA_ADDRESS; nil if absent (TUN)
	Broadcast   []byte // IFLA_BROADCAST: broadcast, or the peer on IFF_POINTOPOINT links
	PermAddress []byte // IFLA_PERM_ADDRESS; the kernel sends it only if non-zero
	// TunOwner and TunGroup are a TUN/TAP's IFLA_TUN_OWNER and
	// IFLA_TUN_GROUP (in the reader's user namespace's ids), -1 when the
	// kernel sent none: the device has no owner or group.
	TunOwner, TunGroup int64
}

// ErrTruncated reports a netlink message shorter than its headers claim.
var ErrTruncated = errors.New("truncated netlink message")

// ParseLinkMessage parses the payload of an RTM_NEWLINK message (after the
// nlmsghdr): a struct ifinfomsg and its attributes. Byte slices in the result
// are copies. It never panics, whatever b holds.
func ParseLinkMessage(b []byte) (LinkLayerInfo, error) {
	l, err := parseRawLink(b)
	return l.LinkLayerInfo, err
}

// forEachAttr calls fn with the type (without the nested and byte-order
// flags) and value of each netlink attribute in b, in order.
func forEachAttr(b []byte, fn func(atype uint16, val []byte) error) error {
	for len(b) > 0 {
		if len(b) < unix.SizeofRtAttr {
			return fmt.Errorf("attribute header: %d bytes: %w", len(b), ErrTruncated)
		}
		alen := int(binary.NativeEndian.Uint16(b[0:2]))
		atype := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if alen < unix.SizeofRtAttr || alen > len(b) {
			return fmt.Errorf("attribute %d: length %d of %d bytes left: %w", atype, alen, len(b), ErrTruncated)
		}
		if err := fn(atype, b[unix.SizeofRtAttr:alen]); err != nil {
			return err
		}
		next := rtaAlign(alen)
		if next >= len(b) {
			break // the last attribute may omit its padding
		}
		b = b[next:]
	}
	return nil
}

func rtaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

// clone copies b, keeping nil as nil and empty as empty.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// String prints the link-layer part of `ip link show`, see FormatLinkLayer.
func (i LinkLayerInfo) String() string {
	return FormatLinkLayer(i.Type, i.Flags, i.Address, i.Broadcast, i.PermAddress)
}

// arphrdNames are iproute2's names for link types (lib/ll_types.c), for the
// types netlab can meet.
var arphrdNames = map[uint16]string{
	0:                              "generic",
	unix.ARPHRD_ETHER:              "ether",
	unix.ARPHRD_INFINIBAND:         "infiniband",
	unix.ARPHRD_SLIP:               "slip",
	unix.ARPHRD_CAN:                "can",
	unix.ARPHRD_PPP:                "ppp",
	unix.ARPHRD_TUNNEL:             "ipip",
	unix.ARPHRD_TUNNEL6:            "tunnel6",
	unix.ARPHRD_LOOPBACK:           "loopback",
	unix.ARPHRD_SIT:                "sit",
	unix.ARPHRD_IPGRE:              "gre",
	unix.ARPHRD_IEEE80211:          "ieee802.11",
	unix.ARPHRD_IEEE802154:         "ieee802.15.4",
	unix.ARPHRD_IP6GRE:             "gre6", // iproute2's name; netlink's Go code says "unknown823"
	unix.ARPHRD_NETLINK:            "netlink",
	unix.ARPHRD_NONE:               "none",
	unix.ARPHRD_VOID:               "void",
	unix.ARPHRD_IEEE80211_RADIOTAP: "ieee802.11/radiotap",
}

// addrLen is the address length a link type has, or -1 if netlab does not
// know it (then the address itself sets it).
func addrLen(arphrd uint16) int {
	switch arphrd {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK, unix.ARPHRD_IEEE80211, unix.ARPHRD_IEEE80211_RADIOTAP:
		return 6
	case unix.ARPHRD_TUNNEL, unix.ARPHRD_SIT, unix.ARPHRD_IPGRE:
		return 4
	case unix.ARPHRD_TUNNEL6, unix.ARPHRD_IP6GRE:
		return 16
	case unix.ARPHRD_NONE, unix.ARPHRD_VOID:
		return 0
	}
	return -1
}

// FormatLinkLayer prints a link's type and link-layer addresses the way
// `ip link show` does (iproute2 ipaddress.c print_linkinfo, lib/ll_addr.c
// ll_addr_n2a):
//
//	link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff
//	link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
//	link/gre 192.0.2.1 peer 192.0.2.2       (IFF_POINTOPOINT: brd is the peer)
//	link/gre6 2001:db8::1 peer 2001:db8::2
//	link/none                               (TUN: no address at all)
//
// 4-byte addresses of ipip/sit/gre and 16-byte ones of ip6tnl/ip6gre are IP
// addresses; anything else is hex pairs. The permanent address is shown as
// "permaddr X" only when it differs from the address and its length fits the
// type — never as garbage.
func FormatLinkLayer(arphrd uint16, flags uint32, addr, brd, perm []byte) string {
	var b strings.Builder
	b.WriteString("link/")
	if name, ok := arphrdNames[arphrd]; ok {
		b.WriteString(name)
	} else {
		b.WriteString("[" + strconv.Itoa(int(arphrd)) + "]")
	}
	if len(addr) > 0 {
		b.WriteString(" " + formatLLAddr(arphrd, addr))
	}
	if len(brd) > 0 {
		if flags&unix.IFF_POINTOPOINT != 0 {
			b.WriteString(" peer ")
		} else {
			b.WriteString(" brd ")
		}
		b.WriteString(formatLLAddr(arphrd, brd))
	}
	if len(perm) > 0 && fitsType(arphrd, perm, addr) && string(perm) != string(addr) {
		b.WriteString(" permaddr " + formatLLAddr(arphrd, perm))
	}
	return b.String()
}

// fitsType tells whether a permanent address has the length of its link
// type's addresses (or, for a type netlab does not know, of the address).
func fitsType(arphrd uint16, perm, addr []byte) bool {
	want := addrLen(arphrd)
	if want < 0 {
		want = len(addr)
	}
	return want > 0 && len(perm) == want
}

// formatLLAddr is iproute2's ll_addr_n2a.
func formatLLAddr(arphrd uint16, a []byte) string {
	switch {
	case len(a) == 4 && (arphrd == unix.ARPHRD_TUNNEL || arphrd == unix.ARPHRD_SIT || arphrd == unix.ARPHRD_IPGRE):
		return net.IP(a).String()
	case len(a) == 16 && (arphrd == unix.ARPHRD_TUNNEL6 || arphrd == unix.ARPHRD_IP6GRE):
		return net.IP(a).String()
	}
	return net.HardwareAddr(a).String()
}
