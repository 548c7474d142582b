package capture

import (
	"bytes"
	"encoding/binary"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/netlab-dev/netlab/internal/testkit"
	"golang.org/x/net/bpf"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
	ipA  = net.IP{10, 0, 0, 1}
	ipB  = net.IP{10, 0, 0, 2}
)

// frame serializes layers with lengths and checksums computed.
func frame(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func icmpEcho(t *testing.T, typ uint8, seq uint16) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: ipA, DstIP: ipB}
	return frame(t,
		&layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}, ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: 7, Seq: seq},
		gopacket.Payload(make([]byte, 56)))
}

func tcpSyn(t *testing.T) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ipA, DstIP: ipB}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, SYN: true, Window: 64240}
	tcp.SetNetworkLayerForChecksum(ip)
	return frame(t, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}, ip, tcp)
}

// Several interfaces go into one pcapng: gopacket's own reader gives back
// every interface with its name and link type, and every packet with its
// interface, time and bytes.
func TestPcapngRoundTrip(t *testing.T) {
	ifaces := []Interface{
		{NS: "x-blue", Name: "veth1", Label: "blue/veth1", LinkType: LinkTypeEthernet},
		{NS: "host", Name: "x-veth0", Label: "host/x-veth0", LinkType: LinkTypeEthernet},
		{NS: "x-refl", Name: "tun0", Label: "refl/tun0", LinkType: LinkTypeRaw},
	}
	t0 := time.Date(2026, 12, 3, 14, 20, 1, 123456789, time.UTC)
	raw := icmpEcho(t, layers.ICMPv4TypeEchoRequest, 1)[14:]
	in := []Packet{
		{Iface: 0, Time: t0, Data: icmpEcho(t, layers.ICMPv4TypeEchoRequest, 1), Outgoing: true},
		{Iface: 1, Time: t0.Add(time.Microsecond), Data: icmpEcho(t, layers.ICMPv4TypeEchoRequest, 1)},
		{Iface: 2, Time: t0.Add(2 * time.Microsecond), Data: raw},
		{Iface: 0, Time: t0.Add(time.Millisecond), Data: icmpEcho(t, layers.ICMPv4TypeEchoReply, 1)[:50], Length: 98},
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Pcapng, ifaces, "icmp", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range in {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// gopacket's reader skips epb_flags: the directions are read here.
	if got, want := epbDirections(t, buf.Bytes()), []uint32{epbOutbound, epbInbound, epbInbound, epbInbound}; !slices.Equal(got, want) {
		t.Errorf("epb_flags directions %v, want %v", got, want)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []Packet
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		got = append(got, Packet{Iface: ci.InterfaceIndex, Time: ci.Timestamp, Data: data, Length: ci.Length})
	}
	if r.NInterfaces() != len(ifaces) {
		t.Fatalf("%d interfaces in the file, want %d", r.NInterfaces(), len(ifaces))
	}
	for i, want := range ifaces {
		ng, err := r.Interface(i)
		if err != nil {
			t.Fatal(err)
		}
		if ng.Name != want.Label || ng.LinkType != layers.LinkType(want.LinkType) || ng.Filter != "icmp" || ng.SnapLength != DefaultSnapLen {
			t.Errorf("interface %d: %+v, want name %s, link type %s, filter icmp", i, ng, want.Label, want.LinkType)
		}
	}
	if len(got) != len(in) {
		t.Fatalf("%d packets back, want %d", len(got), len(in))
	}
	for i := range in {
		if got[i].Iface != in[i].Iface || !got[i].Time.Equal(in[i].Time) || !bytes.Equal(got[i].Data, in[i].Data) {
			t.Errorf("packet %d: iface %d at %v (%d bytes), want iface %d at %v (%d bytes)", i, got[i].Iface, got[i].Time, len(got[i].Data), in[i].Iface, in[i].Time, len(in[i].Data))
		}
	}
	if got[3].Length != 98 {
		t.Errorf("truncated packet's wire length %d, want 98", got[3].Length)
	}
	// The raw IP packet of the TUN decodes as IP, the Ethernet ones as Ethernet.
	if gp := gopacket.NewPacket(got[2].Data, layers.LinkTypeRaw, gopacket.Default); gp.Layer(layers.LayerTypeICMPv4) == nil {
		t.Errorf("TUN packet does not decode as ICMP: %v", gp)
	}

	// And tcpdump, as a user would read it. libpcap reads a pcapng only
	// when its interfaces share one link type: the Ethernet ones here.
	if _, err := exec.LookPath("tcpdump"); err == nil {
		var eth bytes.Buffer
		w, err := NewWriter(&eth, Pcapng, ifaces[:2], "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []Packet{in[0], in[1], in[3]} {
			if err := w.WritePacket(p); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush()
		out := tcpdumpRead(t, eth.Bytes(), true)
		if strings.Count(out, "ICMP echo request, id 7, seq 1") != 2 || strings.Count(out, "ICMP echo reply, id 7, seq 1") != 1 {
			t.Errorf("tcpdump -r of the pcapng:\n%s", out)
		}
	}
}

// A pcap file holds one link type; packets keep their bytes and times.
func TestPcapRoundTrip(t *testing.T) {
	ifaces := []Interface{{Label: "a/eth0", LinkType: LinkTypeEthernet}, {Label: "b/eth0", LinkType: LinkTypeEthernet}}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Pcap, ifaces, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 987654321)
	p := Packet{Iface: 1, Time: t0, Data: tcpSyn(t)}
	if err := w.WritePacket(p); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	r, err := pcapgo.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	data, ci, err := r.ReadPacketData()
	if err != nil || !bytes.Equal(data, p.Data) || !ci.Timestamp.Equal(t0) || r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("pcap: %v %v %v link %v", err, ci, len(data), r.LinkType())
	}
	if _, err := exec.LookPath("tcpdump"); err == nil {
		if out := tcpdumpRead(t, buf.Bytes(), true); !strings.Contains(out, "10.0.0.1.40000 > 10.0.0.2.80: Flags [S]") {
			t.Errorf("tcpdump -r of the pcap:\n%s", out)
		}
	}

	mixed := []Interface{{Label: "a/eth0", LinkType: LinkTypeEthernet}, {Label: "a/tun0", LinkType: LinkTypeRaw}}
	if _, err := NewWriter(&bytes.Buffer{}, Pcap, mixed, "", 0); err == nil || !strings.Contains(err.Error(), "write pcapng") {
		t.Errorf("pcap of two link types: %v, want an error pointing to pcapng", err)
	}
	if FormatOf("x.pcap") != Pcap || FormatOf("x.pcapng") != Pcapng || FormatOf("-") != Pcapng {
		t.Error("FormatOf")
	}
}

// tcpdumpRead reads a capture with `tcpdump -r - -n` and returns its output.
func tcpdumpRead(t *testing.T, file []byte, mustWork bool) string {
	t.Helper()
	cmd := exec.Command("tcpdump", "-r", "-", "-n", "-tt")
	cmd.Stdin = bytes.NewReader(file)
	out, err := cmd.CombinedOutput()
	if err != nil && mustWork {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	return string(out)
}

// The one-line summaries read like tcpdump's.
func TestSummary(t *testing.T) {
	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: net.ParseIP("fd00:10::1"), DstIP: net.ParseIP("fd00:10::2")}
	icmp6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	icmp6.SetNetworkLayerForChecksum(ip6)
	udpIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ipA, DstIP: ipB}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	udp.SetNetworkLayerForChecksum(udpIP)
	eth := func(typ layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: typ}
	}
	for _, c := range []struct {
		name string
		data []byte
		lt   layers.LinkType
		want string
	}{
		{"echo request", icmpEcho(t, layers.ICMPv4TypeEchoRequest, 3), layers.LinkTypeEthernet, "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 3, length 64"},
		{"echo reply", icmpEcho(t, layers.ICMPv4TypeEchoReply, 3), layers.LinkTypeEthernet, "IP 10.0.0.1 > 10.0.0.2: ICMP echo reply, id 7, seq 3, length 64"},
		{"raw IP of a TUN", icmpEcho(t, layers.ICMPv4TypeEchoRequest, 4)[14:], layers.LinkTypeRaw, "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 4, length 64"},
		{"syn", tcpSyn(t), layers.LinkTypeEthernet, "IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1000, win 64240, length 0"},
		{"udp", frame(t, eth(layers.EthernetTypeIPv4), udpIP, udp, gopacket.Payload("hello")), layers.LinkTypeEthernet, "IP 10.0.0.1.5353 > 10.0.0.2.53: UDP, length 5"},
		{"arp request", frame(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: macA, SourceProtAddress: ipA, DstHwAddress: make([]byte, 6), DstProtAddress: ipB}), layers.LinkTypeEthernet, "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"},
		{"arp reply", frame(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPReply, SourceHwAddress: macB, SourceProtAddress: ipB, DstHwAddress: macA, DstProtAddress: ipA}), layers.LinkTypeEthernet, "ARP, Reply 10.0.0.2 is-at 02:00:00:00:00:0b, length 28"},
		{"icmp6 echo", frame(t, eth(layers.EthernetTypeIPv6), ip6, icmp6, &layers.ICMPv6Echo{Identifier: 9, SeqNumber: 2}), layers.LinkTypeEthernet, "IP6 fd00:10::1 > fd00:10::2: ICMP6, echo request, id 9, seq 2, length 8"},
		{"ipv6 fragment, not the first", ip6Fragment(185), layers.LinkTypeRaw, "IP6 fd00:10::1 > fd00:10::2: fragment of protocol 17, length 16"},
		{"ipv6 first fragment", ip6Fragment(0), layers.LinkTypeRaw, "IP6 fd00:10::1.5353 > fd00:10::2.53: UDP, length 0"},
		{"other ethertype", frame(t, eth(layers.EthernetType(0x88b5)), gopacket.Payload("xx")), layers.LinkTypeEthernet, "02:00:00:00:00:0a > 02:00:00:00:00:0b, ethertype 0x88b5, length 60"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Summary(c.data, LinkType(c.lt))
			if got != c.want {
				t.Errorf("Summary:\n got %s\nwant %s", got, c.want)
			}
		})
	}
	line := Line(Packet{Time: time.Date(2026, 1, 1, 14, 20, 1, 123456789, time.Local), Data: tcpSyn(t), Outgoing: true},
		Interface{Label: "blue/veth1", LinkType: LinkTypeEthernet})
	if want := "14:20:01.123456 blue/veth1 Out IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1000, win 64240, length 0"; line != want {
		t.Errorf("Line:\n got %s\nwant %s", line, want)
	}
}

// tcpdump's expressions compile to classic BPF that keeps what they say:
// run in x/net/bpf's VM, "icmp" takes the echo and leaves the SYN; a TUN's
// raw IP packets get a program of their own link type.
func TestCompile(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		testkit.SkipOrFail(t, "tcpdump not installed (make deps): it compiles filters")
	}
	run := func(prog []bpf.RawInstruction, pkt []byte) bool {
		t.Helper()
		ins, ok := bpf.Disassemble(prog)
		if !ok {
			t.Fatalf("program does not disassemble: %v", prog)
		}
		vm, err := bpf.NewVM(ins)
		if err != nil {
			t.Fatal(err)
		}
		n, err := vm.Run(pkt)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	icmp, err := Compile("icmp", LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !run(icmp, icmpEcho(t, layers.ICMPv4TypeEchoRequest, 1)) || run(icmp, tcpSyn(t)) {
		t.Error(`"icmp" does not take the echo and leave the SYN`)
	}
	port, err := Compile("tcp dst port 80 and host 10.0.0.2", LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	if run(port, icmpEcho(t, layers.ICMPv4TypeEchoRequest, 1)) || !run(port, tcpSyn(t)) {
		t.Error(`"tcp dst port 80 and host 10.0.0.2" does not take the SYN and leave the echo`)
	}
	raw, err := Compile("icmp", LinkTypeRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !run(raw, icmpEcho(t, layers.ICMPv4TypeEchoRequest, 1)[14:]) || run(raw, tcpSyn(t)[14:]) {
		t.Error(`"icmp" on raw IP does not take the echo and leave the SYN`)
	}
	if _, err := Compile("tcp port", LinkTypeEthernet, 0); err == nil || !strings.Contains(err.Error(), "syntax error") || strings.Contains(err.Error(), "reading from") {
		t.Errorf("bad filter: %v, want tcpdump's syntax error alone", err)
	}
}

func TestParseDDD(t *testing.T) {
	prog, err := parseDDD("2\n40 0 0 12\n6 0 0 262144\n")
	if err != nil || len(prog) != 2 || prog[0] != (bpf.RawInstruction{Op: 40, K: 12}) || prog[1].K != 262144 {
		t.Errorf("parseDDD: %v %v", prog, err)
	}
	for _, bad := range []string{"", "3\n40 0 0 12\n", "1\n40 0 12\n", "1\n40 0 0 x\n", "1\n40 300 0 0\n"} {
		if _, err := parseDDD(bad); err == nil {
			t.Errorf("parseDDD(%q): no error", bad)
		}
	}
}

// epbDirections walks a little-endian pcapng section and returns the
// direction bits of each enhanced packet block's epb_flags (0 if absent).
func epbDirections(t *testing.T, b []byte) []uint32 {
	t.Helper()
	var dirs []uint32
	for len(b) >= 12 {
		typ, n := binary.LittleEndian.Uint32(b[0:4]), int(binary.LittleEndian.Uint32(b[4:8]))
		if n < 12 || n > len(b) {
			t.Fatalf("bad block length %d", n)
		}
		if typ == blockEPB {
			body := b[8 : n-4]
			capLen := int(binary.LittleEndian.Uint32(body[12:16]))
			opts := body[20+capLen+pad4(capLen):]
			dir := uint32(0)
			for len(opts) >= 4 {
				code, l := binary.LittleEndian.Uint16(opts[0:2]), int(binary.LittleEndian.Uint16(opts[2:4]))
				if code == optEnd {
					break
				}
				if code == optEPBFlags && l == 4 {
					dir = binary.LittleEndian.Uint32(opts[4:8]) & 3
				}
				opts = opts[4+l+pad4(l):]
			}
			dirs = append(dirs, dir)
		}
		b = b[n:]
	}
	return dirs
}

// Summary reads whatever bytes it is given, cut anywhere, without
// panicking.
func FuzzSummary(f *testing.F) {
	f.Add(icmpEchoSeed(), uint16(LinkTypeEthernet))
	f.Add(icmpEchoSeed()[14:], uint16(LinkTypeRaw))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 0, 64}, uint16(LinkTypeRaw))
	f.Fuzz(func(t *testing.T, data []byte, lt uint16) {
		for n := range len(data) + 1 {
			_ = Summary(data[:n], LinkType(lt))
		}
	})
}

func icmpEchoSeed() []byte {
	buf := gopacket.NewSerializeBuffer()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: ipA, DstIP: ipB}
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}, ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1},
		gopacket.Payload(make([]byte, 56)))
	return buf.Bytes()
}

// ip6Fragment is a raw IPv6 packet with a fragment header at offset (in
// 8-byte units) and 8 bytes after it: a UDP header when offset is 0.
func ip6Fragment(offset uint16) []byte {
	p := []byte{0x60, 0, 0, 0, 0, 16, 44, 64}
	p = append(p, net.ParseIP("fd00:10::1").To16()...)
	p = append(p, net.ParseIP("fd00:10::2").To16()...)
	p = append(p, 17, 0, byte(offset<<3>>8), byte(offset<<3), 0, 0, 0, 1) // fragment header
	return append(p, 0x14, 0xe9, 0, 53, 0, 8, 0, 0)                       // UDP 5353 > 53, length 8
}
