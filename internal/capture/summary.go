package capture

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Line is one packet as netlab capture prints it, in tcpdump's manner:
//
//	14:20:01.123456 blue/veth1 Out IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 1, length 64
func Line(p Packet, iface Interface) string {
	dir := "In "
	if p.Outgoing {
		dir = "Out"
	}
	return fmt.Sprintf("%s %s %s %s", p.Time.Format("15:04:05.000000"), iface.Label, dir, Summary(p.Data, iface.LinkType))
}

// Summary describes a packet of the link type in one line, like tcpdump
// without -v: "IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1, win 64240,
// length 0". It reads Ethernet (and 802.1Q tags), ARP, IPv4, IPv6 (and its
// extension headers), ICMP, ICMPv6, TCP and UDP; of anything else it names
// the number; a packet cut short says so. (Hand-written for the binary's
// sake, see write.go; the fixture decodes with gopacket.)
func Summary(data []byte, lt LinkType) string {
	p := data
	if lt == LinkTypeRaw {
		return ipSummary(p)
	}
	if len(p) < 14 {
		return fmt.Sprintf("truncated Ethernet frame, length %d", len(data))
	}
	dst, src := net.HardwareAddr(p[0:6]), net.HardwareAddr(p[6:12])
	et := be16(p[12:14])
	p = p[14:]
	// 802.1Q (and 802.1ad) tags, as tcpdump writes them: "vlan 30, p 0, ".
	tags := ""
	for (et == 0x8100 || et == 0x88a8) && len(p) >= 4 {
		tci := be16(p[0:2])
		tags += fmt.Sprintf("vlan %d, p %d, ", tci&0x0fff, tci>>13)
		et, p = be16(p[2:4]), p[4:]
	}
	switch et {
	case 0x0806:
		return tags + arpSummary(p)
	case 0x0800, 0x86dd:
		return tags + ipSummary(p)
	}
	return fmt.Sprintf("%s%s > %s, ethertype 0x%04x, length %d", tags, src, dst, et, len(data))
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

func addr(b []byte) string {
	a, _ := netip.AddrFromSlice(b)
	return a.String()
}

func arpSummary(p []byte) string {
	if len(p) < 8 {
		return "ARP, truncated"
	}
	hlen, plen, op := int(p[4]), int(p[5]), be16(p[6:8])
	if len(p) < 8+2*hlen+2*plen {
		return "ARP, truncated"
	}
	sha := p[8 : 8+hlen]
	spa := p[8+hlen : 8+hlen+plen]
	tpa := p[8+2*hlen+plen : 8+2*hlen+2*plen]
	switch op {
	case 1:
		return fmt.Sprintf("ARP, Request who-has %s tell %s, length 28", addr(tpa), addr(spa))
	case 2:
		return fmt.Sprintf("ARP, Reply %s is-at %s, length 28", addr(spa), net.HardwareAddr(sha))
	}
	return fmt.Sprintf("ARP, operation %d", op)
}

// IPv6 extension headers that chain to a next header.
var ipv6Ext = map[byte]bool{0: true, 43: true, 44: true, 60: true}

func ipSummary(p []byte) string {
	if len(p) < 1 {
		return "empty packet"
	}
	var family, src, dst string
	var proto byte
	var seg []byte // the transport segment, as long as the IP header says
	var length int // the IP payload's length, as tcpdump gives it
	switch p[0] >> 4 {
	case 4:
		if len(p) < 20 {
			return fmt.Sprintf("IP, truncated, length %d", len(p))
		}
		ihl, total := int(p[0]&0x0f)*4, int(be16(p[2:4]))
		family, src, dst, proto = "IP", addr(p[12:16]), addr(p[16:20]), p[9]
		length = total - ihl
		if ihl < 20 || len(p) < ihl {
			return fmt.Sprintf("IP %s > %s: bad header length %d", src, dst, ihl)
		}
		seg = p[ihl:min(max(total, ihl), len(p))]
		if be16(p[6:8])&0x1fff != 0 { // not the first fragment
			return fmt.Sprintf("IP %s > %s: fragment of protocol %d, length %d", src, dst, proto, length)
		}
	case 6:
		if len(p) < 40 {
			return fmt.Sprintf("IP6, truncated, length %d", len(p))
		}
		family, src, dst, proto = "IP6", addr(p[8:24]), addr(p[24:40]), p[6]
		length = int(be16(p[4:6]))
		seg = p[40:min(40+length, len(p))]
		for ipv6Ext[proto] && len(seg) >= 8 {
			n := (int(seg[1]) + 1) * 8
			if proto == 44 {
				if be16(seg[2:4])&^7 != 0 { // not the first fragment
					return fmt.Sprintf("IP6 %s > %s: fragment of protocol %d, length %d", src, dst, seg[0], length)
				}
				n = 8
			}
			if len(seg) < n {
				break
			}
			proto, seg = seg[0], seg[n:]
		}
	default:
		return fmt.Sprintf("IP version %d, length %d", p[0]>>4, len(p))
	}
	switch proto {
	case 6:
		if len(seg) >= 20 {
			return fmt.Sprintf("%s %s.%d > %s.%d: %s", family, src, be16(seg[0:2]), dst, be16(seg[2:4]), tcpSummary(seg))
		}
	case 17:
		if len(seg) >= 8 {
			return fmt.Sprintf("%s %s.%d > %s.%d: UDP, length %d", family, src, be16(seg[0:2]), dst, be16(seg[2:4]), len(seg)-8)
		}
	case 1:
		if len(seg) >= 8 {
			return fmt.Sprintf("%s %s > %s: %s, length %d", family, src, dst, icmp4Summary(seg), length)
		}
	case 58:
		if len(seg) >= 8 {
			return fmt.Sprintf("%s %s > %s: %s, length %d", family, src, dst, icmp6Summary(seg), length)
		}
	default:
		return fmt.Sprintf("%s %s > %s: %s, length %d", family, src, dst, protoName(proto), length)
	}
	return fmt.Sprintf("%s %s > %s: %s, truncated, length %d", family, src, dst, protoName(proto), length)
}

func protoName(p byte) string {
	switch p {
	case 1:
		return "ICMP"
	case 2:
		return "IGMP"
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 47:
		return "GRE"
	case 58:
		return "ICMP6"
	case 132:
		return "SCTP"
	}
	return fmt.Sprintf("protocol %d", p)
}

// tcpSummary prints flags as tcpdump does: S SYN, F FIN, P PSH, R RST, U
// URG, E ECE, W CWR, . ACK.
func tcpSummary(seg []byte) string {
	flags := seg[13]
	var f strings.Builder
	for _, x := range []struct {
		bit byte
		c   byte
	}{{0x02, 'S'}, {0x01, 'F'}, {0x08, 'P'}, {0x04, 'R'}, {0x20, 'U'}, {0x40, 'E'}, {0x80, 'W'}, {0x10, '.'}} {
		if flags&x.bit != 0 {
			f.WriteByte(x.c)
		}
	}
	if f.Len() == 0 {
		f.WriteString("none")
	}
	s := fmt.Sprintf("Flags [%s], seq %d", f.String(), be32(seg[4:8]))
	if flags&0x10 != 0 {
		s += fmt.Sprintf(", ack %d", be32(seg[8:12]))
	}
	payload := max(len(seg)-int(seg[12]>>4)*4, 0)
	return s + fmt.Sprintf(", win %d, length %d", be16(seg[14:16]), payload)
}

func icmp4Summary(seg []byte) string {
	typ, code, id, seq := seg[0], seg[1], be16(seg[4:6]), be16(seg[6:8])
	switch typ {
	case 8:
		return fmt.Sprintf("ICMP echo request, id %d, seq %d", id, seq)
	case 0:
		return fmt.Sprintf("ICMP echo reply, id %d, seq %d", id, seq)
	case 3:
		return fmt.Sprintf("ICMP destination unreachable, code %d", code)
	case 11:
		return fmt.Sprintf("ICMP time exceeded, code %d", code)
	}
	return fmt.Sprintf("ICMP type %d, code %d", typ, code)
}

func icmp6Summary(seg []byte) string {
	typ, code := seg[0], seg[1]
	switch typ {
	case 128, 129:
		what := "request"
		if typ == 129 {
			what = "reply"
		}
		return fmt.Sprintf("ICMP6, echo %s, id %d, seq %d", what, be16(seg[4:6]), be16(seg[6:8]))
	case 135:
		if len(seg) >= 24 {
			return "ICMP6, neighbor solicitation, who has " + addr(seg[8:24])
		}
	case 136:
		if len(seg) >= 24 {
			return "ICMP6, neighbor advertisement, tgt is " + addr(seg[8:24])
		}
	case 133:
		return "ICMP6, router solicitation"
	case 134:
		return "ICMP6, router advertisement"
	case 1:
		return fmt.Sprintf("ICMP6, destination unreachable, code %d", code)
	}
	return fmt.Sprintf("ICMP6, type %d, code %d", typ, code)
}
