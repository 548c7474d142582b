package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// attr is one netlink attribute of a canned message.
type attr struct {
	typ uint16
	val []byte
}

// linkMsg hand-builds an RTM_NEWLINK payload: struct ifinfomsg, then the
// attributes, each padded to 4 bytes, in host byte order as the kernel sends.
func linkMsg(arphrd uint16, index int32, flags uint32, attrs ...attr) []byte {
	b := make([]byte, 16)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint16(b[2:], arphrd)
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], 0xffffffff) // ifi_change
	for _, a := range attrs {
		h := make([]byte, 4)
		binary.NativeEndian.PutUint16(h[0:], uint16(4+len(a.val)))
		binary.NativeEndian.PutUint16(h[2:], a.typ)
		b = append(b, h...)
		b = append(b, a.val...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

func name(s string) attr       { return attr{unix.IFLA_IFNAME, append([]byte(s), 0)} }
func address(b ...byte) attr   { return attr{unix.IFLA_ADDRESS, b} }
func broadcast(b ...byte) attr { return attr{unix.IFLA_BROADCAST, b} }
func perm(b ...byte) attr      { return attr{unix.IFLA_PERM_ADDRESS, b} }
func mtu(v uint32) attr        { return attr{unix.IFLA_MTU, binary.NativeEndian.AppendUint32(nil, v)} }
func ip(s string) []byte       { return []byte(net.ParseIP(s).To4()) }
func ip6(s string) []byte      { return []byte(net.ParseIP(s).To16()) }
func mac(s string) []byte      { m, _ := net.ParseMAC(s); return m }
func addrAttr(a []byte) attr   { return address(a...) }
func brdAttr(a []byte) attr    { return broadcast(a...) }
func permAttr(a []byte) attr   { return perm(a...) }
func zeros(n int) []byte       { return make([]byte, n) }
func flagsOf(fs ...uint32) (f uint32) {
	for _, x := range fs {
		f |= x
	}
	return f
}

const (
	ethFlags = unix.IFF_UP | unix.IFF_BROADCAST | unix.IFF_MULTICAST | unix.IFF_LOWER_UP
	p2p      = unix.IFF_UP | unix.IFF_POINTOPOINT | unix.IFF_NOARP
)

var linkLayerCases = []struct {
	name string
	msg  []byte
	want string
}{
	{
		name: "ether",
		msg: linkMsg(unix.ARPHRD_ETHER, 2, ethFlags, name("veth0"), mtu(1500),
			addrAttr(mac("02:00:00:00:00:01")), brdAttr(mac("ff:ff:ff:ff:ff:ff"))),
		want: "link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff",
	},
	{
		name: "ether with a different permanent address",
		msg: linkMsg(unix.ARPHRD_ETHER, 2, ethFlags, name("eth0"),
			addrAttr(mac("02:00:00:00:00:01")), brdAttr(mac("ff:ff:ff:ff:ff:ff")), permAttr(mac("52:54:00:12:34:56"))),
		want: "link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff permaddr 52:54:00:12:34:56",
	},
	{
		name: "ether with the same permanent address",
		msg: linkMsg(unix.ARPHRD_ETHER, 2, ethFlags, name("eth0"),
			addrAttr(mac("52:54:00:12:34:56")), brdAttr(mac("ff:ff:ff:ff:ff:ff")), permAttr(mac("52:54:00:12:34:56"))),
		want: "link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff",
	},
	{
		name: "ether with a wrong-length permanent address",
		msg: linkMsg(unix.ARPHRD_ETHER, 2, ethFlags, name("eth0"),
			addrAttr(mac("02:00:00:00:00:01")), brdAttr(mac("ff:ff:ff:ff:ff:ff")), perm(1, 2, 3, 4)),
		want: "link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff",
	},
	{
		name: "loopback (all-zero addresses are still printed)",
		msg: linkMsg(unix.ARPHRD_LOOPBACK, 1, unix.IFF_UP|unix.IFF_LOOPBACK, name("lo"),
			addrAttr(zeros(6)), brdAttr(zeros(6))),
		want: "link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00",
	},
	{
		name: "tun has no address at all",
		msg:  linkMsg(unix.ARPHRD_NONE, 7, flagsOf(unix.IFF_POINTOPOINT, unix.IFF_NOARP, unix.IFF_MULTICAST), name("tun0")),
		want: "link/none",
	},
	{
		name: "ipip point-to-point",
		msg:  linkMsg(unix.ARPHRD_TUNNEL, 8, p2p, name("ipip1"), addrAttr(ip("10.1.1.1")), brdAttr(ip("10.1.1.2"))),
		want: "link/ipip 10.1.1.1 peer 10.1.1.2",
	},
	{
		name: "ipip fallback device (any remote, not point-to-point)",
		msg:  linkMsg(unix.ARPHRD_TUNNEL, 3, unix.IFF_NOARP, name("tunl0"), addrAttr(zeros(4)), brdAttr(zeros(4))),
		want: "link/ipip 0.0.0.0 brd 0.0.0.0",
	},
	{
		name: "gre",
		msg:  linkMsg(unix.ARPHRD_IPGRE, 9, p2p, name("gre1"), addrAttr(ip("192.0.2.1")), brdAttr(ip("192.0.2.2"))),
		want: "link/gre 192.0.2.1 peer 192.0.2.2",
	},
	{
		name: "gre with a wrong-length permanent address",
		msg: linkMsg(unix.ARPHRD_IPGRE, 9, p2p, name("gre1"), addrAttr(ip("192.0.2.1")), brdAttr(ip("192.0.2.2")),
			permAttr(mac("02:00:00:00:00:09"))),
		want: "link/gre 192.0.2.1 peer 192.0.2.2",
	},
	{
		name: "sit",
		msg:  linkMsg(unix.ARPHRD_SIT, 10, p2p, name("sit1"), addrAttr(ip("198.51.100.1")), brdAttr(ip("198.51.100.2"))),
		want: "link/sit 198.51.100.1 peer 198.51.100.2",
	},
	{
		name: "ip6tnl",
		msg:  linkMsg(unix.ARPHRD_TUNNEL6, 11, p2p, name("ip6tnl1"), addrAttr(ip6("2001:db8::1")), brdAttr(ip6("2001:db8::2"))),
		want: "link/tunnel6 2001:db8::1 peer 2001:db8::2",
	},
	{
		name: "ip6gre (netlink's Go code calls it unknown823)",
		msg:  linkMsg(unix.ARPHRD_IP6GRE, 12, p2p, name("ip6gre1"), addrAttr(ip6("2001:db8::1")), brdAttr(ip6("2001:db8::2"))),
		want: "link/gre6 2001:db8::1 peer 2001:db8::2",
	},
	{
		name: "4-byte address on an ether link is hex, not an IP",
		msg:  linkMsg(unix.ARPHRD_ETHER, 13, 0, name("odd"), address(10, 0, 0, 1)),
		want: "link/ether 0a:00:00:01",
	},
	{
		name: "unknown type",
		msg:  linkMsg(0x1234, 14, 0, name("x"), address(1, 2)),
		want: "link/[4660] 01:02",
	},
}

func TestParseAndFormatLinkLayer(t *testing.T) {
	for _, tc := range linkLayerCases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ParseLinkMessage(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParseLinkMessageFields(t *testing.T) {
	msg := linkMsg(unix.ARPHRD_ETHER, 42, ethFlags, mtu(9000), name("veth7"),
		addrAttr(mac("02:00:00:00:00:07")), brdAttr(mac("ff:ff:ff:ff:ff:ff")), permAttr(mac("52:54:00:00:00:07")))
	info, err := ParseLinkMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if info.Index != 42 || info.Name != "veth7" || info.Type != unix.ARPHRD_ETHER || info.Flags != ethFlags {
		t.Errorf("header fields: %+v", info)
	}
	if !bytes.Equal(info.Address, mac("02:00:00:00:00:07")) || !bytes.Equal(info.Broadcast, mac("ff:ff:ff:ff:ff:ff")) ||
		!bytes.Equal(info.PermAddress, mac("52:54:00:00:00:07")) {
		t.Errorf("addresses: %+v", info)
	}
	// The result must not alias the message buffer.
	for i := range msg {
		msg[i] = 0xee
	}
	if !bytes.Equal(info.Address, mac("02:00:00:00:00:07")) {
		t.Error("Address aliases the input buffer")
	}
	// TUN: no address attribute → nil, not empty.
	info, err = ParseLinkMessage(linkMsg(unix.ARPHRD_NONE, 1, 0, name("tun0")))
	if err != nil || info.Address != nil || info.Broadcast != nil {
		t.Errorf("tun: %+v, %v", info, err)
	}
}

// nested builds a nested attribute of the given attributes.
func nested(typ uint16, attrs ...attr) attr {
	b := linkMsg(0, 0, 0, attrs...)[16:]
	return attr{typ | unix.NLA_F_NESTED, b}
}

func u32(typ uint16, v uint32) attr { return attr{typ, binary.NativeEndian.AppendUint32(nil, v)} }

// A TUN/TAP's owner and group come from IFLA_LINKINFO's info data; without
// them (no owner), -1, where netlink's Go types say uid 0.
func TestParseLinkMessageTunOwner(t *testing.T) {
	kind := attr{1, []byte("tun\x00")} // IFLA_INFO_KIND
	owned := linkMsg(unix.ARPHRD_ETHER, 9, 0, name("tap0"),
		nested(unix.IFLA_LINKINFO, kind, nested(iflaInfoData, attr{4, []byte{1}}, u32(iflaTunOwner, 0), u32(iflaTunGroup, 1000))))
	info, err := ParseLinkMessage(owned)
	if err != nil || info.TunOwner != 0 || info.TunGroup != 1000 || info.Name != "tap0" {
		t.Errorf("owned tap: owner %d group %d, %v", info.TunOwner, info.TunGroup, err)
	}
	unowned := linkMsg(unix.ARPHRD_NONE, 10, 0, name("tun0"),
		nested(unix.IFLA_LINKINFO, kind, nested(iflaInfoData, attr{4, []byte{1}})))
	info, err = ParseLinkMessage(unowned)
	if err != nil || info.TunOwner != -1 || info.TunGroup != -1 {
		t.Errorf("unowned tun: owner %d group %d, %v", info.TunOwner, info.TunGroup, err)
	}
	bad := linkMsg(unix.ARPHRD_NONE, 10, 0, nested(unix.IFLA_LINKINFO, attr{iflaInfoData, []byte{200, 0, 1, 0}}))
	if _, err := ParseLinkMessage(bad); !errors.Is(err, ErrTruncated) {
		t.Errorf("a truncated nested attribute: %v, want ErrTruncated", err)
	}
}

// TestParseLinkMessageLiteral checks the layout against bytes written out by
// hand (little endian: the x86-64 and arm64 machines netlab runs on).
func TestParseLinkMessageLiteral(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("big-endian host: the literal is little endian")
	}
	msg := []byte{
		0x00, 0x00, 0x01, 0x00, // family AF_UNSPEC, pad, type ARPHRD_ETHER (1)
		0x05, 0x00, 0x00, 0x00, // index 5
		0x43, 0x10, 0x01, 0x00, // flags UP|BROADCAST|RUNNING|MULTICAST|LOWER_UP
		0x00, 0x00, 0x00, 0x00, // change
		0x08, 0x00, 0x03, 0x00, 'v', 'e', '0', 0x00, // IFLA_IFNAME "ve0"
		0x0a, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, // IFLA_ADDRESS + 2 pad
		0x0a, 0x00, 0x02, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // IFLA_BROADCAST, padding omitted at the end
	}
	info, err := ParseLinkMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "ve0" || info.Index != 5 {
		t.Errorf("got %+v", info)
	}
	if got, want := info.String(), "link/ether 02:00:00:00:00:05 brd ff:ff:ff:ff:ff:ff"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseLinkMessageTruncated(t *testing.T) {
	good := linkLayerCases[0].msg
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"empty", nil},
		{"short ifinfomsg", good[:10]},
		{"cut inside an attribute header", good[:18]},
		{"cut inside an attribute value", good[:len(good)-3]},
		{"attribute length below its header", append(linkMsg(1, 1, 0), 2, 0, 1, 0)},
		{"attribute longer than the message", append(linkMsg(1, 1, 0), 200, 0, 1, 0, 1, 2, 3, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLinkMessage(tc.msg)
			if !errors.Is(err, ErrTruncated) {
				t.Errorf("got %v, want ErrTruncated", err)
			}
		})
	}
	// Exactly the header, no attributes: valid, nothing known.
	info, err := ParseLinkMessage(linkMsg(unix.ARPHRD_NONE, 3, 0))
	if err != nil || info.String() != "link/none" {
		t.Errorf("header only: %q, %v", info.String(), err)
	}
}

func FuzzParseLinkMessage(f *testing.F) {
	for _, tc := range linkLayerCases {
		f.Add(tc.msg)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		info, err := ParseLinkMessage(b)
		if !bytes.Equal(in, b) {
			t.Fatal("ParseLinkMessage modified its input")
		}
		if err != nil {
			return
		}
		_ = info.String() // must not panic on any lengths
		if len(b) < 16 {
			t.Fatalf("accepted a %d-byte message", len(b))
		}
	})
}

func TestFormatLinkLayerDirect(t *testing.T) {
	// The printer alone, for values that do not come from a message.
	for _, tc := range []struct {
		arphrd         uint16
		flags          uint32
		addr, brd, prm []byte
		want           string
	}{
		{unix.ARPHRD_ETHER, 0, mac("02:00:00:00:00:01"), nil, nil, "link/ether 02:00:00:00:00:01"},
		{unix.ARPHRD_NONE, unix.IFF_POINTOPOINT, nil, nil, nil, "link/none"},
		{unix.ARPHRD_SIT, unix.IFF_POINTOPOINT, ip("192.0.2.1"), ip("192.0.2.2"), zeros(16), "link/sit 192.0.2.1 peer 192.0.2.2"},
		{unix.ARPHRD_TUNNEL6, unix.IFF_POINTOPOINT, ip6("2001:db8::1"), ip6("2001:db8::2"), ip("192.0.2.9"), "link/tunnel6 2001:db8::1 peer 2001:db8::2"},
		{unix.ARPHRD_NONE, 0, nil, nil, mac("02:00:00:00:00:01"), "link/none"},      // perm on an address-less type
		{unix.ARPHRD_IP6GRE, 0, ip("192.0.2.1"), nil, nil, "link/gre6 c0:00:02:01"}, // wrong length: hex, like iproute2
	} {
		if got := FormatLinkLayer(tc.arphrd, tc.flags, tc.addr, tc.brd, tc.prm); got != tc.want {
			t.Errorf("FormatLinkLayer(%d, %#x, %x, %x, %x) = %q, want %q", tc.arphrd, tc.flags, tc.addr, tc.brd, tc.prm, got, tc.want)
		}
	}
}
