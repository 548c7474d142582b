package kernel

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// rawLink is what observing reads of an RTM_NEWLINK message: one pass over
// its attributes, nothing else decoded. netlink's Go code (LinkDeserialize)
// decodes every attribute of every kind into its types, about 9 µs a link
// here (BenchmarkObserveLinks): most of a host's observation when a lab
// has hundreds of links, to keep a dozen fields.
type rawLink struct {
	LinkLayerInfo
	kind      string // Type() of netlink's Go types: IFLA_INFO_KIND, "tuntap" for tun, "device" without one
	alias     string
	mtu       int
	operState uint8 // IFLA_OPERSTATE: netlink.LinkOperState
	hwAddr    []byte
	master    int // IFLA_MASTER
	parent    int // IFLA_LINK
	// rxPackets and txPackets are IFLA_STATS64's first two counters.
	rxPackets, txPackets uint64

	vxlanID, vxlanPort, vxlanDev int
	vxlanLocal                   []byte
	vlanID                       int
	tunTAP, tunMultiQueue        bool
	tunVnetHdr                   bool
	// vlanFiltering is a bridge's IFLA_BR_VLAN_FILTERING.
	vlanFiltering bool
}

// Attributes inside IFLA_INFO_DATA (linux/if_link.h, linux/if_tun.h).
const (
	iflaInfoKind        = 1
	iflaInfoData        = 2
	iflaTunOwner        = 1
	iflaTunGroup        = 2
	iflaVxlanID         = 1
	iflaVxlanLink       = 3
	iflaVxlanLocal      = 4
	iflaVxlanPort       = 15
	iflaVxlanLocal6     = 17
	iflaVlanID          = 1
	iflaTunType         = 3
	iflaTunVnetHdr      = 5
	iflaTunMultiQueue   = 7
	iflaBrVlanFiltering = 7
	tunTypeTAP          = 2 // IFF_TAP
)

// parseRawLink parses the payload of an RTM_NEWLINK message (after the
// nlmsghdr). Byte slices in the result are copies. It never panics,
// whatever b holds.
func parseRawLink(b []byte) (rawLink, error) {
	var m rawLink
	if len(b) < unix.SizeofIfInfomsg {
		return m, fmt.Errorf("ifinfomsg: %d bytes, want %d: %w", len(b), unix.SizeofIfInfomsg, ErrTruncated)
	}
	// struct ifinfomsg { u8 family, pad; u16 type; s32 index; u32 flags, change }
	m.Type = binary.NativeEndian.Uint16(b[2:4])
	m.Index = int32(binary.NativeEndian.Uint32(b[4:8]))
	m.Flags = binary.NativeEndian.Uint32(b[8:12])
	m.TunOwner, m.TunGroup = -1, -1
	var data []byte // IFLA_INFO_DATA, read once the kind is known
	err := forEachAttr(b[unix.SizeofIfInfomsg:], func(atype uint16, val []byte) error {
		switch atype {
		case unix.IFLA_IFNAME:
			m.Name, _, _ = strings.Cut(string(val), "\x00")
		case unix.IFLA_IFALIAS:
			m.alias, _, _ = strings.Cut(string(val), "\x00")
		case unix.IFLA_ADDRESS:
			m.Address = clone(val)
			// As netlink's Go code: an all-zero address is none.
			for _, c := range val {
				if c != 0 {
					m.hwAddr = m.Address
					break
				}
			}
		case unix.IFLA_BROADCAST:
			m.Broadcast = clone(val)
		case unix.IFLA_PERM_ADDRESS:
			m.PermAddress = clone(val)
		case unix.IFLA_MTU:
			m.mtu = int(attrU32(val))
		case unix.IFLA_OPERSTATE:
			if len(val) > 0 {
				m.operState = val[0]
			}
		case unix.IFLA_MASTER:
			m.master = int(attrU32(val))
		case unix.IFLA_LINK:
			m.parent = int(attrU32(val))
		case unix.IFLA_STATS64:
			if len(val) >= 16 {
				m.rxPackets = binary.NativeEndian.Uint64(val[0:8])
				m.txPackets = binary.NativeEndian.Uint64(val[8:16])
			}
		case unix.IFLA_LINKINFO:
			return forEachAttr(val, func(atype uint16, val []byte) error {
				switch atype {
				case iflaInfoKind:
					m.kind, _, _ = strings.Cut(string(val), "\x00")
				case iflaInfoData:
					data = val
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	switch m.kind {
	case "":
		m.kind = "device"
	case "tun":
		m.kind = "tuntap"
	}
	if data == nil {
		return m, nil
	}
	return m, forEachAttr(data, func(atype uint16, val []byte) error {
		switch m.kind {
		case "tuntap":
			switch atype {
			case iflaTunOwner:
				if len(val) == 4 {
					m.TunOwner = int64(attrU32(val))
				}
			case iflaTunGroup:
				if len(val) == 4 {
					m.TunGroup = int64(attrU32(val))
				}
			case iflaTunType:
				m.tunTAP = len(val) > 0 && val[0] == tunTypeTAP
			case iflaTunVnetHdr:
				m.tunVnetHdr = len(val) > 0 && val[0] == 1
			case iflaTunMultiQueue:
				m.tunMultiQueue = len(val) > 0 && val[0] == 1
			}
		case "vxlan":
			switch atype {
			case iflaVxlanID:
				m.vxlanID = int(attrU32(val))
			case iflaVxlanLink:
				m.vxlanDev = int(attrU32(val))
			case iflaVxlanLocal:
				if len(val) >= 4 {
					m.vxlanLocal = clone(val[:4])
				}
			case iflaVxlanLocal6:
				if len(val) >= 16 {
					m.vxlanLocal = clone(val[:16])
				}
			case iflaVxlanPort:
				if len(val) >= 2 {
					m.vxlanPort = int(binary.BigEndian.Uint16(val[:2]))
				}
			}
		case "vlan":
			if atype == iflaVlanID && len(val) >= 2 {
				m.vlanID = int(binary.NativeEndian.Uint16(val[:2]))
			}
		case "bridge":
			if atype == iflaBrVlanFiltering && len(val) > 0 {
				m.vlanFiltering = val[0] == 1
			}
		}
		return nil
	})
}

// attrU32 is a native-endian u32 attribute's value, 0 when it is shorter.
func attrU32(val []byte) uint32 {
	if len(val) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(val[:4])
}
