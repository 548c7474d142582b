package reflector

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// csum returns the ones'-complement sum of b folded to 16 bits (not
// inverted), starting from initial.
func csum(initial uint32, b []byte) uint16 {
	s := initial
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// pseudo returns the sum of the TCP/UDP pseudo-header.
func pseudo(src, dst netip.Addr, proto byte, length int) uint32 {
	var b []byte
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	if src.Is4() {
		b = append(b, 0, proto, byte(length>>8), byte(length))
	} else {
		b = binary.BigEndian.AppendUint32(b, uint32(length))
		b = append(b, 0, 0, 0, proto)
	}
	return uint32(csum(0, b))
}

// buildPacket returns a valid IPv4 or IPv6 packet carrying a UDP (17) or TCP
// (6) segment with payload, all checksums set.
func buildPacket(t testing.TB, src, dst netip.Addr, proto byte, payload []byte) []byte {
	t.Helper()
	var l4 []byte
	switch proto {
	case 17:
		l4 = make([]byte, 8, 8+len(payload))
		binary.BigEndian.PutUint16(l4[0:], 40000)
		binary.BigEndian.PutUint16(l4[2:], 53)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(payload)))
	case 6:
		l4 = make([]byte, 20, 20+len(payload))
		binary.BigEndian.PutUint16(l4[0:], 40000)
		binary.BigEndian.PutUint16(l4[2:], 80)
		binary.BigEndian.PutUint32(l4[4:], 0x01020304) // seq
		binary.BigEndian.PutUint32(l4[8:], 0x0a0b0c0d) // ack
		l4[12] = 5 << 4
		l4[13] = 0x18 // PSH|ACK
		binary.BigEndian.PutUint16(l4[14:], 65535)
	default:
		t.Fatalf("proto %d", proto)
	}
	l4 = append(l4, payload...)
	ck := ^csum(pseudo(src, dst, proto, len(l4)), l4)
	if proto == 17 {
		if ck == 0 {
			ck = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], ck)
	} else {
		binary.BigEndian.PutUint16(l4[16:], ck)
	}
	if src.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(h[4:], 0x1234)
		h[8] = 64
		h[9] = proto
		copy(h[12:16], src.AsSlice())
		copy(h[16:20], dst.AsSlice())
		binary.BigEndian.PutUint16(h[10:], ^csum(0, h))
		return append(h, l4...)
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6] = proto
	h[7] = 64
	copy(h[8:24], src.AsSlice())
	copy(h[24:40], dst.AsSlice())
	return append(h, l4...)
}

// checksumsValid verifies the IPv4 header checksum and the TCP/UDP checksum.
func checksumsValid(t *testing.T, pkt []byte) {
	t.Helper()
	var src, dst netip.Addr
	var proto byte
	var l4 []byte
	if pkt[0]>>4 == 4 {
		if got := csum(0, pkt[:20]); got != 0xffff {
			t.Errorf("IPv4 header checksum invalid: sum %#04x", got)
		}
		src, dst = netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		proto, l4 = pkt[9], pkt[20:]
	} else {
		src, dst = netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		proto, l4 = pkt[6], pkt[40:]
	}
	if got := csum(pseudo(src, dst, proto, len(l4)), l4); got != 0xffff {
		t.Errorf("proto %d checksum invalid after swap: sum %#04x", proto, got)
	}
}

func TestReflectSwapsAndKeepsChecksums(t *testing.T) {
	cases := []struct {
		name     string
		src, dst string
		proto    byte
	}{
		{"udp4", "10.0.0.1", "10.200.3.4", 17},
		{"tcp4", "10.0.0.1", "10.9.9.9", 6},
		{"udp6", "fe80::1", "fd2a:cd2c:8bc4:11ff::23", 17},
		{"tcp6", "fd2a:cd2c:8bc4::1", "fd2a:cd2c:8bc4::23", 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst)
			for _, size := range []int{0, 1, 7, 1400} {
				payload := bytes.Repeat([]byte{0xa5, 0x3c, 0x11}, size)[:size]
				pkt := buildPacket(t, src, dst, tc.proto, payload)
				orig := bytes.Clone(pkt)
				checksumsValid(t, pkt)
				if !Reflect(pkt) {
					t.Fatalf("Reflect rejected a valid packet")
				}
				gotSrc, gotDst, ok := addrs(pkt)
				if !ok || gotSrc != dst || gotDst != src {
					t.Fatalf("after Reflect: %v->%v, want %v->%v", gotSrc, gotDst, dst, src)
				}
				checksumsValid(t, pkt)
				want := buildPacket(t, dst, src, tc.proto, payload) // built from scratch
				if !bytes.Equal(pkt, want) {
					t.Errorf("reflected packet differs from one built with swapped addresses\n got %x\nwant %x", pkt, want)
				}
				if !Reflect(pkt) || !bytes.Equal(pkt, orig) {
					t.Errorf("Reflect twice is not the identity")
				}
			}
		})
	}
}

func TestReflectRejects(t *testing.T) {
	good4 := buildPacket(t, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 17, []byte("hi"))
	good6 := buildPacket(t, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2"), 17, []byte("hi"))
	mod := func(b []byte, f func([]byte)) []byte { b = bytes.Clone(b); f(b); return b }
	cases := map[string][]byte{
		"nil":             nil,
		"empty":           {},
		"one byte v4":     {0x45},
		"short v4":        good4[:19],
		"truncated v4":    good4[:len(good4)-1],
		"ihl below 5":     mod(good4, func(b []byte) { b[0] = 0x44 }),
		"ihl past end":    mod(good4, func(b []byte) { b[0] = 0x4f }),
		"total below ihl": mod(good4, func(b []byte) { binary.BigEndian.PutUint16(b[2:], 19) }),
		"short v6":        good6[:39],
		"truncated v6":    good6[:len(good6)-1],
		"version 5":       mod(good4, func(b []byte) { b[0] = 0x55 }),
		"version 0":       mod(good4, func(b []byte) { b[0] = 0x05 }),
		"arp-ish":         {0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01},
	}
	for name, pkt := range cases {
		orig := bytes.Clone(pkt)
		if Reflect(pkt) {
			t.Errorf("%s: accepted", name)
		}
		if !bytes.Equal(pkt, orig) {
			t.Errorf("%s: rejected packet was modified", name)
		}
	}
	// Trailing padding past the length field is tolerated.
	padded := append(bytes.Clone(good4), 0, 0, 0, 0)
	if !Reflect(padded) {
		t.Errorf("padded IPv4 rejected")
	}
}

func TestReflectAllocs(t *testing.T) {
	pkt := buildPacket(t, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fd00::2"), 6, make([]byte, 100))
	if n := testing.AllocsPerRun(100, func() { Reflect(pkt) }); n != 0 {
		t.Errorf("Reflect allocates %v times", n)
	}
}

func FuzzReflect(f *testing.F) {
	f.Add(buildPacket(f, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.9.9.9"), 6, []byte("data")))
	f.Add(buildPacket(f, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fd2a::23"), 17, []byte("x")))
	f.Add([]byte{0x45})
	f.Add([]byte{0x60, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		orig := bytes.Clone(pkt)
		if !Reflect(pkt) {
			if !bytes.Equal(pkt, orig) {
				t.Fatalf("rejected packet modified")
			}
			return
		}
		// Only the address bytes may differ, and as a swap.
		v := pkt[0] >> 4
		off, n := ipv4SrcOff, 4
		if v == 6 {
			off, n = ipv6SrcOff, 16
		}
		if !bytes.Equal(pkt[off:off+n], orig[off+n:off+2*n]) || !bytes.Equal(pkt[off+n:off+2*n], orig[off:off+n]) {
			t.Fatalf("addresses not swapped")
		}
		if !bytes.Equal(pkt[:off], orig[:off]) || !bytes.Equal(pkt[off+2*n:], orig[off+2*n:]) {
			t.Fatalf("bytes outside the addresses changed")
		}
		if csumOrig, csumNew := csum(0, orig), csum(0, pkt); csumOrig != csumNew {
			t.Fatalf("ones'-complement sum changed: %#x -> %#x", csumOrig, csumNew)
		}
		if !Reflect(pkt) || !bytes.Equal(pkt, orig) {
			t.Fatalf("twice is not the identity")
		}
	})
}

func BenchmarkReflect(b *testing.B) {
	pkt := buildPacket(b, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fd00::2"), 6, make([]byte, 1400))
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		Reflect(pkt)
	}
}
