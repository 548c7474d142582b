package reflector

import "encoding/binary"

// Header sizes and address offsets of the two IP versions.
const (
	ipv4MinHeader = 20
	ipv4SrcOff    = 12 // bytes 12-15 source, 16-19 destination
	ipv6Header    = 40
	ipv6SrcOff    = 8 // bytes 8-23 source, 24-39 destination
)

// Reflect swaps, in place, the source and destination address of the IPv4 or
// IPv6 packet pkt and reports whether pkt was one. A packet that is empty,
// shorter than its header, truncated (its length field claims more bytes than
// pkt holds), of another IP version, or an IPv4 packet with a header length
// below 20 bytes is left untouched and ok is false. Trailing bytes past the
// length field are tolerated (some links pad).
//
// No checksum is updated, none needs to be: the IPv4 header checksum and the
// TCP/UDP/ICMPv6 pseudo-header sums are ones'-complement sums, and swapping
// two 16-bit-aligned words of a sum does not change it. That also holds for a
// partial checksum (CHECKSUM_PARTIAL, virtio_net_hdr NEEDS_CSUM), so a GSO
// super-packet can be written back with its virtio_net_hdr unchanged.
//
// Reflect allocates nothing and never panics.
func Reflect(pkt []byte) (ok bool) {
	switch version(pkt) {
	case 4:
		a := pkt[ipv4SrcOff : ipv4SrcOff+8 : ipv4SrcOff+8]
		src := binary.NativeEndian.Uint32(a[0:4])
		dst := binary.NativeEndian.Uint32(a[4:8])
		binary.NativeEndian.PutUint32(a[0:4], dst)
		binary.NativeEndian.PutUint32(a[4:8], src)
		return true
	case 6:
		a := pkt[ipv6SrcOff : ipv6SrcOff+32 : ipv6SrcOff+32]
		s0 := binary.NativeEndian.Uint64(a[0:8])
		s1 := binary.NativeEndian.Uint64(a[8:16])
		d0 := binary.NativeEndian.Uint64(a[16:24])
		d1 := binary.NativeEndian.Uint64(a[24:32])
		binary.NativeEndian.PutUint64(a[0:8], d0)
		binary.NativeEndian.PutUint64(a[8:16], d1)
		binary.NativeEndian.PutUint64(a[16:24], s0)
		binary.NativeEndian.PutUint64(a[24:32], s1)
		return true
	}
	return false
}

// version returns 4 or 6 if pkt is a whole IPv4 or IPv6 packet by the rules
// of Reflect, 0 otherwise.
func version(pkt []byte) int {
	if len(pkt) == 0 {
		return 0
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < ipv4MinHeader {
			return 0
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if ihl < ipv4MinHeader || total < ihl || total > len(pkt) {
			return 0
		}
		return 4
	case 6:
		if len(pkt) < ipv6Header || ipv6Header+int(binary.BigEndian.Uint16(pkt[4:6])) > len(pkt) {
			return 0
		}
		return 6
	}
	return 0
}
