package capture

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Decode decodes a packet of the link type with gopacket's layers
// (Ethernet, ARP, IPv4/6, ICMPv4/6, TCP, UDP and what else gopacket knows).
func Decode(p Packet, lt layers.LinkType) gopacket.Packet {
	gp := gopacket.NewPacket(p.Data, lt, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	md := gp.Metadata()
	md.Timestamp = p.Time
	md.CaptureLength = len(p.Data)
	md.Length = p.Length
	md.InterfaceIndex = p.Iface
	return gp
}

// Line is one packet as netlab capture prints it, in tcpdump's manner:
//
//	14:20:01.123456 blue/veth1 Out IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 1, length 64
func Line(p Packet, iface Interface) string {
	dir := "In "
	if p.Outgoing {
		dir = "Out"
	}
	return fmt.Sprintf("%s %s %s %s", p.Time.Format("15:04:05.000000"), iface.Label, dir, Summary(Decode(p, iface.LinkType)))
}

// Summary describes a decoded packet in one line, like tcpdump without -v:
// "IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1, win 64240, length 0".
// Unknown protocols are named by gopacket's layer names.
func Summary(gp gopacket.Packet) string {
	if arp, ok := gp.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		return arpSummary(arp)
	}
	var family, src, dst string
	var payloadLen int
	switch ip := gp.NetworkLayer().(type) {
	case *layers.IPv4:
		family, src, dst = "IP", ip.SrcIP.String(), ip.DstIP.String()
		payloadLen = int(ip.Length) - int(ip.IHL)*4
	case *layers.IPv6:
		family, src, dst = "IP6", ip.SrcIP.String(), ip.DstIP.String()
		payloadLen = int(ip.Length)
	default:
		return otherSummary(gp)
	}
	switch l := gp.TransportLayer().(type) {
	case *layers.TCP:
		return fmt.Sprintf("%s %s.%d > %s.%d: %s", family, src, l.SrcPort, dst, l.DstPort, tcpSummary(l))
	case *layers.UDP:
		return fmt.Sprintf("%s %s.%d > %s.%d: UDP, length %d", family, src, l.SrcPort, dst, l.DstPort, len(l.Payload))
	}
	if icmp, ok := gp.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		return fmt.Sprintf("%s %s > %s: %s, length %d", family, src, dst, icmp4Summary(icmp), payloadLen)
	}
	if icmp, ok := gp.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
		return fmt.Sprintf("%s %s > %s: %s, length %d", family, src, dst, icmp6Summary(gp, icmp), payloadLen)
	}
	proto := "unknown"
	if ip, ok := gp.NetworkLayer().(*layers.IPv4); ok {
		proto = ip.Protocol.String()
	} else if ip, ok := gp.NetworkLayer().(*layers.IPv6); ok {
		proto = ip.NextHeader.String()
	}
	return fmt.Sprintf("%s %s > %s: %s, length %d", family, src, dst, proto, payloadLen)
}

func arpSummary(a *layers.ARP) string {
	ip := func(b []byte) string {
		if addr, ok := netip.AddrFromSlice(b); ok {
			return addr.String()
		}
		return fmt.Sprintf("%x", b)
	}
	switch a.Operation {
	case layers.ARPRequest:
		return fmt.Sprintf("ARP, Request who-has %s tell %s, length 28", ip(a.DstProtAddress), ip(a.SourceProtAddress))
	case layers.ARPReply:
		return fmt.Sprintf("ARP, Reply %s is-at %s, length 28", ip(a.SourceProtAddress), fmtMAC(a.SourceHwAddress))
	}
	return fmt.Sprintf("ARP, operation %d", a.Operation)
}

func fmtMAC(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

// tcpSummary prints flags as tcpdump does: S SYN, F FIN, P PSH, R RST, U
// URG, . ACK.
func tcpSummary(t *layers.TCP) string {
	var f strings.Builder
	for _, x := range []struct {
		on bool
		c  byte
	}{{t.SYN, 'S'}, {t.FIN, 'F'}, {t.PSH, 'P'}, {t.RST, 'R'}, {t.URG, 'U'}, {t.ECE, 'E'}, {t.CWR, 'W'}, {t.ACK, '.'}} {
		if x.on {
			f.WriteByte(x.c)
		}
	}
	if f.Len() == 0 {
		f.WriteString("none")
	}
	s := fmt.Sprintf("Flags [%s], seq %d", f.String(), t.Seq)
	if t.ACK {
		s += fmt.Sprintf(", ack %d", t.Ack)
	}
	return s + fmt.Sprintf(", win %d, length %d", t.Window, len(t.Payload))
}

func icmp4Summary(i *layers.ICMPv4) string {
	switch i.TypeCode.Type() {
	case layers.ICMPv4TypeEchoRequest:
		return fmt.Sprintf("ICMP echo request, id %d, seq %d", i.Id, i.Seq)
	case layers.ICMPv4TypeEchoReply:
		return fmt.Sprintf("ICMP echo reply, id %d, seq %d", i.Id, i.Seq)
	}
	return "ICMP " + i.TypeCode.String()
}

func icmp6Summary(gp gopacket.Packet, i *layers.ICMPv6) string {
	switch i.TypeCode.Type() {
	case layers.ICMPv6TypeEchoRequest, layers.ICMPv6TypeEchoReply:
		what := "request"
		if i.TypeCode.Type() == layers.ICMPv6TypeEchoReply {
			what = "reply"
		}
		if e, ok := gp.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
			return fmt.Sprintf("ICMP6, echo %s, id %d, seq %d", what, e.Identifier, e.SeqNumber)
		}
		return "ICMP6, echo " + what
	case layers.ICMPv6TypeNeighborSolicitation:
		if ns, ok := gp.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation); ok {
			return "ICMP6, neighbor solicitation, who has " + ns.TargetAddress.String()
		}
	case layers.ICMPv6TypeNeighborAdvertisement:
		if na, ok := gp.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement); ok {
			return "ICMP6, neighbor advertisement, tgt is " + na.TargetAddress.String()
		}
	case layers.ICMPv6TypeRouterSolicitation:
		return "ICMP6, router solicitation"
	case layers.ICMPv6TypeRouterAdvertisement:
		return "ICMP6, router advertisement"
	}
	return "ICMP6, " + i.TypeCode.String()
}

// otherSummary names what is neither ARP nor IP: the link layer's idea of
// the payload, or gopacket's decode error.
func otherSummary(gp gopacket.Packet) string {
	if eth, ok := gp.LinkLayer().(*layers.Ethernet); ok {
		return fmt.Sprintf("%s > %s, ethertype %s (0x%04x), length %d", eth.SrcMAC, eth.DstMAC, eth.EthernetType, uint16(eth.EthernetType), len(gp.Data()))
	}
	if e := gp.ErrorLayer(); e != nil {
		return fmt.Sprintf("undecodable, length %d: %v", len(gp.Data()), e.Error())
	}
	var names []string
	for _, l := range gp.Layers() {
		names = append(names, l.LayerType().String())
	}
	return fmt.Sprintf("%s, length %d", strings.Join(names, "/"), len(gp.Data()))
}
